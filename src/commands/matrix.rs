//! `matrix`: the selected customers as a GitHub Actions `strategy.matrix`
//! (`{"include":[{"customer","env","region"}]}`), optionally only those whose
//! deployment a git change could alter. Runs git only: no AWS, no terraform.
//!
//! The rule (README, "Running in CI"), with the paths `stamp.toml` configures:
//!
//! | changed file                                   | customers                  |
//! |------------------------------------------------|----------------------------|
//! | the fleet file (`stamp.toml`)                  | all selected               |
//! | `<customers>/<name>.toml`                      | that customer              |
//! | `<terraform>/frontends/<env>/**`               | the customers of that env  |
//! | anything else under `<terraform>` (vpc/, modules/, ...) | all selected      |
//! | the packer template's directory                | all selected               |
//! | `<app_templates>/**`                           | all selected               |
//! | anything else                                  | none                       |

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::config::{Customer, Fleet};
use crate::error::{EXIT_USAGE, Error};
use crate::fleet::selection::{self, Selector};
use crate::names::CustomerName;

/// `stamp matrix`, as the command line asked for it.
pub struct MatrixArgs {
    pub selector: Selector,
    /// A git revision: keep only the customers the changes `REF...HEAD` could deploy differently.
    pub changed_since: Option<String>,
    /// Mark the first K customers `"canary": true` (names: command-line order, else
    /// `[fleet] canary`, else name order), the others `false`.
    pub canary: usize,
}

/// What a changed file does to the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Every selected customer.
    All,
    /// The customers on this env (`<terraform>/frontends/<env>/`).
    Env(String),
    /// This customer (its file).
    Customer(CustomerName),
    /// Nothing stamp deploys.
    None,
}

/// The fleet's paths in the repository's spelling (symlinks resolved), to compare
/// with the paths git reports.
pub struct Rules {
    fleet_file: PathBuf,
    customers: PathBuf,
    terraform: PathBuf,
    packer_dir: PathBuf,
    app_templates: PathBuf,
}

impl Rules {
    pub fn new(fleet: &Fleet) -> Self {
        let packer_dir = fleet.paths.packer_template.parent().map(Path::to_path_buf).unwrap_or_else(|| fleet.root.clone());
        Self {
            fleet_file: resolve(&std::path::absolute(&fleet.config_path).unwrap_or_else(|_| fleet.config_path.clone())),
            customers: resolve(&fleet.paths.customers),
            terraform: resolve(&fleet.paths.terraform),
            packer_dir: resolve(&packer_dir),
            app_templates: resolve(&fleet.paths.app_templates),
        }
    }

    /// What a change to `file` (absolute, symlinks of its directories resolved) does.
    pub fn effect(&self, file: &Path) -> Effect {
        if file == self.fleet_file {
            return Effect::All;
        }
        if let Ok(rel) = file.strip_prefix(&self.customers) {
            let mut parts = rel.components();
            return match (parts.next(), parts.next()) {
                (Some(Component::Normal(f)), None) => {
                    let f = Path::new(f);
                    match (f.extension().and_then(|e| e.to_str()), f.file_stem().and_then(|s| s.to_str())) {
                        (Some("toml"), Some(stem)) => CustomerName::parse(stem).map(Effect::Customer).unwrap_or(Effect::None),
                        _ => Effect::None,
                    }
                }
                _ => Effect::None,
            };
        }
        if let Ok(rel) = file.strip_prefix(&self.terraform) {
            let parts: Vec<&str> = rel.components().filter_map(|c| c.as_os_str().to_str()).collect();
            return match parts.as_slice() {
                // A file inside one env's stack changes that env only; a file directly
                // in frontends/ may be read by every env's stack.
                ["frontends", env, _, ..] => Effect::Env((*env).to_owned()),
                _ => Effect::All,
            };
        }
        if file.starts_with(&self.packer_dir) || file.starts_with(&self.app_templates) {
            return Effect::All;
        }
        Effect::None
    }
}

/// One changed file, as git reports it.
#[derive(Debug, Clone)]
pub struct Change {
    /// Relative to the repository's top level, with `/`.
    pub path: String,
    /// Absolute.
    pub abs: PathBuf,
}

pub fn matrix(fleet: &Fleet, args: &MatrixArgs) -> Result<(), Error> {
    let mut sel = args.selector.clone();
    // Nothing named: the whole fleet (a CI job lists what to deploy).
    if sel.names.is_empty() && sel.tags.is_empty() {
        sel.all = true;
    }
    let names = selection::select(fleet, &sel)?;
    let customers = load_all(fleet, &names)?;

    // Customer -> why it is in the matrix (the first file that put it there).
    let mut chosen: BTreeMap<CustomerName, String> = BTreeMap::new();
    match &args.changed_since {
        None => {
            for c in &customers {
                chosen.insert(c.name.clone(), "selected".into());
            }
        }
        Some(rev) => {
            let changes = changed_files(&fleet.root, rev)?;
            let rules = Rules::new(fleet);
            for ch in &changes {
                match rules.effect(&ch.abs) {
                    Effect::All => {
                        for c in &customers {
                            chosen.entry(c.name.clone()).or_insert_with(|| ch.path.clone());
                        }
                    }
                    Effect::Env(env) => {
                        for c in customers.iter().filter(|c| c.env.as_str() == env) {
                            chosen.entry(c.name.clone()).or_insert_with(|| ch.path.clone());
                        }
                    }
                    Effect::Customer(name) => {
                        if !ch.abs.exists() {
                            eprintln!(
                                "note: customer `{name}` was removed since {rev} ({} deleted): its infrastructure is still up; \
                                 destroy it with the file of {rev}: `git show {rev}:{} > {}` then `stamp destroy {name}`",
                                ch.path,
                                ch.path,
                                fleet.customer_file(&name).display()
                            );
                        } else if let Some(c) = customers.iter().find(|c| c.name == name) {
                            chosen.entry(c.name.clone()).or_insert_with(|| ch.path.clone());
                        }
                    }
                    Effect::None => {}
                }
            }
            eprintln!(
                "{} of {} selected customer(s) affected by {} file(s) changed in {rev}...HEAD",
                chosen.len(),
                customers.len(),
                changes.len()
            );
            for (name, why) in &chosen {
                eprintln!("  {name:<24} {why}");
            }
        }
    }

    let canaries = pick_canaries(fleet, &sel, &chosen.keys().cloned().collect::<Vec<_>>(), args.canary);
    let include: Vec<serde_json::Value> = customers
        .iter()
        .filter(|c| chosen.contains_key(&c.name))
        .map(|c| {
            let mut row = json!({"customer": c.name.as_str(), "env": c.env.as_str(), "region": c.region.as_str()});
            if args.canary > 0 {
                row["canary"] = json!(canaries.contains(&c.name));
            }
            row
        })
        .collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", json!({ "include": include }));
    let _ = out.flush();
    Ok(())
}

/// Every selected customer, sorted by name; all the invalid files are reported, then exit 2.
fn load_all(fleet: &Fleet, names: &[CustomerName]) -> Result<Vec<Customer>, Error> {
    let mut out = Vec::new();
    let mut bad = 0;
    for n in names {
        match fleet.load_customer(n) {
            Ok(c) => out.push(c),
            Err(e) => {
                bad += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if bad > 0 {
        return Err(Error::Reported {
            message: format!("{bad} customer file(s) are invalid: no matrix (`stamp validate` shows every problem)"),
            code: EXIT_USAGE,
        });
    }
    out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    Ok(out)
}

/// The first `k` of `chosen` in deploy's canary order: names in command-line order,
/// else `[fleet] canary` in its order, then name order.
fn pick_canaries(fleet: &Fleet, sel: &Selector, chosen: &[CustomerName], k: usize) -> Vec<CustomerName> {
    let order: Vec<CustomerName> = if !sel.names.is_empty() {
        sel.names.iter().filter(|n| chosen.contains(n)).cloned().collect()
    } else {
        let mut o: Vec<CustomerName> = fleet.canary.iter().filter(|c| chosen.contains(c)).cloned().collect();
        o.extend(chosen.iter().filter(|n| !fleet.canary.contains(n)).cloned());
        o
    };
    order.into_iter().take(k).collect()
}

/// The files changed between the merge base of `rev` and HEAD and HEAD (`git diff
/// rev...HEAD`: committed changes only), as absolute paths. A rename is a deletion
/// and an addition.
pub fn changed_files(root: &Path, rev: &str) -> Result<Vec<Change>, Error> {
    if rev.is_empty() || rev.starts_with('-') {
        return Err(Error::usage_hint(
            format!("--changed-since `{rev}`: not a git revision"),
            "a branch, tag or commit, such as origin/main or HEAD~1",
        ));
    }
    let top = git(root, &["rev-parse", "--show-toplevel"]).map_err(|e| match e {
        GitError::Failed(m) => Error::usage_hint(
            format!("--changed-since {rev}: {} is not in a git repository ({m})", root.display()),
            "run stamp matrix from a clone of the fleet's repository, or without --changed-since for every selected customer",
        ),
        other => other.into_error(rev),
    })?;
    let top = resolve(Path::new(top.trim_end_matches(['\n', '\r'])));
    let spec = format!("{rev}^{{commit}}");
    git(root, &["rev-parse", "--verify", "--quiet", "--end-of-options", &spec]).map_err(|e| match e {
        GitError::Failed(_) => Error::usage_hint(
            format!("--changed-since: unknown git revision `{rev}` in {}", top.display()),
            "give a branch, tag or commit of this repository; in CI, fetch the history (actions/checkout with \
             `fetch-depth: 0`) so that the base branch (origin/main) exists",
        ),
        other => other.into_error(rev),
    })?;
    let range = format!("{rev}...HEAD");
    let out = git(
        root,
        &["diff", "--name-only", "-z", "--no-renames", "--no-relative", "--no-color", "--no-ext-diff", "--end-of-options", &range, "--"],
    )
    .map_err(|e| match e {
        GitError::Failed(m) => Error::usage_hint(
            format!("--changed-since {rev}: git diff {range} failed: {m}"),
            "HEAD and the revision need a common ancestor; in a shallow clone fetch the history \
                 (actions/checkout with `fetch-depth: 0`, or `git fetch --unshallow`)",
        ),
        other => other.into_error(rev),
    })?;
    Ok(out.split('\0').filter(|p| !p.is_empty()).map(|p| Change { path: p.to_owned(), abs: top.join(p) }).collect())
}

enum GitError {
    /// git could not be started.
    Spawn(std::io::Error),
    /// git ran and failed: its stderr's first line.
    Failed(String),
}

impl GitError {
    fn into_error(self, rev: &str) -> Error {
        match self {
            GitError::Spawn(e) => Error::usage_hint(
                format!("--changed-since {rev} needs git: cannot run `git`: {e}"),
                "install git (it must be on PATH), or run stamp matrix without --changed-since",
            ),
            GitError::Failed(m) => Error::usage(format!("--changed-since {rev}: git failed: {m}")),
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().map_err(GitError::Spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
        let m = if first.is_empty() { format!("git {} exited with {}", args.join(" "), out.status) } else { first };
        return Err(GitError::Failed(m));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `path` with the symlinks of its longest existing ancestor resolved, so that it
/// compares with the paths under git's (resolved) top level. Paths need not exist.
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut p = real;
            for r in rest.iter().rev() {
                p.push(r);
            }
            return p;
        }
        match (existing.file_name().map(|f| f.to_owned()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvOverrides;

    fn rules(toml: &str) -> (tempfile::TempDir, Rules) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stamp.toml");
        std::fs::write(&path, toml).unwrap();
        let fleet = Fleet::parse(&path, toml, &EnvOverrides::default()).unwrap();
        let r = Rules::new(&fleet);
        (dir, r)
    }

    #[test]
    fn the_default_layout() {
        let (dir, r) = rules("");
        let root = resolve(dir.path());
        let e = |p: &str| r.effect(&root.join(p));
        assert_eq!(e("stamp.toml"), Effect::All);
        assert_eq!(e("customers/acme.toml"), Effect::Customer(CustomerName::parse("acme").unwrap()));
        assert_eq!(e("customers/README.md"), Effect::None);
        assert_eq!(e("customers/Not_A_Name.toml"), Effect::None);
        assert_eq!(e("customers/old/acme.toml"), Effect::None);
        assert_eq!(e("terraform/frontends/staging/main.tf"), Effect::Env("staging".into()));
        assert_eq!(e("terraform/frontends/production/.terraform.lock.hcl"), Effect::Env("production".into()));
        assert_eq!(e("terraform/frontends/shared.tf"), Effect::All);
        assert_eq!(e("terraform/vpc/main.tf"), Effect::All);
        assert_eq!(e("terraform/modules/frontend/alb.tf"), Effect::All);
        assert_eq!(e("packer/template.json"), Effect::All);
        assert_eq!(e("packer/scripts/app.sh"), Effect::All);
        assert_eq!(e("templates/app/config/database.yml.erb"), Effect::All);
        assert_eq!(e("templates/other.txt"), Effect::None);
        assert_eq!(e("README.md"), Effect::None);
        assert_eq!(e("src/main.rs"), Effect::None);
        assert_eq!(e("stamp.toml.bak"), Effect::None);
    }

    #[test]
    fn configured_paths_not_the_default_names() {
        let toml =
            "[paths]\nterraform = \"infra/tf\"\npacker = \"images/ami.json\"\ncustomers = \"fleet/clients\"\napp_templates = \"app/tpl\"\n";
        let (dir, r) = rules(toml);
        let root = resolve(dir.path());
        let e = |p: &str| r.effect(&root.join(p));
        assert_eq!(e("fleet/clients/acme.toml"), Effect::Customer(CustomerName::parse("acme").unwrap()));
        assert_eq!(e("customers/acme.toml"), Effect::None);
        assert_eq!(e("infra/tf/frontends/staging/x.tf"), Effect::Env("staging".into()));
        assert_eq!(e("infra/tf/vpc/x.tf"), Effect::All);
        assert_eq!(e("terraform/vpc/x.tf"), Effect::None);
        assert_eq!(e("images/ami.json"), Effect::All);
        assert_eq!(e("packer/template.json"), Effect::None);
        assert_eq!(e("app/tpl/a.erb"), Effect::All);
        assert_eq!(e("templates/app/a.erb"), Effect::None);
    }

    #[test]
    fn resolve_keeps_the_missing_tail() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(resolve(&dir.path().join("a/b.toml")), real.join("a/b.toml"));
    }
}
