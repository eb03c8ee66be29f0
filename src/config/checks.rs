//! The checks of single values (paths, endpoints, tags, git ids, app repository and
//! directory, server name) and the helpers that point at a value's line.

use crate::error::{ConfigError, line_of};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The largest configuration file stamp reads: a fleet or customer file is a few
/// kilobytes; anything near this is a mistake (a log or a binary under the name).
pub(crate) const MAX_CONFIG_BYTES: u64 = 1 << 20;

pub(super) enum ReadError {
    /// The file could not be opened or read (missing, permissions).
    Io(std::io::Error),
    /// It exists but is not a configuration file stamp accepts.
    Bad(ConfigError),
}

/// Reads a TOML file after checking it is one: a regular file (or a symbolic link
/// to one inside `inside`, when given), at most `MAX_CONFIG_BYTES`, UTF-8 text.
pub(super) fn read_config_file(path: &Path, inside: Option<&[&PathBuf]>) -> Result<String, ReadError> {
    let bad = |m: String, h: &str| ReadError::Bad(ConfigError::new(path, m).hint(h));
    let link = std::fs::symlink_metadata(path).map_err(ReadError::Io)?;
    if link.file_type().is_symlink()
        && let Some(dirs) = inside
    {
        let target = path.canonicalize().map_err(ReadError::Io)?;
        let allowed: Vec<PathBuf> = dirs.iter().filter_map(|d| d.canonicalize().ok()).collect();
        if !allowed.iter().any(|d| target.starts_with(d)) {
            return Err(bad(
                format!("is a symbolic link to {}, outside the fleet directory", target.display()),
                &format!(
                    "a customer file must be a regular file (or a link to one) inside {}; copy the file there",
                    allowed.first().map(|d| d.display().to_string()).unwrap_or_default()
                ),
            ));
        }
    }
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if meta.is_dir() {
        return Err(bad("is a directory".into(), "expected a regular file holding TOML"));
    }
    if !meta.is_file() {
        return Err(bad("is not a regular file (a device, socket or pipe)".into(), "expected a regular file holding TOML"));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(bad(
            format!("is {:.1} MB", meta.len() as f64 / (1 << 20) as f64),
            &format!("a configuration file is at most {} MB; is this the right file?", MAX_CONFIG_BYTES >> 20),
        ));
    }
    let bytes = std::fs::read(path).map_err(ReadError::Io)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        bad(format!("line {line}: is not UTF-8 text (invalid byte at offset {at})"), "save the file as UTF-8; TOML files are UTF-8")
    })
}

/// A CA bundle: a readable file with at least one PEM certificate.
pub(super) fn check_ca_bundle(p: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    if !text.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", p.display()));
    }
    Ok(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

pub(super) fn check_endpoint(e: &str) -> Result<String, String> {
    let rest = e.strip_prefix("http://").or_else(|| e.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(e.trim_end_matches('/').to_owned()),
        _ => Err(format!("`{e}` is not a URL; expected something like http://127.0.0.1:5000")),
    }
}

/// A tag: what `--tag` matches, so no spaces or shell metacharacters.
pub(super) fn check_tag(t: &str) -> Result<String, String> {
    let ok = !t.is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if ok { Ok(t.to_owned()) } else { Err(format!("`{t}` is not a tag: use 1 to 64 letters, digits, `-`, `_`, `.` or `:`")) }
}

/// A git revision as a user writes it: a branch, a tag, a full ref (`refs/heads/x`)
/// or a commit's hash, by git's own rules for ref names (`git check-ref-format`),
/// restricted to characters that are safe wherever stamp writes it (a packer
/// variable, a YAML file, an AMI tag). Never starts with `-` (git would read an
/// option).
pub(crate) fn check_git_id(g: &str) -> Result<String, String> {
    let rule = "a branch, tag or commit: letters, digits, `.`, `_`, `/`, `-`, not starting with `-`, as git names refs";
    let why = if g.is_empty() {
        Some("it is empty".to_owned())
    } else if g.len() > 128 {
        Some(format!("it has {} characters (at most 128)", g.len()))
    } else if g.starts_with('-') {
        Some("it starts with `-` (git would read it as an option)".to_owned())
    } else if let Some(c) = g.chars().find(|c| !(c.is_ascii_alphanumeric() || "._/-".contains(*c))) {
        Some(format!("`{}` is not allowed", c.escape_default()))
    } else if g.contains("..") {
        Some("git refuses `..` in a ref name".to_owned())
    } else if g.starts_with('/') || g.ends_with('/') || g.contains("//") {
        Some("a ref name neither starts nor ends with `/` and has no empty part".to_owned())
    } else if g.ends_with('.') {
        Some("git refuses a ref name ending with `.`".to_owned())
    } else if g.split('/').any(|part| part.starts_with('.') || part.ends_with(".lock")) {
        Some("git refuses a part of a ref name that starts with `.` or ends with `.lock`".to_owned())
    } else {
        None
    };
    match why {
        None => Ok(g.to_owned()),
        Some(why) => Err(format!("`{}` is not a git revision: {why} ({rule})", g.escape_debug())),
    }
}

pub(super) const APP_REPO_HINT: &str = "app_repo is the git repository the image is built from: an https:// or ssh:// URL, \
                             `user@host:path`, a file:// URL or a local path";

/// Where the app is cloned from: an `https://`, `ssh://` or `file://` URL, scp-like
/// `user@host:path`, or a local path (a relative one is made absolute against
/// `dir`, the directory of the file that names it). Plain-text transports
/// (`http://`, `git://`) are refused: the code fetched becomes the image. Only
/// characters that are safe in a URL, a shell word and a YAML string are accepted,
/// and never a leading `-` (git would read an option) nor git's `<transport>::`
/// form (`ext::` runs a command).
pub(crate) fn check_app_repo(r: &str, dir: &Path) -> Result<String, String> {
    let rule = "an https://, ssh:// or file:// URL, `user@host:path`, or a local path";
    let bad = |why: String| Err(format!("`{}` is not a repository stamp accepts: {why} ({rule})", r.escape_debug()));
    if r.is_empty() {
        return bad("it is empty".into());
    }
    if r.len() > 512 {
        return bad(format!("it has {} characters (at most 512)", r.len()));
    }
    if r.starts_with('-') {
        return bad("it starts with `-` (git would read it as an option)".into());
    }
    if let Some(c) = r.chars().find(|c| !(c.is_ascii_alphanumeric() || "._~:/@+%=-".contains(*c))) {
        return bad(format!("`{}` is not allowed (letters, digits and . _ ~ : / @ + % = - are)", c.escape_default()));
    }
    if r.contains("::") {
        return bad("git's `<transport>::<address>` form is not accepted (`ext::` runs a command)".into());
    }
    if let Some((scheme, rest)) = r.split_once("://") {
        return match scheme {
            "https" | "ssh" if rest.split('/').next().is_some_and(|h| !h.is_empty()) && rest.contains('/') => Ok(r.to_owned()),
            "file" if rest.starts_with('/') => Ok(r.to_owned()),
            "https" | "ssh" => bad("a URL needs a host and a path".into()),
            "file" => bad("a file:// URL needs an absolute path (file:///...)".into()),
            "http" | "git" => {
                bad(format!("{scheme}:// is not encrypted, and the code it fetches becomes the image: use https:// or ssh://"))
            }
            other => bad(format!("the scheme `{other}://` is not accepted")),
        };
    }
    if let Some((host, path)) = r.split_once(':')
        && !host.contains('/')
    {
        // scp-like `[user@]host:path` (git reads it so when no slash comes before the colon).
        return if !host.is_empty() && !path.is_empty() && host.split('@').all(|p| !p.is_empty()) {
            Ok(r.to_owned())
        } else {
            bad("`user@host:path` needs a host and a path".into())
        };
    }
    if r.contains(':') {
        return bad("a local path with `:` is not accepted".into());
    }
    // A local path: the test fleets and the demo keep the app next to the fleet.
    Ok(normalize(&dir.join(r)).display().to_string())
}

/// `[app] dir`: an absolute path of safe characters, for nginx (`root`), puma (a
/// Ruby string) and the environment YAML.
pub(crate) fn check_app_dir(d: &str) -> Result<String, String> {
    let rule = "an absolute path of letters, digits, `.`, `_` and `-` between the `/`, such as \"/srv/app\"";
    let why = if !d.starts_with('/') {
        Some("it is not absolute".to_owned())
    } else if d.len() > 255 {
        Some(format!("it has {} characters (at most 255)", d.len()))
    } else if let Some(c) = d.chars().find(|c| !(c.is_ascii_alphanumeric() || "._/-".contains(*c))) {
        Some(format!("`{}` is not allowed", c.escape_default()))
    } else if d == "/" || d.ends_with('/') || d.contains("//") {
        Some("it is `/`, ends with `/` or has an empty part".to_owned())
    } else if d.split('/').any(|p| p == "." || p == "..") {
        Some("it has a `.` or `..` part".to_owned())
    } else {
        None
    };
    match why {
        None => Ok(d.to_owned()),
        Some(why) => Err(format!("`{}` is not accepted: {why} ({rule})", d.escape_debug())),
    }
}

/// `[app] server_name`: nginx's `server_name` list: `_`, or host names separated by
/// spaces, each of labels of letters, digits and `-`, with an optional leading
/// `*.` or `.` or trailing `.*` (nginx's wildcard names). No regular expressions.
pub(crate) fn check_server_name(s: &str) -> Result<String, String> {
    let rule = "`_` or host names separated by spaces, such as \"example.com www.example.com *.example.org\"";
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !l.starts_with('-') && !l.ends_with('-')
    };
    let name_ok = |n: &str| {
        if n == "_" {
            return true;
        }
        let n = n.strip_prefix("*.").or_else(|| n.strip_prefix('.')).unwrap_or(n);
        let n = n.strip_suffix(".*").unwrap_or(n);
        n.len() <= 253 && n.split('.').all(label_ok)
    };
    let names: Vec<&str> = s.split(' ').collect();
    let why = if s.trim().is_empty() {
        Some("it is empty".to_owned())
    } else if s.len() > 1024 {
        Some(format!("it has {} characters (at most 1024)", s.len()))
    } else {
        names.iter().find(|n| !name_ok(n)).map(|n| {
            if n.is_empty() {
                "two spaces in a row, or one at an end".to_owned()
            } else {
                format!("`{}` is not a host name", n.escape_debug())
            }
        })
    };
    match why {
        None => Ok(s.to_owned()),
        Some(why) => Err(format!("`{}` is not accepted: {why} ({rule})", s.escape_debug())),
    }
}

pub(super) fn toml_to_json(v: &toml::Value) -> Result<serde_json::Value, String> {
    Ok(match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(serde_json::Value::Number).ok_or("not a finite number")?,
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => {
            serde_json::Value::Object(t.iter().map(|(k, v)| Ok((k.clone(), toml_to_json(v)?))).collect::<Result<_, String>>()?)
        }
    })
}

/// `a/b/../c` -> `a/c`, without touching the file system (paths may not exist yet).
pub(super) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

pub(super) fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
}

/// "file:line" of a value at `span` (the file alone without one).
pub(super) fn at(file: &Path, text: &str, span: Option<Range<usize>>) -> String {
    match span {
        Some(s) => format!("{}:{}", file.display(), line_of(text, s.start)),
        None => file.display().to_string(),
    }
}

/// The span of `key` in the table that starts at `table` (a `[header]` span: the
/// table's keys follow it up to the next header), for pointing at the right line.
pub(super) fn key_span(text: &str, table: Range<usize>, key: &str) -> Range<usize> {
    let start = table.start.min(text.len());
    let mut offset = start;
    for (n, line) in text[start..].split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if n > 0 && t.starts_with('[') {
            break;
        }
        let k = t.trim_start_matches('"');
        if k.starts_with(key) && k[key.len()..].trim_start_matches('"').trim_start().starts_with('=') {
            let s = offset + (line.len() - t.len());
            return s..s + key.len();
        }
        offset += line.len();
    }
    table
}
