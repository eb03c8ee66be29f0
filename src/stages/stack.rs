//! Stage 2 and 4: a terraform stack in the customer's working copy. stamp writes
//! the backend, the vpc remote state and the inputs, then init, plan, apply (after
//! the approval policy agrees) and output. Typed in (bucket, mode, upstream
//! outputs), typed out (outputs and changes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::customer::pipeline::{Approval, Pipeline, PlannedChange, ShownPlan, StageDone, VpcOutputs};
use crate::customer::report::Changes;
use crate::error::Error;
use crate::names::{AmiId, BucketName};
use crate::render::{self, Backend};
use crate::tools::process::{StageLog, Stream, Tail, ToolCommand};
use crate::tools::terraform::{self, Outputs, TfEvent};
use crate::ui::events::{Stage, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    PlanOnly,
    Destroy,
}

/// Runs the stack of `stage` (vpc or frontends).
pub async fn run(
    p: &mut Pipeline,
    stage: Stage,
    bucket: &BucketName,
    mode: Mode,
    upstream: Option<(&VpcOutputs, &AmiId)>,
) -> Result<StageDone<Outputs>, Error> {
    let mut log = p.log(stage)?;
    sync_working_copy(p)?;
    let dir = write_files(p, stage, bucket, upstream)?;
    let partial = p.plan.job(stage).info.backend.is_some();
    let ui = p.ui.clone();

    ui.step(stage, "terraform init");
    let mut init = terraform(p, &dir).args(["init", "-input=false", "-no-color", "-reconfigure"]);
    if partial {
        init = init.arg(format!("-backend-config={}", terraform::BACKEND_PARTIAL_FILE));
    }
    {
        // One init at a time: they share the plugin cache.
        let _held = p.ctx.init_lock.lock().await;
        init.run(stage.as_str(), &mut log, &[0], false, &mut |_, l| if l.trim().is_empty() { Tail::Skip } else { Tail::Raw })
            .await
            .map_err(provider_install_hint)?;
    }

    ui.step(stage, if mode == Mode::Destroy { "terraform plan -destroy" } else { "terraform plan" });
    let mut plan = terraform(p, &dir).args(["plan", "-input=false", "-json", "-detailed-exitcode", "-lock-timeout=60s"]);
    if mode == Mode::Destroy {
        plan = plan.arg("-destroy");
    }
    plan = plan.arg(format!("-out={}", terraform::PLAN_FILE)).arg(format!("-var-file={}", terraform::TFVARS_FILE));
    let mut changes = Changes::default();
    let mut planned: Vec<PlannedChange> = Vec::new();
    let out = plan
        .run(stage.as_str(), &mut log, &[0, 2], false, &mut |s, l| {
            json_line(s, l, &mut |ev| match ev {
                TfEvent::ChangeSummary { add, change, remove, .. } => changes = Changes { add: *add, change: *change, destroy: *remove },
                TfEvent::PlannedChange { address, action } => {
                    planned.push(PlannedChange { address: address.clone(), action: action.clone() })
                }
                _ => {}
            })
        })
        .await?;
    let has_changes = out.code == 2;
    let total = changes.total();
    ui.step(stage, &terraform::describe_changes(changes.add, changes.change, changes.destroy));

    let destroys: Vec<PlannedChange> = planned.iter().filter(|c| c.destroys()).cloned().collect();
    let mut applied = false;
    if has_changes && mode != Mode::PlanOnly {
        approve(p, &ShownPlan { stage, dir: dir.clone(), changes, planned }).await?;
        ui.step(stage, if mode == Mode::Destroy { "terraform destroy" } else { "terraform apply" });
        ui.progress(stage, 0, total);
        let mut done = 0u64;
        terraform(p, &dir)
            .args(["apply", "-input=false", "-json", "-lock-timeout=60s", terraform::PLAN_FILE])
            .run(stage.as_str(), &mut log, &[0], false, &mut |s, l| {
                json_line(s, l, &mut |ev| match ev {
                    TfEvent::ApplyComplete { .. } => {
                        done += 1;
                        ui.progress(stage, done.min(total), total);
                    }
                    TfEvent::ApplyStart { address } => ui.step(stage, &format!("applying {address}")),
                    TfEvent::ApplyProgress { address, action, elapsed_secs } => ui.step(
                        stage,
                        &format!(
                            "{} {address} for {}",
                            progress_verb(action),
                            crate::ui::events::format_elapsed(Duration::from_secs(*elapsed_secs))
                        ),
                    ),
                    _ => {}
                })
            })
            .await?;
        applied = true;
    }
    // The saved plan is not needed any more, and it holds the inputs in clear.
    if applied {
        let _ = std::fs::remove_file(dir.join(terraform::PLAN_FILE));
    }
    let outputs = if mode == Mode::Destroy {
        Outputs::new()
    } else {
        let out = terraform(p, &dir)
            .args(["output", "-json", "-no-color"])
            .run(stage.as_str(), &mut log, &[0], true, &mut |_, _| Tail::Raw)
            .await?;
        terraform::parse_outputs(&out.stdout).map_err(|m| Error::stage(format!("terraform output -json in {}: {m}", dir.display())))?
    };
    let status = if total == 0 { Status::Unchanged } else { Status::Ok };
    let detail = match (mode, applied) {
        (Mode::PlanOnly, _) => terraform::describe_changes(changes.add, changes.change, changes.destroy),
        (_, true) => format!("{} added, {} changed, {} destroyed", changes.add, changes.change, changes.destroy),
        (_, false) => String::new(),
    };
    Ok(StageDone { value: outputs, status, detail, changes: Some(changes), destroys })
}

/// Asks the approval policy whether a planned stack may be applied.
async fn approve(p: &Pipeline, plan: &ShownPlan) -> Result<(), Error> {
    let stage = plan.stage;
    match &p.opts.approval {
        Approval::Auto => Ok(()),
        Approval::Ask(approver) => {
            if approver.approve(p.name(), plan).await? {
                Ok(())
            } else {
                Err(Error::stage(format!("{stage}: apply cancelled; nothing was changed in this stage")))
            }
        }
        Approval::Approved(approved) => {
            let unseen = unseen_destroys(&plan.planned, approved.get(&(p.name().to_owned(), stage)));
            if unseen.is_empty() {
                Ok(())
            } else {
                Err(Error::stage_hint(
                    format!("{stage}: not applied: the plan now would {}, which the approved plan did not show", unseen.join(", ")),
                    format!("something changed since the plan was approved; run `stamp plan {}` and deploy again", p.name()),
                ))
            }
        }
    }
}

/// The destroys and replacements of `planned` that the approved plan did not show.
pub fn unseen_destroys(planned: &[PlannedChange], shown: Option<&std::collections::BTreeSet<String>>) -> Vec<String> {
    planned
        .iter()
        .filter(|c| c.destroys() && !shown.is_some_and(|s| s.contains(&c.address)))
        .map(|c| format!("{} {}", c.action, c.address))
        .collect()
}

pub fn sync_working_copy(p: &Pipeline) -> Result<(), Error> {
    let dest = p.work.join("terraform");
    let src = &p.ctx.fleet.paths.terraform;
    terraform::sync_tree(src, &dest).map_err(|e| Error::work_dir(format!("copying {} to {}", src.display(), dest.display()), e))
}

fn backend(p: &Pipeline, bucket: &BucketName, key: &str) -> Backend {
    let fleet = &p.ctx.fleet;
    Backend {
        bucket: bucket.to_string(),
        key: key.to_owned(),
        region: p.plan.customer.region.to_string(),
        endpoint: fleet.aws.endpoint.clone(),
        profile: fleet.aws.profile.clone(),
    }
}

/// The inputs of a stack: the standard ones it declares, then `[*.vars]`.
fn stack_vars(p: &Pipeline, stage: Stage, upstream: Option<(&VpcOutputs, &AmiId)>) -> BTreeMap<String, Value> {
    let c = &p.plan.customer;
    let (job, extra) = match stage {
        Stage::Vpc => (&p.plan.vpc, &c.vpc_vars),
        _ => (&p.plan.frontends, &c.frontends_vars),
    };
    let mut standard: Vec<(&str, Value)> =
        vec![("customer", json!(c.name.as_str())), ("region", json!(c.region.as_str())), ("env", json!(c.env.as_str()))];
    if let (Stage::Frontends, Some((vpc, ami))) = (stage, upstream) {
        standard.push(("ami_id", json!(ami.as_str())));
        standard.push(("vpc_id", json!(vpc.vpc_id)));
        standard.push(("public_subnet_ids", json!(vpc.public_subnet_ids)));
        standard.push(("private_subnet_ids", json!(vpc.private_subnet_ids)));
        if let Some(files) = &p.plan.app_config {
            standard.push(("app_config", Value::Object(files.iter().map(|(k, v)| (k.clone(), json!(v))).collect())));
        }
    }
    let mut vars: BTreeMap<String, Value> =
        standard.into_iter().filter(|(k, _)| job.info.variables.contains(*k)).map(|(k, v)| (k.to_owned(), v)).collect();
    vars.extend(extra.values.clone());
    vars
}

/// The backend, the vpc remote state (frontends) and the inputs, in the working copy.
pub fn write_files(p: &Pipeline, stage: Stage, bucket: &BucketName, upstream: Option<(&VpcOutputs, &AmiId)>) -> Result<PathBuf, Error> {
    let job = p.plan.job(stage);
    let dir = p.work.join("terraform").join(&job.rel);
    let own = backend(p, bucket, &job.key);
    let write = |name: &str, text: &str| crate::customer::pipeline::write_atomic(&dir.join(name), text);
    let remove = |name: &str| match std::fs::remove_file(dir.join(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("removing {}", dir.join(name).display()), e)),
        _ => Ok(()),
    };
    if job.info.backend.is_some() {
        write(terraform::BACKEND_PARTIAL_FILE, &render::backend_partial(&own))?;
        remove(terraform::BACKEND_FILE)?;
    } else {
        write(terraform::BACKEND_FILE, &render::backend_block(&own))?;
        remove(terraform::BACKEND_PARTIAL_FILE)?;
    }
    if stage == Stage::Frontends {
        write(terraform::REMOTE_STATE_FILE, &render::remote_state_block(&backend(p, bucket, &p.plan.vpc.key)))?;
    }
    write(terraform::TFVARS_FILE, &render::vars_json(&stack_vars(p, stage, upstream)))?;
    Ok(dir)
}

fn terraform(p: &Pipeline, dir: &Path) -> ToolCommand {
    ToolCommand::new(&p.ctx.tools().terraform, dir)
        .envs(&p.env)
        .show_env(&["AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_REGION"])
        .stop_with(libc::SIGINT)
}

/// Handles one line of terraform `-json` output: events go to `f`, and the line's
/// human text is what a failure summary shows.
fn json_line(stream: Stream, line: &str, f: &mut dyn FnMut(&TfEvent)) -> Tail {
    if stream == Stream::Stderr {
        return Tail::Raw;
    }
    match terraform::parse_event(line) {
        Some(ev) => {
            f(&ev);
            match &ev {
                TfEvent::Diagnostic { severity, summary, detail } => Tail::Text(terraform::diagnostic_text(severity, summary, detail)),
                TfEvent::ApplyErrored { address } => Tail::Text(format!("error applying {address}")),
                TfEvent::Other { message } if !message.is_empty() => Tail::Text(message.clone()),
                TfEvent::ChangeSummary { add, change, remove, .. } => Tail::Text(terraform::describe_changes(*add, *change, *remove)),
                // Every 10 s; from the first minute on, the log says what terraform waits for.
                TfEvent::ApplyProgress { address, action, elapsed_secs } if *elapsed_secs >= 60 && elapsed_secs % 60 == 0 => {
                    Tail::Note(format!("{} ({}s elapsed)", terraform::waiting_for(address, action), elapsed_secs))
                }
                _ => Tail::Skip,
            }
        }
        None => Tail::Raw,
    }
}

/// An init that could install no provider (no mirror, no registry) says how to get one.
fn provider_install_hint(e: Error) -> Error {
    match e {
        Error::Tool(mut f)
            if f.tail
                .iter()
                .any(|l| l.contains("Failed to query available provider packages") || l.contains("Failed to install provider")) =>
        {
            f.hint = Some(format!(
                "terraform could neither download the provider nor find it in a mirror: with no internet, set {}=<root of an unpacked \
                 provider mirror> (or run scripts/setup-tools.sh and use TF_CLI_CONFIG_FILE=.tools/terraformrc); online, check the \
                 proxy and that the lock file's version exists",
                terraform::MIRROR_VAR
            ));
            Error::Tool(f)
        }
        other => other,
    }
}

/// "still creating" and the like, for a resource that takes long.
fn progress_verb(action: &str) -> &'static str {
    match action {
        "create" => "still creating",
        "update" => "still updating",
        "delete" => "still destroying",
        _ => "still applying",
    }
}

pub async fn refuse_protected(p: &Pipeline, log: &mut StageLog, state: &str) -> Result<(), Error> {
    let mut on = Vec::new();
    for r in terraform::protected_resources(state).map_err(Error::stage)? {
        if p.aws.still_protected("bucket", log, &r).await? {
            on.push(r);
        }
    }
    if on.is_empty() {
        return Ok(());
    }
    let endpoint = p.ctx.fleet.aws.endpoint.as_ref().map(|e| format!(" --endpoint-url {e}")).unwrap_or_default();
    let region = &p.plan.customer.region;
    let (what, commands): (Vec<String>, Vec<String>) = on
        .iter()
        .map(|p| match p {
            terraform::Protected::Database { identifier } => (
                format!("database {identifier}"),
                format!(
                    "aws{endpoint} --region {region} rds modify-db-instance --db-instance-identifier {identifier} --no-deletion-protection --apply-immediately"
                ),
            ),
            terraform::Protected::LoadBalancer { arn } => (
                format!("load balancer {arn}"),
                format!(
                    "aws{endpoint} --region {region} elbv2 modify-load-balancer-attributes --load-balancer-arn {arn} --attributes Key=deletion_protection.enabled,Value=false"
                ),
            ),
        })
        .unzip();
    Err(Error::stage_hint(
        format!(
            "refusing to destroy {}: deletion protection is on for {} ({} env); nothing was destroyed",
            p.plan.customer.name,
            what.join(" and "),
            p.plan.customer.env
        ),
        format!(
            "this is what protects a production customer from a mistaken destroy. To destroy it for good, turn it off, \
             then run `stamp destroy {}` again (RDS then keeps a final snapshot):\n    {}",
            p.plan.customer.name,
            commands.join("\n    ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approved_plan_covers_only_the_destroys_it_showed() {
        let change = |action: &str, address: &str| PlannedChange { action: action.into(), address: address.into() };
        let planned = vec![change("update", "aws_lb.this"), change("replace", "aws_db_instance.this"), change("delete", "aws_kms_key.old")];
        let shown: std::collections::BTreeSet<String> = ["aws_kms_key.old".to_string()].into();
        assert_eq!(unseen_destroys(&planned, Some(&shown)), vec!["replace aws_db_instance.this"]);
        assert_eq!(unseen_destroys(&planned, None).len(), 2, "nothing shown: every destroy is unseen");
        assert!(unseen_destroys(&planned[..1], None).is_empty(), "updates need no showing");
    }
}
