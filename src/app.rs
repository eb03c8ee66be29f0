//! Turns parsed arguments into settings, runs the command, prints results (data on
//! stdout, everything else on stderr) and maps errors to the exit-code table.

use std::io::IsTerminal;

use serde_json::{Value, json};

use crate::cli::{Cli, Command, Target};
use crate::config::{EnvOverrides, Fleet};
use crate::error::{EXIT_OK, Error};
use crate::names::BucketName;
use crate::pipeline::{self, Engine, Operation, Options, RunReport};
use crate::progress::{PlainReporter, Reporter, Status, TerminalReporter, format_elapsed};
use crate::terraform;
use crate::tool::{StageLog, Stream, Tail, ToolCommand};

pub fn main(cli: Cli) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        crate::signals::install();
        match run(cli).await {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("error: {e}");
                e.exit_code()
            }
        }
    })
}

fn reporter(cli: &Cli, prefix: &str) -> Box<dyn Reporter> {
    if cli.no_progress || !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some() {
        Box::new(PlainReporter::new(prefix))
    } else {
        Box::new(TerminalReporter::new())
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let fleet = Fleet::load(&cli.config, &EnvOverrides::from_process())?;
    match &cli.command {
        Command::Deploy { target, auto_approve, rebuild_ami, json } => {
            let opts = Options { auto_approve: *auto_approve, rebuild_ami: *rebuild_ami, env: target.env.clone() };
            pipeline_command(&cli, &fleet, target, opts, Operation::Deploy, *json).await
        }
        Command::Plan { target, json } => {
            let opts = Options { auto_approve: false, rebuild_ami: false, env: target.env.clone() };
            pipeline_command(&cli, &fleet, target, opts, Operation::Plan, *json).await
        }
        Command::Destroy { target, auto_approve, json } => {
            let opts = Options { auto_approve: *auto_approve, rebuild_ami: false, env: target.env.clone() };
            pipeline_command(&cli, &fleet, target, opts, Operation::Destroy, *json).await
        }
        Command::Render { target } => {
            let opts = Options { auto_approve: false, rebuild_ami: false, env: target.env.clone() };
            let rep = PlainReporter::new("");
            let engine = Engine::prepare(&fleet, &target.customer, opts, &rep, Operation::Render)?;
            let (_, result) = engine.run(Operation::Render).await;
            result
        }
        Command::Outputs { target, json, show_sensitive } => outputs(&fleet, target, *json, *show_sensitive).await,
        Command::List { json } => list(&fleet, *json),
        Command::Doctor => doctor(&fleet).await,
    }
}

async fn pipeline_command(cli: &Cli, fleet: &Fleet, target: &Target, opts: Options, op: Operation, as_json: bool) -> Result<(), Error> {
    let rep = reporter(cli, target.customer.as_str());
    let engine = Engine::prepare(fleet, &target.customer, opts, rep.as_ref(), op)?;
    let (report, result) = engine.run(op).await;
    drop(rep);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", summary_text(&report));
    }
    result
}

/// The human summary of a run: each stage's status and duration, then the outputs.
pub fn summary_text(r: &RunReport) -> String {
    let verb = match (r.operation, r.status) {
        (_, Status::Failed) => "FAILED",
        (_, Status::Interrupted) => "INTERRUPTED",
        (Operation::Deploy, _) => "deployed",
        (Operation::Plan, _) => "planned",
        (Operation::Destroy, _) => "destroyed",
        (Operation::Render, _) => "rendered",
    };
    let mut s = format!(
        "\n{} {verb}: env {}, region {}, {}\n",
        r.customer,
        r.env,
        r.region,
        format_elapsed(std::time::Duration::from_secs_f64(r.duration_s))
    );
    for st in &r.stages {
        s.push_str(&format!(
            "  {:<10} {:<12} {:>7}  {}\n",
            st.name,
            st.status.word(),
            format_elapsed(std::time::Duration::from_secs_f64(st.duration_s)),
            st.detail
        ));
    }
    let mut flat: Vec<(String, String)> = Vec::new();
    // In pipeline order, not alphabetical.
    let sections = ["vpc", "ami_id", "frontends"].into_iter().filter_map(|k| r.outputs.get(k).map(|v| (k, v)));
    for (section, v) in sections {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    flat.push((format!("{section}.{k}"), value_text(v)));
                }
            }
            other => flat.push((section.to_owned(), value_text(other))),
        }
    }
    if !flat.is_empty() {
        s.push_str("outputs:\n");
        for (k, v) in flat {
            s.push_str(&format!("  {k} = {v}\n"));
        }
    }
    if let Some(url) = r.outputs.get("frontends").and_then(|f| f.get("public_url")).and_then(Value::as_str) {
        s.push_str(&format!("public URL: {url}\n"));
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s.push_str(&format!("logs: {}\n", r.log_dir.display()));
    s
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn outputs(fleet: &Fleet, target: &Target, as_json: bool, show: bool) -> Result<(), Error> {
    let mut customer = fleet.load_customer(&target.customer)?;
    if let Some(env) = &target.env {
        customer.env = env.clone();
    }
    let aws_path = pipeline::find_tool(&["aws"], fleet.tools.aws.as_deref(), &fleet.root, "[tools] aws (STAMP_AWS)")?;
    let env = pipeline::tool_env(fleet, &customer.region, &fleet.paths.work)?;
    let aws = crate::aws::Aws::new(fleet, aws_path, env);
    let mut log = StageLog::discard();
    let bucket: BucketName = pipeline::state_bucket(fleet, &customer, &aws, &mut log).await?;
    let keys = [
        ("vpc".to_string(), format!("{}/vpc", customer.name)),
        (format!("frontends/{}", customer.env), format!("{}/frontends/{}", customer.name, customer.env)),
    ];
    let mut all = serde_json::Map::new();
    let mut order = Vec::new();
    for (section, key) in &keys {
        order.push(section.clone());
        let state = aws.read_object("outputs", &mut log, &bucket, key).await?;
        let outs = match state {
            Some(s) => terraform::outputs_from_state(&s).map_err(|m| Error::stage(format!("s3://{bucket}/{key}: {m}")))?,
            None => terraform::Outputs::new(),
        };
        all.insert(section.clone(), pipeline::outputs_json(&outs, show));
    }
    if all.values().all(|v| v.as_object().is_some_and(|m| m.is_empty())) {
        return Err(Error::stage_hint(
            format!("{} has no outputs in s3://{bucket}: not deployed", customer.name),
            format!("run `stamp deploy {}`", customer.name),
        ));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&Value::Object(all)).unwrap_or_default());
    } else {
        for section in &order {
            let v = &all[section];
            println!("{section}:");
            if let Some(m) = v.as_object() {
                if m.is_empty() {
                    println!("  (not deployed)");
                }
                for (k, v) in m {
                    println!("  {k} = {}", value_text(v));
                }
            }
        }
    }
    Ok(())
}

fn list(fleet: &Fleet, as_json: bool) -> Result<(), Error> {
    let mut rows = Vec::new();
    for entry in fleet.customer_names()? {
        let row = match entry {
            Ok(name) => match fleet.load_customer(&name) {
                Ok(c) => {
                    let last: Option<Value> = std::fs::read_to_string(fleet.paths.work.join(name.as_str()).join("last-run.json"))
                        .ok()
                        .and_then(|s| serde_json::from_str(&s).ok());
                    let last = last
                        .map(|l| format!("{} {}", l["operation"].as_str().unwrap_or(""), l["status"].as_str().unwrap_or("")))
                        .unwrap_or_else(|| "never run here".into());
                    json!({"customer": name.as_str(), "env": c.env.as_str(), "region": c.region.as_str(), "git_id": c.git_id, "last_run": last})
                }
                Err(e) => json!({"customer": name.as_str(), "error": e.to_string()}),
            },
            Err((path, m)) => {
                json!({"customer": path.file_stem().map(|s| s.to_string_lossy().to_string()), "error": format!("{}: {m}", path.display())})
            }
        };
        rows.push(row);
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("no customers in {}", fleet.paths.customers.display());
    }
    println!("{:<24} {:<12} {:<14} {:<16} LAST RUN", "CUSTOMER", "ENV", "REGION", "GIT_ID");
    let mut bad = 0;
    for r in &rows {
        if let Some(e) = r.get("error") {
            bad += 1;
            println!("{:<24} invalid: {}", r["customer"].as_str().unwrap_or("?"), e.as_str().unwrap_or(""));
        } else {
            println!(
                "{:<24} {:<12} {:<14} {:<16} {}",
                r["customer"].as_str().unwrap_or(""),
                r["env"].as_str().unwrap_or(""),
                r["region"].as_str().unwrap_or(""),
                r["git_id"].as_str().unwrap_or(""),
                r["last_run"].as_str().unwrap_or("")
            );
        }
    }
    if bad > 0 {
        return Err(Error::usage(format!("{bad} customer file(s) are invalid")));
    }
    Ok(())
}

async fn doctor(fleet: &Fleet) -> Result<(), Error> {
    let mut problems = 0;
    println!("config:   {}", fleet.config_path.display());
    println!("endpoint: {}", fleet.aws.endpoint.as_deref().unwrap_or("real AWS"));
    // (name, names looked up on PATH, configured choice, version arguments)
    type Probe<'a> = (&'a str, &'a [&'a str], Option<&'a str>, &'a [&'a str]);
    let tools: [Probe; 3] = [
        ("terraform", &["terraform", "tofu"], fleet.tools.terraform.as_deref(), &["version"]),
        ("packer", &["packer"], fleet.tools.packer.as_deref(), &["version"]),
        ("aws", &["aws"], fleet.tools.aws.as_deref(), &["--version"]),
    ];
    let env = pipeline::tool_env(fleet, &fleet.region, &fleet.paths.work)?;
    let mut aws_path = None;
    for (name, names, choice, args) in tools {
        match pipeline::find_tool(names, choice, &fleet.root, &format!("[tools] {name}")) {
            Ok(path) => {
                let mut first = String::new();
                let r = ToolCommand::new(&path, &fleet.root)
                    .args(args.iter().copied())
                    .envs(&env)
                    .run("doctor", &mut StageLog::discard(), &[0], false, &mut |stream, l| {
                        if first.is_empty() && stream == Stream::Stdout && !l.trim().is_empty() {
                            first = l.trim().to_owned();
                        }
                        Tail::Raw
                    })
                    .await;
                match r {
                    Ok(_) => println!("ok   {name:<10} {} ({first})", path.display()),
                    Err(e) => {
                        problems += 1;
                        println!("FAIL {name:<10} {}: {e}", path.display());
                    }
                }
                if name == "aws" {
                    aws_path = Some(path);
                }
            }
            Err(e) => {
                problems += 1;
                println!("FAIL {name:<10} {e}");
            }
        }
    }
    if let Some(program) = aws_path {
        let aws = crate::aws::Aws::new(fleet, program, env.clone());
        match aws.account_id("doctor", &mut StageLog::discard()).await {
            Ok(a) => println!("ok   {:<10} credentials work, account {a}", "aws"),
            Err(e) => {
                problems += 1;
                println!("FAIL {:<10} cannot reach AWS with these credentials: {e}", "aws");
            }
        }
    }
    match fleet.customer_names() {
        Ok(n) => println!("ok   {:<10} {} customer file(s) in {}", "customers", n.len(), fleet.paths.customers.display()),
        Err(e) => {
            problems += 1;
            println!("FAIL {:<10} {e}", "customers");
        }
    }
    if problems > 0 {
        return Err(Error::stage(format!("doctor found {problems} problem(s)")));
    }
    Ok(())
}
