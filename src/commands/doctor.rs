//! `doctor`: what stamp needs on this machine, checked. The tools and their versions
//! (terraform against stamp's own minimum and each stack's `required_version`), the
//! Terraform CLI configuration terraform will run with, the fleet file, the customers,
//! and whether AWS (or the emulator) answers. It runs without a fleet file (a fresh
//! clone, a new machine), checking the tools on PATH and saying what it could not
//! check; it fails (exit 1) when a required tool or version is missing or a check fails.

use std::path::{Path, PathBuf};

use crate::config::{EnvOverrides, Fleet};
use crate::error::Error;
use crate::tools::find;
use crate::tools::process::{StageLog, Stream, Tail, ToolCommand};
use crate::tools::terraform::{self, CliConfig, StackInfo};
use crate::tools::version::{self, Version};

/// The Terraform versions stamp works with: the S3 backend's `use_lockfile` (state
/// locking without DynamoDB), which stamp writes into every stack's backend, came
/// with Terraform 1.10 (and OpenTofu 1.10).
pub(super) const TERRAFORM_REQUIRED: &str = ">= 1.10";

/// The lines printed (or, for `--json`, the checks kept for the document), and how
/// many were problems.
#[derive(Default)]
struct Report {
    problems: usize,
    json: bool,
    checks: Vec<serde_json::Value>,
}

impl Report {
    fn line(&mut self, marker: &str, status: &str, what: &str, text: impl std::fmt::Display) {
        if self.json {
            self.checks.push(serde_json::json!({"check": what, "status": status, "detail": text.to_string()}));
        } else {
            println!("{marker:<4} {what:<10} {text}");
        }
    }
    fn ok(&mut self, what: &str, text: impl std::fmt::Display) {
        self.line("ok", "ok", what, text);
    }
    fn fail(&mut self, what: &str, text: impl std::fmt::Display) {
        self.problems += 1;
        self.line("FAIL", "fail", what, text);
    }
    /// Not checked, and why; not a problem.
    fn skip(&mut self, what: &str, text: impl std::fmt::Display) {
        self.line("--", "skip", what, text);
    }
    /// What the check before it found out; not a check.
    fn info(&mut self, what: &str, text: impl std::fmt::Display) {
        self.line("", "info", what, text);
    }
}

/// `fleet`: the fleet file as loaded, or why it could not be.
pub(super) async fn doctor(config: &Path, fleet: Result<Fleet, Error>, as_json: bool) -> Result<(), Error> {
    let mut r = Report { json: as_json, ..Report::default() };
    let fleet = match fleet {
        Ok(f) => {
            r.ok("config", f.config_path.display());
            r.info("endpoint", f.aws.endpoint.as_deref().unwrap_or("real AWS"));
            Some(f)
        }
        Err(_) if !config.exists() => {
            r.skip(
                "config",
                format!(
                    "no fleet file {}: the tools on PATH are checked, not the stacks' required versions, \
                     the customers or AWS (pass --config FILE or run from the fleet's directory)",
                    config.display()
                ),
            );
            None
        }
        Err(e) => {
            r.fail("config", format!("{e}"));
            r.info("", "the stacks' required versions, the customers and AWS are not checked");
            None
        }
    };

    let overrides = EnvOverrides::from_process();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let (root, env) = match &fleet {
        Some(f) => (f.root.clone(), find::tool_env(f, &f.region, &f.paths.work)?),
        None => (cwd, Vec::new()),
    };
    let choice = |from_fleet: Option<&Option<String>>, from_env: &Option<String>| match from_fleet {
        Some(c) => c.clone(),
        None => from_env.clone(),
    };
    // (name, names looked up on PATH, configured choice, the key that sets it, version arguments)
    type Probe<'a> = (&'a str, &'a [&'a str], Option<String>, &'a str, &'a [&'a str]);
    let tools: [Probe; 3] = [
        (
            "terraform",
            &["terraform", "tofu"],
            choice(fleet.as_ref().map(|f| &f.tools.terraform), &overrides.terraform),
            "[tools] terraform (STAMP_TERRAFORM)",
            &["version"],
        ),
        (
            "packer",
            &["packer"],
            choice(fleet.as_ref().map(|f| &f.tools.packer), &overrides.packer),
            "[tools] packer (STAMP_PACKER)",
            &["version"],
        ),
        ("aws", &["aws"], choice(fleet.as_ref().map(|f| &f.tools.aws), &overrides.aws), "[tools] aws (STAMP_AWS)", &["--version"]),
    ];
    let mut aws_path = None;
    for (name, names, choice, key, args) in tools {
        let path = match find::find_tool(names, choice.as_deref(), &root, key) {
            Ok(p) => p,
            Err(e) => {
                r.fail(name, e);
                continue;
            }
        };
        let output = match version_output(&path, &root, &env, args).await {
            Ok(o) => o,
            Err(e) => {
                r.fail(name, format!("{}: {e}", path.display()));
                continue;
            }
        };
        let first = output.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_owned();
        r.ok(name, format!("{} ({first})", path.display()));
        match name {
            "terraform" => {
                check_terraform(&mut r, Version::find_in(&output), fleet.as_ref());
                cli_configuration(&mut r, fleet.as_ref(), &env);
            }
            "aws" => aws_path = Some(path),
            _ => {}
        }
    }

    let Some(fleet) = fleet else {
        r.skip("aws", "credentials and endpoint not checked: they are the fleet file's");
        r.skip("customers", "not checked: their directory is the fleet file's");
        return verdict(&r);
    };
    if let Some(program) = aws_path {
        let aws = crate::tools::aws::Aws::new(&fleet, program, env.clone());
        match aws.account_id("doctor", &mut StageLog::discard_with_notes()).await {
            Ok(a) => r.ok("aws", format!("credentials work, account {a}")),
            Err(e) => r.fail("aws", format!("cannot reach AWS with these credentials: {e}")),
        }
    }
    match fleet.customer_names() {
        Ok(n) => r.ok("customers", format!("{} customer file(s) in {}", n.len(), fleet.paths.customers.display())),
        Err(e) => r.fail("customers", e),
    }
    verdict(&r)
}

fn verdict(r: &Report) -> Result<(), Error> {
    if r.json {
        let n = |status: &str| r.checks.iter().filter(|c| c["status"] == status).count();
        let summary = serde_json::json!({"ok": n("ok"), "failed": n("fail"), "skipped": n("skip"), "problems": r.problems});
        super::json_out::print("doctor", serde_json::json!({"checks": r.checks, "summary": summary}));
    }
    if r.problems > 0 {
        return Err(Error::stage_hint(
            format!("doctor found {} problem(s)", r.problems),
            "each FAIL line says what is missing; README \"Deploying on AWS: Prerequisites\" lists the tools and versions",
        ));
    }
    Ok(())
}

/// A tool's `version` output (stdout).
async fn version_output(path: &Path, root: &Path, env: &[(String, String)], args: &[&str]) -> Result<String, Error> {
    let mut out = String::new();
    ToolCommand::new(path, root)
        .args(args.iter().copied())
        .envs(env)
        .run("doctor", &mut StageLog::discard(), &[0], false, &mut |stream, l| {
            if stream == Stream::Stdout {
                out.push_str(l);
                out.push('\n');
            }
            Tail::Raw
        })
        .await?;
    Ok(out)
}

/// Terraform's version against stamp's minimum and each stack's `required_version`.
fn check_terraform(r: &mut Report, found: Option<Version>, fleet: Option<&Fleet>) {
    let Some(v) = found else {
        r.fail("terraform", format!("cannot tell its version from `terraform version`; stamp needs {TERRAFORM_REQUIRED}"));
        return;
    };
    match version::meets(v, TERRAFORM_REQUIRED) {
        Ok(true) => r.ok("terraform", format!("{v}: stamp needs {TERRAFORM_REQUIRED} (the S3 backend's use_lockfile)")),
        _ => r.fail(
            "terraform",
            format!("{v}: stamp needs {TERRAFORM_REQUIRED} (the S3 backend's use_lockfile); install a newer terraform or tofu"),
        ),
    }
    let Some(fleet) = fleet else {
        r.skip("terraform", "the stacks' required_version not checked: the stacks are the fleet file's");
        return;
    };
    let tf = &fleet.paths.terraform;
    let mut stacks = vec![("vpc".to_owned(), tf.join("vpc"))];
    stacks.extend(fleet.envs.iter().map(|e| (format!("frontends/{e}"), tf.join("frontends").join(e.as_str()))));
    for (stack, dir) in stacks {
        match StackInfo::read(&dir) {
            Err(e) => r.fail("terraform", format!("{stack}: {e}")),
            Ok(info) => match &info.required_version {
                None => r.ok("terraform", format!("{v}: {stack} requires no version (no required_version in {})", dir.display())),
                Some((c, file)) => match version::meets(v, c) {
                    Ok(true) => r.ok("terraform", format!("{v}: {stack} requires {c} ({})", file.display())),
                    Ok(false) => {
                        r.fail("terraform", format!("{v}: {stack} requires {c} ({}); install a terraform that does", file.display()))
                    }
                    Err(e) => r.fail("terraform", format!("{stack}: required_version in {}: {e}", file.display())),
                },
            },
        }
    }
}

/// Which Terraform CLI configuration terraform will run with: the user's own, or stamp's.
fn cli_configuration(r: &mut Report, fleet: Option<&Fleet>, env: &[(String, String)]) {
    let set = env.iter().find(|(k, _)| k == "TF_CLI_CONFIG_FILE").map(|(_, v)| v.as_str());
    let files = |files: &[PathBuf]| files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
    match (fleet, set) {
        (Some(_), Some(rc)) if !rc.is_empty() => r.ok("terraform", format!("CLI configuration: stamp's own {rc} (you have none)")),
        _ => match terraform::users_cli_config_from_env() {
            Some(CliConfig::User { files: f, .. }) => r.ok("terraform", format!("CLI configuration: yours, {}", files(&f))),
            _ => r.ok("terraform", "CLI configuration: none of yours; stamp writes its own in its work directory when it runs"),
        },
    }
}
