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
use crate::render::{self};
use crate::stages::contract::{ShownPlan, StageContext, StageDone, Turn, VpcOutputs};
use crate::tools::process::StageLog;
use crate::tools::terraform::{self, Outputs, TfEvent};

pub(crate) mod guard;
pub(crate) mod inputs;
pub(crate) mod steps;

use guard::*;
use inputs::*;
use steps::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Apply,
    PlanOnly,
    Destroy,
}

/// Runs the stack of `stage` (vpc or frontends). Its terraform holds the state lock
/// (`<key>.tflock`) while it plans and applies: on an interrupt, the lock is read at
/// once and its real ID printed, and read again once terraform has stopped, to say
/// whether it was left behind and how to release it (`interrupt`).
pub(crate) async fn run(
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
                // It mostly waits on AWS: the customer's turn (`--parallel`) is lent
                // meanwhile, and taken back before the next step.
                let apply = async {
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
                };
                Turn::lent(pr.opts.turn.as_ref(), apply).await.map(|_| ())
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
        (_, true) => changes.describe_in(terraform::Tense::Applied),
        (_, false) => String::new(),
    };
    let plan = PlanDetail { resources: planned, ..PlanDetail::default() };
    Ok(StageDone { value: outputs, status, detail, changes: Some(changes), plan })
}

/// Where a placeholder plan's stack keeps its state and finds the vpc's.
pub(crate) struct Scratch<'a> {
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
pub(crate) async fn plan_scratch(
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
pub(crate) async fn drift(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::contract::PlannedChange;

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
