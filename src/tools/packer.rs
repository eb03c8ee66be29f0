//! Packer: what a JSON template declares (variables, builder names), the hash of
//! the template and its scripts (tagged on the AMI so an unchanged build is reused),
//! and the `-machine-readable` output (current step, artifact ids).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ConfigError;
use crate::names::AmiId;

/// Variables of the brief's vars/travis.json that stamp does not derive itself.
pub(crate) const PACKER_RECORDED: [&str; 3] = ["source_ami", "instance_type", "ssh_username"];
pub(crate) const PACKER_STANDARD: [&str; 9] =
    ["region", "build_vpc", "build_subnet", "git_id", "aws_endpoint", "customer", "app_repo", "template_hash", "image_key"];
/// Packer variables that say where a bake runs, not what it makes: they do not make
/// two customers' images different (see README "One bake per image").
pub(crate) const PACKER_PLACEMENT: [&str; 4] = ["build_vpc", "build_subnet", "aws_endpoint", "customer"];

#[derive(Debug, Clone, Default)]
pub(crate) struct TemplateInfo {
    pub variables: BTreeSet<String>,
    /// Each variable's default, as the template gives it.
    pub defaults: std::collections::BTreeMap<String, Value>,
    pub builders: Vec<String>,
    /// The template's "sensitive-variables": stamp passes their values in a private
    /// var file, never in `vars/<customer>.json`.
    pub sensitive: BTreeSet<String>,
}

impl TemplateInfo {
    pub(crate) fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path, format!("cannot read the packer template: {e}"))
                .hint("set [paths] packer in stamp.toml to the template file")
        })?;
        Self::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            ConfigError::new(path, format!("line {}: not valid JSON: {e}", e.line()))
                .hint("stamp runs legacy JSON templates (template.json), as the brief's")
        })?;
        let defaults: std::collections::BTreeMap<String, Value> = v
            .get("variables")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let variables = defaults.keys().cloned().collect();
        let builders: Vec<String> = v
            .get("builders")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|b| b.get("name").or_else(|| b.get("type")).and_then(Value::as_str).map(String::from)).collect())
            .unwrap_or_default();
        if builders.is_empty() {
            return Err(ConfigError::new(path, "declares no builders".into()));
        }
        let sensitive = v
            .get("sensitive-variables")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default();
        Ok(Self { variables, defaults, builders, sensitive })
    }
}

/// A short hash of the template and every file beside it (scripts, files), so a
/// change to any of them bakes a new AMI. Manifests and dot files are left out.
pub(crate) fn template_hash(template: &Path) -> std::io::Result<String> {
    let dir = template.parent().unwrap_or(Path::new("."));
    let skip = |name: &str, _: bool| name.starts_with('.') || name == "packer_cache" || name.contains("manifest");
    let mut files: Vec<String> = crate::hash::files_under(dir, true, &skip)?
        .into_iter()
        .map(|rel| rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/"))
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for rel in files {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(std::fs::read(dir.join(&rel))?);
        h.update([0]);
    }
    let digest = h.finalize();
    Ok(digest.iter().take(6).map(|b| format!("{b:02x}")).collect())
}

/// One line of `packer build -machine-readable`: `time,target,type,data...`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PackerEvent {
    /// A `ui` message (say/message/error) with its text unescaped.
    Ui {
        kind: String,
        text: String,
    },
    /// `artifact,N,id,region:ami-...`
    ArtifactId {
        builder: String,
        id: String,
    },
    Other,
}

pub(crate) fn parse_machine_line(line: &str) -> Option<PackerEvent> {
    let mut parts = line.splitn(4, ',');
    let ts = parts.next()?;
    if ts.is_empty() || !ts.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let target = parts.next()?.to_owned();
    let kind = parts.next()?;
    let data = parts.next().unwrap_or_default();
    let fields: Vec<String> = data.split(',').map(unescape).collect();
    Some(match kind {
        "ui" if fields.len() >= 2 => PackerEvent::Ui { kind: fields[0].clone(), text: fields[1..].join(",") },
        "artifact" if fields.len() >= 3 && fields[1] == "id" => PackerEvent::ArtifactId { builder: target, id: fields[2].clone() },
        _ => PackerEvent::Other,
    })
}

fn unescape(s: &str) -> String {
    s.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "")
}

/// The AMI in `region` from an artifact id such as `eu-west-1:ami-1,us-east-1:ami-2`.
pub(crate) fn ami_for_region(artifact_id: &str, region: &str) -> Option<AmiId> {
    artifact_id.split(',').find_map(|pair| {
        let (r, ami) = pair.split_once(':')?;
        (r.trim() == region).then(|| AmiId::parse(ami.trim()).ok()).flatten()
    })
}

/// A one-line step for the progress display from a `ui` message.
pub(crate) fn step_text(text: &str) -> Option<String> {
    let first = text.lines().find(|l| !l.trim().is_empty())?.trim();
    let first = first.trim_start_matches("==> ").trim_start_matches("    ");
    Some(first.to_owned())
}

/// `packer version` output -> (major, minor).
pub(crate) fn parse_version(out: &str) -> Option<(u32, u32)> {
    let v = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v').or(Some(w)).filter(|w| w.contains('.') && w.starts_with(|c: char| c.is_ascii_digit())))?;
    let mut it = v.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_captured_machine_readable_build() {
        let text = include_str!("../../tests/fixtures/packer-build.txt");
        let events: Vec<PackerEvent> = text.lines().filter_map(parse_machine_line).collect();
        let id = events.iter().find_map(|e| match e {
            PackerEvent::ArtifactId { id, .. } => Some(id.clone()),
            _ => None,
        });
        let id = id.expect("an artifact id line");
        assert!(ami_for_region(&id, "eu-west-1").is_some(), "{id}");
        assert!(events.iter().any(|e| matches!(e, PackerEvent::Ui { kind, .. } if kind == "say")));
    }

    #[test]
    fn machine_lines() {
        assert_eq!(
            parse_machine_line("1700000000,emulator,ui,say,==> emulator: Creating AMI%!(PACKER_COMMA) please wait"),
            Some(PackerEvent::Ui { kind: "say".into(), text: "==> emulator: Creating AMI, please wait".into() })
        );
        assert_eq!(
            parse_machine_line("1700000000,emulator,artifact,0,id,eu-west-1:ami-0123456789abcdef0"),
            Some(PackerEvent::ArtifactId { builder: "emulator".into(), id: "eu-west-1:ami-0123456789abcdef0".into() })
        );
        assert_eq!(parse_machine_line("not machine readable"), None);
        assert_eq!(ami_for_region("us-east-1:ami-11111111,eu-west-1:ami-22222222", "eu-west-1").unwrap().as_str(), "ami-22222222");
        assert_eq!(ami_for_region("us-east-1:ami-11111111", "eu-west-1"), None);
        assert_eq!(step_text("==> emulator: Stopping the source instance..."), Some("emulator: Stopping the source instance...".into()));
        assert_eq!(parse_version("Packer v1.6.6"), Some((1, 6)));
        assert_eq!(parse_version("Packer v1.11.2\n\nYour version is out of date"), Some((1, 11)));
    }

    #[test]
    fn template_info_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("template.json");
        std::fs::write(&t, r#"{"variables": {"region": "", "git_id": "", "token": "x"}, "sensitive-variables": ["token"], "builders": [{"type": "amazon-ebs", "name": "emulator"}, {"type": "amazon-ebs"}]}"#).unwrap();
        let info = TemplateInfo::read(&t).unwrap();
        assert_eq!(info.sensitive.iter().collect::<Vec<_>>(), ["token"]);
        assert_eq!(info.builders, vec!["emulator", "amazon-ebs"]);
        assert!(info.variables.contains("git_id"));
        let h1 = template_hash(&t).unwrap();
        std::fs::write(dir.path().join("packer-manifest.json"), "{}").unwrap();
        assert_eq!(template_hash(&t).unwrap(), h1, "manifests do not change the hash");
        std::fs::create_dir(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("scripts/a.sh"), "echo").unwrap();
        assert_ne!(template_hash(&t).unwrap(), h1);
        std::fs::write(&t, "{ nope").unwrap();
        assert!(TemplateInfo::read(&t).unwrap_err().to_string().contains("not valid JSON"));
    }
}
