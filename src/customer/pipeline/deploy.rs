//! The deploy: bucket -> vpc -> ami -> frontends -> smoke, each stage recorded in
//! the run journal, and the checks that let a resumed run skip what still exists.

use super::*;

impl Pipeline {
    /// bucket -> vpc -> ami -> frontends -> smoke, each stage recorded in the run
    /// journal. After a run that did not finish (same inputs), or with `--from`, the
    /// stages before the restart point are checked (what they made still exists) and
    /// not run again; one whose result is gone runs again.
    pub(super) async fn deploy(&mut self) -> Result<(), Error> {
        if let Some(w) = self.cx.plan.pin.as_ref().and_then(|p| p.warning.clone()) {
            self.cx.ui.note(&format!("warning: {w}"));
            self.report.notes.push(w);
        }
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
        self.image_key = match &self.cx.plan.pin {
            Some(pin) if pin.ami.as_ref() == Some(&ami) => pin.image_key.clone(),
            _ => stages::ami::image_key_of(&self.cx, &vpc).ok(),
        };
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

    /// Writes this deploy's history record to the state bucket (`customer::release`):
    /// the release it applied (as far as it got) and how it ended.
    pub(super) async fn record_history(&mut self, result: &Result<(), Error>) -> Result<(), Error> {
        use crate::customer::release::{HistoryRecord, Outcome, RECORD_SCHEMA, release_of, write_record};
        let Some(bucket) = self.report.state_bucket.as_deref().and_then(|b| BucketName::parse(b).ok()) else { return Ok(()) };
        let ami = self.report.outputs.get("ami_id").and_then(Value::as_str).map(String::from);
        let release = release_of(&self.cx.ctx, &self.cx.plan, ami.as_deref(), self.image_key.clone()).await?;
        let stage = self.report.failed_stage.map(|s| s.to_string());
        let outcome = match result {
            Ok(()) => Outcome::Ok,
            Err(Error::Interrupted(_) | Error::Stopped(_)) => Outcome::Interrupted { stage },
            Err(e) => Outcome::Failed { stage, message: e.to_string().lines().next().unwrap_or_default().to_owned() },
        };
        let record = &self.cx.plan.record;
        let rec = HistoryRecord {
            schema_version: RECORD_SCHEMA,
            release_id: release.id(),
            release,
            customer: self.cx.name().to_owned(),
            env: self.report.env.clone(),
            operation: record.operation,
            started_at: self.report.started_at.clone(),
            finished_at: now(),
            outcome,
            actor: record.actor.clone().unwrap_or_else(crate::customer::release::actor),
            ci_url: record.ci_url.clone(),
            stamp_version: env!("CARGO_PKG_VERSION").to_owned(),
            rollout_id: record.rollout_id.clone(),
            key: String::new(),
        };
        let dir = self.cx.work.join("logs");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let mut log = StageLog::append(dir.join("history.log"))?;
        let key = write_record(&self.cx.aws, &mut log, &bucket, &rec).await?;
        log.note(&format!(
            "stamp: {} {} of release {}: recorded at s3://{bucket}/{key}",
            rec.operation.as_str(),
            rec.outcome.describe(),
            rec.release_id
        ));
        Ok(())
    }

    /// The inputs that make this deploy's result: equal inputs, equal fingerprint.
    pub(super) fn inputs(&self) -> Result<Inputs, Error> {
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
    pub(super) fn open_journal(&mut self) -> Result<BTreeMap<Stage, StageEntry>, Error> {
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
    pub(super) fn journal_mark(&mut self, stage: Stage, status: StageState, set: impl FnOnce(&mut StageEntry)) -> Result<(), Error> {
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
    pub(super) async fn deploy_stage<T>(
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
    pub(super) fn check_log(&self, stage: Stage, e: &StageEntry) -> Result<StageLog, Error> {
        let path = self.cx.work.join("logs").join(format!("{stage}.log"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|err| Error::io(format!("creating {}", dir.display()), err))?;
        }
        let mut log = StageLog::append(path)?;
        log.note(&format!("stamp: {}: the run of {} did this stage; checking that its result still exists", now(), e.run));
        Ok(log)
    }

    /// A done bucket stage: the bucket still answers.
    pub(super) async fn check_bucket(&mut self, e: &StageEntry) -> Result<Result<Option<BucketName>, String>, Error> {
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
    pub(super) async fn check_stack(&mut self, stage: Stage, bucket: &BucketName) -> Result<Result<Outputs, String>, Error> {
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
    pub(super) async fn check_ami(&mut self, e: &StageEntry) -> Result<Result<AmiId, String>, Error> {
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
}
