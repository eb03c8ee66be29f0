//! git, for one question: which commit does a customer's `git_id` (a branch, a tag,
//! a full ref or a commit hash) name in `app_repo` right now? `git ls-remote`
//! answers it without a clone; a full commit hash needs no lookup. The image is keyed
//! by, baked from and tagged with that commit, so a branch that moved bakes again
//! and one that did not reuses its image. And one more: which commit is the fleet
//! repository itself at (`head`), recorded in each release.

use std::path::Path;
use std::time::Duration;

use crate::error::Error;
use crate::tools::process::{StageLog, Stream, Tail, ToolCommand};

/// How long one `git ls-remote` may take (a repository behind a dead network
/// would otherwise hold the run before anything starts).
pub const LS_REMOTE_TIMEOUT: Duration = Duration::from_secs(60);

/// A `git_id` and the commit it named when this run looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub git_id: String,
    /// The full hash (40 hex digits; 64 in a SHA-256 repository), lower-case.
    pub commit: String,
}

impl Revision {
    /// The commit's first 12 digits, for people.
    pub fn short(&self) -> &str {
        &self.commit[..12.min(self.commit.len())]
    }

    /// "master at 0123456789ab", or the hash alone when the git_id is the hash.
    pub fn describe(&self) -> String {
        if self.git_id.eq_ignore_ascii_case(&self.commit) { self.commit.clone() } else { format!("{} at {}", self.git_id, self.short()) }
    }
}

/// A full commit hash: 40 (SHA-1) or 64 (SHA-256) hex digits.
pub fn is_full_hash(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The refs `git_id` may name, as `git ls-remote` patterns: a full ref as given
/// (and its peeled tag), `HEAD`, or else the branch and the tag of that name.
pub fn patterns(git_id: &str) -> Vec<String> {
    if git_id.starts_with("refs/") {
        vec![git_id.to_owned(), format!("{git_id}^{{}}")]
    } else if git_id == "HEAD" {
        vec!["HEAD".to_owned()]
    } else {
        vec![format!("refs/heads/{git_id}"), format!("refs/tags/{git_id}"), format!("refs/tags/{git_id}^{{}}")]
    }
}

/// What a listing says of one `git_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(String),
    /// Neither a branch nor a tag of that name.
    Missing,
    /// Both a branch and a tag of that name, naming different commits: git itself
    /// would warn and pick the tag; stamp asks which one is meant.
    Ambiguous {
        branch: String,
        tag: String,
    },
}

/// Picks `git_id`'s commit from `ls-remote` lines (hash, ref). An annotated tag
/// names the commit it points at (its `^{}` line), not the tag object.
pub fn pick(listing: &[(String, String)], git_id: &str) -> Lookup {
    let get = |r: &str| listing.iter().find(|(_, name)| name == r).map(|(h, _)| h.to_ascii_lowercase());
    let peeled = |r: &str| get(&format!("{r}^{{}}")).or_else(|| get(r));
    if git_id.starts_with("refs/") || git_id == "HEAD" {
        return peeled(git_id).map(Lookup::Found).unwrap_or(Lookup::Missing);
    }
    match (get(&format!("refs/heads/{git_id}")), peeled(&format!("refs/tags/{git_id}"))) {
        (Some(b), Some(t)) if b != t => Lookup::Ambiguous { branch: b, tag: t },
        (Some(c), _) | (None, Some(c)) => Lookup::Found(c),
        (None, None) => Lookup::Missing,
    }
}

/// Parses `git ls-remote` output: "<hash>\t<ref>" per line.
pub fn parse_listing(out: &str) -> Vec<(String, String)> {
    out.lines().filter_map(|l| l.split_once('\t')).map(|(h, r)| (h.trim().to_owned(), r.trim().to_owned())).collect()
}

/// `git ls-remote` of `repo` for `patterns`: the (hash, ref) lines, or git's own
/// words on why the repository could not be read.
pub async fn ls_remote(git: &Path, cwd: &Path, repo: &str, patterns: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut env = vec![
        // Never wait for a password or a host-key answer nobody will type.
        ("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned()),
    ];
    if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
        env.push(("GIT_SSH_COMMAND".to_owned(), "ssh -o BatchMode=yes".to_owned()));
    }
    // `--` ends git's options: the repository and the patterns are never read as one.
    let cmd = ToolCommand::new(git, cwd)
        .envs(&env)
        .args(["-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never", "ls-remote", "--"])
        .arg(repo)
        .args(patterns);
    let mut stderr: Vec<String> = Vec::new();
    let mut log = StageLog::discard();
    let mut on_line = |stream: Stream, line: &str| {
        if stream == Stream::Stderr && !line.trim().is_empty() {
            stderr.push(line.trim().to_owned());
        }
        Tail::Raw
    };
    let run = cmd.run("git", &mut log, &[0], true, &mut on_line);
    let out = match tokio::time::timeout(LS_REMOTE_TIMEOUT, run).await {
        Err(_) => return Err(format!("no answer within {}s", LS_REMOTE_TIMEOUT.as_secs())),
        Ok(Err(Error::Tool(f))) if !f.status.starts_with("could not start") => {
            let said = stderr.iter().filter(|l| l.starts_with("fatal:") || l.starts_with("error:")).cloned().collect::<Vec<_>>();
            let said = if said.is_empty() { stderr.clone() } else { said };
            return Err(if said.is_empty() { format!("git ls-remote failed ({})", f.status) } else { said.join(" ") });
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(out)) => out,
    };
    Ok(parse_listing(&out.stdout))
}

/// The commit checked out in the repository holding `dir`, with "+dirty" when its
/// working tree has changes; `None` when `dir` is in no git repository (or git is
/// not installed: the fleet's commit is then unknown, not an error).
pub async fn head(dir: &Path) -> Option<String> {
    let git = which::which("git").ok()?;
    let run = async |args: &[&str]| {
        ToolCommand::new(&git, dir)
            .envs(&[("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned())])
            .args(args.iter().copied())
            .run("git", &mut StageLog::discard(), &[0], true, &mut |_, _| Tail::Raw)
            .await
            .ok()
    };
    let commit = run(&["rev-parse", "--verify", "-q", "HEAD"]).await?.stdout.trim().to_owned();
    if !is_full_hash(&commit) {
        return None;
    }
    let dirty = run(&["status", "--porcelain", "--untracked-files=normal"]).await.is_none_or(|o| !o.stdout.trim().is_empty());
    Some(if dirty { format!("{commit}+dirty") } else { commit })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "9503c97006ca46bcf3a8f7334c6169de4e9612fa\tHEAD\n\
        9503c97006ca46bcf3a8f7334c6169de4e9612fa\trefs/heads/feature/v1\n\
        9503c97006ca46bcf3a8f7334c6169de4e9612fa\trefs/heads/master\n\
        6613caf98ea38346bc39f9481b40192f98c885fc\trefs/tags/v1\n\
        95410625d16d566a6c4b6d463b65f6ab9b44c363\trefs/tags/v2\n\
        9503c97006ca46bcf3a8f7334c6169de4e9612fa\trefs/tags/v2^{}\n\
        1111111111111111111111111111111111111111\trefs/heads/both\n\
        2222222222222222222222222222222222222222\trefs/tags/both\n";

    #[test]
    fn a_git_id_names_a_branch_a_tag_or_a_full_ref_and_an_annotated_tag_its_commit() {
        let l = parse_listing(LISTING);
        assert_eq!(pick(&l, "master"), Lookup::Found("9503c97006ca46bcf3a8f7334c6169de4e9612fa".into()));
        assert_eq!(pick(&l, "v1"), Lookup::Found("6613caf98ea38346bc39f9481b40192f98c885fc".into()), "not refs/heads/feature/v1");
        assert_eq!(pick(&l, "v2"), Lookup::Found("9503c97006ca46bcf3a8f7334c6169de4e9612fa".into()), "the commit, not the tag object");
        assert_eq!(pick(&l, "refs/tags/v2"), Lookup::Found("9503c97006ca46bcf3a8f7334c6169de4e9612fa".into()));
        assert_eq!(pick(&l, "HEAD"), Lookup::Found("9503c97006ca46bcf3a8f7334c6169de4e9612fa".into()));
        assert_eq!(pick(&l, "nope"), Lookup::Missing);
        assert_eq!(pick(&l, "feature"), Lookup::Missing);
        assert!(matches!(pick(&l, "both"), Lookup::Ambiguous { .. }));
        assert_eq!(patterns("v1"), ["refs/heads/v1", "refs/tags/v1", "refs/tags/v1^{}"]);
        assert!(is_full_hash("9503c97006ca46bcf3a8f7334c6169de4e9612fa") && !is_full_hash("9503c97"));
        let r = Revision { git_id: "master".into(), commit: "9503c97006ca46bcf3a8f7334c6169de4e9612fa".into() };
        assert_eq!(r.describe(), "master at 9503c97006ca");
    }
}
