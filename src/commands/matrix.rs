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

use serde_json::{Value, json};

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
    /// `--max-jobs N`: customers grouped into at most N entries (`jobs`).
    pub max_jobs: Option<usize>,
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
    let names = selection::select(fleet, &args.selector, selection::Use::Reads)?;
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

    let canaries = pick_canaries(fleet, &args.selector, &chosen.keys().cloned().collect::<Vec<_>>(), args.canary);
    let include: Vec<Value> = match args.max_jobs {
        None => customers
            .iter()
            .filter(|c| chosen.contains_key(&c.name))
            .map(|c| {
                let mut row = json!({"customer": c.name.as_str(), "env": c.env.as_str(), "region": c.region.as_str()});
                if args.canary > 0 {
                    row["canary"] = json!(canaries.contains(&c.name));
                }
                row
            })
            .collect(),
        Some(n) => {
            let row = |c: &Customer| Row { name: c.name.to_string(), env: c.env.to_string(), region: c.region.to_string() };
            let by_name = |n: &CustomerName| customers.iter().find(|c| &c.name == n).map(row);
            let first: Vec<Row> = canaries.iter().filter_map(by_name).collect();
            let rest: Vec<Row> =
                customers.iter().filter(|c| chosen.contains_key(&c.name) && !canaries.contains(&c.name)).map(row).collect();
            jobs(first, rest, n).map_err(|m| {
                Error::usage_hint(format!("--max-jobs {n}: {m}"), "raise --max-jobs, or lower --canary (each canary is a job of its own)")
            })?
        }
    };
    let matrix = json!({ "include": include });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{matrix}");
    let _ = out.flush();
    if let Some(path) = &crate::ui::ci_env::get().env.output {
        crate::ui::github::append(path, &output_text(&include)).map_err(|e| {
            Error::stage_hint(
                format!("cannot write the matrix to $GITHUB_OUTPUT: {e}"),
                "the runner sets GITHUB_OUTPUT to a writable file; check the step's environment",
            )
        })?;
    }
    Ok(())
}

/// A customer as a matrix entry sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub env: String,
    pub region: String,
}

/// `--max-jobs N`: at most `max_jobs` entries, each canary alone and first (in the
/// given order), then the others ordered by (region, name) and cut into near-equal
/// contiguous groups (the larger ones first). Every customer is in exactly one
/// entry; an entry's region and env are its first customer's.
pub fn jobs(canaries: Vec<Row>, mut rest: Vec<Row>, max_jobs: usize) -> Result<Vec<Value>, String> {
    let entries = canaries.len() + usize::from(!rest.is_empty());
    if entries > max_jobs {
        return Err(format!(
            "{} canaries (one job each){} need {entries} jobs",
            canaries.len(),
            if rest.is_empty() { "" } else { " and at least one job for the other customers" }
        ));
    }
    let entry = |i: usize, group: &[Row], canary: bool| {
        let names: Vec<&str> = group.iter().map(|r| r.name.as_str()).collect();
        json!({
            "job": (i + 1).to_string(),
            "customers": names.join(" "),
            "count": group.len(),
            "region": group[0].region,
            "env": group[0].env,
            "canary": canary,
        })
    };
    let mut out: Vec<Value> = canaries.iter().enumerate().map(|(i, c)| entry(i, std::slice::from_ref(c), true)).collect();
    if rest.is_empty() {
        return Ok(out);
    }
    rest.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
    let groups = (max_jobs - canaries.len()).min(rest.len());
    let (base, larger) = (rest.len() / groups, rest.len() % groups);
    let mut start = 0;
    for g in 0..groups {
        let len = base + usize::from(g < larger);
        out.push(entry(out.len(), &rest[start..start + len], false));
        start += len;
    }
    Ok(out)
}

/// The `$GITHUB_OUTPUT` lines of a matrix: `matrix`, `count`, and the same for the
/// canary entries (`canary`, `canary_count`) and the others (`rest`, `rest_count`),
/// each matrix one line of compact JSON (`{"include":[]}` when empty).
pub fn output_text(include: &[Value]) -> String {
    let (canary, rest): (Vec<&Value>, Vec<&Value>) = include.iter().partition(|e| e["canary"] == json!(true));
    format!(
        "matrix={}\ncount={}\ncanary={}\ncanary_count={}\nrest={}\nrest_count={}\n",
        json!({ "include": include }),
        include.len(),
        json!({ "include": canary }),
        canary.len(),
        json!({ "include": rest }),
        rest.len()
    )
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
        crate::fleet::selection::canary_order(fleet, chosen)
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

    fn rows(spec: &[(&str, &str)]) -> Vec<Row> {
        spec.iter().map(|(n, r)| Row { name: (*n).into(), env: "production".into(), region: (*r).into() }).collect()
    }

    #[test]
    fn jobs_put_canaries_alone_first_and_cut_the_rest_by_region_and_name() {
        let canaries = rows(&[("zeta", "us-east-1")]);
        let rest = rows(&[("b", "us-east-1"), ("a", "us-east-1"), ("c", "eu-west-1"), ("d", "eu-west-1"), ("e", "eu-west-1")]);
        let j = jobs(canaries, rest, 3).unwrap();
        let cell = |i: usize, k: &str| j[i][k].clone();
        assert_eq!(j.len(), 3);
        assert_eq!((cell(0, "job"), cell(0, "customers"), cell(0, "canary")), (json!("1"), json!("zeta"), json!(true)));
        // eu-west-1 sorts first; 5 into 2 groups: 3 then 2, contiguous.
        assert_eq!((cell(1, "customers"), cell(1, "count"), cell(1, "region")), (json!("c d e"), json!(3), json!("eu-west-1")));
        assert_eq!((cell(2, "job"), cell(2, "customers"), cell(2, "region")), (json!("3"), json!("a b"), json!("us-east-1")));
        assert_eq!(cell(2, "canary"), json!(false));
        // Fewer customers than jobs: one each; no customer: no entry.
        assert_eq!(jobs(vec![], rows(&[("a", "x"), ("b", "x")]), 256).unwrap().len(), 2);
        assert!(jobs(vec![], vec![], 1).unwrap().is_empty());
        // Canaries need a job each, and the rest one more.
        assert!(jobs(rows(&[("a", "x")]), rows(&[("b", "x")]), 1).unwrap_err().contains("need 2 jobs"));
        assert_eq!(jobs(rows(&[("a", "x")]), vec![], 1).unwrap().len(), 1);
    }

    #[test]
    fn the_github_output_splits_canaries_from_the_rest() {
        let j = jobs(rows(&[("a", "x")]), rows(&[("b", "x")]), 4).unwrap();
        let text = output_text(&j);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "count=2");
        assert!(lines[2].starts_with("canary={\"include\":[{") && lines[2].contains("\"customers\":\"a\""), "{text}");
        assert_eq!(lines[3], "canary_count=1");
        assert_eq!(lines[5], "rest_count=1");
        assert_eq!(
            output_text(&[]),
            "matrix={\"include\":[]}\ncount=0\ncanary={\"include\":[]}\ncanary_count=0\nrest={\"include\":[]}\nrest_count=0\n"
        );
    }

    #[test]
    fn resolve_keeps_the_missing_tail() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(resolve(&dir.path().join("a/b.toml")), real.join("a/b.toml"));
    }
}
