//! Every customer's `git_id` resolved to a commit before anything is created: one
//! `git ls-remote` per app repository (side by side), for all the refs its
//! customers name. A repository that cannot be read, or a ref it does not have, is
//! bad input (exit 2) naming the file and line, the repository and the ref; every
//! problem of every customer is printed first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::customer::plan::CustomerPlan;
use crate::error::{ConfigError, EXIT_USAGE, Error};
use crate::tools::git::{self, Lookup, Revision};

/// Sets `revision` on every plan, or prints every problem and returns exit 2.
/// `annotate` is the caller's CI annotation of a problem (`ui::github::annotate`).
pub async fn resolve(root: &Path, plans: &mut [CustomerPlan], annotate: fn(&Error, Option<&Path>)) -> Result<(), Error> {
    let mut problems: Vec<(String, Error)> = Vec::new();
    // Repository -> the plans whose git_id it must name.
    let mut by_repo: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in plans.iter_mut().enumerate() {
        // A rollback deploys its release's recorded commit.
        if p.pin.is_some() {
            continue;
        }
        let c = &p.customer;
        if git::is_full_hash(&c.git_id) {
            p.revision = Some(Revision { git_id: c.git_id.clone(), commit: c.git_id.to_ascii_lowercase() });
        } else if c.app_repo.is_empty() {
            let e = ConfigError::new(
                Path::new(&c.git_id_at),
                format!("git_id `{}` names a branch or tag, and no app_repo is set to look it up in", c.git_id),
            )
            .hint("set app_repo (under [fleet] in stamp.toml, or in the customer file), or give git_id as a full commit hash");
            problems.push((c.name.to_string(), e.into()));
        } else {
            by_repo.entry(c.app_repo.clone()).or_default().push(i);
        }
    }
    let git = if by_repo.is_empty() {
        PathBuf::from("git")
    } else {
        which::which("git").map_err(|_| {
            Error::usage_hint(
                "git is not on PATH: stamp needs it to look up which commit each git_id names (git ls-remote)",
                "install git, or give every git_id as a full commit hash",
            )
        })?
    };
    let mut lookups = tokio::task::JoinSet::new();
    for (repo, idx) in &by_repo {
        let mut patterns: Vec<String> = idx.iter().flat_map(|i| git::patterns(&plans[*i].customer.git_id)).collect();
        patterns.sort();
        patterns.dedup();
        let (git, root, repo) = (git.clone(), root.to_path_buf(), repo.clone());
        lookups.spawn_local(async move {
            let listing = git::ls_remote(&git, &root, &repo, &patterns).await;
            (repo, listing)
        });
    }
    while let Some(done) = lookups.join_next().await {
        let (repo, listing) = done.map_err(|e| Error::stage(format!("looking up the git revisions: {e}")))?;
        let idx = &by_repo[&repo];
        let listing = match listing {
            Ok(l) => l,
            Err(why) => {
                let first = &plans[idx[0]].customer;
                let ids: Vec<String> = idx
                    .iter()
                    .map(|i| format!("`{}`", plans[*i].customer.git_id))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let e = ConfigError::new(
                    Path::new(&first.app_repo_at),
                    format!("app_repo `{repo}` cannot be read to look up git_id {}: {why}", ids.join(", ")),
                )
                .hint(format!(
                    "check the repository's address and that this machine can read it (`git ls-remote -- {repo}`); or give git_id as a full commit hash"
                ));
                for i in idx {
                    problems.push((plans[*i].customer.name.to_string(), e.clone().into()));
                }
                continue;
            }
        };
        for i in idx {
            let c = &plans[*i].customer;
            let id = &c.git_id;
            let at = Path::new(&c.git_id_at);
            match git::pick(&listing, id) {
                Lookup::Found(commit) => plans[*i].revision = Some(Revision { git_id: id.clone(), commit }),
                Lookup::Missing => {
                    let short_hash = id.len() >= 4 && id.chars().all(|c| c.is_ascii_hexdigit());
                    let e = ConfigError::new(at, format!("git_id `{id}`: {repo} has no branch or tag `{id}`")).hint(if short_hash {
                        format!("a commit is named by its full hash (40 hex digits): `git rev-parse {id}` in a clone prints it")
                    } else {
                        format!("push it, or name an existing branch, tag or full commit hash (`git ls-remote -- {repo}` lists them)")
                    });
                    problems.push((c.name.to_string(), e.into()));
                }
                Lookup::Ambiguous { branch, tag } => {
                    let e = ConfigError::new(
                        at,
                        format!("git_id `{id}` is both a branch ({}) and a tag ({}) of {repo}", &branch[..12], &tag[..12]),
                    )
                    .hint(format!("say which: `refs/heads/{id}` or `refs/tags/{id}`"));
                    problems.push((c.name.to_string(), e.into()));
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let several = plans.len() > 1;
    // Once per distinct problem (a repository that cannot be read is every one of its customers').
    let mut said = std::collections::BTreeSet::new();
    for (name, e) in &problems {
        let text = e.to_string();
        if !said.insert(text.clone()) {
            continue;
        }
        if several {
            eprintln!("error: {name}: {text}");
        } else {
            eprintln!("error: {text}");
        }
        annotate(e, None);
    }
    Err(Error::Reported {
        message: format!("{} customer(s) name a revision that cannot be looked up; nothing was started", problems.len()),
        code: EXIT_USAGE,
    })
}
