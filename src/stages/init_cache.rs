//! Skipping a `terraform init` that would do nothing. Init costs seconds per
//! stack (it checks every provider and module and the backend), most of a no-op
//! redeploy. It is needed only when something it reads changed: the configuration
//! (any `.tf`, the lock file, the modules: stamp's working copy holds the whole
//! terraform tree), the generated backend, the CLI configuration, the terraform
//! binary. stamp keeps a fingerprint of those in `.terraform/` after a successful
//! init, and runs init again whenever the fingerprint differs or `.terraform` lacks
//! what init leaves there.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::tools::terraform::{PLAN_FILE, TFVARS_FILE};

const FINGERPRINT_FILE: &str = "stamp-init.sha256";

/// The fingerprint of what `terraform init` in `stack_dir` reads: every file of the
/// working copy `tree` (but terraform's own directories, states, plans and inputs),
/// the terraform binary and the CLI configuration.
pub(crate) fn fingerprint(tree: &Path, stack_dir: &Path, terraform: &Path, env: &[(String, String)]) -> std::io::Result<String> {
    let mut h = Sha256::new();
    h.update(stack_dir.strip_prefix(tree).unwrap_or(stack_dir).to_string_lossy().as_bytes());
    let skip = |name: &str, _: bool| {
        name == ".terraform" || name == ".standin" || name.starts_with("terraform.tfstate") || name == PLAN_FILE || name == TFVARS_FILE
    };
    let mut files = crate::hash::files_under(tree, false, &skip)?;
    files.sort();
    for rel in files {
        h.update([0]);
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(tree.join(&rel))?);
    }
    h.update([1]);
    h.update(terraform.to_string_lossy().as_bytes());
    if let Ok(m) = std::fs::metadata(terraform) {
        h.update(format!("{:?}{}", m.modified().ok(), m.len()).as_bytes());
    }
    for (k, v) in env.iter().filter(|(k, _)| k == "TF_CLI_CONFIG_FILE" || k == "TF_PLUGIN_CACHE_DIR" || k == "AWS_ENDPOINT_URL") {
        h.update([2]);
        h.update(k.as_bytes());
        h.update(v.as_bytes());
        if k == "TF_CLI_CONFIG_FILE" {
            h.update(std::fs::read(v).unwrap_or_default());
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the last successful init in `stack_dir` had this fingerprint (and left
/// its backend and modules in place).
pub(crate) fn up_to_date(stack_dir: &Path, fingerprint: &str) -> bool {
    let dot = stack_dir.join(".terraform");
    dot.join("terraform.tfstate").is_file() && std::fs::read_to_string(dot.join(FINGERPRINT_FILE)).is_ok_and(|f| f.trim() == fingerprint)
}

/// Records a successful init.
pub(crate) fn record(stack_dir: &Path, fingerprint: &str) -> std::io::Result<()> {
    std::fs::write(stack_dir.join(".terraform").join(FINGERPRINT_FILE), format!("{fingerprint}\n"))
}

/// Forgets it (before an init runs: a failed init leaves no stale record).
pub(crate) fn forget(stack_dir: &Path) {
    let _ = std::fs::remove_file(stack_dir.join(".terraform").join(FINGERPRINT_FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configuration_change_changes_the_fingerprint_and_inputs_do_not() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path();
        std::fs::create_dir_all(tree.join("vpc/.terraform")).unwrap();
        std::fs::create_dir_all(tree.join("modules/m")).unwrap();
        std::fs::write(tree.join("vpc/main.tf"), "a").unwrap();
        std::fs::write(tree.join("modules/m/main.tf"), "b").unwrap();
        let tf = Path::new("/usr/bin/terraform");
        let fp = || fingerprint(tree, &tree.join("vpc"), tf, &[]).unwrap();
        let first = fp();
        std::fs::write(tree.join("vpc/stamp.tfvars.json"), "{}").unwrap();
        std::fs::write(tree.join("vpc/stamp.tfplan"), "x").unwrap();
        std::fs::write(tree.join("vpc/.terraform/providers"), "x").unwrap();
        assert_eq!(first, fp(), "inputs, plans and terraform's own files do not count");
        std::fs::write(tree.join("modules/m/main.tf"), "c").unwrap();
        let second = fp();
        assert_ne!(first, second, "a module change needs an init");
        std::fs::write(tree.join("vpc/stamp.s3.tfbackend"), "bucket = \"x\"").unwrap();
        assert_ne!(second, fp(), "a backend change needs an init");
        assert_ne!(fp(), fingerprint(tree, &tree.join("frontends"), tf, &[]).unwrap(), "per stack");

        assert!(!up_to_date(&tree.join("vpc"), &fp()), "never initialised");
        std::fs::write(tree.join("vpc/.terraform/terraform.tfstate"), "{}").unwrap();
        record(&tree.join("vpc"), &fp()).unwrap();
        assert!(up_to_date(&tree.join("vpc"), &fp()));
        forget(&tree.join("vpc"));
        assert!(!up_to_date(&tree.join("vpc"), &fp()));
    }
}
