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
    /// deploy only: the key of the image the AMI stage took (for the history record).
    image_key: Option<String>,
    _lock: Option<std::fs::File>,
}

mod deploy;
mod operations;

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
            image_key: None,
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
        // Every deploy that reached its state bucket leaves a history record there,
        // failed and interrupted ones too; one that cannot be written is an error.
        let has_bucket =
            self.report.stages.iter().any(|s| s.name == Stage::Bucket && !matches!(s.status, Status::Failed | Status::Interrupted));
        if op == Operation::Deploy
            && has_bucket
            && let Err(e) = self.record_history(&result).await
        {
            let line = format!("the history record of this deploy could not be written: {e}");
            if result.is_ok() {
                self.report.status = Status::Failed;
                self.report.error = Some(line.clone());
                self.cx.ui.emit(None, EventKind::Failure { message: line.clone(), file: None });
                result = Err(Error::stage(line));
            } else {
                self.cx.ui.note(&line);
                self.report.notes.push(line);
            }
        }
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
