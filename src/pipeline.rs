//! The per-customer pipeline: state bucket -> vpc stack -> AMI -> frontends stack,
//! each stage's outputs passed to the next. Everything that can be checked without
//! AWS is checked in `prepare` first, so bad input never leaves anything half-made.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};

use crate::signals;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use crate::aws::{Aws, TAG_CUSTOMER, TAG_GIT_ID, TAG_TEMPLATE_HASH};
use crate::config::{Customer, Fleet, StageVars, origin_of};
use crate::error::{ConfigError, Error};
use crate::names::{AmiId, BucketName, CustomerName, EnvName};
use crate::packer::{self, PackerEvent, TemplateInfo};
use crate::progress::{Reporter, Status};
use crate::render::{self, AppContext, Backend};
use crate::terraform::{self, Outputs, StackInfo, TfEvent};
use crate::tool::{StageLog, Stream, Tail, ToolCommand};

/// The tools, found.
#[derive(Debug, Clone)]
pub struct Tools {
    pub terraform: PathBuf,
    pub packer: PathBuf,
    pub aws: PathBuf,
}

/// Finds a tool: an explicit choice (path or name on PATH) or the default names.
pub fn find_tool(names: &[&str], choice: Option<&str>, root: &Path, key: &str) -> Result<PathBuf, Error> {
    match choice {
        Some(c) if c.contains('/') => {
            let p = root.join(c);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::usage_hint(
                    format!("{key}: {} does not exist", p.display()),
                    "fix [tools] in stamp.toml or the STAMP_* variable",
                ))
            }
        }
        Some(c) => which::which(c)
            .map_err(|_| Error::usage_hint(format!("{key}: `{c}` is not on PATH"), "fix [tools] in stamp.toml or the STAMP_* variable")),
        None => names.iter().find_map(|n| which::which(n).ok()).ok_or_else(|| {
            Error::usage_hint(
                format!("{} not found on PATH", names.join(" or ")),
                format!("install it, set {key} in stamp.toml, or run scripts/setup-tools.sh and add .tools/bin to PATH"),
            )
        }),
    }
}

/// Finds the tools `op` runs; one it does not run may be missing (destroying a
/// customer needs no packer, rendering needs neither terraform nor packer).
pub fn find_tools(fleet: &Fleet, op: Operation) -> Result<Tools, Error> {
    let needed = |found: Result<PathBuf, Error>, name: &str, needed: bool| match found {
        Ok(p) => Ok(p),
        Err(_) if !needed => Ok(PathBuf::from(name)),
        Err(e) => Err(e),
    };
    Ok(Tools {
        terraform: needed(
            find_tool(&["terraform", "tofu"], fleet.tools.terraform.as_deref(), &fleet.root, "[tools] terraform (STAMP_TERRAFORM)"),
            "terraform",
            op != Operation::Render,
        )?,
        packer: needed(
            find_tool(&["packer"], fleet.tools.packer.as_deref(), &fleet.root, "[tools] packer (STAMP_PACKER)"),
            "packer",
            op == Operation::Deploy,
        )?,
        aws: find_tool(&["aws"], fleet.tools.aws.as_deref(), &fleet.root, "[tools] aws (STAMP_AWS)")?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Deploy,
    Plan,
    Destroy,
    Render,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub auto_approve: bool,
    pub rebuild_ami: bool,
    pub env: Option<EnvName>,
}

/// What one stage did, for the summary and the run report.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub name: String,
    pub status: Status,
    pub duration_s: f64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub customer: String,
    pub operation: Operation,
    pub env: String,
    pub region: String,
    pub status: Status,
    pub started_at: String,
    pub duration_s: f64,
    pub state_bucket: Option<String>,
    pub stages: Vec<StageReport>,
    pub outputs: BTreeMap<String, Value>,
    pub log_dir: PathBuf,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A stack to run, with everything generated for it.
struct StackJob {
    stage: &'static str,
    label: String,
    /// Relative to `[paths] terraform`, e.g. `vpc` or `frontends/production`.
    rel: String,
    info: StackInfo,
    key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Apply,
    PlanOnly,
    Destroy,
}

struct StackResult {
    changes: (u64, u64, u64),
    applied: bool,
    outputs: Outputs,
}

/// The typed outputs of the vpc stack that the later stages use.
#[derive(Debug, Clone)]
pub struct VpcOutputs {
    pub vpc_id: String,
    pub build_subnet_id: String,
    pub public_subnet_ids: Vec<String>,
    pub private_subnet_ids: Vec<String>,
}

pub const VPC_OUTPUTS: [&str; 4] = ["vpc_id", "build_subnet_id", "public_subnet_ids", "private_subnet_ids"];

impl VpcOutputs {
    pub fn from_outputs(o: &Outputs, stack: &str) -> Result<Self, Error> {
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

/// Standard inputs stamp sets itself; `[*.vars]` may not redefine them.
const VPC_STANDARD: [&str; 3] = ["customer", "region", "env"];
const FRONTENDS_STANDARD: [&str; 8] =
    ["customer", "region", "env", "ami_id", "vpc_id", "public_subnet_ids", "private_subnet_ids", "app_config"];
/// Variables of the brief's vars/travis.json that stamp does not derive itself.
const PACKER_RECORDED: [&str; 3] = ["source_ami", "instance_type", "ssh_username"];
const PACKER_STANDARD: [&str; 8] =
    ["region", "build_vpc", "build_subnet", "git_id", "aws_endpoint", "customer", "app_repo", "template_hash"];

pub struct Engine<'a> {
    fleet: &'a Fleet,
    customer: Customer,
    tools: Tools,
    reporter: &'a dyn Reporter,
    opts: Options,
    work: PathBuf,
    env: Vec<(String, String)>,
    aws: Aws,
    vpc: StackJob,
    frontends: StackJob,
    template: TemplateInfo,
    app_config: Option<Vec<(String, String)>>,
    report: RunReport,
    started: Instant,
    opened_logs: std::cell::RefCell<std::collections::BTreeSet<String>>,
    _lock: Option<std::fs::File>,
}

impl<'a> Engine<'a> {
    /// Loads and checks everything that can be checked without AWS.
    pub fn prepare(fleet: &'a Fleet, name: &CustomerName, opts: Options, reporter: &'a dyn Reporter, op: Operation) -> Result<Self, Error> {
        let mut customer = fleet.load_customer(name)?;
        if let Some(env) = &opts.env {
            if !fleet.envs.contains(env) {
                return Err(Error::usage_hint(
                    format!("--env {env}: not one of the fleet's envs"),
                    format!(
                        "[fleet] envs in {} lists {}",
                        fleet.config_path.display(),
                        fleet.envs.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            customer.env = env.clone();
        }
        let tools = find_tools(fleet, op)?;
        let tf_root = &fleet.paths.terraform;
        let stack = |rel: &str, stage: &'static str, key: String| -> Result<StackJob, Error> {
            let dir = tf_root.join(rel);
            if !dir.is_dir() {
                return Err(ConfigError::new(&fleet.config_path, format!("[paths] terraform: {} does not exist", dir.display()))
                    .hint(format!("[paths] terraform must hold vpc/ and frontends/<env>/ (env `{}`)", customer.env))
                    .into());
            }
            let info = StackInfo::read(&dir)?;
            match info.backend.as_deref() {
                None | Some("s3") => {}
                Some(other) => {
                    return Err(ConfigError::new(&dir, format!("declares a `{other}` backend; stamp keeps state in S3"))
                        .hint("remove the backend block (stamp generates one) or make it `backend \"s3\" {}`")
                        .into());
                }
            }
            Ok(StackJob { stage, label: format!("{rel} stack"), rel: rel.to_owned(), info, key })
        };
        let vpc = stack("vpc", "vpc", format!("{name}/vpc"))?;
        let frontends = stack(&format!("frontends/{}", customer.env), "frontends", format!("{name}/frontends/{}", customer.env))?;
        if frontends.info.declares_remote_state_vpc {
            return Err(ConfigError::new(
                &tf_root.join(&frontends.rel),
                "declares data \"terraform_remote_state\" \"vpc\"; stamp generates it".into(),
            )
            .hint("remove it from the stack: stamp writes stamp_remote_state.tf pointing at the customer's vpc state")
            .into());
        }
        check_vars(&customer.vpc_vars, "vpc.vars", &VPC_STANDARD, &vpc.info.variables, &tf_root.join("vpc"))?;
        check_vars(
            &customer.frontends_vars,
            "frontends.vars",
            &FRONTENDS_STANDARD,
            &frontends.info.variables,
            &tf_root.join(&frontends.rel),
        )?;
        check_required(&vpc, &VPC_STANDARD, &customer.vpc_vars, tf_root)?;
        check_required(&frontends, &FRONTENDS_STANDARD, &customer.frontends_vars, tf_root)?;

        let template = TemplateInfo::read(&fleet.paths.packer_template)?;
        for only in &fleet.packer_only {
            if !template.builders.contains(only) {
                return Err(ConfigError::new(
                    &fleet.config_path,
                    format!("[packer] only: `{only}` is not a builder of {}", fleet.paths.packer_template.display()),
                )
                .hint(format!("its builders are: {}", template.builders.join(", ")))
                .into());
            }
        }
        for k in customer.packer_vars.values.keys() {
            if PACKER_STANDARD.contains(&k.as_str()) {
                return Err(ConfigError::new(
                    Path::new(&origin_of(&customer.packer_vars, k)),
                    format!("[packer.vars] `{k}` is set by stamp"),
                )
                .into());
            }
            if !template.variables.contains(k) {
                return Err(ConfigError::new(
                    Path::new(&origin_of(&customer.packer_vars, k)),
                    format!("[packer.vars] `{k}` is not a variable of {}", fleet.paths.packer_template.display()),
                )
                .hint(format!("its variables are: {}", template.variables.iter().cloned().collect::<Vec<_>>().join(", ")))
                .into());
            }
        }

        let app_config = if fleet.paths.app_templates.is_dir() {
            let ctx = app_context(&customer);
            Some(
                render::app_config(&fleet.paths.app_templates, &ctx)
                    .map_err(|m| Error::from(ConfigError::new(&fleet.paths.app_templates, m)))?,
            )
        } else if frontends.info.variables.contains("app_config") {
            return Err(ConfigError::new(
                &fleet.config_path,
                format!(
                    "[paths] app_templates: {} does not exist, and {} takes `app_config`",
                    fleet.paths.app_templates.display(),
                    frontends.rel
                ),
            )
            .into());
        } else {
            None
        };

        let work = fleet.paths.work.join(name.as_str());
        std::fs::create_dir_all(&work).map_err(|e| Error::io(format!("creating {}", work.display()), e))?;
        let lock = if op == Operation::Render { None } else { Some(lock_work_dir(&work)?) };
        let env = tool_env(fleet, &customer.region, &fleet.paths.work)?;
        let aws = Aws::new(fleet, tools.aws.clone(), env.clone());
        let report = RunReport {
            customer: name.to_string(),
            operation: op,
            env: customer.env.to_string(),
            region: customer.region.to_string(),
            status: Status::Ok,
            started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            duration_s: 0.0,
            state_bucket: None,
            stages: Vec::new(),
            outputs: BTreeMap::new(),
            log_dir: work.join("logs"),
            notes: Vec::new(),
            error: None,
        };
        Ok(Self {
            fleet,
            customer,
            tools,
            reporter,
            opts,
            work,
            env,
            aws,
            vpc,
            frontends,
            template,
            app_config,
            report,
            started: Instant::now(),
            opened_logs: Default::default(),
            _lock: lock,
        })
    }

    /// The stage's log: the first open in a run starts it afresh (keeping the previous
    /// run's beside it), later opens in the same run append.
    fn log(&self, stage: &str) -> Result<StageLog, Error> {
        let path = self.work.join("logs").join(format!("{stage}.log"));
        if self.opened_logs.borrow_mut().insert(stage.to_owned()) { StageLog::create(path) } else { StageLog::append(path) }
    }

    fn record(&mut self, stage: &str, status: Status, detail: &str, started: Instant) {
        let elapsed = started.elapsed();
        self.reporter.stage_finished(stage, status, detail, elapsed);
        self.report.stages.push(StageReport { name: stage.to_owned(), status, duration_s: round(elapsed), detail: detail.to_owned() });
    }

    /// Runs a stage body with its progress line, status and duration recorded.
    async fn stage<T>(
        &mut self,
        stage: &str,
        label: &str,
        body: impl AsyncFnOnce(&mut Self) -> Result<(T, Status, String), Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        self.reporter.stage_started(stage, label);
        match body(self).await {
            Ok((v, status, detail)) => {
                self.record(stage, status, &detail, started);
                Ok(v)
            }
            Err(e) => {
                let status = if matches!(e, Error::Interrupted(_)) { Status::Interrupted } else { Status::Failed };
                let detail = match &e {
                    Error::Tool(f) => f.status.clone(),
                    _ => String::new(),
                };
                self.record(stage, status, &detail, started);
                Err(e)
            }
        }
    }

    pub async fn run(mut self, op: Operation) -> (RunReport, Result<(), Error>) {
        let result = match op {
            Operation::Deploy => self.deploy().await,
            Operation::Plan => self.plan().await,
            Operation::Destroy => self.destroy().await,
            Operation::Render => self.render().await,
        };
        self.report.duration_s = round(self.started.elapsed());
        if let Err(e) = &result {
            self.report.status = if matches!(e, Error::Interrupted(_)) { Status::Interrupted } else { Status::Failed };
            self.report.error = Some(e.to_string());
        }
        if op != Operation::Render {
            self.save_report();
        }
        (self.report, result)
    }

    fn save_report(&self) {
        let runs = self.work.join("runs");
        let text = serde_json::to_string_pretty(&self.report).unwrap_or_default();
        let stamp = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let op = serde_json::to_value(self.report.operation).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        if std::fs::create_dir_all(&runs).is_ok() {
            let _ = std::fs::write(runs.join(format!("{stamp}-{op}.json")), &text);
        }
        let _ = std::fs::write(self.work.join("last-run.json"), &text);
    }

    // ------------------------------------------------------------ operations

    /// Without a terminal nobody can answer the prompt: refuse before anything runs.
    fn approval_possible(&self, verb: &str) -> Result<(), Error> {
        if self.opts.auto_approve || interactive() {
            return Ok(());
        }
        Err(Error::usage_hint(
            format!("refusing to {verb} without a terminal to confirm"),
            "pass --auto-approve (CI) or run it in a terminal",
        ))
    }

    async fn deploy(&mut self) -> Result<(), Error> {
        self.approval_possible("apply")?;
        let bucket = self.stage("bucket", "state bucket", async |e: &mut Self| e.bucket_stage(true).await).await?;
        let vpc_out = self
            .stage("vpc", &self.vpc.label.clone(), async |e: &mut Self| e.stack_stage(Which::Vpc, &bucket, Mode::Apply, None).await)
            .await?;
        let vpc = VpcOutputs::from_outputs(&vpc_out, &format!("{} (vpc)", self.fleet.paths.terraform.display()))?;
        self.report.outputs.insert("vpc".into(), outputs_json(&vpc_out, false));
        let ami = self.stage("ami", "AMI (packer)", async |e: &mut Self| e.ami_stage(&vpc).await).await?;
        self.report.outputs.insert("ami_id".into(), json!(ami.as_str()));
        let label = self.frontends.label.clone();
        let fe = self
            .stage("frontends", &label, async |e: &mut Self| {
                e.stack_stage(Which::Frontends, &bucket, Mode::Apply, Some((&vpc, &ami))).await
            })
            .await?;
        self.report.outputs.insert("frontends".into(), outputs_json(&fe, false));
        Ok(())
    }

    async fn plan(&mut self) -> Result<(), Error> {
        let bucket = self.stage("bucket", "state bucket", async |e: &mut Self| e.bucket_stage(false).await).await?;
        let vpc_out = self
            .stage("vpc", &self.vpc.label.clone(), async |e: &mut Self| e.stack_stage(Which::Vpc, &bucket, Mode::PlanOnly, None).await)
            .await?;
        let Ok(vpc) = VpcOutputs::from_outputs(&vpc_out, "vpc") else {
            self.skip("ami", "the vpc stack has no outputs yet: deploy builds the AMI after it");
            self.skip("frontends", "needs the vpc outputs and an AMI: run `stamp deploy` first");
            return Ok(());
        };
        self.report.outputs.insert("vpc".into(), outputs_json(&vpc_out, false));
        // Plan never bakes: it plans the frontends with the AMI they already run.
        let mut log = self.log("ami")?;
        let key = self.frontends.key.clone();
        let deployed = self.aws.read_object("ami", &mut log, &bucket, &key).await?;
        let ami = deployed
            .as_deref()
            .and_then(|s| terraform::outputs_from_state(s).ok())
            .and_then(|o| o.get("ami_id").and_then(|v| v.value.as_str()).and_then(|s| AmiId::parse(s).ok()));
        let Some(ami) = ami else {
            self.skip("ami", "no AMI deployed yet: deploy will bake one");
            self.skip("frontends", "not deployed yet: deploy will create it");
            return Ok(());
        };
        self.skip("ami", &format!("planning with the deployed {ami}; nothing is built"));
        self.report.outputs.insert("ami_id".into(), json!(ami.as_str()));
        let label = self.frontends.label.clone();
        self.stage("frontends", &label, async |e: &mut Self| {
            e.stack_stage(Which::Frontends, &bucket, Mode::PlanOnly, Some((&vpc, &ami))).await
        })
        .await?;
        Ok(())
    }

    async fn destroy(&mut self) -> Result<(), Error> {
        self.approval_possible("destroy")?;
        let bucket = self.stage("bucket", "state bucket", async |e: &mut Self| e.bucket_stage(false).await).await?;
        let mut log = self.log("bucket")?;
        let vpc_state = self.aws.read_object("bucket", &mut log, &bucket, &self.vpc.key.clone()).await?;
        let fe_state = self.aws.read_object("bucket", &mut log, &bucket, &self.frontends.key.clone()).await?;
        let vpc_outputs = vpc_state.as_deref().and_then(|s| terraform::outputs_from_state(s).ok()).unwrap_or_default();
        let fe_outputs = fe_state.as_deref().and_then(|s| terraform::outputs_from_state(s).ok()).unwrap_or_default();
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
        if let Some(state) = fe_state.as_deref() {
            self.refuse_protected(&mut log, state).await?;
        }
        let label = self.frontends.label.clone();
        if fe_state.as_deref().map(terraform::state_resource_count).transpose().map_err(Error::stage)?.unwrap_or(0) > 0 {
            self.stage("frontends", &label, async |e: &mut Self| {
                e.stack_stage(Which::Frontends, &bucket, Mode::Destroy, Some((&vpc, &ami))).await
            })
            .await?;
        } else {
            self.skip("frontends", "nothing deployed");
        }
        let label = self.vpc.label.clone();
        if vpc_state.as_deref().map(terraform::state_resource_count).transpose().map_err(Error::stage)?.unwrap_or(0) > 0 {
            self.stage("vpc", &label, async |e: &mut Self| e.stack_stage(Which::Vpc, &bucket, Mode::Destroy, None).await).await?;
        } else {
            self.skip("vpc", "nothing deployed");
        }
        self.stage("ami", "AMIs", async |e: &mut Self| {
            let mut log = e.log("ami")?;
            let name = e.customer.name.to_string();
            let images = e.aws.find_images("ami", &mut log, &name, None).await?;
            for (id, _, snaps) in &images {
                e.reporter.stage_message("ami", &format!("deregistering {id}"));
                e.aws.delete_image("ami", &mut log, id, snaps).await?;
            }
            let n = images.len();
            Ok(((), if n == 0 { Status::Unchanged } else { Status::Ok }, format!("{n} deregistered")))
        })
        .await?;
        self.report.notes.push(format!(
            "The state bucket {bucket} is kept: it holds the state history. Remove it with `aws s3 rb s3://{bucket} --force` once you no longer need it."
        ));
        Ok(())
    }

    /// A destroy that would stop at a protected database or load balancer (after
    /// the app servers are gone) is refused before anything is destroyed.
    async fn refuse_protected(&mut self, log: &mut StageLog, state: &str) -> Result<(), Error> {
        let mut on = Vec::new();
        for p in terraform::protected_resources(state).map_err(Error::stage)? {
            if self.aws.still_protected("bucket", log, &p).await? {
                on.push(p);
            }
        }
        if on.is_empty() {
            return Ok(());
        }
        let endpoint = self.fleet.aws.endpoint.as_ref().map(|e| format!(" --endpoint-url {e}")).unwrap_or_default();
        let region = &self.customer.region;
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
                self.customer.name,
                what.join(" and "),
                self.customer.env
            ),
            format!(
                "this is what protects a production customer from a mistaken destroy. To destroy it for good, turn it off, \
                 then run `stamp destroy {}` again (RDS then keeps a final snapshot):\n    {}",
                self.customer.name,
                commands.join("\n    ")
            ),
        ))
    }

    async fn render(&mut self) -> Result<(), Error> {
        let last: Option<Value> = std::fs::read_to_string(self.work.join("last-run.json")).ok().and_then(|s| serde_json::from_str(&s).ok());
        let bucket = match self.fleet.aws.account_id.clone().or_else(|| self.customer_account_from(&last)) {
            Some(acct) => {
                render::render_bucket(&self.fleet.state_bucket, &self.customer.name, &self.customer.region, &acct).map_err(Error::usage)?
            }
            None => self.bucket_name(&mut StageLog::discard()).await?,
        };
        self.sync_working_copy()?;
        self.write_stack_files(Which::Vpc, &bucket, None)?;
        let vpc = last
            .as_ref()
            .and_then(|l| l.get("outputs")?.get("vpc").cloned())
            .and_then(|v| serde_json::from_value::<BTreeMap<String, Value>>(v).ok())
            .map(|m| m.into_iter().map(|(k, value)| (k, terraform::OutputValue { value, sensitive: false })).collect::<Outputs>())
            .and_then(|o| VpcOutputs::from_outputs(&o, "vpc").ok());
        let ami = last.as_ref().and_then(|l| l.get("outputs")?.get("ami_id")?.as_str().and_then(|s| AmiId::parse(s).ok()));
        let mut written = vec![self.work.join("terraform/vpc")];
        match (&vpc, &ami) {
            (Some(v), Some(a)) => {
                self.write_stack_files(Which::Frontends, &bucket, Some((v, a)))?;
                written.push(self.work.join("terraform").join(&self.frontends.rel));
            }
            _ => self.reporter.info("frontends inputs need the vpc outputs and an AMI: they are rendered after the first deploy"),
        }
        if let Some(v) = &vpc {
            written.push(self.write_packer_vars(v, &self.template_hash()?)?);
        } else {
            self.reporter.info(&format!("vars/{}.json needs the vpc outputs: it is rendered after the first deploy", self.customer.name));
        }
        if let Some(files) = &self.app_config {
            written.push(self.write_app_config(files)?);
        }
        for w in written {
            self.reporter.info(&format!("wrote {}", w.display()));
        }
        Ok(())
    }

    fn customer_account_from(&self, last: &Option<Value>) -> Option<String> {
        // The bucket of the last run already carries the account id; reuse it offline.
        let b = last.as_ref()?.get("state_bucket")?.as_str()?;
        let probe = render::render_bucket(&self.fleet.state_bucket, &self.customer.name, &self.customer.region, "000000000000").ok()?;
        let (pre, post) = probe.as_str().split_once("000000000000")?;
        b.strip_prefix(pre)?.strip_suffix(post).map(String::from)
    }

    fn skip(&mut self, stage: &str, why: &str) {
        let started = Instant::now();
        self.reporter.stage_started(stage, stage);
        self.record(stage, Status::Skipped, why, started);
    }

    // ------------------------------------------------------------ stages

    async fn bucket_name(&self, log: &mut StageLog) -> Result<BucketName, Error> {
        state_bucket(self.fleet, &self.customer, &self.aws, log).await
    }

    async fn bucket_stage(&mut self, create: bool) -> Result<(BucketName, Status, String), Error> {
        let mut log = self.log("bucket")?;
        let bucket = self.bucket_name(&mut log).await?;
        self.report.state_bucket = Some(bucket.to_string());
        if create {
            let reporter = self.reporter;
            let created = self
                .aws
                .ensure_state_bucket("bucket", &mut log, &bucket, &self.customer.region, &mut |m| reporter.stage_message("bucket", m))
                .await?;
            let detail = format!("{} {bucket}", if created { "created" } else { "reused" });
            Ok((bucket, Status::Ok, detail))
        } else {
            match self.aws.bucket_status("bucket", &mut log, &bucket).await? {
                0 => Ok((bucket.clone(), Status::Ok, format!("found {bucket}"))),
                _ => Err(Error::stage_hint(
                    format!("state bucket {bucket} does not exist: {} was never deployed", self.customer.name),
                    format!("run `stamp deploy {}` first", self.customer.name),
                )),
            }
        }
    }

    fn sync_working_copy(&self) -> Result<(), Error> {
        let dest = self.work.join("terraform");
        terraform::sync_tree(&self.fleet.paths.terraform, &dest)
            .map_err(|e| Error::io(format!("copying {} to {}", self.fleet.paths.terraform.display(), dest.display()), e))
    }

    fn backend(&self, bucket: &BucketName, key: &str) -> Backend {
        Backend {
            bucket: bucket.to_string(),
            key: key.to_owned(),
            region: self.customer.region.to_string(),
            endpoint: self.fleet.aws.endpoint.clone(),
            profile: self.fleet.aws.profile.clone(),
        }
    }

    /// The inputs of a stack: the standard ones it declares, then `[*.vars]`.
    fn stack_vars(&self, which: Which, upstream: Option<(&VpcOutputs, &AmiId)>) -> BTreeMap<String, Value> {
        let c = &self.customer;
        let (job, extra) = match which {
            Which::Vpc => (&self.vpc, &c.vpc_vars),
            Which::Frontends => (&self.frontends, &c.frontends_vars),
        };
        let mut standard: Vec<(&str, Value)> =
            vec![("customer", json!(c.name.as_str())), ("region", json!(c.region.as_str())), ("env", json!(c.env.as_str()))];
        if let (Which::Frontends, Some((vpc, ami))) = (which, upstream) {
            standard.push(("ami_id", json!(ami.as_str())));
            standard.push(("vpc_id", json!(vpc.vpc_id)));
            standard.push(("public_subnet_ids", json!(vpc.public_subnet_ids)));
            standard.push(("private_subnet_ids", json!(vpc.private_subnet_ids)));
            if let Some(files) = &self.app_config {
                standard.push(("app_config", Value::Object(files.iter().map(|(k, v)| (k.clone(), json!(v))).collect())));
            }
        }
        let mut vars: BTreeMap<String, Value> =
            standard.into_iter().filter(|(k, _)| job.info.variables.contains(*k)).map(|(k, v)| (k.to_owned(), v)).collect();
        vars.extend(extra.values.clone());
        vars
    }

    fn write_stack_files(&self, which: Which, bucket: &BucketName, upstream: Option<(&VpcOutputs, &AmiId)>) -> Result<PathBuf, Error> {
        let job = self.job(which);
        let dir = self.work.join("terraform").join(&job.rel);
        let backend = self.backend(bucket, &job.key);
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).map_err(|e| Error::io(format!("writing {}", dir.join(name).display()), e))
        };
        if job.info.backend.is_some() {
            write(terraform::BACKEND_PARTIAL_FILE, &render::backend_partial(&backend))?;
            let _ = std::fs::remove_file(dir.join(terraform::BACKEND_FILE));
        } else {
            write(terraform::BACKEND_FILE, &render::backend_block(&backend))?;
            let _ = std::fs::remove_file(dir.join(terraform::BACKEND_PARTIAL_FILE));
        }
        if which == Which::Frontends {
            write(terraform::REMOTE_STATE_FILE, &render::remote_state_block(&self.backend(bucket, &self.vpc.key)))?;
        }
        write(terraform::TFVARS_FILE, &render::vars_json(&self.stack_vars(which, upstream)))?;
        Ok(dir)
    }

    fn job(&self, which: Which) -> &StackJob {
        match which {
            Which::Vpc => &self.vpc,
            Which::Frontends => &self.frontends,
        }
    }

    fn terraform(&self, dir: &Path) -> ToolCommand {
        ToolCommand::new(&self.tools.terraform, dir)
            .envs(&self.env)
            .show_env(&["AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_REGION"])
            .stop_with(libc::SIGINT)
    }

    async fn stack_stage(
        &mut self,
        which: Which,
        bucket: &BucketName,
        mode: Mode,
        upstream: Option<(&VpcOutputs, &AmiId)>,
    ) -> Result<(Outputs, Status, String), Error> {
        let r = self.run_stack(which, bucket, mode, upstream).await?;
        let (add, change, remove) = r.changes;
        let status = if add + change + remove == 0 { Status::Unchanged } else { Status::Ok };
        let detail = match (mode, r.applied) {
            (Mode::PlanOnly, _) => terraform::describe_changes(add, change, remove),
            (_, true) => format!("{add} added, {change} changed, {remove} destroyed"),
            (_, false) => String::new(),
        };
        Ok((r.outputs, status, detail))
    }

    async fn run_stack(
        &mut self,
        which: Which,
        bucket: &BucketName,
        mode: Mode,
        upstream: Option<(&VpcOutputs, &AmiId)>,
    ) -> Result<StackResult, Error> {
        let stage = self.job(which).stage;
        let mut log = self.log(stage)?;
        self.sync_working_copy()?;
        let dir = self.write_stack_files(which, bucket, upstream)?;
        let reporter = self.reporter;
        let partial = self.job(which).info.backend.is_some();

        reporter.stage_message(stage, "terraform init");
        let mut init = self.terraform(&dir).args(["init", "-input=false", "-no-color", "-reconfigure"]);
        if partial {
            init = init.arg(format!("-backend-config={}", terraform::BACKEND_PARTIAL_FILE));
        }
        init.run(stage, &mut log, &[0], false, &mut |_, l| if l.trim().is_empty() { Tail::Skip } else { Tail::Raw })
            .await
            .map_err(provider_install_hint)?;

        reporter.stage_message(stage, if mode == Mode::Destroy { "terraform plan -destroy" } else { "terraform plan" });
        let mut plan = self.terraform(&dir).args(["plan", "-input=false", "-json", "-detailed-exitcode", "-lock-timeout=60s"]);
        if mode == Mode::Destroy {
            plan = plan.arg("-destroy");
        }
        plan = plan.arg(format!("-out={}", terraform::PLAN_FILE)).arg(format!("-var-file={}", terraform::TFVARS_FILE));
        let mut changes = (0, 0, 0);
        let mut planned: Vec<String> = Vec::new();
        let out = plan
            .run(stage, &mut log, &[0, 2], false, &mut |s, l| {
                json_line(s, l, &mut |ev| match ev {
                    TfEvent::ChangeSummary { add, change, remove, .. } => changes = (*add, *change, *remove),
                    TfEvent::PlannedChange { address, action } => planned.push(format!("{action:>8} {address}")),
                    _ => {}
                })
            })
            .await?;
        let has_changes = out.code == 2;
        let total = changes.0 + changes.1 + changes.2;
        reporter.stage_message(stage, &terraform::describe_changes(changes.0, changes.1, changes.2));

        let mut applied = false;
        if has_changes && mode != Mode::PlanOnly {
            if !self.opts.auto_approve {
                self.confirm(stage, &dir, &planned, changes).await?;
            }
            reporter.stage_message(stage, if mode == Mode::Destroy { "terraform destroy" } else { "terraform apply" });
            reporter.stage_progress(stage, 0, total);
            let mut done = 0u64;
            self.terraform(&dir)
                .args(["apply", "-input=false", "-json", "-lock-timeout=60s", terraform::PLAN_FILE])
                .run(stage, &mut log, &[0], false, &mut |s, l| {
                    json_line(s, l, &mut |ev| match ev {
                        TfEvent::ApplyComplete { .. } => {
                            done += 1;
                            reporter.stage_progress(stage, done.min(total), total);
                        }
                        TfEvent::ApplyStart { address } => reporter.stage_message(stage, &format!("applying {address}")),
                        TfEvent::ApplyProgress { address, action, elapsed_secs } => reporter.stage_message(
                            stage,
                            &format!(
                                "{} {address} for {}",
                                progress_verb(action),
                                crate::progress::format_elapsed(Duration::from_secs(*elapsed_secs))
                            ),
                        ),
                        _ => {}
                    })
                })
                .await?;
            applied = true;
        }
        let outputs = if mode == Mode::Destroy {
            Outputs::new()
        } else {
            let out =
                self.terraform(&dir).args(["output", "-json", "-no-color"]).run(stage, &mut log, &[0], true, &mut |_, _| Tail::Raw).await?;
            terraform::parse_outputs(&out.stdout).map_err(|m| Error::stage(format!("terraform output -json in {}: {m}", dir.display())))?
        };
        Ok(StackResult { changes, applied, outputs })
    }

    /// Asks before an apply. The answer is read on a thread of its own so that a
    /// Ctrl-C at the prompt interrupts stamp at once instead of waiting for Enter.
    async fn confirm(&self, stage: &str, dir: &Path, planned: &[String], (add, change, remove): (u64, u64, u64)) -> Result<(), Error> {
        let customer = self.customer.name.clone();
        self.reporter.pause();
        eprintln!("\n{customer} {stage}: {}", terraform::describe_changes(add, change, remove));
        for p in planned {
            eprintln!("  {p}");
        }
        eprintln!("  (full plan: cd {} && terraform show {})", dir.display(), terraform::PLAN_FILE);
        eprint!("Apply these changes? Only 'yes' will be accepted: ");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            let _ = tx.send(answer);
        });
        let interrupted = async {
            match signals::subscribe() {
                Some(mut r) => {
                    let _ = r.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        let answer = tokio::select! {
            a = rx => a.unwrap_or_default(),
            _ = interrupted => {
                eprintln!();
                self.reporter.resume();
                return Err(Error::Interrupted(Some(stage.to_owned())));
            }
        };
        self.reporter.resume();
        if answer.trim() == "yes" {
            Ok(())
        } else {
            Err(Error::stage(format!("{stage}: apply cancelled; nothing was changed in this stage")))
        }
    }

    fn packer_vars(&self, vpc: &VpcOutputs, hash: &str) -> BTreeMap<String, Value> {
        let c = &self.customer;
        let standard: [(&str, Value); 8] = [
            ("region", json!(c.region.as_str())),
            ("build_vpc", json!(vpc.vpc_id)),
            ("build_subnet", json!(vpc.build_subnet_id)),
            ("git_id", json!(c.git_id)),
            ("aws_endpoint", json!(self.fleet.aws.endpoint.clone().unwrap_or_default())),
            ("customer", json!(c.name.as_str())),
            ("app_repo", json!(c.app_repo)),
            ("template_hash", json!(hash)),
        ];
        let mut vars: BTreeMap<String, Value> =
            standard.into_iter().filter(|(k, _)| self.template.variables.contains(*k)).map(|(k, v)| (k.to_owned(), v)).collect();
        // The rest of the brief's vars/travis.json, at the template's defaults, so the
        // file records every input of the build; [packer.vars] overrides them.
        for k in PACKER_RECORDED {
            if let Some(default) = self.template.defaults.get(k) {
                vars.insert(k.to_owned(), default.clone());
            }
        }
        vars.extend(c.packer_vars.values.clone());
        vars
    }

    fn template_hash(&self) -> Result<String, Error> {
        packer::template_hash(&self.fleet.paths.packer_template).map_err(|e| Error::io("hashing the packer template", e))
    }

    fn write_packer_vars(&self, vpc: &VpcOutputs, hash: &str) -> Result<PathBuf, Error> {
        let dir = &self.fleet.paths.vars;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(format!("{}.json", self.customer.name));
        std::fs::write(&path, render::vars_json(&self.packer_vars(vpc, hash)))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(path)
    }

    fn write_app_config(&self, files: &[(String, String)]) -> Result<PathBuf, Error> {
        let root = self.work.join("app");
        for (rel, text) in files {
            let p = root.join(rel);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
            }
            std::fs::write(&p, text).map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        }
        Ok(root)
    }

    async fn ami_stage(&mut self, vpc: &VpcOutputs) -> Result<(AmiId, Status, String), Error> {
        let mut log = self.log("ami")?;
        let template = self.fleet.paths.packer_template.clone();
        let hash = self.template_hash()?;
        let vars_file = self.write_packer_vars(vpc, &hash)?;
        if let Some(files) = &self.app_config {
            self.write_app_config(files)?;
        }
        let name = self.customer.name.to_string();
        let git_id = self.customer.git_id.clone();
        if !self.opts.rebuild_ami {
            self.reporter.stage_message("ami", "looking for an AMI of this revision and template");
            if let Some((id, _, _)) = self.aws.find_images("ami", &mut log, &name, Some((&git_id, &hash))).await?.into_iter().next() {
                return Ok((id.clone(), Status::Unchanged, format!("reused {id} (git_id {git_id}, template {hash})")));
            }
        }
        self.ensure_amazon_plugin(&mut log).await?;
        let dir = template.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut cmd = ToolCommand::new(&self.tools.packer, &dir)
            .envs(&self.env)
            .envs(&[("PACKER_NO_COLOR".into(), "1".into())])
            .show_env(&["AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_REGION"])
            .stop_with(libc::SIGTERM)
            .args(["build", "-machine-readable"])
            .arg(format!("-var-file={}", vars_file.display()));
        if !self.fleet.packer_only.is_empty() {
            cmd = cmd.arg(format!("-only={}", self.fleet.packer_only.join(",")));
        }
        cmd = cmd.arg(template.file_name().unwrap_or_default());
        let reporter = self.reporter;
        let mut artifacts: Vec<String> = Vec::new();
        cmd.run("ami", &mut log, &[0], false, &mut |_, l| match packer::parse_machine_line(l) {
            Some(PackerEvent::Ui { kind, text }) => {
                if let Some(step) = packer::step_text(&text) {
                    if kind == "say" || kind == "message" {
                        reporter.stage_message("ami", &step);
                    }
                    Tail::Text(step)
                } else {
                    Tail::Skip
                }
            }
            Some(PackerEvent::ArtifactId { id, .. }) => {
                artifacts.push(id);
                Tail::Skip
            }
            Some(PackerEvent::Other) => Tail::Skip,
            None => Tail::Raw,
        })
        .await?;
        let region = self.customer.region.to_string();
        let ami = artifacts.iter().find_map(|a| packer::ami_for_region(a, &region)).ok_or_else(|| {
            Error::stage_hint(
                format!(
                    "packer finished but reported no AMI in {region} (artifacts: {})",
                    if artifacts.is_empty() { "none".into() } else { artifacts.join("; ") }
                ),
                format!("check the builders' region and [packer] only; full log: {}", log.path.display()),
            )
        })?;
        // stamp tags the image itself, so reuse does not depend on the template's tags.
        self.reporter.stage_message("ami", &format!("tagging {ami}"));
        self.aws
            .command([
                "ec2".to_string(),
                "create-tags".into(),
                "--resources".into(),
                ami.to_string(),
                "--tags".into(),
                format!("Key={TAG_CUSTOMER},Value={name}"),
                format!("Key={TAG_GIT_ID},Value={git_id}"),
                format!("Key={TAG_TEMPLATE_HASH},Value={hash}"),
            ])
            .run("ami", &mut log, &[0], false, &mut |_, _| Tail::Raw)
            .await?;
        Ok((ami.clone(), Status::Ok, format!("built {ami}")))
    }

    /// Packer >= 1.10 no longer bundles the amazon plugin: install it when missing.
    async fn ensure_amazon_plugin(&self, log: &mut StageLog) -> Result<(), Error> {
        let dir = self.fleet.root.clone();
        let v = ToolCommand::new(&self.tools.packer, &dir)
            .envs(&self.env)
            .arg("version")
            .run("ami", log, &[0], true, &mut |_, _| Tail::Raw)
            .await?;
        let Some((major, minor)) = packer::parse_version(&v.stdout) else { return Ok(()) };
        if (major, minor) < (1, 10) {
            return Ok(());
        }
        let installed = ToolCommand::new(&self.tools.packer, &dir)
            .envs(&self.env)
            .args(["plugins", "installed"])
            .run("ami", log, &[0], true, &mut |_, _| Tail::Raw)
            .await?;
        if installed.stdout.contains("github.com/hashicorp/amazon") {
            return Ok(());
        }
        self.reporter.stage_message("ami", "installing the packer amazon plugin");
        ToolCommand::new(&self.tools.packer, &dir)
            .envs(&self.env)
            .args(["plugins", "install", "github.com/hashicorp/amazon"])
            .run("ami", log, &[0], false, &mut |_, _| Tail::Raw)
            .await?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Vpc,
    Frontends,
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

fn check_vars(
    vars: &StageVars,
    section: &str,
    standard: &[&str],
    declared: &std::collections::BTreeSet<String>,
    stack: &Path,
) -> Result<(), Error> {
    for k in vars.values.keys() {
        let at = origin_of(vars, k);
        if standard.contains(&k.as_str()) {
            return Err(ConfigError::new(Path::new(&at), format!("[{section}] `{k}` is set by stamp"))
                .hint(match k.as_str() {
                    "region" | "env" => format!("set `{k}` at the top of the customer file instead"),
                    _ => "remove it: stamp passes it from the customer and the earlier stages".into(),
                })
                .into());
        }
        if !declared.contains(k) {
            return Err(ConfigError::new(Path::new(&at), format!("[{section}] `{k}` is not a variable of {}", stack.display()))
                .hint(format!("its variables are: {}", declared.iter().cloned().collect::<Vec<_>>().join(", ")))
                .into());
        }
    }
    Ok(())
}

fn check_required(job: &StackJob, standard: &[&str], vars: &StageVars, tf_root: &Path) -> Result<(), Error> {
    for r in &job.info.required {
        if !standard.contains(&r.as_str()) && !vars.values.contains_key(r) {
            let section = if job.stage == "vpc" { "vpc.vars" } else { "frontends.vars" };
            return Err(ConfigError::new(&tf_root.join(&job.rel), format!("variable `{r}` has no default and stamp does not set it"))
                .hint(format!("set it under [{section}] in stamp.toml or the customer file, or give it a default"))
                .into());
        }
    }
    Ok(())
}

pub fn app_context(c: &Customer) -> AppContext {
    AppContext {
        customer: c.name.to_string(),
        region: c.region.to_string(),
        env: c.env.to_string(),
        git_id: c.git_id.clone(),
        app_repo: c.app_repo.clone(),
        app_dir: c.app.dir.clone(),
        socket_path: format!("{}/tmp/sockets/puma.sock", c.app.dir.trim_end_matches('/')),
        server_name: c.app.server_name.clone(),
        puma_workers: c.app.puma_workers,
        puma_threads: c.app.puma_threads,
    }
}

/// Output values as JSON; sensitive ones masked unless `show` is set.
pub fn outputs_json(o: &Outputs, show: bool) -> Value {
    Value::Object(o.iter().map(|(k, v)| (k.clone(), if v.sensitive && !show { json!("(sensitive)") } else { v.value.clone() })).collect())
}

pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// The customer's state bucket name (asks STS for the account id only when the
/// template needs it and `[aws] account_id` is not set).
pub async fn state_bucket(fleet: &Fleet, c: &Customer, aws: &Aws, log: &mut StageLog) -> Result<BucketName, Error> {
    let account = match &fleet.aws.account_id {
        Some(a) => a.clone(),
        None if render::bucket_template_uses_account_id(&fleet.state_bucket) => aws.account_id("bucket", log).await?,
        None => String::new(),
    };
    render::render_bucket(&fleet.state_bucket, &c.name, &c.region, &account)
        .map_err(|m| Error::usage_hint(format!("[fleet] state_bucket: {m}"), "shorten the template or the customer name"))
}

/// The environment every tool gets (see README "Environment variables").
pub fn tool_env(fleet: &Fleet, region: &crate::names::Region, work_root: &Path) -> Result<Vec<(String, String)>, Error> {
    let mut env: Vec<(String, String)> = vec![
        ("AWS_DEFAULT_REGION".into(), region.to_string()),
        ("AWS_REGION".into(), region.to_string()),
        ("AWS_PAGER".into(), String::new()),
        ("TF_IN_AUTOMATION".into(), "1".into()),
        ("TF_INPUT".into(), "0".into()),
        ("CHECKPOINT_DISABLE".into(), "1".into()),
    ];
    if let Some(p) = &fleet.aws.profile {
        env.push(("AWS_PROFILE".into(), p.clone()));
    }
    if let Some(e) = &fleet.aws.endpoint {
        env.push(("AWS_ENDPOINT_URL".into(), e.clone()));
        // The emulator takes any key; the tools still want one.
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() && fleet.aws.profile.is_none() && std::env::var_os("AWS_PROFILE").is_none() {
            env.push(("AWS_ACCESS_KEY_ID".into(), "stamp-emulator".into()));
            env.push(("AWS_SECRET_ACCESS_KEY".into(), "stamp-emulator".into()));
        }
    }
    std::fs::create_dir_all(work_root).map_err(|e| Error::io(format!("creating {}", work_root.display()), e))?;
    if let Some(rc) = terraform::cli_config(work_root)? {
        env.push(("TF_CLI_CONFIG_FILE".into(), rc.display().to_string()));
    }
    if std::env::var_os("TF_PLUGIN_CACHE_DIR").is_none() {
        // One provider download serves every customer's working copy.
        let cache = work_root.join("plugin-cache");
        std::fs::create_dir_all(&cache).map_err(|e| Error::io(format!("creating {}", cache.display()), e))?;
        env.push(("TF_PLUGIN_CACHE_DIR".into(), cache.display().to_string()));
    }
    Ok(env)
}

/// One stamp run per customer at a time: a second one would share the working copy.
fn lock_work_dir(work: &Path) -> Result<std::fs::File, Error> {
    use std::os::fd::AsRawFd;
    let path = work.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::usage_hint(
            format!("another stamp run is working on this customer (lock {})", path.display()),
            "wait for it to finish; the lock is released when that process exits",
        ));
    }
    Ok(f)
}
