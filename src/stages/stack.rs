//! Stage 2 and 4: a terraform stack in the customer's working copy. stamp writes
//! the backend, the vpc remote state and the inputs, then init, plan, apply (after
//! the approval policy agrees) and output. Typed in (bucket, mode, upstream
//! outputs), typed out (outputs and changes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::customer::report::{Changes, Placeholder, PlanDetail};
use crate::error::{Error, ToolFailure};
use crate::events::{Stage, Status};
use crate::interrupt;
use crate::names::{AmiId, BucketName};
use crate::render::{self, Backend};
use crate::stages::contract::{Approval, PlannedChange, ShownPlan, StageContext, StageDone, VpcOutputs};
use crate::stages::init_cache;
use crate::tools::process::{StageLog, Stream, Tail, ToolCommand};
use crate::tools::terraform::{self, Action, Outputs, ShownPlanJson, TfEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    PlanOnly,
    Destroy,
}

/// Runs the stack of `stage` (vpc or frontends). Its terraform holds the state lock
/// (`<key>.tflock`) while it plans and applies: on an interrupt, the lock is read at
/// once and its real ID printed, and read again once terraform has stopped, to say
/// whether it was left behind and how to release it (`interrupt`).
pub async fn run(
    p: &mut StageContext,
    stage: Stage,
    bucket: &BucketName,
    mode: Mode,
    upstream: Option<(&VpcOutputs, &AmiId)>,
) -> Result<StageDone<Outputs>, Error> {
    let lock = state_lock(p, stage, bucket);
    crate::running::set_lock(lock.clone());
    let api = p.aws.api.clone();
    // Waits for the first interrupt, then prints the lock terraform holds.
    let probe = async {
        if let Some(mut r) = crate::signals::subscribe()
            && r.wait_for(|s| s.received > 0).await.is_ok()
        {
            interrupt::check_lock(&api, stage.as_str(), &lock, interrupt::Moment::Interrupted).await;
        }
        std::future::pending::<()>().await
    };
    let result = tokio::select! {
        r = run_stack(p, stage, bucket, mode, upstream) => r,
        _ = probe => unreachable!("the probe never ends"),
    };
    if matches!(result, Err(Error::Interrupted(_))) {
        interrupt::check_lock(&api, stage.as_str(), &lock, interrupt::Moment::Stopped).await;
    }
    match result {
        Err(Error::Tool(f)) if f.hint.is_none() && f.tail.iter().any(|l| l.contains(terraform::LOCK_HELD)) => {
            Err(Error::Tool(Box::new(lock_held(&api, *f, &lock, p.ctx.lock_timeout()).await)))
        }
        Ok(done) if mode == Mode::PlanOnly => {
            let held = held_lock(p, stage, &lock).await;
            Ok(with_held_lock(done, held))
        }
        r => r,
    }
}

/// terraform gave up waiting for the state lock: who holds it (read from the lock
/// object), since when, and how to release it once no run is using it. stamp never
/// releases a lock itself: only a person can know that no other run holds it.
async fn lock_held(api: &crate::tools::s3::AwsApi, mut f: ToolFailure, lock: &crate::running::StateLock, waited: Duration) -> ToolFailure {
    let waited = humantime::format_duration(waited).to_string();
    f.hint = Some(match interrupt::read_lock(lock, api).await.ok() {
        Some(Some(l)) => format!(
            "{} is held by {} ({}, since {}), lock ID {}: another run is using this stack, or a run that was killed left it. \
             stamp waited {waited} (--lock-timeout). Once no run is active any more, release it with: {}",
            lock.object(),
            l.who,
            l.operation,
            l.created,
            l.id,
            lock.unlock_command(&l.id)
        ),
        Some(None) => format!("{} was released after terraform gave up waiting ({waited}, --lock-timeout): run again", lock.object()),
        None => format!(
            "another run holds {} (stamp waited {waited}, --lock-timeout); `{}` shows the lock and how to release it",
            lock.object(),
            lock.status_command()
        ),
    });
    f
}

/// Where the stack's state lock is, for what stamp prints on an interrupt.
fn state_lock(p: &StageContext, stage: Stage, bucket: &BucketName) -> crate::running::StateLock {
    let job = p.plan.job(stage);
    let region = p.plan.customer.region.to_string();
    crate::running::StateLock::of_stack(&p.ctx.fleet, p.name(), &region, bucket.as_str(), &job.key, Path::new(&job.rel))
}

/// A plan takes no lock (`-lock=false`): another run may hold it and be changing
/// the stack meanwhile. Who holds it, if anyone (read once the plan is made); a
/// lock that cannot be read is only noted in the stage log.
async fn held_lock(p: &mut StageContext, stage: Stage, lock: &crate::running::StateLock) -> Option<terraform::LockInfo> {
    match interrupt::read_lock(lock, &p.aws.api).await {
        Ok(held) => held,
        Err(e) => {
            if let Ok(mut log) = p.log(stage) {
                log.note(&format!("stamp: could not read {} to see whether another run holds it: {e}", lock.object()));
            }
            None
        }
    }
}

/// A plan's result with the lock another run holds, in its detail and its report.
fn with_held_lock(mut done: StageDone<Outputs>, held: Option<terraform::LockInfo>) -> StageDone<Outputs> {
    if let Some(l) = &held {
        done.detail.push_str(&format!("; state lock held by {}: another run is changing this stack", l.describe()));
    }
    done.plan.lock_held = held;
    done
}

/// What every run of a deployed stack starts with: its log, the working copy synced,
/// the generated files written, its sensitive inputs announced (masked in CI logs)
/// before terraform sees them, and `terraform init`. Returns the log, the stack's
/// directory and those sensitive inputs (for `TF_VAR_`).
async fn prepare(
    p: &mut StageContext,
    stage: Stage,
    bucket: &BucketName,
    upstream: Option<(&VpcOutputs, &AmiId)>,
) -> Result<(StageLog, PathBuf, Vec<SensitiveInput>), Error> {
    let mut log = p.log(stage)?;
    sync_working_copy(p)?;
    let (dir, sensitive) = write_files(p, stage, bucket, upstream)?;
    announce_sensitive_inputs(p, stage, &sensitive);
    init(p, stage, &dir, &mut log).await?;
    Ok((log, dir, sensitive))
}

async fn run_stack(
    p: &mut StageContext,
    stage: Stage,
    bucket: &BucketName,
    mode: Mode,
    upstream: Option<(&VpcOutputs, &AmiId)>,
) -> Result<StageDone<Outputs>, Error> {
    // init and plan compute: at most --plan-jobs of them at once, fleet-wide. The
    // apply that follows mostly waits on AWS and holds no lane.
    let lane = p.plan_lane(stage).await?;
    let (mut log, dir, sensitive) = prepare(p, stage, bucket, upstream).await?;
    let ui = p.ui.clone();

    ui.step(stage, if mode == Mode::Destroy { "terraform plan -destroy" } else { "terraform plan" });
    let mut extra = vec![];
    if mode == Mode::Destroy {
        extra.push("-destroy");
    }
    // A plan writes no state, so it takes no lock: a read-only identity can run it,
    // and it neither waits for nor blocks a deploy (`run` says who holds the lock).
    if mode == Mode::PlanOnly {
        extra.push("-lock=false");
    }
    // The saved plan holds every input and attribute in clear: it is removed when
    // this stage ends, applied or not, failed or not.
    let plan_file = PlanFile::new(dir.join(terraform::PLAN_FILE));
    let (shown, has_changes) = plan_with_code(p, stage, &dir, &mut log, &extra, terraform::PLAN_FILE, &sensitive).await?;
    let planned = shown.changes;
    let changes = Changes::of(&planned);
    let total = changes.total();
    ui.step(stage, &changes.describe());
    drop(lane);

    let mut applied = false;
    // Exit code 2 also covers changed outputs, which only an apply records.
    if has_changes && mode != Mode::PlanOnly {
        approve(p, &ShownPlan { stage, dir: dir.clone(), changes, planned: planned.clone() }).await?;
        let verb = if mode == Mode::Destroy { "terraform destroy" } else { "terraform apply" };
        let pr: &StageContext = p;
        // An apply that failed for a transient cause is retried by planning again and
        // applying that new plan: the saved plan may be stale once part of it was
        // applied, and it is never applied twice.
        crate::tools::process::logged(
            &mut log,
            verb,
            async |log: &mut StageLog, attempt| {
                let mut total = total;
                if attempt > 1 {
                    ui.step(stage, &format!("terraform plan again before {verb} attempt {attempt}"));
                    let (shown, again) = plan_with_code(pr, stage, &dir, log, &extra, terraform::PLAN_FILE, &sensitive).await?;
                    if !again {
                        log.note("stamp: the new plan has no changes: the failed apply had finished its work");
                        return Ok(());
                    }
                    let changes = Changes::of(&shown.changes);
                    total = changes.total();
                    approve(pr, &ShownPlan { stage, dir: dir.clone(), changes, planned: shown.changes }).await?;
                }
                ui.step(stage, verb);
                ui.progress(stage, 0, total);
                let mut done = 0u64;
                // An apply that cannot save the state writes errored.tfstate here: owner only.
                terraform(pr, &dir)
                    .private_files()
                    .args(["apply", "-input=false", "-json"])
                    .arg(pr.ctx.lock_timeout_arg())
                    .arg(terraform::PLAN_FILE)
                    .run(stage.as_str(), log, &[0], false, &mut |s, l| {
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
                                    crate::events::format_elapsed(Duration::from_secs(*elapsed_secs))
                                ),
                            ),
                            _ => {}
                        })
                    })
                    .await
                    .map(|_| ())
            },
            transient_failure,
        )
        .await
        .map_err(|e| saved_plan_removed(e, p.name(), stage, mode))?;
        applied = true;
    }
    drop(plan_file);
    let outputs = if mode == Mode::Destroy {
        Outputs::new()
    } else {
        let outputs = read_outputs(p, stage, bucket, &mut log).await?;
        announce_sensitive_outputs(p, stage, &outputs);
        outputs
    };
    let status = if total == 0 { Status::Unchanged } else { Status::Ok };
    let detail = match (mode, applied) {
        (Mode::PlanOnly, _) => changes.describe(),
        (_, true) => {
            format!("{} added, {} changed, {} destroyed, {} replaced", changes.add, changes.change, changes.destroy, changes.replace)
        }
        (_, false) => String::new(),
    };
    let plan = PlanDetail { resources: planned, ..PlanDetail::default() };
    Ok(StageDone { value: outputs, status, detail, changes: Some(changes), plan })
}

/// Where a placeholder plan's stack keeps its state and finds the vpc's.
pub struct Scratch<'a> {
    /// The real state bucket: the stack's own state is read from it (never written);
    /// `None`: a never-deployed customer, planned against an empty local state.
    pub bucket: Option<&'a BucketName>,
    /// The inputs that are placeholders (empty for a vpc planned against an empty state).
    pub placeholders: Vec<Placeholder>,
}

/// Plans a stack that cannot be planned for real yet, in a scratch copy of the
/// terraform tree that is deleted afterwards: without a bucket against an empty
/// local state, with placeholder vpc outputs through a local placeholder vpc state.
/// The state is never written (`-lock=false`, no apply), nothing is created, and
/// the saved plan is deleted with the copy: it can never be applied.
pub async fn plan_scratch(
    p: &mut StageContext,
    stage: Stage,
    scratch: Scratch<'_>,
    upstream: Option<(&VpcOutputs, &AmiId)>,
) -> Result<StageDone<Outputs>, Error> {
    let mut log = p.log(stage)?;
    let tmp = tempfile::Builder::new()
        .prefix(".placeholder-plan-")
        .tempdir_in(&p.work)
        .map_err(|e| Error::io(format!("creating a scratch directory in {}", p.work.display()), e))?;
    let root = tmp.path().join("terraform");
    let src = &p.ctx.fleet.paths.terraform;
    terraform::sync_tree(src, &root).map_err(|e| Error::io(format!("copying {} to {}", src.display(), root.display()), e))?;
    let job = p.plan.job(stage).clone();
    let dir = root.join(&job.rel);
    let write = |name: &str, text: &str| crate::files::write_atomic(&dir.join(name), text);
    let backend_file = if job.info.backend.is_some() { terraform::OVERRIDE_FILE } else { terraform::BACKEND_FILE };
    match scratch.bucket {
        Some(b) => {
            if job.info.backend.is_some() {
                write(terraform::BACKEND_PARTIAL_FILE, &render::backend_partial(&backend(p, b, &job.key)))?;
            } else {
                write(terraform::BACKEND_FILE, &render::backend_block(&backend(p, b, &job.key)))?;
            }
        }
        None => write(backend_file, &terraform::local_backend_block(&tmp.path().join("empty.tfstate")))?,
    }
    if stage == Stage::Frontends {
        let vpc_is_placeholder = scratch.placeholders.contains(&Placeholder::VpcOutputs);
        match (scratch.bucket, upstream) {
            (Some(b), _) if !vpc_is_placeholder => {
                write(terraform::REMOTE_STATE_FILE, &render::remote_state_block(&backend(p, b, &p.plan.vpc.key)))?
            }
            (_, Some((vpc, _))) => {
                let state = tmp.path().join("placeholder-vpc.tfstate");
                crate::files::write_atomic(&state, &terraform::placeholder_vpc_state(&vpc_outputs_json(vpc)))?;
                write(terraform::REMOTE_STATE_FILE, &terraform::local_remote_state_block(&state))?;
            }
            (_, None) => return Err(Error::stage("a frontends plan needs vpc outputs, real or placeholder")),
        }
    }
    let inputs = stack_inputs(p, stage, upstream)?;
    write(terraform::TFVARS_FILE, &render::vars_json(&inputs.file))?;
    announce_sensitive_inputs(p, stage, &inputs.sensitive);
    let ui = p.ui.clone();
    let lane = p.plan_lane(stage).await?;
    init(p, stage, &dir, &mut log).await?;
    let label = if scratch.placeholders.is_empty() {
        "terraform plan (no state bucket yet: against an empty state)".to_owned()
    } else {
        format!("terraform plan with placeholder {}", scratch.placeholders.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" and "))
    };
    ui.step(stage, &label);
    let plan_file = PlanFile::new(dir.join(terraform::PLAN_FILE));
    let shown = plan(p, stage, &dir, &mut log, &["-lock=false"], terraform::PLAN_FILE, &inputs.sensitive).await?;
    drop(plan_file);
    drop(lane);
    drop(tmp);
    let planned = shown.changes;
    let changes = Changes::of(&planned);
    let mut detail = changes.describe();
    let placeholder = !scratch.placeholders.is_empty();
    if placeholder {
        detail.push_str(&format!(" ({})", Placeholder::label(&scratch.placeholders)));
    } else if scratch.bucket.is_none() {
        detail.push_str(" (never deployed: planned against an empty state)");
    }
    log.note(&format!("stamp: {detail}; the scratch copy and its plan were deleted"));
    let status = if changes.total() == 0 { Status::Unchanged } else { Status::Ok };
    let plan = PlanDetail {
        resources: planned,
        placeholder,
        placeholders: scratch.placeholders,
        empty_state: scratch.bucket.is_none(),
        ..PlanDetail::default()
    };
    let done = StageDone { value: Outputs::new(), status, detail, changes: Some(changes), plan };
    // The real backend, read without its lock: another run may be creating this stack.
    match scratch.bucket {
        Some(b) => {
            let lock = state_lock(p, stage, b);
            let held = held_lock(p, stage, &lock).await;
            Ok(with_held_lock(done, held))
        }
        None => Ok(done),
    }
}

/// `drift` for one deployed stack: a refresh-only plan (what changed in the real
/// infrastructure behind the state's back) and a normal plan (configuration not
/// yet applied), reported apart. Applies nothing, writes no state (`-lock=false`);
/// both saved plans are deleted.
pub async fn drift(
    p: &mut StageContext,
    stage: Stage,
    bucket: &BucketName,
    upstream: Option<(&VpcOutputs, &AmiId)>,
) -> Result<StageDone<Outputs>, Error> {
    let _lane = p.plan_lane(stage).await?;
    let (mut log, dir, sensitive) = prepare(p, stage, bucket, upstream).await?;
    let ui = p.ui.clone();
    ui.step(stage, "terraform plan -refresh-only");
    let plan_file = PlanFile::new(dir.join(terraform::REFRESH_PLAN_FILE));
    let refreshed = plan(p, stage, &dir, &mut log, &["-refresh-only", "-lock=false"], terraform::REFRESH_PLAN_FILE, &sensitive).await;
    drop(plan_file);
    // Every difference the refresh found is in the log (plan_with_code); only what a
    // deploy would put back is reported as drift (terraform::relevant_drift).
    let drifted = refreshed?.drift;
    ui.step(stage, "terraform plan");
    let plan_file = PlanFile::new(dir.join(terraform::DRIFT_PLAN_FILE));
    let pending = plan(p, stage, &dir, &mut log, &["-lock=false"], terraform::DRIFT_PLAN_FILE, &sensitive).await;
    drop(plan_file);
    let pending = pending?.changes;
    let drifted = terraform::relevant_drift(&drifted, &pending);
    let changes = Changes::of(&pending);
    let detail = format!(
        "drifted: {}; pending: {}",
        if drifted.is_empty() { "none".to_owned() } else { format!("{} resource(s)", drifted.len()) },
        changes.describe()
    );
    let status = if drifted.is_empty() && changes.total() == 0 { Status::Unchanged } else { Status::Ok };
    let plan = PlanDetail { resources: pending, drifted: Some(drifted), ..PlanDetail::default() };
    Ok(StageDone { value: Outputs::new(), status, detail, changes: Some(changes), plan })
}

fn vpc_outputs_json(v: &VpcOutputs) -> BTreeMap<String, Value> {
    [
        ("vpc_id", json!(v.vpc_id)),
        ("build_subnet_id", json!(v.build_subnet_id)),
        ("public_subnet_ids", json!(v.public_subnet_ids)),
        ("private_subnet_ids", json!(v.private_subnet_ids)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `terraform init` (one at a time: they share the plugin cache).
async fn init(p: &StageContext, stage: Stage, dir: &Path, log: &mut StageLog) -> Result<(), Error> {
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
async fn plan(
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
async fn plan_with_code(
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

fn log_changes(log: &mut StageLog, shown: &ShownPlanJson) {
    for (what, c) in shown.changes.iter().map(|c| ("change", c)).chain(shown.drift.iter().map(|c| ("drift", c))) {
        let attrs = if c.attributes.is_empty() { String::new() } else { format!(" ({})", c.attributes.join(", ")) };
        log.note(&format!("stamp:   {what} {:>3} {} {}{attrs}", c.action.marker(), c.action, c.address));
    }
}

/// The stack's outputs, from its state object in S3 (what `terraform output -json`
/// reads, without starting terraform: two processes less per customer). The values
/// include the sensitive ones in clear: the stage log gets only their names.
async fn read_outputs(p: &StageContext, stage: Stage, bucket: &BucketName, log: &mut StageLog) -> Result<Outputs, Error> {
    let key = &p.plan.job(stage).key;
    let outputs = match p.aws.read_object(stage.as_str(), log, bucket, key).await? {
        Some(state) => terraform::outputs_from_state(&state).map_err(|m| Error::stage(format!("s3://{bucket}/{key}: {m}")))?,
        None => Outputs::new(),
    };
    let names: Vec<String> = outputs.iter().map(|(k, v)| if v.sensitive { format!("{k} (sensitive)") } else { k.clone() }).collect();
    log.note(&format!("stamp: outputs from s3://{bucket}/{key}: {} (values not logged; `stamp outputs` shows them)", names.join(", ")));
    Ok(outputs)
}

/// Asks the approval policy whether a planned stack may be applied.
async fn approve(p: &StageContext, plan: &ShownPlan) -> Result<(), Error> {
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
        Approval::Approved(reviewed) => {
            let unseen = unseen_destroys(&plan.planned, reviewed.destroys.get(&(p.name().to_owned(), stage)));
            if unseen.is_empty() { Ok(()) } else { Err(reviewed.refusal(p.name(), stage, &unseen)) }
        }
    }
}

/// The destroys and replacements of `planned` that the approved plan did not show.
/// A tainted resource's replacement is not asked about: its create failed part-way
/// (or an operator tainted it), and the deploy that follows a failed one (a re-run
/// of the same approved plan) must replace it to go on.
pub fn unseen_destroys(planned: &[PlannedChange], shown: Option<&std::collections::BTreeSet<String>>) -> Vec<String> {
    planned
        .iter()
        .filter(|c| c.destroys() && !(c.action == Action::Replace && c.tainted) && !shown.is_some_and(|s| s.contains(&c.address)))
        .map(|c| format!("{} {}", c.action, c.address))
        .collect()
}

pub fn sync_working_copy(p: &StageContext) -> Result<(), Error> {
    let dest = p.work.join("terraform");
    let src = &p.ctx.fleet.paths.terraform;
    terraform::sync_tree(src, &dest).map_err(|e| Error::work_dir(format!("copying {} to {}", src.display(), dest.display()), e))
}

fn backend(p: &StageContext, bucket: &BucketName, key: &str) -> Backend {
    let fleet = &p.ctx.fleet;
    Backend {
        bucket: bucket.to_string(),
        key: key.to_owned(),
        region: p.plan.customer.region.to_string(),
        endpoint: fleet.aws.endpoint.clone(),
        profile: fleet.aws.profile.clone(),
    }
}

/// A sensitive input of a stack: a `[secrets]` value, or any value of a variable
/// the stack declares `sensitive = true`. Terraform gets it as `TF_VAR_<name>`.
pub struct SensitiveInput {
    pub name: String,
    /// As Terraform reads it from the environment (`terraform::tf_var_env_value`).
    env_value: String,
    /// What the printed command shows instead of the value.
    shown: String,
    /// The strings it could be printed as (announced as secrets).
    leaves: Vec<String>,
}

/// A stack's inputs: those written to the generated tfvars file, and the sensitive ones.
struct StackInputs {
    file: BTreeMap<String, Value>,
    sensitive: Vec<SensitiveInput>,
}

/// The inputs of a stack, split: the sensitive ones never go into a file.
fn stack_inputs(p: &StageContext, stage: Stage, upstream: Option<(&VpcOutputs, &AmiId)>) -> Result<StackInputs, Error> {
    let job = p.plan.job(stage);
    let (_, extra) = crate::customer::plan::stage_vars(&p.plan.customer, stage);
    let mut file = BTreeMap::new();
    let mut sensitive = Vec::new();
    for (name, value) in stack_vars(p, stage, upstream) {
        let secret = p.plan.secrets.get(&name);
        if secret.is_none() && !job.info.sensitive.contains(&name) {
            file.insert(name, value);
            continue;
        }
        let env_value = terraform::tf_var_env_value(&value, job.info.hcl_input.contains(&name))
            .map_err(|m| Error::stage(format!("the sensitive input `{name}` of {}: {m}", job.rel)))?;
        let shown = match secret {
            Some(s) => s.shown(),
            None => match extra.origin.get(&name) {
                Some(at) => crate::shell::shell_quote(&format!("<sensitive: {at}>")),
                None => "'<sensitive>'".to_owned(),
            },
        };
        let leaves = crate::events::secret_leaves(&value);
        sensitive.push(SensitiveInput { name, env_value, shown, leaves });
    }
    Ok(StackInputs { file, sensitive })
}

/// The inputs of a stack: the standard ones it declares, then `[*.vars]`, then the
/// `[secrets]` it declares.
fn stack_vars(p: &StageContext, stage: Stage, upstream: Option<(&VpcOutputs, &AmiId)>) -> BTreeMap<String, Value> {
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
    for (name, secret) in p.plan.secrets.iter().filter(|(k, _)| job.info.variables.contains(*k)) {
        vars.insert(name.clone(), json!(secret.value()));
    }
    vars
}

/// A saved plan: removed when dropped (after it was applied or read, and on any
/// failure). Terraform writes it under umask 077 (`plan_with_code`): 0600.
struct PlanFile(PathBuf);

impl PlanFile {
    /// Removes what an earlier run may have left at `path` first.
    fn new(path: PathBuf) -> Self {
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for PlanFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The backend, the vpc remote state (frontends) and the inputs but the sensitive
/// ones, in the working copy; returns the stack's directory and its sensitive inputs.
pub fn write_files(
    p: &StageContext,
    stage: Stage,
    bucket: &BucketName,
    upstream: Option<(&VpcOutputs, &AmiId)>,
) -> Result<(PathBuf, Vec<SensitiveInput>), Error> {
    let job = p.plan.job(stage);
    let dir = p.work.join("terraform").join(&job.rel);
    let own = backend(p, bucket, &job.key);
    let write = |name: &str, text: &str| crate::files::write_atomic(&dir.join(name), text);
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
    let inputs = stack_inputs(p, stage, upstream)?;
    write(terraform::TFVARS_FILE, &render::vars_json(&inputs.file))?;
    // Saved plans a killed run (or an older stamp) left behind hold secrets in clear.
    for plan in [terraform::PLAN_FILE, terraform::REFRESH_PLAN_FILE, terraform::DRIFT_PLAN_FILE] {
        remove(plan)?;
    }
    Ok((dir, inputs.sensitive))
}

fn terraform(p: &StageContext, dir: &Path) -> ToolCommand {
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
                TfEvent::Other { message } | TfEvent::ResourceDrift { message, .. } if !message.is_empty() => Tail::Text(message.clone()),
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

/// Every string of a sensitive output, announced (masked in CI logs) before anything
/// could print it.
fn announce_sensitive_outputs(p: &StageContext, stage: Stage, outputs: &Outputs) {
    for o in outputs.values().filter(|o| o.sensitive) {
        for s in crate::events::secret_leaves(&o.value) {
            p.ui.secret(stage, &s);
        }
    }
}

/// The values of the stack's sensitive inputs, announced (masked in CI logs) before
/// terraform runs with them.
fn announce_sensitive_inputs(p: &StageContext, stage: Stage, sensitive: &[SensitiveInput]) {
    for s in sensitive.iter().flat_map(|i| &i.leaves) {
        p.ui.secret(stage, s);
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

/// A failed apply's printed command names the saved plan, which stamp removes when
/// the stage ends (it holds every input in clear): the hint says how to run it again.
fn saved_plan_removed(e: Error, customer: &str, stage: Stage, mode: Mode) -> Error {
    match e {
        Error::Tool(mut f) if f.hint.is_none() => {
            let again = if mode == Mode::Destroy {
                format!("`stamp destroy {customer}` plans and destroys again")
            } else {
                format!("`stamp deploy {customer}` plans again and resumes at {stage}")
            };
            f.hint = Some(format!(
                "{} was removed (a saved plan holds every input in clear), so this command cannot be run again as it is: {again}",
                terraform::PLAN_FILE
            ));
            Error::Tool(f)
        }
        e => e,
    }
}

/// Why a failed terraform (or packer) run may be run again: its output shows a
/// transient cause (`retry::transient_tool_cause`). Lock contention, a missing
/// permission, a validation or configuration error, a stale plan: never.
pub fn transient_failure(e: &Error) -> Option<String> {
    match e {
        Error::Tool(f) => crate::retry::transient_tool_cause(&f.tail.join("\n")),
        _ => None,
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

/// Destroy's guard, before anything is destroyed: every resource of the customer's
/// states that AWS can protect (an RDS instance, a load balancer) is looked up in AWS,
/// whatever the state says (protection may have been switched on by hand after the
/// apply, or off since); one whose protection is on refuses the whole destroy.
pub async fn refuse_protected(p: &StageContext, log: &mut StageLog, states: &[&str]) -> Result<(), Error> {
    let mut on = Vec::new();
    for state in states {
        for r in terraform::protectable_resources(state).map_err(Error::stage)? {
            if p.aws.still_protected("bucket", log, &r).await? {
                on.push(r);
            }
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
        use crate::tools::terraform::Action;
        let change = |action: Action, address: &str| PlannedChange { action, address: address.into(), attributes: vec![], tainted: false };
        let planned = vec![
            change(Action::Update, "aws_lb.this"),
            change(Action::Replace, "aws_db_instance.this"),
            change(Action::Delete, "aws_kms_key.old"),
        ];
        let shown: std::collections::BTreeSet<String> = ["aws_kms_key.old".to_string()].into();
        assert_eq!(unseen_destroys(&planned, Some(&shown)), vec!["replace aws_db_instance.this"]);
        assert_eq!(unseen_destroys(&planned, None).len(), 2, "nothing shown: every destroy is unseen");
        assert!(unseen_destroys(&planned[..1], None).is_empty(), "updates need no showing");
        let tainted = PlannedChange { tainted: true, ..change(Action::Replace, "aws_db_instance.this") };
        assert!(unseen_destroys(std::slice::from_ref(&tainted), None).is_empty(), "a tainted resource is replaced whatever was shown");
    }
}
