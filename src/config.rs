//! The fleet file (`stamp.toml`) and the customer files (`customers/<name>.toml`):
//! parsed strictly (unknown keys and wrong types are errors that name file, line and
//! key), then resolved into plain settings the engine uses. Nothing here runs a tool.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::error::{ConfigError, Error, line_of};
use crate::names::{CustomerName, EnvName, Region};

mod app;
mod checks;
mod raw;
mod rollout;
mod secrets;

use app::*;
pub(crate) use app::{AppSettings, SmokeSettings};
use checks::*;
pub(crate) use checks::{check_app_repo, check_git_id};
use raw::*;
pub(crate) use rollout::{Amount, OnFailure, RolloutSettings, render_rollout_bucket};
use secrets::*;
pub(crate) use secrets::{SecretFrom, SecretSource, Secrets};

pub(crate) const DEFAULT_STATE_BUCKET: &str = "tfstate-{{account_id}}-{{customer}}";

/// Variables for one stage, as given in `[vpc.vars]`, `[packer.vars]`, `[frontends.vars]`.
pub(crate) type Vars = BTreeMap<String, serde_json::Value>;

// ---------------------------------------------------------------- raw file shapes

/// Where every tool comes from, before it is looked up.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolChoice {
    pub terraform: Option<String>,
    pub packer: Option<String>,
    pub aws: Option<String>,
}

/// Values of `[vpc.vars]`/`[packer.vars]`/`[frontends.vars]` with where they came from,
/// so a later check (for instance "not a variable of the stack") can point at a line.
#[derive(Debug, Clone, Default)]
pub(crate) struct StageVars {
    pub values: Vars,
    /// key -> "file:line" where it was set (the last writer wins, as the value does).
    pub origin: BTreeMap<String, String>,
}

impl StageVars {
    fn merge(&mut self, file: &Path, text: &str, table: &Option<Spanned<toml::Table>>, section: &str) -> Result<(), ConfigError> {
        let Some(table) = table else { return Ok(()) };
        for (k, v) in table.get_ref() {
            let value = toml_to_json(v)
                .map_err(|m| ConfigError::at(file, text, key_span(text, table.span(), k), format!("[{section}] key `{k}`: {m}")))?;
            let line = line_of(text, key_span(text, table.span(), k).start);
            self.values.insert(k.clone(), value);
            self.origin.insert(k.clone(), format!("{}:{line}", file.display()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub terraform: PathBuf,
    pub packer_template: PathBuf,
    pub customers: PathBuf,
    pub work: PathBuf,
    pub vars: PathBuf,
    pub app_templates: PathBuf,
}

#[derive(Debug, Clone)]
pub(crate) struct AwsSettings {
    /// An emulated AWS endpoint; `None` means real AWS.
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    pub account_id: Option<String>,
    /// `AWS_CA_BUNDLE`: certificates (PEM) trusted besides the system's, for an
    /// endpoint behind a private CA (an emulator over HTTPS, a TLS-inspecting proxy).
    /// terraform, packer and the AWS CLI read the variable themselves.
    pub ca_bundle: Option<PathBuf>,
}

/// The fleet file, resolved: defaults applied, paths made absolute.
#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    pub config_path: PathBuf,
    pub root: PathBuf,
    pub region: Region,
    pub state_bucket: String,
    pub default_env: EnvName,
    pub envs: Vec<EnvName>,
    pub app_repo: Option<String>,
    pub git_id: Option<String>,
    /// Where `[fleet] app_repo` and `git_id` were set ("file:line"), for errors found later.
    pub app_repo_at: String,
    pub git_id_at: String,
    pub paths: Paths,
    pub aws: AwsSettings,
    pub tools: ToolChoice,
    pub packer_only: Vec<String>,
    /// `[fleet] canary`: the customers `--canary K` takes first, in this order.
    pub canary: Vec<CustomerName>,
    /// `[fleet] allow_destroy = true`: where it says so ("stamp.toml:7"). A deploy
    /// with `--auto-approve` (or without a terminal) may then destroy and replace
    /// resources without an approved plan, as with `--allow-destroy`.
    pub allow_destroy: Option<String>,
    pub vpc_vars: StageVars,
    pub packer_vars: StageVars,
    pub frontends_vars: StageVars,
    /// `[secrets]` of the fleet file (a customer file's entries override it, by name).
    pub secrets: Secrets,
    /// `[rollout]` (fleet file only).
    pub rollout: RolloutSettings,
    raw_app: RawApp,
    raw_smoke: RawSmoke,
    text: String,
}

/// One customer, with the fleet's values under its own.
#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub name: CustomerName,
    pub file: PathBuf,
    pub region: Region,
    pub env: EnvName,
    pub git_id: String,
    pub app_repo: String,
    /// Where `git_id` and `app_repo` were set ("file:line", the customer file's or
    /// the fleet file's), for the errors of looking the revision up.
    pub git_id_at: String,
    pub app_repo_at: String,
    pub tags: Vec<String>,
    pub vpc_vars: StageVars,
    pub packer_vars: StageVars,
    pub frontends_vars: StageVars,
    /// `[secrets]`: the fleet's entries with the customer file's over them.
    pub secrets: Secrets,
    pub app: AppSettings,
    pub smoke: SmokeSettings,
}

/// A customer file's name, or the file whose name is not a valid customer.
pub(crate) type CustomerEntry = Result<CustomerName, (PathBuf, String)>;

/// Environment overrides, read in one place (see README "Environment variables").
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvOverrides {
    pub aws_endpoint: Option<String>,
    pub terraform: Option<String>,
    pub packer: Option<String>,
    pub aws: Option<String>,
    pub ca_bundle: Option<String>,
}

impl EnvOverrides {
    pub(crate) fn from_process() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            aws_endpoint: get("STAMP_AWS_ENDPOINT"),
            terraform: get("STAMP_TERRAFORM"),
            packer: get("STAMP_PACKER"),
            aws: get("STAMP_AWS"),
            ca_bundle: get("AWS_CA_BUNDLE"),
        }
    }
}

impl Fleet {
    /// `--env`: one of the fleet's envs, or a usage error naming them.
    pub(crate) fn check_env(&self, env: &EnvName) -> Result<(), Error> {
        if self.envs.contains(env) {
            return Ok(());
        }
        Err(Error::usage_hint(
            format!("--env {env}: not one of the fleet's envs"),
            format!(
                "[fleet] envs in {} lists {}",
                self.config_path.display(),
                self.envs.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    pub(crate) fn load(path: &Path, env: &EnvOverrides) -> Result<Self, Error> {
        let text = read_config_file(path, None).map_err(|e| match e {
            ReadError::Io(e) => ConfigError::new(path, format!("cannot read the fleet file: {e}"))
                .hint("run stamp from the directory holding stamp.toml, or pass --config FILE (or STAMP_CONFIG)"),
            ReadError::Bad(e) => e,
        })?;
        Ok(Self::parse(path, &text, env)?)
    }

    pub(crate) fn parse(path: &Path, text: &str, env: &EnvOverrides) -> Result<Self, ConfigError> {
        let raw: RawFleetFile = toml::from_str(text).map_err(|e| ConfigError::toml(path, text, &e))?;
        let root = path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }).unwrap_or(Path::new("."));
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let rel = |v: &Option<String>, default: &str| normalize(&root.join(v.as_deref().unwrap_or(default)));

        let region = match &raw.fleet.region {
            Some(r) => Region::parse(r.get_ref()).map_err(|m| ConfigError::at(path, text, r.span(), format!("[fleet] region: {m}")))?,
            None => Region::parse("eu-west-1").expect("valid default"),
        };
        let envs = match &raw.fleet.envs {
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(ConfigError::at(
                        path,
                        text,
                        list.span(),
                        "[fleet] envs: the list is empty; name at least one env, such as \"production\"".into(),
                    ));
                }
                list.get_ref()
                    .iter()
                    .map(|e| EnvName::parse(e).map_err(|m| ConfigError::at(path, text, list.span(), format!("[fleet] envs: {m}"))))
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => vec![EnvName::parse("production").unwrap(), EnvName::parse("staging").unwrap()],
        };
        let default_env = match &raw.fleet.default_env {
            Some(e) => {
                EnvName::parse(e.get_ref()).map_err(|m| ConfigError::at(path, text, e.span(), format!("[fleet] default_env: {m}")))?
            }
            None => envs[0].clone(),
        };
        if !envs.contains(&default_env) {
            let span = raw.fleet.default_env.as_ref().map(|s| s.span()).unwrap_or(0..0);
            return Err(ConfigError::at(
                path,
                text,
                span,
                format!("[fleet] default_env `{default_env}` is not one of [fleet] envs ({})", join(&envs)),
            ));
        }
        let state_bucket = match &raw.fleet.state_bucket {
            Some(t) => {
                crate::render::check_bucket_template(t.get_ref())
                    .map_err(|m| ConfigError::at(path, text, t.span(), format!("[fleet] state_bucket: {m}")))?;
                t.get_ref().clone()
            }
            None => DEFAULT_STATE_BUCKET.to_owned(),
        };
        let endpoint = match (&env.aws_endpoint, &raw.aws.endpoint) {
            (Some(e), _) => Some(check_endpoint(e).map_err(|m| ConfigError::new(path, format!("STAMP_AWS_ENDPOINT: {m}")))?),
            (None, Some(e)) => {
                Some(check_endpoint(e.get_ref()).map_err(|m| ConfigError::at(path, text, e.span(), format!("[aws] endpoint: {m}")))?)
            }
            (None, None) => None,
        };
        let ca_bundle = match &env.ca_bundle {
            Some(b) => Some(check_ca_bundle(Path::new(b)).map_err(|m| ConfigError::new(Path::new(b), format!("AWS_CA_BUNDLE: {m}")))?),
            None => None,
        };
        if let Some(a) = &raw.aws.account_id {
            let ok = a.get_ref().len() == 12 && a.get_ref().chars().all(|c| c.is_ascii_digit());
            if !ok {
                return Err(ConfigError::at(path, text, a.span(), format!("[aws] account_id `{}`: expected 12 digits", a.get_ref())));
            }
        }
        let git_id = match &raw.fleet.git_id {
            Some(g) => Some(check_git_id(g.get_ref()).map_err(|m| ConfigError::at(path, text, g.span(), format!("[fleet] git_id: {m}")))?),
            None => None,
        };
        let app_repo = match &raw.fleet.app_repo {
            Some(r) => Some(
                check_app_repo(r.get_ref(), &root)
                    .map_err(|m| ConfigError::at(path, text, r.span(), format!("[fleet] app_repo: {m}")).hint(APP_REPO_HINT))?,
            ),
            None => None,
        };
        // `[smoke]` is resolved for each customer (its own file's over the fleet's); a bad
        // one is refused here, before any customer is read.
        resolve_smoke(&RawSmoke::default(), path, text, &raw.smoke, path, text)?;
        let mut fleet = Fleet {
            config_path: path.to_path_buf(),
            region,
            state_bucket,
            default_env,
            envs,
            app_repo,
            git_id,
            app_repo_at: at(path, text, raw.fleet.app_repo.as_ref().map(|r| r.span())),
            git_id_at: at(path, text, raw.fleet.git_id.as_ref().map(|g| g.span())),
            paths: Paths {
                terraform: rel(&raw.paths.terraform, "terraform"),
                packer_template: rel(&raw.paths.packer, "packer/template.json"),
                customers: rel(&raw.paths.customers, "customers"),
                work: rel(&raw.paths.work, ".stamp"),
                vars: rel(&raw.paths.vars, "vars"),
                app_templates: rel(&raw.paths.app_templates, "templates/app"),
            },
            root,
            aws: AwsSettings {
                endpoint,
                profile: raw.aws.profile.clone(),
                account_id: raw.aws.account_id.as_ref().map(|a| a.get_ref().clone()),
                ca_bundle,
            },
            tools: ToolChoice {
                terraform: env.terraform.clone().or(raw.tools.terraform.clone()),
                packer: env.packer.clone().or(raw.tools.packer.clone()),
                aws: env.aws.clone().or(raw.tools.aws.clone()),
            },
            packer_only: raw.packer.only.clone(),
            canary: match &raw.fleet.canary {
                Some(list) => list
                    .get_ref()
                    .iter()
                    .map(|n| CustomerName::parse(n).map_err(|m| ConfigError::at(path, text, list.span(), format!("[fleet] canary: {m}"))))
                    .collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            },
            allow_destroy: raw
                .fleet
                .allow_destroy
                .as_ref()
                .filter(|a| *a.get_ref())
                .map(|a| format!("{}:{}", path.display(), line_of(text, a.span().start))),
            vpc_vars: StageVars::default(),
            packer_vars: StageVars::default(),
            frontends_vars: StageVars::default(),
            secrets: Secrets::new(),
            raw_app: raw.app.clone(),
            rollout: rollout::resolve_rollout(&raw.rollout, path, text)?,
            raw_smoke: raw.smoke.clone(),
            text: text.to_owned(),
        };
        fleet.vpc_vars.merge(path, text, &raw.vpc.vars, "vpc.vars")?;
        fleet.packer_vars.merge(path, text, &raw.packer.vars, "packer.vars")?;
        fleet.frontends_vars.merge(path, text, &raw.frontends.vars, "frontends.vars")?;
        merge_secrets(&mut fleet.secrets, path, text, &raw.secrets)?;
        // App settings are checked here too so a bad fleet value is reported once, up front.
        resolve_app(path, text, &RawApp::default(), &fleet.raw_app, path, &fleet.text)?;
        Ok(fleet)
    }

    pub(crate) fn customer_file(&self, name: &CustomerName) -> PathBuf {
        self.paths.customers.join(format!("{name}.toml"))
    }

    /// Customer names, from the files in the customers directory, sorted.
    pub(crate) fn customer_names(&self) -> Result<Vec<CustomerEntry>, ConfigError> {
        let dir = &self.paths.customers;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ConfigError::new(&self.config_path, format!("[paths] customers: cannot read {}: {e}", dir.display())))?;
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let p = entry.path();
            if p.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            names.push(CustomerName::parse(&stem).map_err(|m| (p.clone(), m)));
        }
        // Valid names first, by name; then the invalid files, by path.
        names.sort_by(|a, b| match (a, b) {
            (Ok(x), Ok(y)) => x.as_str().cmp(y.as_str()),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err((x, _)), Err((y, _))) => x.cmp(y),
        });
        Ok(names)
    }

    pub(crate) fn load_customer(&self, name: &CustomerName) -> Result<Customer, ConfigError> {
        let file = self.customer_file(name);
        let inside = [&self.root, &self.paths.customers];
        let text = read_config_file(&file, Some(&inside)).map_err(|e| {
            let e = match e {
                ReadError::Io(e) => e,
                ReadError::Bad(e) => return e,
            };
            let known = self
                .customer_names()
                .ok()
                .map(|v| v.into_iter().filter_map(Result::ok).map(|n| n.to_string()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let err = ConfigError::new(&file, format!("cannot read customer `{name}`: {e}"));
            if known.is_empty() {
                err.hint(format!("create {} with at least `git_id = \"...\"`", file.display()))
            } else {
                err.hint(format!("known customers: {known}; or create {}", file.display()))
            }
        })?;
        self.parse_customer(name, &file, &text)
    }

    pub(crate) fn parse_customer(&self, name: &CustomerName, file: &Path, text: &str) -> Result<Customer, ConfigError> {
        let raw: RawCustomerFile = toml::from_str(text).map_err(|e| ConfigError::toml(file, text, &e))?;
        let region = match &raw.region {
            Some(r) => Region::parse(r.get_ref()).map_err(|m| ConfigError::at(file, text, r.span(), format!("region: {m}")))?,
            None => self.region.clone(),
        };
        let env = match &raw.env {
            Some(e) => {
                let env = EnvName::parse(e.get_ref()).map_err(|m| ConfigError::at(file, text, e.span(), format!("env: {m}")))?;
                if !self.envs.contains(&env) {
                    return Err(ConfigError::at(
                        file,
                        text,
                        e.span(),
                        format!("env `{env}` is not one of the fleet's envs ({}) in {}", join(&self.envs), self.config_path.display()),
                    ));
                }
                env
            }
            None => self.default_env.clone(),
        };
        let git_id = match (&raw.git_id, &self.git_id) {
            (Some(g), _) => check_git_id(g.get_ref()).map_err(|m| ConfigError::at(file, text, g.span(), format!("git_id: {m}")))?,
            (None, Some(g)) => g.clone(),
            (None, None) => {
                return Err(ConfigError::new(file, "missing key `git_id` (the app revision to bake into the AMI)".into()).hint(format!(
                    "add `git_id = \"<commit, tag or branch>\"` to {}, or a default `git_id` under [fleet] in {}",
                    file.display(),
                    self.config_path.display()
                )));
            }
        };
        let git_id_at = match &raw.git_id {
            Some(g) => at(file, text, Some(g.span())),
            None => self.git_id_at.clone(),
        };
        let app_repo_at = match &raw.app_repo {
            Some(r) => at(file, text, Some(r.span())),
            None => self.app_repo_at.clone(),
        };
        let app_repo = match &raw.app_repo {
            Some(r) => {
                let dir = file.parent().map(std::path::absolute).and_then(Result::ok).unwrap_or_else(|| self.root.clone());
                check_app_repo(r.get_ref(), &dir)
                    .map_err(|m| ConfigError::at(file, text, r.span(), format!("app_repo: {m}")).hint(APP_REPO_HINT))?
            }
            None => self.app_repo.clone().unwrap_or_default(),
        };
        let tags = match &raw.tags {
            Some(t) => t
                .get_ref()
                .iter()
                .map(|tag| check_tag(tag).map_err(|m| ConfigError::at(file, text, t.span(), format!("tags: {m}"))))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let mut vpc_vars = self.vpc_vars.clone();
        vpc_vars.merge(file, text, &raw.vpc.vars, "vpc.vars")?;
        let mut packer_vars = self.packer_vars.clone();
        packer_vars.merge(file, text, &raw.packer.vars, "packer.vars")?;
        let mut frontends_vars = self.frontends_vars.clone();
        frontends_vars.merge(file, text, &raw.frontends.vars, "frontends.vars")?;
        let mut secrets = self.secrets.clone();
        merge_secrets(&mut secrets, file, text, &raw.secrets)?;
        let app = resolve_app(file, text, &raw.app, &self.raw_app, &self.config_path, &self.text)?;
        let smoke = resolve_smoke(&raw.smoke, file, text, &self.raw_smoke, &self.config_path, &self.text)?;
        Ok(Customer {
            name: name.clone(),
            file: file.to_path_buf(),
            region,
            env,
            git_id,
            app_repo,
            git_id_at,
            app_repo_at,
            tags,
            vpc_vars,
            packer_vars,
            frontends_vars,
            secrets,
            app,
            smoke,
        })
    }
}

/// Locate a `[section.vars]` key for an error raised after parsing.
pub(crate) fn origin_of(vars: &StageVars, key: &str) -> String {
    vars.origin.get(key).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fleet(text: &str) -> Result<Fleet, ConfigError> {
        Fleet::parse(Path::new("/x/stamp.toml"), text, &EnvOverrides::default())
    }

    #[test]
    fn defaults_apply_and_paths_are_relative_to_the_file() {
        let f = fleet("").unwrap();
        assert_eq!(f.region.as_str(), "eu-west-1");
        assert_eq!(f.state_bucket, DEFAULT_STATE_BUCKET);
        assert_eq!(f.default_env.as_str(), "production");
        assert_eq!(f.paths.terraform, Path::new("/x/terraform"));
        assert_eq!(f.paths.work, Path::new("/x/.stamp"));
        assert_eq!(f.paths.packer_template, Path::new("/x/packer/template.json"));
        assert!(f.aws.endpoint.is_none());
        let f =
            Fleet::parse(Path::new("/x/demo/stamp.toml"), "[paths]\nwork = \"../../.stamp/./demo\"\n", &EnvOverrides::default()).unwrap();
        assert_eq!(f.paths.work, Path::new("/.stamp/demo"));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = fleet("[fleet]\nregion = \"eu-west-1\"\nregoin = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("/x/stamp.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("regoin"), "{err}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let err = fleet("[fleet]\nenvs = \"production\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("envs"), "{err}");
    }

    #[test]
    fn bad_values_point_at_their_line() {
        let err = fleet("[fleet]\n\nregion = \"Europe\"\n").unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("region") && err.contains("eu-west-1"), "{err}");
        let err = fleet("[fleet]\ndefault_env = \"qa\"\n").unwrap_err().to_string();
        assert!(err.contains("default_env") && err.contains("production, staging"), "{err}");
        let err = fleet("[aws]\nendpoint = \"localhost:5000\"\n").unwrap_err().to_string();
        assert!(err.contains("[aws] endpoint") && err.contains("http://"), "{err}");
        let err = fleet("[fleet]\nstate_bucket = \"{{nope}}\"\n").unwrap_err().to_string();
        assert!(err.contains("state_bucket") && err.contains("nope"), "{err}");
    }

    #[test]
    fn env_override_wins_over_file() {
        let env = EnvOverrides { aws_endpoint: Some("http://127.0.0.1:9".into()), ..Default::default() };
        let f = Fleet::parse(Path::new("s.toml"), "[aws]\nendpoint = \"http://a:1\"\n", &env).unwrap();
        assert_eq!(f.aws.endpoint.as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn a_ca_bundle_must_be_a_readable_pem_file() {
        let dir = tempfile::tempdir().unwrap();
        let parse = |bundle: &Path| {
            let env = EnvOverrides { ca_bundle: Some(bundle.display().to_string()), ..Default::default() };
            Fleet::parse(Path::new("s.toml"), "", &env)
        };
        let err = parse(&dir.path().join("missing.pem")).unwrap_err().to_string();
        assert!(err.contains("AWS_CA_BUNDLE") && err.contains("missing.pem") && err.contains("cannot read"), "{err}");
        std::fs::write(dir.path().join("empty.pem"), "not a certificate").unwrap();
        let err = parse(&dir.path().join("empty.pem")).unwrap_err().to_string();
        assert!(err.contains("AWS_CA_BUNDLE") && err.contains("-----BEGIN CERTIFICATE-----"), "{err}");
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        assert_eq!(parse(&dir.path().join("ca.pem")).unwrap().aws.ca_bundle, Some(dir.path().join("ca.pem")));
    }

    #[test]
    fn customer_overrides_fleet() {
        let f = fleet("[fleet]\nregion = \"eu-west-1\"\n[vpc.vars]\ncidr_block = \"10.0.0.0/16\"\nkeep = 1\n[app]\npuma_workers = 3\n")
            .unwrap();
        let n = CustomerName::parse("acme").unwrap();
        let c = f
            .parse_customer(
                &n,
                Path::new("/x/customers/acme.toml"),
                "region = \"us-east-1\"\ngit_id = \"v1.2\"\nenv = \"staging\"\n[vpc.vars]\ncidr_block = \"10.9.0.0/16\"\n",
            )
            .unwrap();
        assert_eq!(c.region.as_str(), "us-east-1");
        assert_eq!(c.env.as_str(), "staging");
        assert_eq!(c.vpc_vars.values["cidr_block"], "10.9.0.0/16");
        assert_eq!(c.vpc_vars.values["keep"], 1);
        assert_eq!(c.vpc_vars.origin["cidr_block"], "/x/customers/acme.toml:5");
        assert_eq!(c.app.puma_workers, 3);
    }

    #[test]
    fn customer_errors() {
        let f = fleet("").unwrap();
        let n = CustomerName::parse("acme").unwrap();
        let p = Path::new("customers/acme.toml");
        let err = f.parse_customer(&n, p, "git_id = \"x\"\nenv = \"qa\"\n").unwrap_err().to_string();
        assert!(err.contains("customers/acme.toml") && err.contains("line 2") && err.contains("qa"), "{err}");
        let err = f.parse_customer(&n, p, "region = \"eu-west-1\"\n").unwrap_err().to_string();
        assert!(err.contains("git_id"), "{err}");
        let err = f.parse_customer(&n, p, "git_id = \"x\"\n[vpc]\nvar = {a=1}\n").unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("var"), "{err}");
        let err = f.parse_customer(&n, p, "git_id = \"--upload-pack=x\"\n").unwrap_err().to_string();
        assert!(err.contains("git_id"), "{err}");
        let err = f.parse_customer(&n, p, "git_id = \"x\"\n[app]\npuma_workers = 0\n").unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("puma_workers"), "{err}");
    }

    #[test]
    fn values_written_into_generated_code_are_checked_for_it() {
        let dir = Path::new("/x/fleet");
        for ok in [
            "https://github.com/aircall/devops-test.git",
            "ssh://git@host:22/org/app.git",
            "git@github.com:org/app.git",
            "file:///srv/app.git",
        ] {
            assert_eq!(check_app_repo(ok, dir).as_deref(), Ok(ok), "{ok}");
        }
        assert_eq!(check_app_repo("../app.git", dir).unwrap(), "/x/app.git");
        assert_eq!(check_app_repo("/srv/git/app", dir).unwrap(), "/srv/git/app");
        for (bad, why) in [
            ("--upload-pack=touch /tmp/pwned", "starts with `-`"),
            ("-oProxyCommand=x", "starts with `-`"),
            ("ext::sh -c touch% /tmp/pwned", "` ` is not allowed"),
            ("ext::sh", "`<transport>::<address>`"),
            ("http://example.com/app.git", "not encrypted"),
            ("git://example.com/app.git", "not encrypted"),
            ("ftp://example.com/app.git", "scheme `ftp://`"),
            ("https://x/<%= `id` %>", "`<` is not allowed"),
            ("https://x/\"; system(1)", "`\\\"` is not allowed"),
            ("https://x/#{`id`}", "`#` is not allowed"),
            ("file://relative", "absolute path"),
            ("", "it is empty"),
        ] {
            let err = check_app_repo(bad, dir).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        for ok in ["/srv/app", "/home/app/current", "/opt/app-1.2_b"] {
            assert_eq!(check_app_dir(ok).as_deref(), Ok(ok));
        }
        for (bad, why) in [
            ("srv/app", "not absolute"),
            ("/srv/#{`touch /tmp/pwned`}", "`#` is not allowed"),
            ("/srv/<%= 1 %>", "`<` is not allowed"),
            ("/srv/app; rm -rf /", "`;` is not allowed"),
            ("/srv/\"app", "`\\\"` is not allowed"),
            ("/srv/../etc", "`..` part"),
            ("/", "is `/`"),
            ("/srv/app/", "ends with `/`"),
        ] {
            let err = check_app_dir(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        for ok in ["_", "example.com", "example.com www.example.com", "*.example.org .example.net mail.*", "localhost"] {
            assert_eq!(check_server_name(ok).as_deref(), Ok(ok));
        }
        for (bad, why) in [
            ("example.com; return 301 https://evil", "`example.com;` is not a host name"),
            ("a.example.com\ninclude /etc/passwd", "is not a host name"),
            ("~^(?<x>.+)$", "is not a host name"),
            ("a  b", "two spaces"),
            ("", "empty"),
            ("-bad.example.com", "is not a host name"),
        ] {
            let err = check_server_name(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        for ok in ["master", "main", "v1.2.3", "release/2024-01", "refs/heads/main", "0123456789abcdef0123456789abcdef01234567"] {
            assert_eq!(check_git_id(ok).as_deref(), Ok(ok));
        }
        for (bad, why) in [
            ("v1..v2", "`..`"),
            ("HEAD@{1}", "`@` is not allowed"),
            ("-x", "starts with `-`"),
            ("feature.lock", "`.lock`"),
            ("feature/.hidden", "starts with `.`"),
            ("a//b", "empty part"),
            ("v1.", "ending with `.`"),
            ("v1 v2", "` ` is not allowed"),
        ] {
            let err = check_git_id(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_hostile_app_value_names_the_file_line_and_key() {
        let f = fleet("").unwrap();
        let n = CustomerName::parse("acme").unwrap();
        let p = Path::new("/x/customers/acme.toml");
        let err = f.parse_customer(&n, p, "git_id = \"v1\"\n[app]\nserver_name = \"x; include /etc/passwd\"\n").unwrap_err().to_string();
        assert!(err.contains("/x/customers/acme.toml: line 3") && err.contains("[app] server_name"), "{err}");
        let err = f.parse_customer(&n, p, "git_id = \"v1\"\napp_repo = \"--upload-pack=x\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("app_repo") && err.contains("https://"), "{err}");
        let err = fleet("[app]\ndir = \"/srv/#{x}\"\n").unwrap_err().to_string();
        assert!(err.contains("/x/stamp.toml: line 2") && err.contains("[app] dir"), "{err}");
        let c = f.parse_customer(&n, p, "git_id = \"v1\"\napp_repo = \"../app\"\n").unwrap();
        assert_eq!(c.app_repo, "/x/app", "a local path is relative to the file that names it");
    }

    #[test]
    fn secrets_name_their_source_and_the_customer_wins() {
        let f = fleet("[secrets]\ndb_password = { env = \"FLEET_DB\" }\ntoken = { file = \"keys/token\" }\n").unwrap();
        assert_eq!(f.secrets["db_password"], SecretSource { from: SecretFrom::Env("FLEET_DB".into()), origin: "/x/stamp.toml:2".into() });
        assert_eq!(f.secrets["token"].from, SecretFrom::File("/x/keys/token".into()));
        let n = CustomerName::parse("acme").unwrap();
        let c = f
            .parse_customer(&n, Path::new("/x/customers/acme.toml"), "git_id = \"v1\"\n[secrets]\ndb_password = { env = \"ACME_DB\" }\n")
            .unwrap();
        assert_eq!(c.secrets["db_password"].from, SecretFrom::Env("ACME_DB".into()));
        assert_eq!(c.secrets["db_password"].origin, "/x/customers/acme.toml:3");
        assert_eq!(c.secrets["token"].from, SecretFrom::File("/x/keys/token".into()));
    }

    #[test]
    fn bad_secrets_name_file_line_key_and_the_accepted_shapes() {
        let shapes = "{ env = \"ENV_VAR\" }";
        for (text, says) in [
            ("[secrets]\ndb = \"hunter2\"\n", "found a string (a secret's value is never written"),
            ("[secrets]\ndb = { env = \"A\", extra = 1 }\n", "unknown key `extra`"),
            ("[secrets]\ndb = { env = \"A\", file = \"b\" }\n", "both `env` and `file`"),
            ("[secrets]\ndb = {}\n", "empty table"),
            ("[secrets]\ndb = { env = 5 }\n", "non-empty string"),
            ("[secrets]\ndb = { file = \"\" }\n", "non-empty string"),
            ("[secrets]\ndb = { env = \"hunter2-pass\" }\n", "is not an environment variable name"),
        ] {
            let err = fleet(text).unwrap_err().to_string();
            assert!(err.contains("/x/stamp.toml") && err.contains("line 2") && err.contains("[secrets] `db`"), "{err}");
            assert!(err.contains(says), "{text}: {err}");
            assert!(!err.contains("hunter2"), "the value is not echoed: {err}");
            if !says.contains("environment variable name") {
                assert!(err.contains(shapes), "{err}");
            }
        }
        let err = fleet("[secrets]\n\"db password\" = { env = \"A\" }\n").unwrap_err().to_string();
        assert!(err.contains("is not a variable name"), "{err}");
    }

    #[test]
    fn smoke_defaults_fleet_values_and_customer_overrides() {
        let n = CustomerName::parse("acme").unwrap();
        let p = Path::new("/x/customers/acme.toml");
        let c = fleet("").unwrap().parse_customer(&n, p, "git_id = \"v1\"\n").unwrap();
        assert_eq!(c.smoke, SmokeSettings { enabled: true, path: "/".into(), timeout: DEFAULT_SMOKE_TIMEOUT, disabled_at: None });
        let f = fleet("[smoke]\npath = \"/health\"\ntimeout = \"2m\"\n").unwrap();
        let c = f.parse_customer(&n, p, "git_id = \"v1\"\n").unwrap();
        assert_eq!((c.smoke.path.as_str(), c.smoke.timeout), ("/health", Duration::from_secs(120)));
        let c = f.parse_customer(&n, p, "git_id = \"v1\"\n[smoke]\ntimeout = 30\n\nenabled = false\n").unwrap();
        assert_eq!((c.smoke.path.as_str(), c.smoke.timeout, c.smoke.enabled), ("/health", Duration::from_secs(30), false));
        assert_eq!(c.smoke.disabled_at.as_deref(), Some("/x/customers/acme.toml:5"));
    }

    #[test]
    fn smoke_timeout_parses_durations_and_seconds() {
        let t = |v: toml::Value| parse_smoke_timeout(&v);
        assert_eq!(t("5m".into()), Ok(Duration::from_secs(300)));
        assert_eq!(t("1m 30s".into()), Ok(Duration::from_secs(90)));
        assert_eq!(t(" 3s ".into()), Ok(Duration::from_secs(3)));
        assert_eq!(t(45.into()), Ok(Duration::from_secs(45)));
        assert!(t("soon".into()).unwrap_err().contains("`soon` is not a duration"));
        assert!(t("500ms".into()).unwrap_err().contains("from 1s to 1h"));
        assert!(t("2h".into()).unwrap_err().contains("from 1s to 1h"));
        assert!(t(0.into()).unwrap_err().contains("out of range"));
        assert!(t((-5).into()).unwrap_err().contains("number of seconds"));
        assert!(t(true.into()).unwrap_err().contains("found boolean"));
    }

    #[test]
    fn bad_smoke_settings_name_file_line_and_key() {
        let err = fleet("[smoke]\npath = \"health\"\n").unwrap_err().to_string();
        assert!(err.contains("/x/stamp.toml: line 2") && err.contains("[smoke] path") && err.contains("start with `/`"), "{err}");
        let err = fleet("[smoke]\ntimeout = \"five minutes\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("[smoke] timeout"), "{err}");
        let err = fleet("[smoke]\nenabled = \"no\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("enabled") && err.contains("bool"), "{err}");
        let err = fleet("[smoke]\nurl = \"http://x\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("url") && err.contains("`enabled`, `path`, `timeout`"), "{err}");
        let f = fleet("").unwrap();
        let n = CustomerName::parse("acme").unwrap();
        let err = f.parse_customer(&n, Path::new("customers/acme.toml"), "git_id = \"v1\"\n[smoke]\npath = \"/a b\"\n").unwrap_err();
        assert!(err.to_string().contains("customers/acme.toml: line 3") && err.to_string().contains("[smoke] path"), "{err}");
    }
}
