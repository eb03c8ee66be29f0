//! The commit stamp is built from, for `stamp --version`: `STAMP_BUILD_COMMIT` when
//! set (a build from a source archive, where there is no git), else `git rev-parse`
//! of the checkout, else "unknown commit". The commit's date comes from
//! `STAMP_BUILD_DATE`, else from git when it knows the commit.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=STAMP_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=STAMP_BUILD_DATE");
    // Built again when HEAD moves: HEAD itself, the branch it points at, packed refs
    // (only files that exist: cargo reruns a script on every build for a missing one).
    let watch = |p: PathBuf| {
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    };
    if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
        watch(dir.join("HEAD"));
        if let Some(common) = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from) {
            watch(common.join("packed-refs"));
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watch(common.join(branch));
            }
        }
    }
    // Without any of them (no git): only the variables above rebuild it.
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).ok();
    let text = commit_info(var("STAMP_BUILD_COMMIT"), var("STAMP_BUILD_DATE"), git);
    println!("cargo:rustc-env=STAMP_BUILD_COMMIT_INFO={text}");
}

/// "<commit, 12 characters> <commit date>", "<commit>" when the date is unknown, or
/// "unknown commit". `given` (STAMP_BUILD_COMMIT) wins over git's HEAD.
pub fn commit_info(given: Option<String>, date: Option<String>, git: impl Fn(&[&str]) -> Option<String>) -> String {
    let nonempty = |v: Option<String>| v.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    let Some(commit) = nonempty(given).or_else(|| git(&["rev-parse", "HEAD"])) else {
        return "unknown commit".to_owned();
    };
    let short: String = commit.chars().take(12).collect();
    match nonempty(date).or_else(|| git(&["show", "-s", "--format=%cs", &format!("{commit}^{{commit}}")])) {
        Some(d) => format!("{short} {d}"),
        None => short,
    }
}
