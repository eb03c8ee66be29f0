//! The terraform steps of a stack: init, plan (its events and changes), outputs,
//! and what their failures mean.

use std::path::{Path, PathBuf};

use super::inputs::*;
use crate::error::Error;
use crate::events::Stage;
use crate::names::BucketName;
use crate::stages::contract::StageContext;
use crate::stages::init_cache;
use crate::tools::process::{StageLog, Stream, Tail, ToolCommand};
use crate::tools::terraform::{self, Outputs, ShownPlanJson, TfEvent};

/// `terraform init` (one at a time: they share the plugin cache).
pub(super) async fn init(p: &StageContext, stage: Stage, dir: &Path, log: &mut StageLog) -> Result<(), Error> {
    p.ui.step(stage, "terraform init");
    let mut init = terraform(p, dir).args(["init", "-input=false", "-no-color", "-reconfigure"]);
    if dir.join(terraform::BACKEND_PARTIAL_FILE).is_file() && p.plan.job(stage).info.backend.is_some() {
        init = init.arg(format!("-backend-config={}", terraform::BACKEND_PARTIAL_FILE));
    }
    // The customer's working copy remembers its last init; scratch copies do not.
    let tree = p.work.join("terraform");
    let fingerprint = if dir.starts_with(&tree) {
        let f = init_cache::fingerprint(&tree, dir, &p.ctx.tools().terraform, &p.env)
            .map_err(|e| Error::io(format!("reading {}", tree.display()), e))?;
        if init_cache::up_to_date(dir, &f) {
            log.note("terraform init skipped: the configuration, backend, CLI configuration and terraform are those of the last init");
            return Ok(());
        }
        init_cache::forget(dir);
        Some(f)
    } else {
        None
    };
    // Concurrent inits that install into one plugin cache are not safe
    // (hashicorp/terraform#31964): the first init of a stack and lock file in a run
    // runs alone. After it, the cache holds every provider that lock file needs, and
    // the same init elsewhere only links them: those run side by side.
    let lock_file = std::fs::read(dir.join(".terraform.lock.hcl")).unwrap_or_default();
    let cache_key = format!("{}:{}", p.plan.job(stage).rel, crate::hash::short_hash(&lock_file));
    let warm = || p.ctx.warm_inits.borrow().contains(&cache_key);
    let _held = if warm() {
        None
    } else {
        let held = p.ctx.init_lock.lock().await;
        // Another customer's init may have warmed the cache while this one waited.
        if warm() { None } else { Some(held) }
    };
    crate::tools::process::logged(
        log,
        "terraform init",
        async |log: &mut StageLog, _| {
            init.run(stage.as_str(), log, &[0], false, &mut |_, l| if l.trim().is_empty() { Tail::Skip } else { Tail::Raw }).await
        },
        transient_failure,
    )
    .await
    .map_err(provider_install_hint)?;
    p.ctx.warm_inits.borrow_mut().insert(cache_key);
    if let Some(f) = fingerprint {
        init_cache::record(dir, &f).map_err(|e| Error::io(format!("writing {}/.terraform", dir.display()), e))?;
    }
    Ok(())
}

/// `terraform plan -out=<planfile>` with `extra`, then the saved plan read back
/// with `terraform show -json` (the counts and actions come from there, not from
/// terraform's text), unless the `-json` stream told it all (`StreamedPlan`). The
/// stream also feeds the failure summary.
pub(super) async fn plan(
    p: &StageContext,
    stage: Stage,
    dir: &Path,
    log: &mut StageLog,
    extra: &[&str],
    planfile: &str,
    sensitive: &[SensitiveInput],
) -> Result<ShownPlanJson, Error> {
    Ok(plan_with_code(p, stage, dir, log, extra, planfile, sensitive).await?.0)
}

/// `plan`, and whether terraform said the plan has changes (exit code 2: resources or outputs).
pub(super) async fn plan_with_code(
    p: &StageContext,
    stage: Stage,
    dir: &Path,
    log: &mut StageLog,
    extra: &[&str],
    planfile: &str,
    sensitive: &[SensitiveInput],
) -> Result<(ShownPlanJson, bool), Error> {
    // The saved plan holds secrets in clear: owner only (umask 077).
    let mut cmd = terraform(p, dir).private_files();
    // Sensitive inputs: in terraform's environment only, never in the file or argv.
    for s in sensitive {
        cmd = cmd.secret_env(format!("TF_VAR_{}", s.name), s.env_value.clone(), s.shown.clone());
    }
    let command = cmd
        .args(["plan", "-input=false", "-json", "-detailed-exitcode"])
        .arg(p.ctx.lock_timeout_arg())
        .args(extra)
        .arg(format!("-out={planfile}"))
        .arg(format!("-var-file={}", terraform::TFVARS_FILE));
    let streamed = std::cell::RefCell::new(terraform::StreamedPlan::default());
    let planned = crate::tools::process::logged(
        log,
        "terraform plan",
        async |log: &mut StageLog, _| {
            *streamed.borrow_mut() = terraform::StreamedPlan::default();
            command.run(stage.as_str(), log, &[0, 2], false, &mut |s, l| json_line(s, l, &mut |ev| streamed.borrow_mut().see(ev))).await
        },
        transient_failure,
    )
    .await?;
    let has_changes = planned.code == 2;
    if !has_changes {
        // Exit code 0: nothing to apply and (refresh-only) nothing drifted. `terraform
        // show` would start every provider again for an empty list: seconds of a no-op
        // redeploy.
        log.note(&format!("stamp: terraform plan exited 0: no changes; {planfile} not shown"));
        return Ok((ShownPlanJson::default(), false));
    }
    if let Some(changes) = streamed.into_inner().complete() {
        // Only creates, deletes and replaces, nothing drifted: the -json stream told
        // all that `terraform show -json` would (a first deploy's plans).
        let shown = ShownPlanJson { changes, drift: vec![] };
        log.note(&format!(
            "stamp: terraform plan -json: {} resource change(s) (creates, deletes, replaces only), none drifted; {planfile} not shown",
            shown.changes.len()
        ));
        log_changes(log, &shown);
        return Ok((shown, has_changes));
    }
    // The plan's JSON holds every input and attribute in clear: it is not logged.
    let out = terraform(p, dir)
        .args(["show", "-json", "-no-color", planfile])
        .run(stage.as_str(), &mut StageLog::discard(), &[0], true, &mut |_, _| Tail::Raw)
        .await?;
    let shown = terraform::parse_plan_json(&out.stdout)
        .map_err(|m| Error::stage(format!("terraform show -json {planfile} in {}: {m}", dir.display())))?;
    log.note(&format!("stamp: terraform show -json {planfile}: {} resource change(s), {} drifted", shown.changes.len(), shown.drift.len()));
    log_changes(log, &shown);
    Ok((shown, has_changes))
}

pub(super) fn log_changes(log: &mut StageLog, shown: &ShownPlanJson) {
    for (what, c) in shown.changes.iter().map(|c| ("change", c)).chain(shown.drift.iter().map(|c| ("drift", c))) {
        let attrs = if c.attributes.is_empty() { String::new() } else { format!(" ({})", c.attributes.join(", ")) };
        log.note(&format!("stamp:   {what} {:>3} {} {}{attrs}", c.action.marker(), c.action, c.address));
    }
}

/// The stack's outputs, from its state object in S3 (what `terraform output -json`
/// reads, without starting terraform: two processes less per customer). The values
/// include the sensitive ones in clear: the stage log gets only their names.
pub(super) async fn read_outputs(p: &StageContext, stage: Stage, bucket: &BucketName, log: &mut StageLog) -> Result<Outputs, Error> {
    let key = &p.plan.job(stage).key;
    let outputs = match p.aws.read_object(stage.as_str(), log, bucket, key).await? {
        Some(state) => terraform::outputs_from_state(&state).map_err(|m| Error::stage(format!("s3://{bucket}/{key}: {m}")))?,
        None => Outputs::new(),
    };
    let names: Vec<String> = outputs.iter().map(|(k, v)| if v.sensitive { format!("{k} (sensitive)") } else { k.clone() }).collect();
    log.note(&format!("stamp: outputs from s3://{bucket}/{key}: {} (values not logged; `stamp outputs` shows them)", names.join(", ")));
    Ok(outputs)
}

/// A saved plan: removed when dropped (after it was applied or read, and on any
/// failure). Terraform writes it under umask 077 (`plan_with_code`): 0600.
pub(super) struct PlanFile(PathBuf);

impl PlanFile {
    /// Removes what an earlier run may have left at `path` first.
    pub(super) fn new(path: PathBuf) -> Self {
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for PlanFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) fn terraform(p: &StageContext, dir: &Path) -> ToolCommand {
    ToolCommand::new(&p.ctx.tools().terraform, dir)
        .envs(&p.env)
        .show_env(&["AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_REGION"])
        .stop_with(libc::SIGINT)
}

/// Handles one line of terraform `-json` output: events go to `f`, and the line's
/// human text is what a failure summary shows.
pub(super) fn json_line(stream: Stream, line: &str, f: &mut dyn FnMut(&TfEvent)) -> Tail {
    if stream == Stream::Stderr {
        return Tail::Raw;
    }
    match terraform::parse_event(line) {
        Some(ev) => {
            f(&ev);
            match &ev {
                TfEvent::Diagnostic { severity, summary, detail } => Tail::Text(terraform::diagnostic_text(severity, summary, detail)),
                TfEvent::ApplyErrored { address } => Tail::Text(format!("error applying {address}")),
                TfEvent::Other { message } | TfEvent::ResourceDrift { message, .. } if !message.is_empty() => Tail::Text(message.clone()),
                TfEvent::ChangeSummary { add, change, remove, operation } => {
                    let tense = if operation == "plan" { terraform::Tense::Plan } else { terraform::Tense::Applied };
                    Tail::Text(terraform::change_line(tense, *add, *change, *remove, None))
                }
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
pub(super) fn provider_install_hint(e: Error) -> Error {
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

/// Why a failed terraform (or packer) run may be run again: its output shows a
/// transient cause (`retry::transient_tool_cause`). Lock contention, a missing
/// permission, a validation or configuration error, a stale plan: never.
pub(crate) fn transient_failure(e: &Error) -> Option<String> {
    match e {
        Error::Tool(f) => crate::retry::transient_tool_cause(&f.tail.join("\n")),
        _ => None,
    }
}

/// "still creating" and the like, for a resource that takes long.
pub(super) fn progress_verb(action: &str) -> &'static str {
    match action {
        "create" => "still creating",
        "update" => "still updating",
        "delete" => "still destroying",
        _ => "still applying",
    }
}
