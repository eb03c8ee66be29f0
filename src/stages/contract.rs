//! The contract between the pipeline and its stages, and between one stage and the
//! next: what a stage sees of the customer's run (`StageContext`), what it returns
//! (`StageDone`), what the vpc stack hands on (`VpcOutputs`), the placeholders a plan
//! uses while an upstream stage has not run, and how an apply is approved.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;

use crate::cancel::Stop;
use crate::customer::plan::CustomerPlan;
use crate::customer::report::{Changes, PlanDetail, RunReport};
use crate::error::Error;
use crate::events::{Emitter, Stage, Status};
use crate::names::AmiId;
use crate::shared::context::FleetContext;
use crate::tools::aws::Aws;
use crate::tools::process::StageLog;
use crate::tools::terraform::Outputs;

/// What a stage sees of its customer's run: the shared context, the customer's
/// plan and options, its events, its working directory, its tools' environment
/// and AWS clients. The pipeline owns it, with the report and the journal that
/// the stages never touch.
pub(crate) struct StageContext {
    pub ctx: Rc<FleetContext>,
    pub plan: CustomerPlan,
    pub opts: Options,
    pub ui: Emitter,
    pub stop: Stop,
    pub work: PathBuf,
    pub env: Vec<(String, String)>,
    pub aws: Aws,
    /// The stage logs opened in this run (a second open appends).
    pub(crate) opened_logs: BTreeSet<Stage>,
}

impl StageContext {
    pub(crate) fn name(&self) -> &str {
        self.plan.customer.name.as_str()
    }

    /// The stage's log: the first open in a run starts it afresh (keeping the previous
    /// run's beside it), later opens in the same run append.
    pub(crate) fn log(&mut self, stage: Stage) -> Result<StageLog, Error> {
        let path = self.work.join("logs").join(format!("{stage}.log"));
        let log = if self.opened_logs.insert(stage) { StageLog::create(path) } else { StageLog::append(path) }?;
        // Retries (and their reasons) show as the stage's current step too.
        let ui = self.ui.clone();
        Ok(log.with_steps(Rc::new(move |m: &str| ui.step(stage, m))))
    }

    /// A plan lane (`--plan-jobs`), held through a stack's terraform init and plan.
    /// While every lane is taken the customer's line says so; an interrupt meanwhile
    /// ends the stage before its tool starts.
    pub(crate) async fn plan_lane(&self, stage: Stage) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        if let Some(lane) = self.ctx.try_plan_lane() {
            return Ok(lane);
        }
        self.ui.step(stage, &format!("waiting for a plan slot ({} in use: --plan-jobs)", self.ctx.plan_jobs()));
        let lane = self.ctx.plan_lane().await;
        if self.stop.interrupted() {
            return Err(Error::Interrupted(Some(stage.to_string())));
        }
        Ok(lane)
    }
}

/// A change in a plan: an address and its typed action, read from `terraform show -json`.
pub(crate) type PlannedChange = crate::tools::terraform::ResourceChange;

/// A stack's plan, as shown for approval.
#[derive(Debug, Clone)]
pub(crate) struct ShownPlan {
    pub stage: Stage,
    pub dir: PathBuf,
    pub changes: Changes,
    pub planned: Vec<PlannedChange>,
}

type Answer<'a> = Pin<Box<dyn Future<Output = Result<bool, Error>> + 'a>>;

/// Decides whether a planned stack is applied (the binary's prompt implements it).
pub(crate) trait Approver {
    fn approve<'a>(&'a self, customer: &'a str, plan: &'a ShownPlan) -> Answer<'a>;
}

/// The destroys and replacements an operator saw and approved, per customer and stack.
pub(crate) type ApprovedDestroys = BTreeMap<(String, Stage), BTreeSet<String>>;

/// The destroys and replacements each customer's stacks planned, from their plan
/// reports: what a fleet's plan shown for approval, or a plan file written by
/// `stamp plan --out`, lists.
pub(crate) fn planned_destroys<'a>(reports: impl IntoIterator<Item = &'a RunReport>) -> ApprovedDestroys {
    let mut out = ApprovedDestroys::new();
    for r in reports {
        for st in &r.stages {
            let set: BTreeSet<String> = st.plan.resources.iter().filter(|c| c.destroys()).map(|c| c.address.clone()).collect();
            out.entry((r.customer.clone(), st.name)).or_default().extend(set);
        }
    }
    out
}

/// Which destroys and replacements may be applied, and who reviewed them.
#[derive(Debug)]
pub(crate) struct Reviewed {
    pub destroys: ApprovedDestroys,
    pub by: Reviewer,
}

/// Where the reviewed destroys come from (what a refusal tells the operator to do).
#[derive(Debug, Clone)]
pub(crate) enum Reviewer {
    /// The fleet's plan, shown in the terminal and approved there.
    Prompt,
    /// `deploy --approved-plan FILE`: a plan recorded by `stamp plan --out FILE`.
    PlanFile(PathBuf),
    /// No one: a deploy with `--auto-approve` (or without a terminal), without an
    /// approved plan and without `--allow-destroy` or `[fleet] allow_destroy`.
    Nobody,
}

impl Reviewed {
    /// Nothing may be destroyed or replaced.
    pub(crate) fn nothing() -> Self {
        Self { destroys: ApprovedDestroys::new(), by: Reviewer::Nobody }
    }

    /// The error for a stack whose plan would destroy or replace `unseen`, which
    /// were not reviewed: the stack is not applied.
    pub(crate) fn refusal(&self, customer: &str, stage: Stage, unseen: &[String]) -> Error {
        let what = unseen.join(", ");
        match &self.by {
            Reviewer::Prompt => Error::stage_hint(
                format!("{stage}: not applied: the plan now would {what}, which the approved plan did not show"),
                format!("something changed since the plan was approved; run `stamp plan {customer}` and deploy again"),
            ),
            Reviewer::PlanFile(f) => Error::stage_hint(
                format!(
                    "{stage}: not applied: the plan now would {what}, which the approved plan {} does not list for {customer} {stage}; \
                     nothing was changed in this stack",
                    f.display()
                ),
                format!(
                    "something changed since that plan was made: plan again (`stamp plan {customer} --out FILE`), have the new plan \
                     reviewed and approved, then deploy with `--approved-plan FILE`"
                ),
            ),
            Reviewer::Nobody => Error::stage_hint(
                format!(
                    "{stage}: not applied: the plan would {what}; a deploy without a terminal to ask (or with --auto-approve) destroys \
                     and replaces nothing that was not reviewed; nothing was changed in this stack"
                ),
                format!(
                    "review the plan with `stamp plan {customer} --out plan.json` and deploy exactly that with `--approved-plan \
                     plan.json`; or allow destroys and replacements with --allow-destroy (this run) or `[fleet] allow_destroy = true` \
                     in stamp.toml"
                ),
            ),
        }
    }
}

/// How an apply is approved.
#[derive(Clone)]
pub(crate) enum Approval {
    /// `--auto-approve` with destroys allowed; plan, destroy.
    Auto,
    /// Ask for each stack with changes.
    Ask(Rc<dyn Approver>),
    /// Apply, unless a stack would destroy or replace something that was not
    /// reviewed: the fleet's plan shown once, an approved plan file, or nothing.
    Approved(Rc<Reviewed>),
}

#[derive(Clone)]
pub(crate) struct Options {
    pub approval: Approval,
    pub rebuild_ami: bool,
    /// `--no-smoke`: deploy without checking that the public URL answers.
    pub no_smoke: bool,
    /// `deploy --from STAGE`: restart there, the earlier stages' results taken from
    /// the run journal (`None`: resume where an unfinished run stopped).
    pub from: Option<Stage>,
    /// The customer's turn among the fleet's `--parallel` ones, when its applies may
    /// lend it (`None`: the turn is held through the whole deploy).
    pub turn: Option<Turn>,
}

/// A customer's turn (one of `--parallel`), lent while a terraform apply waits on
/// AWS: another customer may start or go on meanwhile, and the apply's customer
/// waits for a turn again before its next step.
#[derive(Clone)]
pub(crate) struct Turn(pub Rc<dyn Lend>);

/// What the scheduler's turn does (`fleet::memory::Lane`).
pub(crate) trait Lend {
    /// Gives the turn to the next customer; a no-op when already lent.
    fn lend(&self);
    /// Waits for a turn again (before the customers not started yet); at once when
    /// the turn was not lent.
    fn take_back(&self) -> Pin<Box<dyn Future<Output = ()> + '_>>;
}

impl Turn {
    /// Runs `work` (an apply) with the turn lent, and takes it back after, whatever
    /// the work's result.
    pub(crate) async fn lent<T>(turn: Option<&Turn>, work: impl Future<Output = T>) -> T {
        let Some(t) = turn else { return work.await };
        t.0.lend();
        let out = work.await;
        t.0.take_back().await;
        out
    }
}

/// The typed outputs of the vpc stack that the later stages use.
#[derive(Debug, Clone)]
pub(crate) struct VpcOutputs {
    pub vpc_id: String,
    pub build_subnet_id: String,
    pub public_subnet_ids: Vec<String>,
    pub private_subnet_ids: Vec<String>,
}

pub const VPC_OUTPUTS: [&str; 4] = ["vpc_id", "build_subnet_id", "public_subnet_ids", "private_subnet_ids"];

impl VpcOutputs {
    pub(crate) fn from_outputs(o: &Outputs, stack: &str) -> Result<Self, Error> {
        let missing: Vec<&str> = VPC_OUTPUTS.iter().copied().filter(|k| !o.contains_key(*k)).collect();
        if !missing.is_empty() {
            return Err(Error::stage_hint(
                format!("{stack} has no output {}", missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")),
                format!("the vpc stack must output {}", VPC_OUTPUTS.join(", ")),
            ));
        }
        let string = |k: &str, prefix: &str| -> Result<String, Error> {
            o[k].value
                .as_str()
                .filter(|s| s.starts_with(prefix))
                .map(String::from)
                .ok_or_else(|| Error::stage(format!("{stack}: output `{k}` = {} is not a {prefix}... id", o[k].value)))
        };
        let list = |k: &str| -> Result<Vec<String>, Error> {
            o[k].value
                .as_array()
                .and_then(|a| {
                    a.iter().map(|v| v.as_str().filter(|s| s.starts_with("subnet-")).map(String::from)).collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| Error::stage(format!("{stack}: output `{k}` = {} is not a list of subnet ids", o[k].value)))
        };
        Ok(Self {
            vpc_id: string("vpc_id", "vpc-")?,
            build_subnet_id: string("build_subnet_id", "subnet-")?,
            public_subnet_ids: list("public_subnet_ids")?,
            private_subnet_ids: list("private_subnet_ids")?,
        })
    }
}

/// What a stage body returns: its value, how it ended, the detail for the summary.
pub(crate) struct StageDone<T> {
    pub value: T,
    pub status: Status,
    pub detail: String,
    pub changes: Option<Changes>,
    /// Every planned change, placeholders, drift.
    pub plan: PlanDetail,
}

impl<T> StageDone<T> {
    pub(crate) fn new(value: T, status: Status, detail: impl Into<String>) -> Self {
        Self { value, status, detail: detail.into(), changes: None, plan: PlanDetail::default() }
    }
}

/// The placeholder vpc outputs a frontends plan uses while the vpc stack is not
/// applied: ids of the right form (they pass the stacks' validation), all zeros.
pub(crate) fn placeholder_vpc() -> VpcOutputs {
    VpcOutputs {
        vpc_id: "vpc-00000000000000000".into(),
        build_subnet_id: "subnet-00000000000000001".into(),
        public_subnet_ids: vec!["subnet-00000000000000001".into(), "subnet-00000000000000002".into()],
        private_subnet_ids: vec!["subnet-00000000000000011".into(), "subnet-00000000000000012".into()],
    }
}

/// The placeholder AMI a frontends plan uses while no AMI is baked or deployed.
pub(crate) fn placeholder_ami() -> AmiId {
    AmiId::parse("ami-00000000000000000").expect("a valid AMI id")
}
