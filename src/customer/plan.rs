//! A customer, resolved: the stacks it runs, their checked inputs, its app
//! configuration. Everything that can be checked without AWS and without running a
//! tool is checked here, so bad input never leaves anything half-made; `validate`
//! reports every problem found, not only the first.

use std::path::Path;
use std::rc::Rc;

use crate::config::{Customer, StageVars, origin_of};
use crate::error::{ConfigError, Error};
use crate::fleet::context::FleetContext;
use crate::names::{CustomerName, EnvName};
use crate::render::AppContext;
use crate::tools::packer::TemplateInfo;
use crate::tools::terraform::StackInfo;
use crate::ui::events::Stage;

/// Standard inputs stamp sets itself; `[*.vars]` may not redefine them.
pub const VPC_STANDARD: [&str; 3] = ["customer", "region", "env"];
pub const FRONTENDS_STANDARD: [&str; 8] =
    ["customer", "region", "env", "ami_id", "vpc_id", "public_subnet_ids", "private_subnet_ids", "app_config"];
/// Variables of the brief's vars/travis.json that stamp does not derive itself.
pub const PACKER_RECORDED: [&str; 3] = ["source_ami", "instance_type", "ssh_username"];
pub const PACKER_STANDARD: [&str; 9] =
    ["region", "build_vpc", "build_subnet", "git_id", "aws_endpoint", "customer", "app_repo", "template_hash", "image_key"];
/// Packer variables that say where a bake runs, not what it makes: they do not make
/// two customers' images different (see README "One bake per image").
pub const PACKER_PLACEMENT: [&str; 4] = ["build_vpc", "build_subnet", "aws_endpoint", "customer"];

/// A stack to run, with what it declares.
#[derive(Debug, Clone)]
pub struct StackJob {
    pub stage: Stage,
    pub label: String,
    /// Relative to `[paths] terraform`, e.g. `vpc` or `frontends/production`.
    pub rel: String,
    pub info: Rc<StackInfo>,
    /// The state object's key in the bucket.
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct CustomerPlan {
    pub customer: Customer,
    pub vpc: StackJob,
    pub frontends: StackJob,
    pub template: Rc<TemplateInfo>,
    /// The rendered templates/app files (relative path, content).
    pub app_config: Option<Vec<(String, String)>>,
}

impl CustomerPlan {
    /// Loads `name` and checks it against the fleet's stacks and template.
    /// Returns every problem found (at least one) on failure.
    pub fn resolve(ctx: &FleetContext, name: &CustomerName, env: Option<&EnvName>) -> Result<Self, Vec<Error>> {
        let fleet = &ctx.fleet;
        let mut customer = fleet.load_customer(name).map_err(|e| vec![e.into()])?;
        if let Some(env) = env {
            if !fleet.envs.contains(env) {
                return Err(vec![Error::usage_hint(
                    format!("--env {env}: not one of the fleet's envs"),
                    format!("[fleet] envs in {} lists {}", fleet.config_path.display(), join(fleet.envs.iter().map(|e| e.as_str()))),
                )]);
            }
            customer.env = env.clone();
        }
        let mut problems: Vec<Error> = Vec::new();
        let [(_, vpc_key), (_, frontends_key)] = state_keys(&customer);
        let vpc = stack_job(ctx, &customer, "vpc", Stage::Vpc, vpc_key);
        let frontends = stack_job(ctx, &customer, &format!("frontends/{}", customer.env), Stage::Frontends, frontends_key);
        let tf_root = &fleet.paths.terraform;
        if let Ok(vpc) = &vpc {
            problems.extend(check_vars(&customer.vpc_vars, "vpc.vars", &VPC_STANDARD, &vpc.info, &tf_root.join("vpc")));
            problems.extend(check_required(vpc, &VPC_STANDARD, &customer.vpc_vars, tf_root));
        }
        if let Ok(fe) = &frontends {
            if fe.info.declares_remote_state_vpc {
                problems.push(
                    ConfigError::new(&tf_root.join(&fe.rel), "declares data \"terraform_remote_state\" \"vpc\"; stamp generates it".into())
                        .hint("remove it from the stack: stamp writes stamp_remote_state.tf pointing at the customer's vpc state")
                        .into(),
                );
            }
            problems.extend(check_vars(&customer.frontends_vars, "frontends.vars", &FRONTENDS_STANDARD, &fe.info, &tf_root.join(&fe.rel)));
            problems.extend(check_required(fe, &FRONTENDS_STANDARD, &customer.frontends_vars, tf_root));
        }
        let template = ctx.template();
        if let Ok(t) = &template {
            problems.extend(check_packer(ctx, &customer, t));
        }
        let app_config = if fleet.paths.app_templates.is_dir() {
            match ctx.app_templates().as_ref().as_ref().map_err(Clone::clone).and_then(|t| t.render(&app_context(&customer))) {
                Ok(files) => Some(files),
                Err(m) => {
                    problems.push(ConfigError::new(&fleet.paths.app_templates, m).into());
                    None
                }
            }
        } else {
            if let Ok(fe) = &frontends
                && fe.info.variables.contains("app_config")
            {
                problems.push(
                    ConfigError::new(
                        &fleet.config_path,
                        format!(
                            "[paths] app_templates: {} does not exist, and {} takes `app_config`",
                            fleet.paths.app_templates.display(),
                            fe.rel
                        ),
                    )
                    .into(),
                );
            }
            None
        };
        match (vpc, frontends, template) {
            (Ok(vpc), Ok(frontends), Ok(template)) if problems.is_empty() => Ok(Self { customer, vpc, frontends, template, app_config }),
            (vpc, frontends, template) => {
                let mut all: Vec<Error> = [vpc.err(), frontends.err(), template.err()].into_iter().flatten().collect();
                all.extend(problems);
                Err(all)
            }
        }
    }

    pub fn name(&self) -> &CustomerName {
        &self.customer.name
    }

    pub fn job(&self, stage: Stage) -> &StackJob {
        match stage {
            Stage::Vpc => &self.vpc,
            _ => &self.frontends,
        }
    }
}

fn stack_job(ctx: &FleetContext, customer: &Customer, rel: &str, stage: Stage, key: String) -> Result<StackJob, Error> {
    let fleet = &ctx.fleet;
    let dir = fleet.paths.terraform.join(rel);
    if !dir.is_dir() {
        return Err(ConfigError::new(&fleet.config_path, format!("[paths] terraform: {} does not exist", dir.display()))
            .hint(format!(
                "[paths] terraform must hold vpc/ and frontends/<env>/ (env `{}` of {}); it holds stacks for: {}",
                customer.env,
                customer.file.display(),
                env_stacks(&fleet.paths.terraform)
            ))
            .into());
    }
    let info = ctx.stack(&dir)?;
    match info.backend.as_deref() {
        None | Some("s3") => {}
        Some(other) => {
            return Err(ConfigError::new(&dir, format!("declares a `{other}` backend; stamp keeps state in S3"))
                .hint("remove the backend block (stamp generates one) or make it `backend \"s3\" {}`")
                .into());
        }
    }
    Ok(StackJob { stage, label: format!("{rel} stack"), rel: rel.to_owned(), info, key })
}

fn check_packer(ctx: &FleetContext, customer: &Customer, template: &TemplateInfo) -> Vec<Error> {
    let fleet = &ctx.fleet;
    let mut problems = Vec::new();
    for only in &fleet.packer_only {
        if !template.builders.contains(only) {
            problems.push(
                ConfigError::new(
                    &fleet.config_path,
                    format!("[packer] only: `{only}` is not a builder of {}", fleet.paths.packer_template.display()),
                )
                .hint(format!("its builders are: {}", template.builders.join(", ")))
                .into(),
            );
        }
    }
    for k in customer.packer_vars.values.keys() {
        let at = origin_of(&customer.packer_vars, k);
        if PACKER_STANDARD.contains(&k.as_str()) {
            problems.push(ConfigError::new(Path::new(&at), format!("[packer.vars] `{k}` is set by stamp")).into());
        } else if !template.variables.contains(k) {
            problems.push(
                ConfigError::new(
                    Path::new(&at),
                    format!("[packer.vars] `{k}` is not a variable of {}", fleet.paths.packer_template.display()),
                )
                .hint(format!("its variables are: {}", join(template.variables.iter().map(String::as_str))))
                .into(),
            );
        }
    }
    problems
}

fn check_vars(vars: &StageVars, section: &str, standard: &[&str], info: &StackInfo, stack: &Path) -> Vec<Error> {
    let declared = &info.variables;
    let mut problems = Vec::new();
    for k in vars.values.keys() {
        let at = origin_of(vars, k);
        if standard.contains(&k.as_str()) {
            problems.push(
                ConfigError::new(Path::new(&at), format!("[{section}] `{k}` is set by stamp"))
                    .hint(match k.as_str() {
                        "region" | "env" => format!("set `{k}` at the top of the customer file instead"),
                        _ => "remove it: stamp passes it from the customer and the earlier stages".into(),
                    })
                    .into(),
            );
        } else if !declared.contains(k) {
            problems.push(
                ConfigError::new(Path::new(&at), format!("[{section}] `{k}` is not a variable of {}", stack.display()))
                    .hint(format!("its variables are: {}", join(declared.iter().map(String::as_str))))
                    .into(),
            );
        } else if let Some(Err(want)) = info.types.get(k).map(|t| t.check(&vars.values[k])) {
            problems.push(
                ConfigError::new(Path::new(&at), format!("[{section}] `{k}` = {}: {want}", vars.values[k]))
                    .hint(format!("{} declares `{k}` with that type", stack.display()))
                    .into(),
            );
        }
    }
    problems
}

fn check_required(job: &StackJob, standard: &[&str], vars: &StageVars, tf_root: &Path) -> Vec<Error> {
    let section = if job.stage == Stage::Vpc { "vpc.vars" } else { "frontends.vars" };
    job.info
        .required
        .iter()
        .filter(|r| !standard.contains(&r.as_str()) && !vars.values.contains_key(*r))
        .map(|r| {
            ConfigError::new(&tf_root.join(&job.rel), format!("variable `{r}` has no default and stamp does not set it"))
                .hint(format!("set it under [{section}] in stamp.toml or the customer file, or give it a default"))
                .into()
        })
        .collect()
}

/// A customer's stacks (`vpc`, `frontends/<env>`) and their state objects' keys.
pub fn state_keys(c: &Customer) -> [(String, String); 2] {
    [("vpc".to_owned(), format!("{}/vpc", c.name)), (format!("frontends/{}", c.env), format!("{}/frontends/{}", c.name, c.env))]
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

fn join<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

/// The envs that have a stack under `<terraform>/frontends/`, for a hint.
fn env_stacks(terraform: &Path) -> String {
    let mut envs: Vec<String> = std::fs::read_dir(terraform.join("frontends"))
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    envs.sort();
    if envs.is_empty() { "none".into() } else { envs.join(", ") }
}
