//! `[secrets]`: where each secret's value comes from (an environment variable or a
//! file), merged from the fleet file and the customer's.

use super::checks::*;
use crate::error::{ConfigError, line_of};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Where a `[secrets]` value comes from at run time (the TOML never holds the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecretFrom {
    /// `{ env = "NAME" }`: stamp's environment variable NAME.
    Env(String),
    /// `{ file = "path" }`: the file's content (one trailing newline removed), the
    /// path relative to the file that names it.
    File(PathBuf),
}

/// One `[secrets]` entry and where it was set ("file:line").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretSource {
    pub from: SecretFrom,
    pub origin: String,
}

/// `[secrets]` entries by variable name (the customer file's over the fleet file's).
pub(crate) type Secrets = BTreeMap<String, SecretSource>;

pub(super) const SECRET_SHAPES: &str =
    "expected `{ env = \"ENV_VAR\" }` (read from stamp's environment) or `{ file = \"path\" }` (read from a file)";

/// Merges a `[secrets]` table over `into`, checking each entry's shape.
pub(super) fn merge_secrets(into: &mut Secrets, file: &Path, text: &str, table: &Option<Spanned<toml::Table>>) -> Result<(), ConfigError> {
    let Some(table) = table else { return Ok(()) };
    let dir = file.parent().unwrap_or(Path::new("."));
    for (name, v) in table.get_ref() {
        let span = key_span(text, table.span(), name);
        // The line is not quoted: it may hold a secret written in clear by mistake.
        let err =
            |m: String| ConfigError { snippet: None, ..ConfigError::at(file, text, span.clone(), format!("[secrets] `{name}`: {m}")) };
        if !is_identifier(name) {
            return Err(err("is not a variable name (a letter or `_`, then letters, digits, `_` or `-`)".into()));
        }
        let toml::Value::Table(t) = v else {
            let clear = if v.is_str() { " (a secret's value is never written in a TOML file)" } else { "" };
            return Err(err(format!("found a {}{clear}; {SECRET_SHAPES}", v.type_str())));
        };
        if let Some(k) = t.keys().find(|k| *k != "env" && *k != "file") {
            return Err(err(format!("unknown key `{k}`; {SECRET_SHAPES}")));
        }
        let from = match (t.get("env"), t.get("file")) {
            (Some(toml::Value::String(e)), None) => {
                if !is_env_name(e) {
                    return Err(err(
                        "the `env` value is not an environment variable name (letters, digits and `_`, not starting with a digit); \
                         it names the variable that holds the secret, not the secret"
                            .into(),
                    ));
                }
                SecretFrom::Env(e.clone())
            }
            (None, Some(toml::Value::String(f))) if !f.is_empty() => SecretFrom::File(normalize(&dir.join(f))),
            (Some(_), Some(_)) => return Err(err(format!("both `env` and `file`; give one: {SECRET_SHAPES}"))),
            (None, None) => return Err(err(format!("empty table; {SECRET_SHAPES}"))),
            _ => return Err(err(format!("`env` and `file` take a non-empty string; {SECRET_SHAPES}"))),
        };
        let line = line_of(text, span.start);
        into.insert(name.clone(), SecretSource { from, origin: format!("{}:{line}", file.display()) });
    }
    Ok(())
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn is_env_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
