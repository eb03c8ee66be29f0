//! Terraform stacks: the per-customer working copy, what a stack declares (read with
//! an HCL parser, so stamp passes only the inputs a stack has), the `-json` event
//! stream (plan summary, apply progress, diagnostics) and `output -json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::ConfigError;

/// Files stamp writes into a working copy; never copied from nor deleted as stale.
pub const GENERATED_PREFIX: &str = "stamp";
pub const TFVARS_FILE: &str = "stamp.tfvars.json";
pub const BACKEND_FILE: &str = "stamp_backend.tf";
pub const BACKEND_PARTIAL_FILE: &str = "stamp.s3.tfbackend";
pub const REMOTE_STATE_FILE: &str = "stamp_remote_state.tf";
pub const PLAN_FILE: &str = "stamp.tfplan";

/// What a stack declares, as far as stamp cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackInfo {
    pub variables: BTreeSet<String>,
    /// Variables without a default: stamp must be able to set them.
    pub required: BTreeSet<String>,
    pub outputs: BTreeSet<String>,
    /// The backend type when the stack declares one itself (a partial backend).
    pub backend: Option<String>,
    pub declares_remote_state_vpc: bool,
    /// Each variable's declared `type`, where it has one stamp can check a value against.
    pub types: BTreeMap<String, VarType>,
}

/// The kind of value a variable's `type` accepts, as far as a value in a TOML file
/// can be checked before Terraform runs (Terraform converts between primitives the
/// same way: a number or bool is a fine string, "2" a fine number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarType {
    String,
    Number,
    Bool,
    /// list(...), set(...), tuple([...])
    List,
    /// map(...), object({...})
    Map,
}

impl VarType {
    /// From a type constraint's text (`string`, `list(string)`, `object({...})`);
    /// `None` for `any` and what stamp does not check.
    pub fn from_text(t: &str) -> Option<Self> {
        let t = t.trim();
        let head = t.split('(').next().unwrap_or_default().trim();
        match head {
            "string" => Some(Self::String),
            "number" => Some(Self::Number),
            "bool" => Some(Self::Bool),
            "list" | "set" | "tuple" => Some(Self::List),
            "map" | "object" => Some(Self::Map),
            _ => None,
        }
    }

    fn from_hcl(e: &hcl::Expression) -> Option<Self> {
        match e {
            hcl::Expression::Variable(v) => Self::from_text(v.as_str()),
            hcl::Expression::FuncCall(f) => Self::from_text(&format!("{}(", f.name.name.as_str())),
            _ => None,
        }
    }

    /// Whether Terraform would accept `v` for a variable of this type; the error
    /// says what it expects.
    pub fn check(self, v: &Value) -> Result<(), String> {
        let ok = match (self, v) {
            (Self::String, Value::String(_) | Value::Number(_) | Value::Bool(_)) => true,
            (Self::Number, Value::Number(_)) => true,
            (Self::Number, Value::String(s)) => s.trim().parse::<f64>().is_ok(),
            (Self::Bool, Value::Bool(_)) => true,
            (Self::Bool, Value::String(s)) => s == "true" || s == "false",
            (Self::List, Value::Array(_)) => true,
            (Self::Map, Value::Object(_)) => true,
            _ => false,
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Self::String => "expected a string".into(),
            Self::Number => "expected a number, such as 2 or 0.5".into(),
            Self::Bool => "expected true or false".into(),
            Self::List => "expected a list, such as [\"a\", \"b\"]".into(),
            Self::Map => "expected a table, such as { key = \"value\" }".into(),
        })
    }
}

impl StackInfo {
    /// Reads every `*.tf` and `*.tf.json` at the top of `dir` (not modules: their
    /// variables are not the stack's inputs). Files stamp generates are skipped.
    pub fn read(dir: &Path) -> Result<Self, ConfigError> {
        let mut info = StackInfo::default();
        let entries = std::fs::read_dir(dir).map_err(|e| ConfigError::new(dir, format!("cannot read the stack directory: {e}")))?;
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        let mut any = false;
        for path in files {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if name.starts_with(GENERATED_PREFIX) || !path.is_file() {
                continue;
            }
            if name.ends_with(".tf") {
                any = true;
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::new(&path, e.to_string()))?;
                info.add_hcl(&path, &text)?;
            } else if name.ends_with(".tf.json") {
                any = true;
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::new(&path, e.to_string()))?;
                let v: Value = serde_json::from_str(&text).map_err(|e| ConfigError::new(&path, format!("not valid JSON: {e}")))?;
                info.add_json(&v);
            }
        }
        if !any {
            return Err(ConfigError::new(dir, "holds no Terraform files (*.tf)".into()));
        }
        Ok(info)
    }

    fn add_hcl(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let body: hcl::Body = hcl::from_str(text).map_err(|e| ConfigError::new(path, format!("cannot be parsed as HCL: {e}")))?;
        for block in body.blocks() {
            let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
            match (block.identifier(), labels.as_slice()) {
                ("variable", [name]) => {
                    self.variables.insert(name.to_string());
                    if let Some(t) = block.body().attributes().find(|a| a.key() == "type").and_then(|a| VarType::from_hcl(a.expr())) {
                        self.types.insert(name.to_string(), t);
                    }
                    if !block.body().attributes().any(|a| a.key() == "default") {
                        self.required.insert(name.to_string());
                    }
                }
                ("output", [name]) => {
                    self.outputs.insert(name.to_string());
                }
                ("data", ["terraform_remote_state", "vpc"]) => self.declares_remote_state_vpc = true,
                ("terraform", []) => {
                    for inner in block.body().blocks() {
                        if inner.identifier() == "backend" {
                            self.backend = inner.labels().first().map(|l| l.as_str().to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn add_json(&mut self, v: &Value) {
        // JSON syntax allows an object or an array of objects at each level.
        fn objects(v: &Value) -> Vec<&serde_json::Map<String, Value>> {
            match v {
                Value::Object(m) => vec![m],
                Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
                _ => vec![],
            }
        }
        for vars in v.get("variable").map(objects).unwrap_or_default() {
            for (name, body) in vars {
                self.variables.insert(name.clone());
                if let Some(t) = objects(body).iter().find_map(|b| b.get("type").and_then(Value::as_str).and_then(VarType::from_text)) {
                    self.types.insert(name.clone(), t);
                }
                let has_default = objects(body).iter().any(|b| b.contains_key("default"));
                if !has_default {
                    self.required.insert(name.clone());
                }
            }
        }
        for outs in v.get("output").map(objects).unwrap_or_default() {
            self.outputs.extend(outs.keys().cloned());
        }
        for data in v.get("data").map(objects).unwrap_or_default() {
            if let Some(rs) = data.get("terraform_remote_state")
                && objects(rs).iter().any(|m| m.contains_key("vpc"))
            {
                self.declares_remote_state_vpc = true;
            }
        }
        for tf in v.get("terraform").map(objects).unwrap_or_default() {
            for b in tf.get("backend").map(objects).unwrap_or_default() {
                self.backend = b.keys().next().cloned();
            }
        }
    }
}

/// Copies `from` to `to` through a temporary file beside `to` and a rename, with
/// `from`'s permissions (a script stays executable): a killed run leaves the old
/// file or the new one in a working copy, never half of one.
pub fn copy_atomic(from: &Path, to: &Path) -> std::io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut src = std::fs::File::open(from)?;
    std::io::copy(&mut src, tmp.as_file_mut())?;
    tmp.as_file().set_permissions(src.metadata()?.permissions())?;
    tmp.persist(to).map_err(|e| e.error)?;
    Ok(())
}

/// Makes `dest` a copy of `src` (a whole `terraform/` tree, so relative module
/// sources keep working), keeping what Terraform and stamp put there: `.terraform/`,
/// lock files written by init, generated `stamp*` files, plans. Stale `*.tf` files
/// (deleted from the source) are removed so they cannot linger in the config.
pub fn sync_tree(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_s = name.to_string_lossy().to_string();
        if name_s == ".terraform" || name_s.starts_with("terraform.tfstate") || name_s.starts_with(GENERATED_PREFIX) {
            continue;
        }
        seen.insert(name_s.clone());
        let from = entry.path();
        let to = dest.join(&name);
        let ft = entry.file_type()?;
        if ft.is_dir() || (ft.is_symlink() && from.is_dir()) {
            sync_tree(&from, &to)?;
        } else {
            let same = std::fs::read(&to).ok().is_some_and(|old| std::fs::read(&from).is_ok_and(|new| new == old));
            if !same {
                copy_atomic(&from, &to)?;
            }
        }
    }
    for entry in std::fs::read_dir(dest)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let is_config = name.ends_with(".tf") || name.ends_with(".tf.json");
        if is_config && !seen.contains(&name) && !name.starts_with(GENERATED_PREFIX) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// One event of terraform's `-json` machine-readable UI.
#[derive(Debug, Clone, PartialEq)]
pub enum TfEvent {
    ChangeSummary {
        add: u64,
        change: u64,
        remove: u64,
        operation: String,
    },
    PlannedChange {
        address: String,
        action: String,
    },
    ApplyStart {
        address: String,
    },
    /// Terraform's "Still creating... [1m30s elapsed]", every 10 s of a long resource.
    ApplyProgress {
        address: String,
        action: String,
        elapsed_secs: u64,
    },
    ApplyComplete {
        address: String,
    },
    ApplyErrored {
        address: String,
    },
    Diagnostic {
        severity: String,
        summary: String,
        detail: String,
    },
    Other {
        message: String,
    },
}

pub fn parse_event(line: &str) -> Option<TfEvent> {
    let v: Value = serde_json::from_str(line).ok()?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let addr = |v: &Value| v.get("hook").and_then(|h| h.get("resource")).map(|r| s(r, "addr")).unwrap_or_default();
    Some(match v.get("type").and_then(Value::as_str)? {
        "change_summary" => {
            let c = v.get("changes")?;
            TfEvent::ChangeSummary { add: n(c, "add"), change: n(c, "change"), remove: n(c, "remove"), operation: s(c, "operation") }
        }
        "planned_change" => {
            let c = v.get("change")?;
            let address = c.get("resource").map(|r| s(r, "addr")).unwrap_or_default();
            TfEvent::PlannedChange { address, action: s(c, "action") }
        }
        "apply_start" => TfEvent::ApplyStart { address: addr(&v) },
        "apply_progress" => {
            let h = v.get("hook")?;
            TfEvent::ApplyProgress { address: addr(&v), action: s(h, "action"), elapsed_secs: n(h, "elapsed_seconds") }
        }
        "apply_complete" => TfEvent::ApplyComplete { address: addr(&v) },
        "apply_errored" => TfEvent::ApplyErrored { address: addr(&v) },
        "diagnostic" => {
            let d = v.get("diagnostic")?;
            TfEvent::Diagnostic { severity: s(d, "severity"), summary: s(d, "summary"), detail: s(d, "detail") }
        }
        _ => TfEvent::Other { message: s(&v, "@message") },
    })
}

/// A diagnostic as a human reads it, for failure summaries.
pub fn diagnostic_text(severity: &str, summary: &str, detail: &str) -> String {
    let mut s = format!("{severity}: {summary}");
    if !detail.is_empty() {
        s.push_str(" — ");
        s.push_str(&detail.replace('\n', " "));
    }
    s
}

/// One output value of `terraform output -json` or of a state file's `outputs`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutputValue {
    pub value: Value,
    pub sensitive: bool,
}

pub type Outputs = BTreeMap<String, OutputValue>;

/// Parses `{"name": {"value": ..., "sensitive": bool, "type": ...}}`.
pub fn parse_outputs(json: &str) -> Result<Outputs, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("outputs are not JSON: {e}"))?;
    let obj = v.as_object().ok_or("outputs are not a JSON object")?;
    Ok(obj
        .iter()
        .map(|(k, o)| {
            let value = o.get("value").cloned().unwrap_or(Value::Null);
            let sensitive = o.get("sensitive").and_then(Value::as_bool).unwrap_or(false);
            (k.clone(), OutputValue { value, sensitive })
        })
        .collect())
}

/// The root outputs held in a state file (format version 4).
pub fn outputs_from_state(state: &str) -> Result<Outputs, String> {
    let v: Value = serde_json::from_str(state).map_err(|e| format!("state is not JSON: {e}"))?;
    match v.get("outputs") {
        Some(o) => parse_outputs(&o.to_string()),
        None => Ok(Outputs::new()),
    }
}

/// How many managed resources a state file holds (data sources do not count:
/// there is nothing to destroy behind them).
pub fn state_resource_count(state: &str) -> Result<usize, String> {
    let v: Value = serde_json::from_str(state).map_err(|e| format!("state is not JSON: {e}"))?;
    Ok(v.get("resources")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|r| r.get("mode").and_then(Value::as_str) == Some("managed")).count())
        .unwrap_or(0))
}

/// What terraform waits for while a resource of this type is being applied (the
/// provider polls AWS until then), for the log of a resource that takes long.
pub fn waiting_for(address: &str, action: &str) -> String {
    let ty = address.rsplit('.').nth(1).unwrap_or_default();
    let deleting = action == "delete";
    let what = match (ty, deleting) {
        ("aws_db_instance", false) => {
            "the RDS instance to report `available` (creation, backups and monitoring set-up take minutes on AWS)"
        }
        ("aws_db_instance", true) => "the RDS instance to be deleted (after its final snapshot)",
        ("aws_autoscaling_group", false) => "the auto-scaling group's instances to be InService, or its instance refresh to finish",
        ("aws_autoscaling_group", true) => "the auto-scaling group's instances to terminate",
        ("aws_lb", false) => "the load balancer to become `active`",
        ("aws_nat_gateway", _) => "the NAT gateway to change state",
        ("aws_kms_key", true) => "the KMS key to be scheduled for deletion",
        (_, true) => "AWS to confirm the deletion",
        _ => "AWS to report the resource ready",
    };
    let verb = match action {
        "create" => "creating",
        "update" => "updating",
        "delete" => "destroying",
        "read" => "reading",
        other => other,
    };
    format!("terraform is still {verb} {address}: it waits for {what}")
}

/// A resource in a state that refuses deletion while its protection is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protected {
    /// An RDS instance (`deletion_protection`), by identifier.
    Database { identifier: String },
    /// A load balancer (`enable_deletion_protection`), by ARN.
    LoadBalancer { arn: String },
}

/// The resources of a state file that were applied with deletion protection on.
pub fn protected_resources(state: &str) -> Result<Vec<Protected>, String> {
    let v: Value = serde_json::from_str(state).map_err(|e| format!("state is not JSON: {e}"))?;
    let mut found = Vec::new();
    for r in v.get("resources").and_then(Value::as_array).into_iter().flatten() {
        if r.get("mode").and_then(Value::as_str) != Some("managed") {
            continue;
        }
        let ty = r.get("type").and_then(Value::as_str).unwrap_or_default();
        for i in r.get("instances").and_then(Value::as_array).into_iter().flatten() {
            let a = &i["attributes"];
            let on = |k: &str| a.get(k).and_then(Value::as_bool).unwrap_or(false);
            let text = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            match ty {
                "aws_db_instance" if on("deletion_protection") => found.push(Protected::Database { identifier: text("identifier") }),
                "aws_lb" | "aws_alb" if on("enable_deletion_protection") => found.push(Protected::LoadBalancer { arn: text("arn") }),
                _ => {}
            }
        }
    }
    Ok(found)
}

pub fn describe_changes(add: u64, change: u64, remove: u64) -> String {
    if add + change + remove == 0 { "no changes".into() } else { format!("{add} to add, {change} to change, {remove} to destroy") }
}

/// Names the root of an unpacked provider mirror (Terraform's filesystem-mirror layout).
pub const MIRROR_VAR: &str = "STAMP_TF_PROVIDER_MIRROR";

/// Roots where machines ship an unpacked hashicorp/aws mirror, searched in order
/// when `STAMP_TF_PROVIDER_MIRROR` is not set (scripts/provider-mirror.sh searches
/// the same, then deeper).
const MIRROR_ROOTS: [&str; 4] =
    ["/opt/tf-plugins", "/opt/terraform/plugins", "/usr/local/share/terraform/plugins", "/usr/share/terraform/plugins"];

/// Whether `root` holds registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_v*.
pub fn mirror_holds_aws(root: &Path) -> bool {
    let Ok(versions) = std::fs::read_dir(root.join("registry.terraform.io/hashicorp/aws")) else { return false };
    versions.flatten().filter_map(|v| std::fs::read_dir(v.path()).ok()).flat_map(|p| p.flatten()).any(|platform| {
        std::fs::read_dir(platform.path())
            .map(|files| files.flatten().any(|f| f.file_name().to_string_lossy().starts_with("terraform-provider-aws_v")))
            .unwrap_or(false)
    })
}

/// The hashicorp/aws mirror to install from: `STAMP_TF_PROVIDER_MIRROR` (an error
/// when it holds no provider), else the first of the usual roots that holds one.
pub fn provider_mirror() -> Result<Option<PathBuf>, crate::error::Error> {
    if let Some(dir) = std::env::var_os(MIRROR_VAR).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if mirror_holds_aws(&dir) {
            return Ok(Some(dir));
        }
        return Err(crate::error::Error::usage_hint(
            format!("{MIRROR_VAR}={}: holds no hashicorp/aws provider", dir.display()),
            "it must be the root of a filesystem mirror: ROOT/registry.terraform.io/hashicorp/aws/<version>/<os>_<arch>/terraform-provider-aws_v*; unset it to download providers",
        ));
    }
    Ok(MIRROR_ROOTS.iter().map(PathBuf::from).find(|d| mirror_holds_aws(d)))
}

/// The CLI configuration stamp writes when the user has none: hashicorp/aws from
/// `mirror` and every other provider directly; empty (download as usual) without one.
pub fn cli_config_text(mirror: Option<&Path>) -> String {
    let mut text = String::from("# Written by stamp: the user has no Terraform CLI configuration (README: Environment variables).\n");
    if let Some(m) = mirror {
        let path = serde_json::to_string(&m.display().to_string()).unwrap_or_default();
        text.push_str(&format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = {path}\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n}}\n"
        ));
    }
    text
}

/// Which CLI configuration terraform runs with. The user's own wins: an existing
/// `TF_CLI_CONFIG_FILE` (or its legacy name `TERRAFORM_CONFIG`), else `~/.terraformrc`;
/// then `None` (nothing to set). Otherwise (none, or a variable naming a file that
/// does not exist) stamp writes `<work_root>/terraformrc` with `cli_config_text`.
pub fn cli_config(work_root: &Path) -> Result<Option<PathBuf>, crate::error::Error> {
    let named = ["TF_CLI_CONFIG_FILE", "TERRAFORM_CONFIG"].iter().find_map(|k| std::env::var_os(k).filter(|v| !v.is_empty()));
    match named.map(PathBuf::from) {
        Some(p) if p.is_file() => return Ok(None),
        Some(_) => {}
        None => {
            if std::env::var_os("HOME").is_some_and(|h| Path::new(&h).join(".terraformrc").is_file()) {
                return Ok(None);
            }
        }
    }
    let rc = work_root.join("terraformrc");
    let text = cli_config_text(provider_mirror()?.as_deref());
    if std::fs::read_to_string(&rc).ok().as_deref() != Some(text.as_str()) {
        crate::customer::pipeline::write_atomic(&rc, &text)?;
    }
    Ok(Some(rc))
}

#[cfg(test)]
mod tests {

    #[test]
    fn variable_types_accept_what_terraform_converts() {
        let info = {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join("v.tf"),
                "variable \"n\" {\n  type = number\n}\nvariable \"l\" {\n  type = list(string)\n}\nvariable \"a\" {\n  type = any\n}\n",
            )
            .unwrap();
            StackInfo::read(dir.path()).unwrap()
        };
        assert_eq!(info.types.get("n"), Some(&VarType::Number));
        assert_eq!(info.types.get("l"), Some(&VarType::List));
        assert_eq!(info.types.get("a"), None);
        assert!(VarType::Number.check(&serde_json::json!("2")).is_ok());
        assert!(VarType::Number.check(&serde_json::json!("two")).unwrap_err().contains("expected a number"));
        assert!(VarType::String.check(&serde_json::json!(3)).is_ok());
        assert!(VarType::String.check(&serde_json::json!(["a"])).is_err());
        assert!(VarType::Bool.check(&serde_json::json!("yes")).is_err());
        assert!(VarType::Map.check(&serde_json::json!({"a": 1})).is_ok());
    }
    use super::*;

    #[test]
    fn stack_info_reads_variables_outputs_backend() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.tf"),
            r#"
terraform {
  required_version = ">= 1.6"
  backend "s3" {}
}
variable "customer" { type = string }
variable "cidr_block" {
  type    = string
  default = "10.0.0.0/16"
}
/* variable "commented" {} */
output "vpc_id" { value = "x" }
data "terraform_remote_state" "vpc" {
  backend = "s3"
  config = {}
}
"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("extra.tf.json"), r#"{"variable": {"region": {"type": "string"}}, "output": {"o": {"value": 1}}}"#)
            .unwrap();
        std::fs::write(dir.path().join("stamp_backend.tf"), "this is not parsed").unwrap();
        let info = StackInfo::read(dir.path()).unwrap();
        assert_eq!(info.variables, ["cidr_block", "customer", "region"].map(String::from).into());
        assert_eq!(info.required, ["customer", "region"].map(String::from).into());
        assert_eq!(info.outputs, ["o", "vpc_id"].map(String::from).into());
        assert_eq!(info.backend.as_deref(), Some("s3"));
        assert!(info.declares_remote_state_vpc);
    }

    #[test]
    fn stack_info_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(StackInfo::read(dir.path()).unwrap_err().to_string().contains("no Terraform files"));
        std::fs::write(dir.path().join("bad.tf"), "variable \"x\" {").unwrap();
        let err = StackInfo::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad.tf"), "{err}");
    }

    #[test]
    fn sync_keeps_terraform_dir_and_removes_stale_config() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("vpc")).unwrap();
        std::fs::write(src.path().join("vpc/main.tf"), "# v1").unwrap();
        std::fs::write(src.path().join("vpc/old.tf"), "# old").unwrap();
        sync_tree(src.path(), dst.path()).unwrap();
        std::fs::create_dir_all(dst.path().join("vpc/.terraform")).unwrap();
        std::fs::write(dst.path().join("vpc/stamp_backend.tf"), "# gen").unwrap();
        std::fs::remove_file(src.path().join("vpc/old.tf")).unwrap();
        std::fs::write(src.path().join("vpc/main.tf"), "# v2").unwrap();
        sync_tree(src.path(), dst.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dst.path().join("vpc/main.tf")).unwrap(), "# v2");
        assert!(!dst.path().join("vpc/old.tf").exists());
        assert!(dst.path().join("vpc/.terraform").is_dir());
        assert!(dst.path().join("vpc/stamp_backend.tf").exists());
    }

    #[test]
    fn parses_captured_terraform_json_stream() {
        let text = include_str!("../../tests/fixtures/terraform-apply.jsonl");
        let events: Vec<TfEvent> = text.lines().filter_map(parse_event).collect();
        let summary = events.iter().find_map(|e| match e {
            TfEvent::ChangeSummary { add, change, remove, operation } => Some((*add, *change, *remove, operation.clone())),
            _ => None,
        });
        let (add, _, _, op) = summary.expect("a change summary");
        assert_eq!(op, "apply");
        let complete = events.iter().filter(|e| matches!(e, TfEvent::ApplyComplete { .. })).count() as u64;
        assert_eq!(complete, add);
        let plan = include_str!("../../tests/fixtures/terraform-plan.jsonl");
        let planned = plan.lines().filter_map(parse_event).filter(|e| matches!(e, TfEvent::PlannedChange { .. })).count();
        assert!(planned > 0);
        let failed = include_str!("../../tests/fixtures/terraform-plan-error.jsonl");
        let diag = failed.lines().filter_map(parse_event).find_map(|e| match e {
            TfEvent::Diagnostic { severity, summary, .. } if severity == "error" => Some(summary),
            _ => None,
        });
        assert!(diag.is_some());
    }

    #[test]
    fn parses_outputs_and_state() {
        let o = parse_outputs(include_str!("../../tests/fixtures/terraform-output.json")).unwrap();
        assert!(o.contains_key("vpc_id"));
        assert!(o["public_subnet_ids"].value.is_array());
        let s =
            outputs_from_state(r#"{"version":4,"outputs":{"a":{"value":"x","type":"string","sensitive":true}},"resources":[{}]}"#).unwrap();
        assert_eq!(s["a"], OutputValue { value: Value::from("x"), sensitive: true });
        assert_eq!(state_resource_count(r#"{"version":4,"resources":[]}"#).unwrap(), 0);
        assert_eq!(state_resource_count(r#"{"resources":[{"mode":"data"},{"mode":"managed"}]}"#).unwrap(), 1);
        assert_eq!(describe_changes(1, 0, 2), "1 to add, 0 to change, 2 to destroy");
    }

    #[test]
    fn cli_config_takes_only_hashicorp_aws_from_the_mirror() {
        let text = cli_config_text(Some(Path::new("/opt/tf plugins")));
        assert!(text.contains("path    = \"/opt/tf plugins\""), "{text}");
        assert!(text.contains("include = [\"registry.terraform.io/hashicorp/aws\"]"));
        assert!(text.contains("exclude = [\"registry.terraform.io/hashicorp/aws\"]"));
        assert!(!cli_config_text(None).contains("provider_installation"));
    }

    #[test]
    fn a_mirror_must_hold_the_provider_in_the_filesystem_mirror_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!mirror_holds_aws(dir.path()));
        let platform = dir.path().join("registry.terraform.io/hashicorp/aws/5.100.0/linux_amd64");
        std::fs::create_dir_all(&platform).unwrap();
        assert!(!mirror_holds_aws(dir.path()));
        std::fs::write(platform.join("terraform-provider-aws_v5.100.0_x5"), "").unwrap();
        assert!(mirror_holds_aws(dir.path()));
    }

    #[test]
    fn long_applies_say_what_terraform_waits_for() {
        let t = waiting_for("module.frontend.aws_db_instance.this", "create");
        assert!(t.starts_with("terraform is still creating module.frontend.aws_db_instance.this: it waits for the RDS instance"), "{t}");
        assert!(waiting_for("aws_autoscaling_group.app", "update").contains("instance refresh"));
        assert!(waiting_for("aws_vpc.this", "delete").contains("deletion"));
        let ev = parse_event(
            r#"{"@message":"x: Still creating... [1m0s elapsed]","type":"apply_progress","hook":{"resource":{"addr":"aws_lb.this"},"action":"create","elapsed_seconds":60}}"#,
        );
        assert_eq!(ev, Some(TfEvent::ApplyProgress { address: "aws_lb.this".into(), action: "create".into(), elapsed_secs: 60 }));
    }
}
