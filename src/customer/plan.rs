//! A customer, resolved: the stacks it runs, their checked inputs, its app
//! configuration. Everything that can be checked without AWS and without running a
//! tool is checked here, so bad input never leaves anything half-made; `validate`
//! reports every problem found, not only the first.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use crate::config::{Customer, SecretFrom, SecretSource, StageVars, origin_of};
use crate::error::{ConfigError, Error};
use crate::events::Stage;
use crate::names::{AmiId, CustomerName, EnvName};
use crate::operation::HistoryOp;
use crate::render::AppContext;
use crate::shared::context::FleetContext;
use crate::tools::git::Revision;
use crate::tools::packer::PACKER_STANDARD;
use crate::tools::packer::TemplateInfo;
use crate::tools::terraform::StackInfo;

/// Standard inputs stamp sets itself; `[*.vars]` may not redefine them.
pub const VPC_STANDARD: [&str; 3] = ["customer", "region", "env"];
pub const FRONTENDS_STANDARD: [&str; 8] =
    ["customer", "region", "env", "ami_id", "vpc_id", "public_subnet_ids", "private_subnet_ids", "app_config"];

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
    /// `[secrets]`, read from their sources: variable name -> value.
    pub secrets: BTreeMap<String, Secret>,
    /// `validate` only (`FleetContext::offline`): the secrets whose source holds no
    /// value here (an environment variable not set, a file that does not exist),
    /// said as notes; the commands that use a secret read it and refuse without it.
    pub unavailable_secrets: Vec<String>,
    /// The commit `git_id` names, looked up before anything runs (`fleet::revisions`)
    /// by the commands that bake or say what would be baked: deploy, plan, render.
    pub revision: Option<Revision>,
    /// A rollback (`customer::release::pin_rollback`): the release to deploy again.
    /// `revision` is then the release's commit (no git_id lookup), and the AMI stage
    /// takes the release's image when it is still registered.
    pub pin: Option<Pin>,
    /// How the history record of this deploy names it (deploy, rollback, rollout)
    /// and who ran it; set by the command (or the rollout) before the run.
    pub record: RecordAs,
}

/// A release to deploy again: its id, commit and image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub release_id: String,
    pub git_id: String,
    pub commit: String,
    pub ami: Option<AmiId>,
    /// The release's image key (recorded again when its image is reused).
    pub image_key: Option<String>,
    /// One line said at the start of the deploy: the release's stacks or template
    /// differ from the working tree's (they come from the checkout, not the release).
    pub warning: Option<String>,
}

/// What a deploy's history record says of it besides its release and outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordAs {
    pub operation: HistoryOp,
    /// The rollout this deploy is part of (`stamp rollout`).
    pub rollout_id: Option<String>,
    /// Who ran it (GITHUB_ACTOR, ...); `None`: `$USER@host` when the record is written.
    pub actor: Option<String>,
    /// The CI run's page, when there is one.
    pub ci_url: Option<String>,
}

/// A `[secrets]` value, read at run time. `Debug` never shows it.
#[derive(Clone)]
pub struct Secret {
    value: String,
    pub source: SecretSource,
}

impl Secret {
    pub fn value(&self) -> &str {
        &self.value
    }

    /// A shell word that stands for the value in a printed command line: the
    /// environment variable or file it is read from, never the value.
    pub fn shown(&self) -> String {
        match &self.source.from {
            SecretFrom::Env(e) => format!("\"${e}\""),
            SecretFrom::File(f) => format!("\"$(cat {})\"", crate::shell::shell_quote(&f.to_string_lossy())),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({:?} from {}, value hidden)", self.source.from, self.source.origin)
    }
}

impl CustomerPlan {
    /// Loads `name` and checks it against the fleet's stacks and template.
    /// Returns every problem found (at least one) on failure.
    pub fn resolve(ctx: &FleetContext, name: &CustomerName, env: Option<&EnvName>) -> Result<Self, Vec<Error>> {
        let fleet = &ctx.fleet;
        let mut customer = fleet.load_customer(name).map_err(|e| vec![e.into()])?;
        if let Some(env) = env {
            fleet.check_env(env).map_err(|e| vec![e])?;
            customer.env = env.clone();
        }
        let mut problems: Vec<Error> = Vec::new();
        let [(_, vpc_key), (_, frontends_key)] = state_keys(&customer);
        let vpc = stack_job(ctx, &customer, "vpc", Stage::Vpc, vpc_key);
        let frontends = stack_job(ctx, &customer, &format!("frontends/{}", customer.env), Stage::Frontends, frontends_key);
        let tf_root = &fleet.paths.terraform;
        if let Ok(vpc) = &vpc {
            problems.extend(check_vars(&customer.vpc_vars, "vpc.vars", &VPC_STANDARD, &vpc.info, &tf_root.join("vpc")));
            problems.extend(check_required(vpc, &VPC_STANDARD, &customer, tf_root));
            problems.extend(check_var_files(vpc, &VPC_STANDARD, &customer, tf_root));
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
            problems.extend(check_required(fe, &FRONTENDS_STANDARD, &customer, tf_root));
            problems.extend(check_var_files(fe, &FRONTENDS_STANDARD, &customer, tf_root));
        }
        let template = ctx.template();
        if let Ok(t) = &template {
            problems.extend(check_packer(ctx, &customer, t));
        }
        let (secrets, secret_problems, unavailable) = match (&vpc, &frontends, &template) {
            (Ok(vpc), Ok(fe), Ok(t)) => read_secrets(ctx, &customer, &[vpc, fe], t),
            _ => (BTreeMap::new(), Vec::new(), Vec::new()),
        };
        problems.extend(secret_problems);
        let unavailable_secrets = if ctx.is_offline() {
            unavailable.into_iter().map(|e| e.to_string()).collect()
        } else {
            problems.extend(unavailable);
            Vec::new()
        };
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
            (Ok(vpc), Ok(frontends), Ok(template)) if problems.is_empty() => Ok(Self {
                customer,
                vpc,
                frontends,
                template,
                app_config,
                secrets,
                unavailable_secrets,
                revision: None,
                pin: None,
                record: RecordAs::default(),
            }),
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

    /// The commit to bake: this run looked `git_id` up before anything started.
    pub fn commit(&self) -> Result<&str, Error> {
        self.revision.as_ref().map(|r| r.commit.as_str()).ok_or_else(|| {
            Error::stage(format!("{}: git_id `{}` was not resolved to a commit before the run", self.customer.name, self.customer.git_id))
        })
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
        } else if info.sensitive.contains(k)
            && let Err(m) = crate::tools::terraform::tf_var_env_value(&vars.values[k], info.hcl_input.contains(k))
        {
            // Sensitive values go to terraform as TF_VAR_ variables (never in a file).
            problems.push(
                ConfigError::new(Path::new(&at), format!("[{section}] `{k}` (sensitive in {}): {m}", stack.display()))
                    .hint(format!("add a `type` (such as `map(string)`) to variable \"{k}\" in {}", stack.display()))
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

/// A stack's `[*.vars]` table in the customer file, and its name.
pub fn stage_vars(customer: &Customer, stage: Stage) -> (&'static str, &StageVars) {
    if stage == Stage::Vpc { ("vpc.vars", &customer.vpc_vars) } else { ("frontends.vars", &customer.frontends_vars) }
}

fn check_required(job: &StackJob, standard: &[&str], customer: &Customer, tf_root: &Path) -> Vec<Error> {
    let (section, vars) = stage_vars(customer, job.stage);
    job.info
        .required
        .iter()
        .filter(|r| !standard.contains(&r.as_str()) && !vars.values.contains_key(*r) && !customer.secrets.contains_key(*r))
        .map(|r| {
            ConfigError::new(&tf_root.join(&job.rel), format!("variable `{r}` has no default and stamp does not set it"))
                .hint(format!(
                    "set it under [{section}] (or [secrets], for a secret) in stamp.toml or the customer file, or give it a default"
                ))
                .into()
        })
        .collect()
}

/// The inputs stamp passes as `TF_VAR_` variables (a `[secrets]` value, any value
/// of a variable declared `sensitive = true`) must not also be set in a variable
/// definitions file of the stack: Terraform reads `terraform.tfvars` and
/// `*.auto.tfvars` after the environment, and would use the file's value without a
/// word.
fn check_var_files(job: &StackJob, standard: &[&str], customer: &Customer, tf_root: &Path) -> Vec<Error> {
    let (section, vars) = stage_vars(customer, job.stage);
    let info = &job.info;
    let mut by_env: Vec<(String, String)> = Vec::new();
    for k in standard.iter().filter(|k| info.sensitive.contains(**k)) {
        by_env.push((k.to_string(), "the customer and the earlier stages".to_owned()));
    }
    for k in vars.values.keys().filter(|k| info.sensitive.contains(*k)) {
        by_env.push((k.clone(), format!("[{section}] at {}", origin_of(vars, k))));
    }
    for k in customer.secrets.keys().filter(|k| info.variables.contains(*k)) {
        by_env.push((k.clone(), "[secrets]".to_owned()));
    }
    by_env
        .into_iter()
        .filter_map(|(k, from)| {
            let file = info.var_files.get(&k)?;
            Some(
                ConfigError::new(
                    &tf_root.join(&job.rel).join(file),
                    format!(
                        "sets `{k}`, which stamp passes to terraform as the sensitive TF_VAR_{k}; Terraform reads {file} after the \
                         environment, so stamp's value (from {from}) would be silently ignored"
                    ),
                )
                .hint(format!("remove `{k}` from {file}: stamp sets it"))
                .into(),
            )
        })
        .collect()
}

/// Reads every `[secrets]` value from its source and checks it can be used: set and
/// not empty, a variable of a stack or of the packer template, not one stamp sets,
/// not also given in clear under `[*.vars]`, of a type a string can be. Returns the
/// secrets read, the problems, and apart the sources that hold no value here (an
/// environment variable not set, a file that does not exist).
fn read_secrets(
    ctx: &FleetContext,
    customer: &Customer,
    stacks: &[&StackJob],
    template: &TemplateInfo,
) -> (BTreeMap<String, Secret>, Vec<Error>, Vec<Error>) {
    let fleet = &ctx.fleet;
    let tf_root = &fleet.paths.terraform;
    let mut found = BTreeMap::new();
    let mut problems: Vec<Error> = Vec::new();
    let mut unavailable: Vec<Error> = Vec::new();
    for (name, source) in &customer.secrets {
        let at = Path::new(&source.origin);
        let bad = |m: String, hint: String| -> Error { ConfigError::new(at, format!("[secrets] `{name}`: {m}")).hint(hint).into() };
        if VPC_STANDARD.contains(&name.as_str()) || FRONTENDS_STANDARD.contains(&name.as_str()) || PACKER_STANDARD.contains(&name.as_str())
        {
            problems.push(bad("is set by stamp".into(), "[secrets] is for the stacks' and the template's own secret variables".into()));
            continue;
        }
        let users: Vec<&StackJob> = stacks.iter().copied().filter(|j| j.info.variables.contains(name)).collect();
        let in_template = template.variables.contains(name);
        if users.is_empty() && !in_template {
            // The variables a secret could be: not those stamp sets itself.
            let own = |vars: &std::collections::BTreeSet<String>| {
                let standard = |v: &str| VPC_STANDARD.contains(&v) || FRONTENDS_STANDARD.contains(&v) || PACKER_STANDARD.contains(&v);
                join(vars.iter().map(String::as_str).filter(|v| !standard(v)))
            };
            let mut declared: Vec<String> =
                stacks.iter().map(|j| format!("{}: {}", tf_root.join(&j.rel).display(), own(&j.info.variables))).collect();
            declared.push(format!("{}: {}", fleet.paths.packer_template.display(), own(&template.variables)));
            problems.push(bad(
                "is not a variable of any stack nor of the packer template".into(),
                format!("a secret must be a declared variable; they are:\n    {}", declared.join("\n    ")),
            ));
            continue;
        }
        for (section, vars) in
            [("vpc.vars", &customer.vpc_vars), ("frontends.vars", &customer.frontends_vars), ("packer.vars", &customer.packer_vars)]
        {
            if vars.values.contains_key(name) {
                problems.push(bad(
                    format!("is also set under [{section}] ({})", origin_of(vars, name)),
                    "give it in one place: [secrets] for a secret (the value stays out of every file stamp writes)".into(),
                ));
            }
        }
        for j in &users {
            if let Some(t @ (crate::tools::terraform::VarType::List | crate::tools::terraform::VarType::Map)) = j.info.types.get(name) {
                problems.push(bad(
                    format!(
                        "{} declares it as a {}, and a secret is a string",
                        tf_root.join(&j.rel).display(),
                        if *t == crate::tools::terraform::VarType::List { "list" } else { "map" }
                    ),
                    "pass a string variable as the secret (and decode it in the stack if needed)".into(),
                ));
            }
        }
        let value = match &source.from {
            SecretFrom::Env(e) => match std::env::var(e) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) => Err(bad(
                    format!("the environment variable {e} is empty"),
                    format!("set {e} to the secret's value before running stamp"),
                )),
                Err(std::env::VarError::NotPresent) => {
                    unavailable.push(bad(
                        format!("the environment variable {e} is not set"),
                        format!("set {e} to the secret's value before running stamp (in CI: from the CI system's secret store)"),
                    ));
                    continue;
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(bad(format!("the environment variable {e} is not UTF-8 text"), "a secret's value must be text".into()))
                }
            },
            SecretFrom::File(f) => match read_secret_file(f) {
                Ok(v) => Ok(v),
                Err(SecretFileError::Missing(e)) => {
                    unavailable.push(bad(
                        format!("cannot read {}: {e}", f.display()),
                        "`file` is relative to the file that names it; the file must exist and be readable by stamp".into(),
                    ));
                    continue;
                }
                Err(SecretFileError::Bad(m, hint)) => Err(bad(m, hint)),
            },
        };
        match value {
            Ok(value) => {
                found.insert(name.clone(), Secret { value, source: source.clone() });
            }
            Err(e) => problems.push(e),
        }
    }
    (found, problems, unavailable)
}

/// The largest secret file stamp reads: a password, a token or a key is far smaller;
/// anything near this is the wrong file.
pub const MAX_SECRET_BYTES: u64 = 64 << 10;

enum SecretFileError {
    /// It does not exist (here): `validate` notes it, the other commands refuse.
    Missing(std::io::Error),
    /// Anything else: (what is wrong, the hint).
    Bad(String, String),
}

/// A `{ file = ... }` secret's value: the content of a regular file (or a link to
/// one) of at most `MAX_SECRET_BYTES` UTF-8 bytes, one trailing newline removed.
/// The file is opened without blocking and its type checked on the open file: a
/// FIFO (which would hang stamp until something writes to it), a device (which may
/// never end), a socket or a directory is refused, not read.
fn read_secret_file(f: &Path) -> Result<String, SecretFileError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let shown = f.display();
    let regular = "write the secret into a regular file and point `file` at it";
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(f).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SecretFileError::Missing(e),
        std::io::ErrorKind::PermissionDenied => SecretFileError::Bad(
            format!("cannot read {shown}: {e}"),
            "the file must be readable by the user stamp runs as (check its mode and owner, and its directories')".into(),
        ),
        _ => SecretFileError::Bad(format!("cannot read {shown}: {e}"), "the file must exist and be readable by stamp".into()),
    })?;
    let meta = file.metadata().map_err(|e| SecretFileError::Bad(format!("cannot read {shown}: {e}"), regular.into()))?;
    let t = meta.file_type();
    let kind = if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a named pipe (FIFO), which could keep stamp waiting for a writer")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else if t.is_socket() {
        Some("a socket")
    } else if !t.is_file() {
        Some("not a regular file")
    } else {
        None
    };
    if let Some(kind) = kind {
        return Err(SecretFileError::Bad(format!("{shown} is {kind}: stamp reads a secret only from a regular file"), regular.into()));
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(SecretFileError::Bad(
            format!("{shown} is {} bytes; a secret file is at most {} KiB", meta.len(), MAX_SECRET_BYTES >> 10),
            "point `file` at the file holding only the secret's value".into(),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SecretFileError::Bad(format!("cannot read {shown}: {e}"), "the file must be readable by stamp".into()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| SecretFileError::Bad(format!("{shown} is not UTF-8 text"), "a secret's value must be text".into()))?;
    let v = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned();
    if v.is_empty() {
        return Err(SecretFileError::Bad(format!("{shown} is empty"), "write the secret's value into it".into()));
    }
    Ok(v)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> Result<String, String> {
        read_secret_file(p).map_err(|e| match e {
            SecretFileError::Missing(e) => format!("missing: {e}"),
            SecretFileError::Bad(m, h) => format!("{m} (hint: {h})"),
        })
    }

    #[test]
    fn a_secret_file_is_a_regular_file_of_text_and_anything_else_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("ok"), "s3cret\n").unwrap();
        assert_eq!(read(&p("ok")).unwrap(), "s3cret");
        std::os::unix::fs::symlink(p("ok"), p("link")).unwrap();
        assert_eq!(read(&p("link")).unwrap(), "s3cret");
        assert!(read(&p("nope")).unwrap_err().starts_with("missing:"));
        // A FIFO nobody writes to: refused at once (reading it would block forever).
        let fifo = std::ffi::CString::new(p("fifo").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(read(&p("fifo")).unwrap_err().contains("is a named pipe (FIFO)"));
        assert!(read(dir.path()).unwrap_err().contains("is a directory"));
        assert!(read(Path::new("/dev/zero")).unwrap_err().contains("is a device"));
        std::fs::write(p("big"), vec![b'x'; MAX_SECRET_BYTES as usize + 1]).unwrap();
        assert!(read(&p("big")).unwrap_err().contains("a secret file is at most 64 KiB"));
        std::fs::write(p("empty"), "\n").unwrap();
        assert!(read(&p("empty")).unwrap_err().contains("is empty"));
        std::fs::write(p("binary"), [0xff, 0xfe]).unwrap();
        assert!(read(&p("binary")).unwrap_err().contains("not UTF-8"));
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p("ok"), std::fs::Permissions::from_mode(0o000)).unwrap();
            let err = read(&p("ok")).unwrap_err();
            assert!(err.contains("Permission denied") && err.contains("readable by the user stamp runs as"), "{err}");
        }
    }
}
