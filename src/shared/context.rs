//! What every customer of a run shares: the fleet file, the tools, the stacks and
//! the packer template read once, and the things that must not be touched by two
//! customers at once (terraform's plugin cache, packer plugin installs, a state
//! bucket that several customers share, the AMI bakes).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::config::Fleet;
use crate::error::Error;
use crate::names::Region;
use crate::render::AppTemplates;
use crate::shared::bakes::Bakery;
use crate::tools::aws::Aws;
use crate::tools::find::{self, Tools};
use crate::tools::packer::TemplateInfo;
use crate::tools::process::StageLog;
use crate::tools::s3::AwsApi;
use crate::tools::terraform::StackInfo;

pub struct FleetContext {
    pub fleet: Fleet,
    /// `None` for commands that run no tool (validate).
    pub tools: Option<Tools>,
    stacks: RefCell<BTreeMap<PathBuf, Rc<StackInfo>>>,
    template: RefCell<Option<Rc<TemplateInfo>>>,
    envs: RefCell<BTreeMap<String, Vec<(String, String)>>>,
    /// Concurrent `terraform init` into one plugin cache is not safe (hashicorp/terraform#31964).
    pub init_lock: Mutex<()>,
    /// Stacks (and lock files) initialised once in this run: their providers are in
    /// the plugin cache, so their next inits need not wait for one another.
    pub warm_inits: RefCell<std::collections::BTreeSet<String>>,
    /// `packer plugins install` writes to the user's plugin directory.
    pub plugin_lock: Mutex<bool>,
    /// Locks by name: a state bucket several customers share ("bucket:<name>"), an
    /// AMI several customers run ("ami:<id>").
    locks: RefCell<BTreeMap<String, Rc<Mutex<()>>>>,
    pub bakery: Bakery,
    /// `--plan-jobs`: the terraform init and plan steps running at once, fleet-wide.
    plan_lanes: Arc<Semaphore>,
    plan_jobs: usize,
    /// `validate`: files only; a secret's value need not be readable here.
    offline: bool,
    /// terraform's -lock-timeout (`--lock-timeout`).
    lock_timeout: std::time::Duration,
    app_templates: RefCell<Option<Rc<Result<AppTemplates, String>>>>,
    /// The AWS account id, asked of STS once per run.
    account_id: tokio::sync::OnceCell<String>,
    /// S3 and STS through the SDK: one set of clients (and connections) per run.
    api: RefCell<Option<Rc<AwsApi>>>,
    /// The fleet repository's commit, asked of git once per run (`fleet_commit`).
    fleet_commit: tokio::sync::OnceCell<Option<String>>,
}

impl FleetContext {
    pub fn new(fleet: Fleet, tools: Option<Tools>) -> Self {
        let plan_jobs = default_plan_jobs();
        Self {
            fleet,
            tools,
            stacks: RefCell::default(),
            template: RefCell::default(),
            envs: RefCell::default(),
            init_lock: Mutex::new(()),
            warm_inits: RefCell::default(),
            plugin_lock: Mutex::new(false),
            locks: RefCell::default(),
            bakery: Bakery::default(),
            plan_lanes: Arc::new(Semaphore::new(plan_jobs)),
            plan_jobs,
            offline: false,
            lock_timeout: std::time::Duration::from_secs(60),
            app_templates: RefCell::default(),
            account_id: tokio::sync::OnceCell::new(),
            api: RefCell::default(),
            fleet_commit: tokio::sync::OnceCell::new(),
        }
    }

    /// What the fleet policy sets for every customer's tools: at most `plan_jobs`
    /// terraform init/plan steps at once (at least 1), and terraform's `-lock-timeout`.
    pub fn with_limits(mut self, plan_jobs: usize, lock_timeout: std::time::Duration) -> Self {
        self.plan_jobs = plan_jobs.max(1);
        self.plan_lanes = Arc::new(Semaphore::new(self.plan_jobs));
        self.lock_timeout = lock_timeout;
        self
    }

    /// For `validate`: it checks the files; a `[secrets]` source that holds no value
    /// here (a pull request's job has none) is a note, not a problem. The commands
    /// that use a secret still refuse to run without it.
    pub fn offline(mut self) -> Self {
        self.offline = true;
        self
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// How long terraform waits for a held state lock, as `--lock-timeout` gave it.
    pub fn lock_timeout(&self) -> std::time::Duration {
        self.lock_timeout
    }

    /// The `-lock-timeout=<N>s` argument of terraform plan and apply.
    pub fn lock_timeout_arg(&self) -> String {
        format!("-lock-timeout={}s", self.lock_timeout.as_secs())
    }

    pub fn plan_jobs(&self) -> usize {
        self.plan_jobs
    }

    /// A plan lane at once, or `None` when all are taken (then `plan_lane`).
    pub fn try_plan_lane(&self) -> Option<OwnedSemaphorePermit> {
        match self.plan_lanes.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(TryAcquireError::NoPermits) => None,
            Err(TryAcquireError::Closed) => unreachable!("the plan lanes are never closed"),
        }
    }

    /// Waits for a plan lane (first come, first served).
    pub async fn plan_lane(&self) -> OwnedSemaphorePermit {
        self.plan_lanes.clone().acquire_owned().await.expect("the plan lanes are never closed")
    }

    pub fn tools(&self) -> &Tools {
        self.tools.as_ref().expect("this command finds its tools before running a pipeline")
    }

    /// A stack's declarations, parsed once per run.
    pub fn stack(&self, dir: &Path) -> Result<Rc<StackInfo>, Error> {
        if let Some(i) = self.stacks.borrow().get(dir) {
            return Ok(i.clone());
        }
        let info = Rc::new(StackInfo::read(dir)?);
        self.stacks.borrow_mut().insert(dir.to_path_buf(), info.clone());
        Ok(info)
    }

    /// The packer template's declarations, parsed once per run.
    pub fn template(&self) -> Result<Rc<TemplateInfo>, Error> {
        if let Some(t) = self.template.borrow().as_ref() {
            return Ok(t.clone());
        }
        let t = Rc::new(TemplateInfo::read(&self.fleet.paths.packer_template)?);
        *self.template.borrow_mut() = Some(t.clone());
        Ok(t)
    }

    /// The environment every tool gets, per region.
    pub fn tool_env(&self, region: &Region) -> Result<Vec<(String, String)>, Error> {
        if let Some(e) = self.envs.borrow().get(region.as_str()) {
            return Ok(e.clone());
        }
        let env = find::tool_env(&self.fleet, region, &self.fleet.paths.work)?;
        self.envs.borrow_mut().insert(region.to_string(), env.clone());
        Ok(env)
    }

    /// The app templates, compiled once per run.
    pub fn app_templates(&self) -> Rc<Result<AppTemplates, String>> {
        self.app_templates.borrow_mut().get_or_insert_with(|| Rc::new(AppTemplates::load(&self.fleet.paths.app_templates))).clone()
    }

    /// The account id: `[aws] account_id`, else STS, asked once per run.
    pub async fn account_id(&self, aws: &Aws, log: &mut StageLog) -> Result<String, Error> {
        if let Some(a) = &self.fleet.aws.account_id {
            return Ok(a.clone());
        }
        self.account_id.get_or_try_init(|| aws.account_id("bucket", log)).await.cloned()
    }

    /// The run's SDK clients; `env` is a tools' environment (`tool_env`).
    pub fn aws_api(&self, env: &[(String, String)]) -> Rc<AwsApi> {
        self.api.borrow_mut().get_or_insert_with(|| Rc::new(AwsApi::new(&self.fleet, env))).clone()
    }

    /// The fleet repository's HEAD ("+dirty" with uncommitted changes; `None`
    /// outside git), as the releases of this run record it: asked once per run.
    pub async fn fleet_commit(&self) -> Option<String> {
        self.fleet_commit.get_or_init(|| crate::tools::git::head(&self.fleet.root)).await.clone()
    }

    pub fn lock(&self, name: &str) -> Rc<Mutex<()>> {
        self.locks.borrow_mut().entry(name.to_owned()).or_default().clone()
    }
}

/// `--plan-jobs` by default: the CPUs this process may use. A terraform init or plan
/// computes (and, with a large provider such as hashicorp/aws, holds a few hundred
/// MB) for most of its run; more of them than cores only makes each one slower.
pub fn default_plan_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
