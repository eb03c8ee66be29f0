//! A stack's inputs: the working copy, the backend, the variables (the vpc's outputs
//! and the AMI for the frontends), and the sensitive ones announced before use.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::error::Error;
use crate::events::Stage;
use crate::names::{AmiId, BucketName};
use crate::render::{self, Backend};
use crate::stages::contract::{StageContext, VpcOutputs};
use crate::tools::terraform::{self, Outputs};

pub(crate) fn sync_working_copy(p: &StageContext) -> Result<(), Error> {
    let dest = p.work.join("terraform");
    let src = &p.ctx.fleet.paths.terraform;
    terraform::sync_tree(src, &dest).map_err(|e| Error::work_dir(format!("copying {} to {}", src.display(), dest.display()), e))
}

pub(super) fn backend(p: &StageContext, bucket: &BucketName, key: &str) -> Backend {
    let fleet = &p.ctx.fleet;
    Backend {
        bucket: bucket.to_string(),
        key: key.to_owned(),
        region: p.plan.customer.region.to_string(),
        endpoint: fleet.aws.endpoint.clone(),
        profile: fleet.aws.profile.clone(),
    }
}

/// A sensitive input of a stack: a `[secrets]` value, or any value of a variable
/// the stack declares `sensitive = true`. Terraform gets it as `TF_VAR_<name>`.
pub(crate) struct SensitiveInput {
    pub name: String,
    /// As Terraform reads it from the environment (`terraform::tf_var_env_value`).
    pub(super) env_value: String,
    /// What the printed command shows instead of the value.
    pub(super) shown: String,
    /// The strings it could be printed as (announced as secrets).
    pub(super) leaves: Vec<String>,
}

/// A stack's inputs: those written to the generated tfvars file, and the sensitive ones.
pub(super) struct StackInputs {
    pub(super) file: BTreeMap<String, Value>,
    pub(super) sensitive: Vec<SensitiveInput>,
}

/// The inputs of a stack, split: the sensitive ones never go into a file.
pub(super) fn stack_inputs(p: &StageContext, stage: Stage, upstream: Option<(&VpcOutputs, &AmiId)>) -> Result<StackInputs, Error> {
    let job = p.plan.job(stage);
    let (_, extra) = crate::customer::plan::stage_vars(&p.plan.customer, stage);
    let mut file = BTreeMap::new();
    let mut sensitive = Vec::new();
    for (name, value) in stack_vars(p, stage, upstream) {
        let secret = p.plan.secrets.get(&name);
        if secret.is_none() && !job.info.sensitive.contains(&name) {
            file.insert(name, value);
            continue;
        }
        let env_value = terraform::tf_var_env_value(&value, job.info.hcl_input.contains(&name))
            .map_err(|m| Error::stage(format!("the sensitive input `{name}` of {}: {m}", job.rel)))?;
        let shown = match secret {
            Some(s) => s.shown(),
            None => match extra.origin.get(&name) {
                Some(at) => crate::shell::shell_quote(&format!("<sensitive: {at}>")),
                None => "'<sensitive>'".to_owned(),
            },
        };
        let leaves = crate::events::secret_leaves(&value);
        sensitive.push(SensitiveInput { name, env_value, shown, leaves });
    }
    Ok(StackInputs { file, sensitive })
}

/// The inputs of a stack: the standard ones it declares, then `[*.vars]`, then the
/// `[secrets]` it declares.
pub(super) fn stack_vars(p: &StageContext, stage: Stage, upstream: Option<(&VpcOutputs, &AmiId)>) -> BTreeMap<String, Value> {
    let c = &p.plan.customer;
    let (job, extra) = match stage {
        Stage::Vpc => (&p.plan.vpc, &c.vpc_vars),
        _ => (&p.plan.frontends, &c.frontends_vars),
    };
    let mut standard: Vec<(&str, Value)> =
        vec![("customer", json!(c.name.as_str())), ("region", json!(c.region.as_str())), ("env", json!(c.env.as_str()))];
    if let (Stage::Frontends, Some((vpc, ami))) = (stage, upstream) {
        standard.push(("ami_id", json!(ami.as_str())));
        standard.push(("vpc_id", json!(vpc.vpc_id)));
        standard.push(("public_subnet_ids", json!(vpc.public_subnet_ids)));
        standard.push(("private_subnet_ids", json!(vpc.private_subnet_ids)));
        if let Some(files) = &p.plan.app_config {
            standard.push(("app_config", Value::Object(files.iter().map(|(k, v)| (k.clone(), json!(v))).collect())));
        }
    }
    let mut vars: BTreeMap<String, Value> =
        standard.into_iter().filter(|(k, _)| job.info.variables.contains(*k)).map(|(k, v)| (k.to_owned(), v)).collect();
    vars.extend(extra.values.clone());
    for (name, secret) in p.plan.secrets.iter().filter(|(k, _)| job.info.variables.contains(*k)) {
        vars.insert(name.clone(), json!(secret.value()));
    }
    vars
}

/// The backend, the vpc remote state (frontends) and the inputs but the sensitive
/// ones, in the working copy; returns the stack's directory and its sensitive inputs.
pub(crate) fn write_files(
    p: &StageContext,
    stage: Stage,
    bucket: &BucketName,
    upstream: Option<(&VpcOutputs, &AmiId)>,
) -> Result<(PathBuf, Vec<SensitiveInput>), Error> {
    let job = p.plan.job(stage);
    let dir = p.work.join("terraform").join(&job.rel);
    let own = backend(p, bucket, &job.key);
    let write = |name: &str, text: &str| crate::files::write_atomic(&dir.join(name), text);
    let remove = |name: &str| match std::fs::remove_file(dir.join(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("removing {}", dir.join(name).display()), e)),
        _ => Ok(()),
    };
    if job.info.backend.is_some() {
        write(terraform::BACKEND_PARTIAL_FILE, &render::backend_partial(&own))?;
        remove(terraform::BACKEND_FILE)?;
    } else {
        write(terraform::BACKEND_FILE, &render::backend_block(&own))?;
        remove(terraform::BACKEND_PARTIAL_FILE)?;
    }
    if stage == Stage::Frontends {
        write(terraform::REMOTE_STATE_FILE, &render::remote_state_block(&backend(p, bucket, &p.plan.vpc.key)))?;
    }
    let inputs = stack_inputs(p, stage, upstream)?;
    write(terraform::TFVARS_FILE, &render::vars_json(&inputs.file))?;
    // Saved plans a killed run (or an older stamp) left behind hold secrets in clear.
    for plan in [terraform::PLAN_FILE, terraform::REFRESH_PLAN_FILE, terraform::DRIFT_PLAN_FILE] {
        remove(plan)?;
    }
    Ok((dir, inputs.sensitive))
}

/// Every string of a sensitive output, announced (masked in CI logs) before anything
/// could print it.
pub(super) fn announce_sensitive_outputs(p: &StageContext, stage: Stage, outputs: &Outputs) {
    for o in outputs.values().filter(|o| o.sensitive) {
        for s in crate::events::secret_leaves(&o.value) {
            p.ui.secret(stage, &s);
        }
    }
}

/// The values of the stack's sensitive inputs, announced (masked in CI logs) before
/// terraform runs with them.
pub(super) fn announce_sensitive_inputs(p: &StageContext, stage: Stage, sensitive: &[SensitiveInput]) {
    for s in sensitive.iter().flat_map(|i| &i.leaves) {
        p.ui.secret(stage, s);
    }
}
