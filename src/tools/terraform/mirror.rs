//! terraform's CLI configuration: the provider mirror stamp finds or is given,
//! and the user's own configuration kept in use.

use std::path::{Path, PathBuf};

/// Names the root of an unpacked provider mirror (Terraform's filesystem-mirror layout).
pub(crate) const MIRROR_VAR: &str = "STAMP_TF_PROVIDER_MIRROR";

/// Roots where machines ship an unpacked hashicorp/aws mirror, searched in order
/// when `STAMP_TF_PROVIDER_MIRROR` is not set (scripts/provider-mirror.sh searches
/// the same, then deeper).
pub(super) const MIRROR_ROOTS: [&str; 4] =
    ["/opt/tf-plugins", "/opt/terraform/plugins", "/usr/local/share/terraform/plugins", "/usr/share/terraform/plugins"];

/// Whether `root` holds registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_v*.
pub(crate) fn mirror_holds_aws(root: &Path) -> bool {
    let Ok(versions) = std::fs::read_dir(root.join("registry.terraform.io/hashicorp/aws")) else { return false };
    versions.flatten().filter_map(|v| std::fs::read_dir(v.path()).ok()).flat_map(|p| p.flatten()).any(|platform| {
        std::fs::read_dir(platform.path())
            .map(|files| files.flatten().any(|f| f.file_name().to_string_lossy().starts_with("terraform-provider-aws_v")))
            .unwrap_or(false)
    })
}

/// The hashicorp/aws mirror to install from: `STAMP_TF_PROVIDER_MIRROR` (an error
/// when it holds no provider), else the first of the usual roots that holds one.
pub(crate) fn provider_mirror() -> Result<Option<PathBuf>, crate::error::Error> {
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
pub(crate) fn cli_config_text(mirror: Option<&Path>) -> String {
    let mut text = String::from("# Written by stamp: the user has no Terraform CLI configuration (README: Environment variables).\n");
    if let Some(m) = mirror {
        let path = serde_json::to_string(&m.display().to_string()).unwrap_or_default();
        text.push_str(&format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = {path}\n    include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n}}\n"
        ));
    }
    text
}

/// Which CLI configuration terraform runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CliConfig {
    /// The user's own, the files terraform itself reads: the file `TF_CLI_CONFIG_FILE`
    /// (or its legacy name `TERRAFORM_CONFIG`) names; without one, `~/.terraformrc`
    /// and `~/.terraform.d/*.tfrc[.json]`. `clear`: the variable names a file that
    /// does not exist while the home directory has the user's files; the tools get it
    /// empty, so that terraform reads those.
    User { files: Vec<PathBuf>, clear: bool },
    /// The user has none: stamp's own (`<work_root>/terraformrc`, `cli_config_text`).
    Stamp(PathBuf),
}

/// Which CLI configuration terraform runs with: the user's own wherever terraform
/// would find one, stamp's only when there is none (see `CliConfig`).
pub(crate) fn cli_config(work_root: &Path) -> Result<CliConfig, crate::error::Error> {
    if let Some(user) = users_cli_config_from_env() {
        return Ok(user);
    }
    let rc = work_root.join("terraformrc");
    let text = cli_config_text(provider_mirror()?.as_deref());
    if std::fs::read_to_string(&rc).ok().as_deref() != Some(text.as_str()) {
        crate::files::write_atomic(&rc, &text)?;
    }
    Ok(CliConfig::Stamp(rc))
}

/// The user's CLI configuration, as terraform looks for it from this process's
/// environment (`TF_CLI_CONFIG_FILE`, `TERRAFORM_CONFIG`, `HOME`), or `None`.
pub(crate) fn users_cli_config_from_env() -> Option<CliConfig> {
    let named = ["TF_CLI_CONFIG_FILE", "TERRAFORM_CONFIG"].iter().find_map(|k| std::env::var_os(k).filter(|v| !v.is_empty()));
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    users_cli_config(named.map(PathBuf::from), home.as_deref())
}

/// The user's CLI configuration as terraform looks for it (`named`: the variable's
/// value), or `None`.
pub(super) fn users_cli_config(named: Option<PathBuf>, home: Option<&Path>) -> Option<CliConfig> {
    if let Some(p) = named.as_ref().filter(|p| p.is_file()) {
        return Some(CliConfig::User { files: vec![p.clone()], clear: false });
    }
    let home = home?;
    let mut files: Vec<PathBuf> = std::iter::once(home.join(".terraformrc")).filter(|p| p.is_file()).collect();
    if let Ok(entries) = std::fs::read_dir(home.join(".terraform.d")) {
        let mut more: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".tfrc") || n.ends_with(".tfrc.json")))
            .collect();
        more.sort();
        files.extend(more);
    }
    (!files.is_empty()).then_some(CliConfig::User { files, clear: named.is_some() })
}
