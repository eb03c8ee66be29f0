//! Finding the tools and the environment they run with (one place for both).

use std::path::{Path, PathBuf};

use crate::config::Fleet;
use crate::error::Error;
use crate::operation::Operation;
use crate::tools::terraform;

/// The tools, found.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub terraform: PathBuf,
    pub packer: PathBuf,
    pub aws: PathBuf,
}

/// Finds a tool: an explicit choice (path or name on PATH) or the default names.
pub(crate) fn find_tool(names: &[&str], choice: Option<&str>, root: &Path, key: &str) -> Result<PathBuf, Error> {
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
pub(crate) fn find_tools(fleet: &Fleet, op: Operation) -> Result<Tools, Error> {
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
        aws: find_aws(fleet)?,
    })
}

/// The AWS CLI: `[tools] aws` (or STAMP_AWS), else `aws` on PATH.
pub(crate) fn find_aws(fleet: &Fleet) -> Result<PathBuf, Error> {
    find_tool(&["aws"], fleet.tools.aws.as_deref(), &fleet.root, "[tools] aws (STAMP_AWS)")
}

/// The environment every tool gets (see README "Environment variables").
pub(crate) fn tool_env(fleet: &Fleet, region: &crate::names::Region, work_root: &Path) -> Result<Vec<(String, String)>, Error> {
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
    std::fs::create_dir_all(work_root).map_err(|e| Error::work_dir(format!("creating {}", work_root.display()), e))?;
    match terraform::cli_config(work_root)? {
        terraform::CliConfig::Stamp(rc) => env.push(("TF_CLI_CONFIG_FILE".into(), rc.display().to_string())),
        // Empty is unset for terraform: it then reads the user's files in the home directory.
        terraform::CliConfig::User { clear: true, .. } => {
            env.push(("TF_CLI_CONFIG_FILE".into(), String::new()));
            env.push(("TERRAFORM_CONFIG".into(), String::new()));
        }
        terraform::CliConfig::User { clear: false, .. } => {}
    }
    if std::env::var_os("TF_PLUGIN_CACHE_DIR").is_none() {
        // One provider download serves every customer's working copy.
        let cache = work_root.join("plugin-cache");
        std::fs::create_dir_all(&cache).map_err(|e| Error::work_dir(format!("creating {}", cache.display()), e))?;
        env.push(("TF_PLUGIN_CACHE_DIR".into(), cache.display().to_string()));
    }
    Ok(env)
}
