//! Which customers a command runs on: names given on the command line (in that
//! order), `--all`, or `--tag` (any of the tags). A name with no customer file is
//! refused before anything starts, with the closest names suggested.
//!
//! With none of these, one rule for every command (`Use`): a command that runs
//! terraform or packer against AWS (deploy, plan, drift, destroy) refuses, so that
//! no whole fleet is planned, changed or destroyed by a forgotten argument; a command
//! that only reads (validate, render, outputs, status, matrix) takes every customer.

use crate::config::Fleet;
use crate::error::{ConfigError, Error};
use crate::names::CustomerName;

/// What a command does with the customers it selects, which decides what it does
/// when none is named (see the module doc: the one rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// deploy, plan, drift, destroy: terraform and packer against AWS. None named: refused.
    Runs,
    /// validate, render, outputs, status, matrix: files and states read. None named: every customer.
    Reads,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    pub names: Vec<CustomerName>,
    pub all: bool,
    pub tags: Vec<String>,
}

/// The selected customers, in command-line order (names) or name order.
/// Customer files that are invalid are reported by whoever loads them.
pub(crate) fn select(fleet: &Fleet, sel: &Selector, used: Use) -> Result<Vec<CustomerName>, Error> {
    let known: Vec<CustomerName> = fleet.customer_names()?.into_iter().filter_map(Result::ok).collect();
    if !sel.names.is_empty() {
        let mut out: Vec<CustomerName> = Vec::new();
        for n in &sel.names {
            if !known.contains(n) {
                let close = closest(n.as_str(), known.iter().map(|k| k.as_str()));
                let file = fleet.customer_file(n);
                let err = ConfigError::new(&file, format!("no customer `{n}`: {} does not exist", file.display()));
                let hint = if !close.is_empty() {
                    format!("did you mean {}? (`stamp list` shows the customers)", close.join(", "))
                } else if known.is_empty() {
                    format!("create {} with at least `git_id = \"...\"`", file.display())
                } else {
                    let some: Vec<&str> = known.iter().take(10).map(|k| k.as_str()).collect();
                    let more = if known.len() > 10 { format!(" and {} more", known.len() - 10) } else { String::new() };
                    format!("known customers: {}{more}; or create {}", some.join(", "), file.display())
                };
                return Err(err.hint(hint).into());
            }
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        return Ok(out);
    }
    if sel.all || (sel.tags.is_empty() && used == Use::Reads) {
        return Ok(known);
    }
    if !sel.tags.is_empty() {
        let mut out = Vec::new();
        let mut in_use = std::collections::BTreeSet::new();
        for n in known {
            // An unreadable file is not silently left out: it fails when loaded.
            let loaded = fleet.load_customer(&n);
            if let Ok(c) = &loaded {
                in_use.extend(c.tags.iter().cloned());
            }
            let tagged = loaded.map(|c| c.tags.iter().any(|t| sel.tags.contains(t))).unwrap_or(true);
            if tagged {
                out.push(n);
            }
        }
        if out.is_empty() {
            return Err(Error::usage_hint(
                format!("no customer has the tag {}", sel.tags.join(" or ")),
                if in_use.is_empty() {
                    "no customer has tags yet; a customer file lists its tags as `tags = [\"eu\", \"tier-1\"]`".to_owned()
                } else {
                    format!("tags in use: {}", in_use.into_iter().collect::<Vec<_>>().join(", "))
                },
            ));
        }
        return Ok(out);
    }
    Err(Error::usage_hint(
        "no customer given",
        "name customers, or pass --all or --tag TAG (deploy, plan, drift and destroy never default to the whole fleet)",
    ))
}

/// The canary order of customers not named on the command line: `[fleet] canary`
/// first, in its order, then the others in the order given. Deploy runs the first K
/// of it first (`--canary K`); `stamp matrix --canary K` marks the same K.
pub(crate) fn canary_order(fleet: &Fleet, names: &[CustomerName]) -> Vec<CustomerName> {
    let mut ordered: Vec<CustomerName> = fleet.canary.iter().filter(|c| names.contains(c)).cloned().collect();
    ordered.extend(names.iter().filter(|n| !fleet.canary.contains(n)).cloned());
    ordered
}

/// Up to three known names closest to `name` (edit distance at most a third of its length, or a prefix).
pub(crate) fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.len() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = known
        .filter_map(|k| {
            let d = strsim::levenshtein(name, k);
            (d <= limit || k.starts_with(name)).then_some((d, k))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["acme", "globex", "initech", "initrode"];
        assert_eq!(closest("acne", known.iter().copied()), vec!["acme"]);
        assert_eq!(closest("init", known.iter().copied()), vec!["initech", "initrode"]);
        assert!(closest("zzzzzz", known.iter().copied()).is_empty());
    }
}
