//! One customer's pipeline: state bucket -> vpc stack -> AMI -> frontends stack,
//! each stage's typed outputs passed to the next (`stages/`). A pipeline is a value
//! the fleet scheduler runs many of side by side: it owns what it needs, emits
//! events instead of printing, asks an `Approval` policy instead of prompting, and
//! checks the run's `Stop` before each stage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::cancel::Stop;
use crate::customer::journal::{Inputs, Journal, RunState, StageEntry, StageState};
use crate::customer::plan::CustomerPlan;
use crate::customer::report::{Changes, PlanDetail, RunReport, SCHEMA_VERSION, StageReport};
use crate::error::Error;
use crate::events::{Emitter, EventKind, EventSink, Stage, Status};
use crate::files::write_atomic;
use crate::names::{AmiId, BucketName};
use crate::operation::Operation;
use crate::shared::context::FleetContext;
use crate::stages::contract::{Options, StageContext, StageDone, VpcOutputs, placeholder_ami, placeholder_vpc};
use crate::stages::{self, stack::Mode};
use crate::tools::aws::Aws;
use crate::tools::process::StageLog;
use crate::tools::terraform::{self, Outputs};

pub struct Pipeline {
    /// What the stages see of this customer's run.
    pub cx: StageContext,
    pub report: RunReport,
    started: Instant,
    /// deploy only: the run journal as this run writes it.
    journal: Option<Journal>,
    _lock: Option<std::fs::File>,
}

impl Pipeline {
    /// Sets up the customer's work directory and its lock (`render` too: it writes
    /// the same generated files a running deploy reads) and
    /// the tools' environment. The plan was checked already.
    pub async fn open(
        ctx: Rc<FleetContext>,
        plan: CustomerPlan,
        opts: Options,
        sink: Rc<dyn EventSink>,
        stop: Stop,
        op: Operation,
    ) -> Result<Self, Error> {
        let name = plan.customer.name.clone();
        let work = ctx.fleet.paths.work.join(name.as_str());
        std::fs::create_dir_all(&work).map_err(|e| Error::work_dir(format!("creating {}", work.display()), e))?;
        let lock = crate::tools::work_lock::lock_work_dir(&work, &Emitter::new(name.as_str(), sink.clone())).await?;
        let env = ctx.tool_env(&plan.customer.region)?;
        let aws = Aws::with_api(&ctx.fleet, ctx.tools().aws.clone(), env.clone(), ctx.aws_api(&env));
        let report = RunReport {
            schema_version: SCHEMA_VERSION,
            customer: name.to_string(),
            operation: op,
            env: plan.customer.env.to_string(),
            region: plan.customer.region.to_string(),
            status: Status::Ok,
            started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            duration_s: 0.0,
            state_bucket: None,
            git_id: plan.revision.as_ref().map(|r| r.git_id.clone()),
            commit: plan.revision.as_ref().map(|r| r.commit.clone()),
            stages: Vec::new(),
            outputs: BTreeMap::new(),
            log_dir: work.join("logs"),
            notes: Vec::new(),
            error: None,
            failed_stage: None,
        };
        Ok(Self {
            cx: StageContext { ui: Emitter::new(name.as_str(), sink), ctx, plan, opts, stop, work, env, aws, opened_logs: BTreeSet::new() },
            report,
            started: Instant::now(),
            journal: None,
            _lock: Some(lock),
        })
    }

    fn record(&mut self, stage: Stage, status: Status, detail: &str, changes: Option<Changes>, plan: PlanDetail, started: Instant) {
        let elapsed = started.elapsed();
        self.cx.ui.stage_finished(stage, status, detail, elapsed);
        self.report.stages.push(StageReport {
            name: stage,
            status,
            duration_s: round(elapsed),
            detail: detail.to_owned(),
            changes,
            destroys: plan.resources.iter().filter(|c| c.destroys()).map(|c| format!("{} {}", c.action, c.address)).collect(),
            plan,
        });
    }

    /// Runs a stage body with its progress line, status and duration recorded; a
    /// stage does not start once the run is stopping.
    pub async fn stage<T>(
        &mut self,
        stage: Stage,
        label: &str,
        body: impl AsyncFnOnce(&mut Self) -> Result<StageDone<T>, Error>,
    ) -> Result<T, Error> {
        if let Some(why) = self.cx.stop.draining() {
            return Err(if self.cx.stop.interrupted() { Error::Interrupted(Some(stage.to_string())) } else { Error::Stopped(why) });
        }
        let started = Instant::now();
        self.cx.ui.stage_started(stage, label);
        // Named, with its tool and state lock, in what stamp prints on an interrupt.
        let running = crate::running::stage(self.cx.name(), stage.as_str());
        let result = running.scope(body(self)).await;
        drop(running);
        match result {
            Ok(done) => {
                self.record(stage, done.status, &done.detail, done.changes, done.plan, started);
                Ok(done.value)
            }
            Err(e) => {
                let e = self.explain_unreachable(stage, e).await;
                let status = if matches!(e, Error::Interrupted(_)) { Status::Interrupted } else { Status::Failed };
                let detail = match &e {
                    Error::Tool(f) => f.status.clone(),
                    _ => String::new(),
                };
                if !matches!(e, Error::Stopped(_)) {
                    let file = self.stage_file(stage);
                    self.cx.ui.emit(Some(stage), EventKind::Failure { message: e.to_string(), file: Some(file) });
                }
                self.record(stage, status, &detail, None, PlanDetail::default(), started);
                self.report.failed_stage = Some(stage);
                Err(e)
            }
        }
    }

    /// A stage that failed while the emulated AWS endpoint stopped answering (the
    /// emulator was stopped or died): says so, and how to go on, whatever the tool
    /// printed. The endpoint is probed only after a failure.
    async fn explain_unreachable(&self, stage: Stage, e: Error) -> Error {
        let Some(url) = self.cx.ctx.fleet.aws.endpoint.clone() else { return e };
        if !matches!(e, Error::Tool(_) | Error::Stage { .. }) || answers(&url).await {
            return e;
        }
        let ours = format!(
            "nothing answers at {url} ([aws] endpoint) any more: it stopped during stage {stage}; start it again at that address, then `stamp deploy {}` resumes where this run stopped",
            self.cx.name()
        );
        let join = |old: Option<String>| {
            Some(match old {
                Some(old) => format!("{ours}\n  hint: {old}"),
                None => ours.clone(),
            })
        };
        match e {
            Error::Tool(mut f) => {
                f.hint = join(f.hint.take());
                Error::Tool(f)
            }
            Error::Stage { message, hint } => Error::Stage { message, hint: join(hint) },
            other => other,
        }
    }

    /// The file a stage's failure points at: its stack directory, the packer
    /// template, or (state bucket, smoke test: its settings) the customer file.
    pub fn stage_file(&self, stage: Stage) -> PathBuf {
        let paths = &self.cx.ctx.fleet.paths;
        match stage {
            Stage::Vpc | Stage::Frontends => paths.terraform.join(&self.cx.plan.job(stage).rel),
            Stage::Ami => paths.packer_template.clone(),
            Stage::Bucket | Stage::Smoke => self.cx.plan.customer.file.clone(),
        }
    }

    pub fn skip(&mut self, stage: Stage, why: &str) {
        let started = Instant::now();
        self.cx.ui.stage_started(stage, stage.as_str());
        self.record(stage, Status::Skipped, why, None, PlanDetail::default(), started);
    }

    /// Runs the operation and returns the report (saved, but for render) and the result.
    pub async fn run(mut self) -> (RunReport, Result<(), Error>) {
        let op = self.report.operation;
        self.cx.ui.emit(None, EventKind::CustomerStarted { env: self.report.env.clone() });
        // Every tool of this customer keeps its work lock open: held until they are
        // gone, even if stamp dies first (`tools::relay`).
        let held = self._lock.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        let result = crate::tools::process::holding(held, async {
            match op {
                Operation::Deploy => self.deploy().await,
                Operation::Plan => self.plan().await,
                Operation::Destroy => self.destroy().await,
                Operation::Render => self.render().await,
                Operation::Drift => self.drift().await,
            }
        })
        .await;
        self.report.duration_s = round(self.started.elapsed());
        if let Err(e) = &result {
            self.report.status = match e {
                Error::Interrupted(_) => Status::Interrupted,
                Error::Stopped(_) if self.report.stages.is_empty() => Status::NotStarted,
                Error::Stopped(_) => Status::Interrupted,
                _ => Status::Failed,
            };
            self.report.error = Some(e.to_string());
            // A failure between stages (a stack without the outputs the next stage needs...).
            if self.report.failed_stage.is_none() && !matches!(e, Error::Stopped(_)) {
                let file = Some(self.cx.plan.customer.file.clone());
                self.cx.ui.emit(None, EventKind::Failure { message: e.to_string(), file });
            }
        } else if self.report.stages.iter().all(|s| matches!(s.status, Status::Unchanged | Status::Skipped | Status::Resumed)) {
            self.report.status = Status::Unchanged;
        }
        let mut result = result;
        if op != Operation::Render
            && let Err(e) = self.save_report()
            && result.is_ok()
        {
            result = Err(e);
        }
        self.cx.ui.emit(None, EventKind::CustomerFinished { status: self.report.status, elapsed: self.started.elapsed() });
        (self.report, result)
    }

    /// `last-run.json` and `runs/<millis>-<op>.json`, written atomically.
    fn save_report(&self) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(&self.report).map_err(|e| Error::stage(format!("run report: {e}")))?;
        let stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let runs = self.cx.work.join("runs");
        std::fs::create_dir_all(&runs).map_err(|e| Error::io(format!("creating {}", runs.display()), e))?;
        write_atomic(&runs.join(format!("{stamp}-{}.json", self.report.operation.as_str())), &text)?;
        write_atomic(&self.cx.work.join("last-run.json"), &text)
    }

    // ------------------------------------------------------------ operations

    /// bucket -> vpc -> ami -> frontends -> smoke, each stage recorded in the run
    /// journal. After a run that did not finish (same inputs), or with `--from`, the
    /// stages before the restart point are checked (what they made still exists) and
    /// not run again; one whose result is gone runs again.
    async fn deploy(&mut self) -> Result<(), Error> {
        let mut carried = self.open_journal()?;
        let bucket = self
            .deploy_stage(
                Stage::Bucket,
                "state bucket",
                carried.remove(&Stage::Bucket),
                async |p: &mut Self, e: &StageEntry| p.check_bucket(e).await,
                async |p: &mut Self| stages::bucket::run(&mut p.cx, true, &mut p.report.state_bucket).await,
                |b, e| e.bucket = b.as_ref().map(|b| b.to_string()),
            )
            .await?;
        let Some(bucket) = bucket else { unreachable!("deploy creates the bucket") };
        self.report.state_bucket = Some(bucket.to_string());
        let label = self.cx.plan.vpc.label.clone();
        let vpc_out = self
            .deploy_stage(
                Stage::Vpc,
                &label,
                carried.remove(&Stage::Vpc),
                async |p: &mut Self, _: &StageEntry| p.check_stack(Stage::Vpc, &bucket).await,
                async |p: &mut Self| stages::stack::run(&mut p.cx, Stage::Vpc, &bucket, Mode::Apply, None).await,
                |_, _| {},
            )
            .await?;
        let vpc = VpcOutputs::from_outputs(&vpc_out, &format!("{} (vpc)", self.cx.ctx.fleet.paths.terraform.display()))?;
        self.report.outputs.insert("vpc".into(), outputs_json(&vpc_out, false));
        let ami = self
            .deploy_stage(
                Stage::Ami,
                "AMI (packer)",
                carried.remove(&Stage::Ami),
                async |p: &mut Self, e: &StageEntry| p.check_ami(e).await,
                async |p: &mut Self| stages::ami::run(&mut p.cx, &vpc).await,
                |a, e| e.ami_id = Some(a.to_string()),
            )
            .await?;
        self.report.outputs.insert("ami_id".into(), json!(ami.as_str()));
        let label = self.cx.plan.frontends.label.clone();
        let fe = self
            .deploy_stage(
                Stage::Frontends,
                &label,
                carried.remove(&Stage::Frontends),
                async |p: &mut Self, _: &StageEntry| p.check_stack(Stage::Frontends, &bucket).await,
                async |p: &mut Self| stages::stack::run(&mut p.cx, Stage::Frontends, &bucket, Mode::Apply, Some((&vpc, &ami))).await,
                |_, _| {},
            )
            .await?;
        self.report.outputs.insert("frontends".into(), outputs_json(&fe, false));
        let smoke = &self.cx.plan.customer.smoke;
        let skipped = if self.cx.opts.no_smoke {
            Some("--no-smoke".to_owned())
        } else if !smoke.enabled {
            Some(format!("[smoke] enabled = false in {}", smoke.disabled_at.as_deref().unwrap_or_default()))
        } else {
            None
        };
        match (skipped, fe.get("public_url").map(|o| &o.value)) {
            (Some(why), _) => self.skip(Stage::Smoke, &why),
            (None, None) => self.skip(Stage::Smoke, "the frontends stack has no `public_url` output"),
            (None, Some(url)) => {
                let url = url.as_str().map(String::from).unwrap_or_else(|| url.to_string());
                self.deploy_stage(
                    Stage::Smoke,
                    "smoke test",
                    None,
                    async |_: &mut Self, _: &StageEntry| Ok(Err(String::new())),
                    async |p: &mut Self| stages::smoke::run(&mut p.cx, &url).await,
                    |_, _| {},
                )
                .await?;
            }
        }
        // Every stage finished: the next deploy runs them all again.
        if let Some(j) = self.journal.as_mut() {
            j.status = RunState::Complete;
            j.updated_at = now();
            j.save(&Journal::path(&self.cx.work))?;
        }
        Ok(())
    }

    /// The inputs that make this deploy's result: equal inputs, equal fingerprint.
    fn inputs(&self) -> Result<Inputs, Error> {
        use crate::customer::journal::{hash_bytes, hash_path};
        let fleet = &self.cx.ctx.fleet;
        let c = &self.cx.plan.customer;
        let hash = |p: &Path| hash_path(p).map_err(|e| Error::io(format!("reading {}", p.display()), e));
        let mut i = Inputs::default();
        i.add(format!("the customer file {}", c.file.display()), hash(&c.file)?);
        i.add(format!("the fleet file {}", fleet.config_path.display()), hash(&fleet.config_path)?);
        i.add(format!("the stacks under {}", fleet.paths.terraform.display()), hash(&fleet.paths.terraform)?);
        i.add(
            format!("the packer template {}", fleet.paths.packer_template.display()),
            format!("sha256:{}", stages::ami::template_hash(&self.cx)?),
        );
        if let Some(files) = &self.cx.plan.app_config {
            i.add("the rendered app configuration", hash_bytes(&serde_json::to_vec(files).unwrap_or_default()));
        }
        i.add("git_id", c.git_id.clone());
        // A branch that moved is another image: a run of the old commit is not resumed.
        i.add("commit", self.cx.plan.commit()?.to_owned());
        i.add("env", c.env.to_string());
        i.add("region", c.region.to_string());
        i.add("endpoint", fleet.aws.endpoint.clone().unwrap_or_else(|| "AWS".into()));
        i.add("--rebuild-ami", if self.cx.opts.rebuild_ami { "on" } else { "off" });
        i.add("stamp version", env!("CARGO_PKG_VERSION"));
        Ok(i)
    }

    /// Reads the run journal and decides where this deploy starts
    /// (`resume::decide`): the stages before that point, with their journal entries,
    /// are returned (to be checked and not rerun). Starts this run's journal.
    fn open_journal(&mut self) -> Result<BTreeMap<Stage, StageEntry>, Error> {
        let inputs = self.inputs()?;
        let path = Journal::path(&self.cx.work);
        let name = self.cx.name().to_owned();
        // `--from bucket` runs everything; the journal is not read (it may be the one that is broken).
        let old = if self.cx.opts.from == Some(Stage::Bucket) { None } else { Journal::read(&path, &name)? };
        let start = crate::customer::resume::decide(self.cx.opts.from, old.as_ref(), &inputs, &path, &name)?;
        if let Some(note) = &start.note {
            self.cx.ui.note(note);
        }
        let mut journal = Journal::new(&name, &self.report.started_at, &inputs);
        for e in start.carried.values() {
            journal.set(e.clone());
        }
        self.journal = Some(journal);
        Ok(start.carried)
    }

    /// Records a stage's state in the journal (atomically, before going on).
    fn journal_mark(&mut self, stage: Stage, status: StageState, set: impl FnOnce(&mut StageEntry)) -> Result<(), Error> {
        let Some(j) = self.journal.as_mut() else { return Ok(()) };
        let now = now();
        let run = self.report.started_at.clone();
        let mut e = match j.entry(stage) {
            Some(e) if e.run == run && status != StageState::Running => e.clone(),
            _ => StageEntry {
                stage,
                status,
                run,
                started_at: now.clone(),
                finished_at: None,
                fingerprint: j.fingerprint.clone(),
                bucket: None,
                ami_id: None,
                error: None,
            },
        };
        e.status = status;
        if status != StageState::Running {
            e.finished_at = Some(now.clone());
        }
        set(&mut e);
        j.set(e);
        j.status = match status {
            StageState::Failed => RunState::Failed,
            StageState::Interrupted => RunState::Interrupted,
            _ => RunState::Running,
        };
        j.updated_at = now;
        j.save(&Journal::path(&self.cx.work))
    }

    /// A deploy stage: with a journal entry from an earlier run, `check` looks whether
    /// its result still exists (then it is not rerun: "not rerun"), else the stage
    /// runs, its start and end recorded in the journal ("done" only once it finished).
    async fn deploy_stage<T>(
        &mut self,
        stage: Stage,
        label: &str,
        carried: Option<StageEntry>,
        check: impl AsyncFnOnce(&mut Self, &StageEntry) -> Result<Result<T, String>, Error>,
        body: impl AsyncFnOnce(&mut Self) -> Result<StageDone<T>, Error>,
        keep: impl FnOnce(&T, &mut StageEntry),
    ) -> Result<T, Error> {
        self.stage(stage, label, async move |p: &mut Self| {
            if let Some(e) = carried {
                match check(p, &e).await? {
                    Ok(v) => return Ok(StageDone::new(v, Status::Resumed, format!("done by the run of {}; not rerun", e.run))),
                    Err(why) => {
                        let line = format!("{stage}: done by the run of {}, but {why}: running it again", e.run);
                        p.cx.ui.note(&line);
                        p.report.notes.push(line);
                    }
                }
            }
            p.journal_mark(stage, StageState::Running, |_| {})?;
            match body(p).await {
                Ok(done) => {
                    p.journal_mark(stage, StageState::Done, |e| keep(&done.value, e))?;
                    Ok(done)
                }
                Err(err) => {
                    let state = if matches!(err, Error::Interrupted(_)) { StageState::Interrupted } else { StageState::Failed };
                    let first = err.to_string().lines().next().unwrap_or_default().to_owned();
                    if let Err(w) = p.journal_mark(stage, state, |e| e.error = Some(first)) {
                        p.cx.ui.note(&format!("could not record in the run journal that {stage} {}: {w}", state.word()));
                    }
                    Err(err)
                }
            }
        })
        .await
    }

    /// The stage log of a stage that is checked, not run: appended to (the log of
    /// the run that did the stage stays whole).
    fn check_log(&self, stage: Stage, e: &StageEntry) -> Result<StageLog, Error> {
        let path = self.cx.work.join("logs").join(format!("{stage}.log"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|err| Error::io(format!("creating {}", dir.display()), err))?;
        }
        let mut log = StageLog::append(path)?;
        log.note(&format!("stamp: {}: the run of {} did this stage; checking that its result still exists", now(), e.run));
        Ok(log)
    }

    /// A done bucket stage: the bucket still answers.
    async fn check_bucket(&mut self, e: &StageEntry) -> Result<Result<Option<BucketName>, String>, Error> {
        let Some(bucket) = e.bucket.as_deref().and_then(|b| BucketName::parse(b).ok()) else {
            return Ok(Err("the journal does not name its bucket".into()));
        };
        let mut log = self.check_log(Stage::Bucket, e)?;
        Ok(match self.cx.aws.bucket_status("bucket", &mut log, &bucket).await? {
            0 => Ok(Some(bucket)),
            404 => Err(format!("the state bucket {bucket} does not exist any more")),
            code => Err(format!("the state bucket {bucket} answers HTTP {code}")),
        })
    }

    /// A done stack stage: its state object exists and holds resources and outputs.
    async fn check_stack(&mut self, stage: Stage, bucket: &BucketName) -> Result<Result<Outputs, String>, Error> {
        let e = self.journal.as_ref().and_then(|j| j.entry(stage).cloned());
        let mut log = match &e {
            Some(e) => self.check_log(stage, e)?,
            None => StageLog::discard(),
        };
        let key = self.cx.plan.job(stage).key.clone();
        let gone = format!("its state s3://{bucket}/{key}");
        let Some(state) = self.cx.aws.read_object(stage.as_str(), &mut log, bucket, &key).await? else {
            return Ok(Err(format!("{gone} does not exist any more")));
        };
        if terraform::state_resource_count(&state).unwrap_or(0) == 0 {
            return Ok(Err(format!("{gone} holds no resources")));
        }
        let outputs = match terraform::outputs_from_state(&state) {
            Ok(o) if !o.is_empty() => o,
            _ => return Ok(Err(format!("{gone} holds no outputs"))),
        };
        if stage == Stage::Vpc
            && let Err(err) = VpcOutputs::from_outputs(&outputs, "the vpc state")
        {
            return Ok(Err(format!("{gone} lacks outputs ({})", err.to_string().lines().next().unwrap_or_default())));
        }
        log.note(&format!("stamp: s3://{bucket}/{key} holds the stack's resources and outputs: not rerun"));
        Ok(Ok(outputs))
    }

    /// A done ami stage: its AMI is still registered.
    async fn check_ami(&mut self, e: &StageEntry) -> Result<Result<AmiId, String>, Error> {
        let Some(ami) = e.ami_id.as_deref().and_then(|a| AmiId::parse(a).ok()) else {
            return Ok(Err("the journal does not name its AMI".into()));
        };
        let mut log = self.check_log(Stage::Ami, e)?;
        Ok(if self.cx.aws.image_exists("ami", &mut log, &ami).await? {
            log.note(&format!("stamp: {ami} is registered: not rerun"));
            Ok(ami)
        } else {
            Err(format!("its AMI {ami} is not registered any more"))
        })
    }

    /// Plans both stacks, building nothing and writing no state. What cannot be
    /// planned for real yet is planned in a scratch copy (stages::stack::plan_scratch):
    /// the vpc of a never-deployed customer against an empty state, the frontends with
    /// placeholder vpc outputs and/or AMI. Such a plan is labelled and never applied.
    async fn plan(&mut self) -> Result<(), Error> {
        use crate::customer::report::Placeholder;
        use stages::stack::Scratch;
        let bucket = self
            .stage(Stage::Bucket, "state bucket", async |p: &mut Self| {
                stages::bucket::run(&mut p.cx, false, &mut p.report.state_bucket).await
            })
            .await?;
        let label = self.cx.plan.vpc.label.clone();
        let vpc_out = match &bucket {
            Some(b) => {
                self.stage(Stage::Vpc, &label, async |p: &mut Self| {
                    stages::stack::run(&mut p.cx, Stage::Vpc, b, Mode::PlanOnly, None).await
                })
                .await?
            }
            None => {
                self.stage(Stage::Vpc, &label, async |p: &mut Self| {
                    stages::stack::plan_scratch(&mut p.cx, Stage::Vpc, Scratch { bucket: None, placeholders: vec![] }, None).await
                })
                .await?
            }
        };
        let vpc = VpcOutputs::from_outputs(&vpc_out, "vpc").ok();
        if vpc.is_some() {
            self.report.outputs.insert("vpc".into(), outputs_json(&vpc_out, false));
        }
        // Plan never bakes: it plans the frontends with the AMI they already run.
        let ami = match &bucket {
            Some(b) => {
                let mut log = self.cx.log(Stage::Ami)?;
                let key = self.cx.plan.frontends.key.clone();
                let deployed = self.cx.aws.read_object("ami", &mut log, b, &key).await?;
                deployed
                    .as_deref()
                    .and_then(|s| terraform::outputs_from_state(s).ok())
                    .and_then(|o| o.get("ami_id").and_then(|v| v.value.as_str()).and_then(|s| AmiId::parse(s).ok()))
            }
            None => None,
        };
        let mut placeholders = Vec::new();
        let vpc = vpc.unwrap_or_else(|| {
            placeholders.push(Placeholder::VpcOutputs);
            placeholder_vpc()
        });
        let ami = match ami {
            Some(ami) => {
                let detail = self.deployed_revision(&ami).await;
                self.skip(Stage::Ami, &format!("planning with the deployed {ami}; nothing is built. {detail}"));
                self.report.outputs.insert("ami_id".into(), json!(ami.as_str()));
                ami
            }
            None => {
                self.skip(Stage::Ami, "no AMI deployed yet: the frontends are planned with a placeholder; deploy bakes one");
                placeholders.push(Placeholder::Ami);
                placeholder_ami()
            }
        };
        let label = self.cx.plan.frontends.label.clone();
        match &bucket {
            Some(b) if placeholders.is_empty() => {
                self.stage(Stage::Frontends, &label, async |p: &mut Self| {
                    stages::stack::run(&mut p.cx, Stage::Frontends, b, Mode::PlanOnly, Some((&vpc, &ami))).await
                })
                .await?;
            }
            b => {
                let scratch = Scratch { bucket: b.as_ref(), placeholders };
                self.stage(Stage::Frontends, &label, async |p: &mut Self| {
                    stages::stack::plan_scratch(&mut p.cx, Stage::Frontends, scratch, Some((&vpc, &ami))).await
                })
                .await?;
            }
        }
        Ok(())
    }

    /// What the deployed AMI was baked from (its `stamp:git_id` and `stamp:commit`
    /// tags) against the commit this customer's git_id names now.
    async fn deployed_revision(&mut self, ami: &AmiId) -> String {
        let Some(now) = self.cx.plan.revision.clone() else { return String::new() };
        let mut log = match self.cx.log(Stage::Ami) {
            Ok(l) => l,
            Err(_) => StageLog::discard(),
        };
        let tags = self.cx.aws.image_tags("ami", &mut log, ami).await.unwrap_or_default();
        let baked = (tags.get(crate::tools::aws::TAG_GIT_ID), tags.get(crate::tools::aws::TAG_COMMIT));
        match baked {
            (_, Some(c)) if c.eq_ignore_ascii_case(&now.commit) => {
                format!("It was baked from commit {}, which {} still names", now.short(), now.git_id)
            }
            (g, Some(c)) => format!(
                "It was baked from {}commit {}; {} names {} now: a deploy bakes that commit",
                g.map(|g| format!("{g} at ")).unwrap_or_default(),
                &c[..12.min(c.len())],
                now.git_id,
                now.short()
            ),
            (_, None) => format!("Its commit is not tagged (stamp:commit); a deploy bakes {}", now.describe()),
        }
    }

    /// For each deployed stack, what drifted (refresh-only plan) and what is pending
    /// (normal plan). Builds nothing, creates no bucket, writes no state.
    async fn drift(&mut self) -> Result<(), Error> {
        let bucket = self
            .stage(Stage::Bucket, "state bucket", async |p: &mut Self| {
                stages::bucket::run(&mut p.cx, false, &mut p.report.state_bucket).await
            })
            .await?;
        let Some(bucket) = bucket else {
            self.skip(Stage::Vpc, "not deployed");
            self.skip(Stage::Frontends, "not deployed");
            return Ok(());
        };
        let mut log = self.cx.log(Stage::Bucket)?;
        let vpc_state = self.cx.aws.read_object("bucket", &mut log, &bucket, &self.cx.plan.vpc.key.clone()).await?;
        let fe_state = self.cx.aws.read_object("bucket", &mut log, &bucket, &self.cx.plan.frontends.key.clone()).await?;
        let deployed = |s: &Option<String>| -> Result<bool, Error> {
            Ok(s.as_deref().map(terraform::state_resource_count).transpose().map_err(Error::stage)?.unwrap_or(0) > 0)
        };
        let label = self.cx.plan.vpc.label.clone();
        if deployed(&vpc_state)? {
            self.stage(Stage::Vpc, &label, async |p: &mut Self| stages::stack::drift(&mut p.cx, Stage::Vpc, &bucket, None).await).await?;
        } else {
            self.skip(Stage::Vpc, "not deployed");
        }
        let label = self.cx.plan.frontends.label.clone();
        if deployed(&fe_state)? {
            // The inputs the frontends were applied with: the vpc's outputs and the AMI they run.
            let vpc_outputs = vpc_state.as_deref().and_then(|s| terraform::outputs_from_state(s).ok()).unwrap_or_default();
            let vpc = VpcOutputs::from_outputs(&vpc_outputs, &format!("the vpc state ({})", self.cx.plan.vpc.key))?;
            self.report.outputs.insert("vpc".into(), outputs_json(&vpc_outputs, false));
            let fe_outputs = fe_state.as_deref().and_then(|s| terraform::outputs_from_state(s).ok()).unwrap_or_default();
            let ami = fe_outputs.get("ami_id").and_then(|v| v.value.as_str()).and_then(|s| AmiId::parse(s).ok()).ok_or_else(|| {
                Error::stage(format!("the frontends state ({}) has no ami_id output: cannot plan it", self.cx.plan.frontends.key))
            })?;
            self.report.outputs.insert("ami_id".into(), json!(ami.as_str()));
            self.stage(Stage::Frontends, &label, async |p: &mut Self| {
                stages::stack::drift(&mut p.cx, Stage::Frontends, &bucket, Some((&vpc, &ami))).await
            })
            .await?;
        } else {
            self.skip(Stage::Frontends, "not deployed");
        }
        Ok(())
    }

    async fn destroy(&mut self) -> Result<(), Error> {
        let bucket = self
            .stage(Stage::Bucket, "state bucket", async |p: &mut Self| {
                stages::bucket::run(&mut p.cx, false, &mut p.report.state_bucket).await
            })
            .await?;
        let Some(bucket) = bucket else {
            self.skip(Stage::Frontends, "nothing deployed");
            self.skip(Stage::Vpc, "nothing deployed");
            return Ok(());
        };
        // Both states are read, and must parse, before anything is destroyed: a read
        // that fails (anything but "no such key": AccessDenied, a 5xx that outlasted
        // the retries, a dropped connection) or a state that does not parse stops
        // destroy here, so a misread can never skip a stack and then deregister the
        // AMIs it runs.
        let mut log = self.cx.log(Stage::Bucket)?;
        let mut read = async |p: &mut Self, key: String| -> Result<(Option<String>, usize, Outputs), Error> {
            let state = p.cx.aws.read_object("bucket", &mut log, &bucket, &key).await.map_err(|e| refuse_destroy(&key, e))?;
            let Some(text) = state else { return Ok((None, 0, Outputs::new())) };
            let unreadable = |m: String| {
                Error::stage_hint(
                    format!("s3://{bucket}/{key} is not a state stamp can read ({m}): nothing was destroyed"),
                    "look at the object (`aws s3 cp s3://BUCKET/KEY -`); restore a previous version from the bucket's versioning if it was damaged",
                )
            };
            let count = terraform::state_resource_count(&text).map_err(unreadable)?;
            let outputs = terraform::outputs_from_state(&text).map_err(unreadable)?;
            Ok((Some(text), count, outputs))
        };
        let (vpc_state, vpc_count, vpc_outputs) = read(self, self.cx.plan.vpc.key.clone()).await?;
        let (fe_state, fe_count, fe_outputs) = read(self, self.cx.plan.frontends.key.clone()).await?;
        // Deletion protection, as AWS has it now, for both stacks: refused whole.
        let states: Vec<&str> = [fe_state.as_deref(), vpc_state.as_deref()].into_iter().flatten().collect();
        stages::stack::refuse_protected(&self.cx, &mut log, &states).await?;
        // Inputs a destroy plan still evaluates: the values the stacks were applied with.
        let vpc = VpcOutputs::from_outputs(&vpc_outputs, "vpc").unwrap_or(VpcOutputs {
            vpc_id: "vpc-00000000".into(),
            build_subnet_id: "subnet-00000000".into(),
            public_subnet_ids: vec![],
            private_subnet_ids: vec![],
        });
        let ami = fe_outputs
            .get("ami_id")
            .and_then(|v| v.value.as_str())
            .and_then(|s| AmiId::parse(s).ok())
            .unwrap_or_else(|| AmiId::parse("ami-00000000").expect("valid"));
        let label = self.cx.plan.frontends.label.clone();
        if fe_count > 0 {
            self.stage(Stage::Frontends, &label, async |p: &mut Self| {
                stages::stack::run(&mut p.cx, Stage::Frontends, &bucket, Mode::Destroy, Some((&vpc, &ami))).await
            })
            .await?;
        } else {
            self.skip(Stage::Frontends, "nothing deployed");
        }
        let label = self.cx.plan.vpc.label.clone();
        if vpc_count > 0 {
            self.stage(Stage::Vpc, &label, async |p: &mut Self| {
                stages::stack::run(&mut p.cx, Stage::Vpc, &bucket, Mode::Destroy, None).await
            })
            .await?;
        } else {
            self.skip(Stage::Vpc, "nothing deployed");
        }
        let ran = fe_outputs.get("ami_id").and_then(|v| v.value.as_str()).and_then(|s| AmiId::parse(s).ok());
        self.stage(Stage::Ami, "AMIs", async |p: &mut Self| stages::ami::deregister(&mut p.cx, ran.as_ref()).await).await?;
        self.report.notes.push(format!(
            "The state bucket {bucket} is kept: it holds the state history. Remove it with `aws s3 rb s3://{bucket} --force` once you no longer need it."
        ));
        Ok(())
    }

    async fn render(&mut self) -> Result<(), Error> {
        let last = RunReport::read(&self.cx.work.join("last-run.json")).map_err(Error::stage)?;
        let fleet = &self.cx.ctx.fleet;
        let c = &self.cx.plan.customer;
        let account = fleet.aws.account_id.clone().or_else(|| last.as_ref().and_then(|l| account_from(fleet, c, l)));
        let bucket = match account {
            Some(acct) => crate::render::render_bucket(&fleet.state_bucket, &c.name, &c.region, &acct).map_err(Error::usage)?,
            None => stages::bucket::name(&self.cx, &mut StageLog::discard()).await?,
        };
        stages::stack::sync_working_copy(&self.cx)?;
        stages::stack::write_files(&self.cx, Stage::Vpc, &bucket, None)?;
        let vpc = last
            .as_ref()
            .and_then(|l| l.outputs.get("vpc").cloned())
            .and_then(|v| serde_json::from_value::<BTreeMap<String, Value>>(v).ok())
            .map(|m| m.into_iter().map(|(k, value)| (k, terraform::OutputValue { value, sensitive: false })).collect::<Outputs>())
            .and_then(|o| VpcOutputs::from_outputs(&o, "vpc").ok());
        let ami = last.as_ref().and_then(|l| l.outputs.get("ami_id")?.as_str().and_then(|s| AmiId::parse(s).ok()));
        let mut written = vec![self.cx.work.join("terraform/vpc")];
        match (&vpc, &ami) {
            (Some(v), Some(a)) => {
                stages::stack::write_files(&self.cx, Stage::Frontends, &bucket, Some((v, a)))?;
                written.push(self.cx.work.join("terraform").join(&self.cx.plan.frontends.rel));
            }
            _ => self.cx.ui.note("frontends inputs need the vpc outputs and an AMI: they are rendered after the first deploy"),
        }
        if let Some(v) = &vpc {
            written.push(stages::ami::write_packer_vars(&self.cx, v, &stages::ami::template_hash(&self.cx)?)?);
        } else {
            self.cx.ui.note(&format!("vars/{}.json needs the vpc outputs: it is rendered after the first deploy", self.cx.name()));
        }
        if let Some(files) = self.cx.plan.app_config.clone() {
            written.push(stages::ami::write_app_config(&self.cx, &files)?);
        }
        for w in written {
            self.cx.ui.note(&format!("wrote {}", w.display()));
        }
        Ok(())
    }
}

/// A state that could not be read: destroy stops before touching anything.
fn refuse_destroy(key: &str, e: Error) -> Error {
    match e {
        Error::Stage { message, hint } => Error::Stage {
            message: format!(
                "{message}; destroy stopped before touching anything (the state of `{key}` must be read to know what it holds)"
            ),
            hint,
        },
        other => other,
    }
}

/// The account id in the bucket name of the last run (to render offline).
fn account_from(fleet: &crate::config::Fleet, c: &crate::config::Customer, last: &RunReport) -> Option<String> {
    let b = last.state_bucket.as_deref()?;
    let probe = crate::render::render_bucket(&fleet.state_bucket, &c.name, &c.region, "000000000000").ok()?;
    let (pre, post) = probe.as_str().split_once("000000000000")?;
    b.strip_prefix(pre)?.strip_suffix(post).map(String::from)
}

/// Output values as JSON; sensitive ones masked unless `show` is set.
pub fn outputs_json(o: &Outputs, show: bool) -> Value {
    Value::Object(o.iter().map(|(k, v)| (k.clone(), if v.sensitive && !show { json!("(sensitive)") } else { v.value.clone() })).collect())
}

/// Whether something accepts a TCP connection at the endpoint URL's host and port
/// (within 2 s).
async fn answers(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.split(['/', '?']).next().unwrap_or_default();
    let addr = if hostport.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        hostport.to_owned()
    } else if url.starts_with("https://") {
        format!("{hostport}:443")
    } else {
        format!("{hostport}:80")
    };
    let probe = move || {
        use std::net::ToSocketAddrs;
        addr.to_socket_addrs()
            .map(|mut a| a.any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok()))
            .unwrap_or(false)
    };
    tokio::task::spawn_blocking(probe).await.unwrap_or(false)
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}
