//! A customer's deploy journal, `<work>/<customer>/journal.json`: which stages of
//! the latest deploy started, finished or failed, when, with what inputs, and what a
//! later stage needs from a finished one (the bucket name, the AMI id; the vpc and
//! frontends outputs are read back from their states). Written atomically at each
//! stage's start and end, so a deploy that failed or was killed can resume at the
//! stage that did not finish. A stage is "done" only once it has finished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::events::Stage;

pub(crate) const JOURNAL_FILE: &str = "journal.json";
/// Bumped when a field changes meaning; a newer journal is refused.
pub(crate) const JOURNAL_SCHEMA: u32 = 1;

/// How the journal's run ended (or `Running`: it is running, or it died).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RunState {
    Running,
    Failed,
    Interrupted,
    /// Every stage finished: the next deploy runs them all again.
    Complete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StageState {
    /// Started and not finished: still running, or the run died in it.
    Running,
    Done,
    Failed,
    Interrupted,
}

impl StageState {
    pub(crate) fn word(self) -> &'static str {
        match self {
            StageState::Running => "did not finish",
            StageState::Done => "done",
            StageState::Failed => "failed",
            StageState::Interrupted => "was interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StageEntry {
    pub stage: Stage,
    pub status: StageState,
    /// The start time of the run that ran this stage (it names that run).
    pub run: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The input fingerprint of that run.
    pub fingerprint: String,
    /// bucket: the state bucket's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// ami: the AMI the frontends were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_id: Option<String>,
    /// failed: the first line of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub schema_version: u32,
    pub customer: String,
    /// The start time of the latest run.
    pub run: String,
    pub status: RunState,
    pub updated_at: String,
    /// The latest run's input fingerprint, and its parts (what each one was).
    pub fingerprint: String,
    pub inputs: BTreeMap<String, String>,
    /// In stage order; a stage the latest run did not reach is absent.
    pub stages: Vec<StageEntry>,
}

/// What makes a deploy's result what it is; equal inputs, equal fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Inputs {
    pub parts: BTreeMap<String, String>,
}

impl Inputs {
    pub(crate) fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.parts.insert(name.into(), value.into());
    }

    pub(crate) fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.parts {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([1]);
        }
        h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
    }

    /// The parts that differ from `before` ("git_id (v1 -> v2)", "the customer file ... (changed)").
    pub(crate) fn changed_since(&self, before: &BTreeMap<String, String>) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.parts {
            match before.get(k) {
                Some(old) if old == v => {}
                Some(old) if !looks_hashed(v) => out.push(format!("{k} ({old} -> {v})")),
                Some(_) => out.push(format!("{k} (changed)")),
                None => out.push(format!("{k} (new)")),
            }
        }
        out.extend(before.keys().filter(|k| !self.parts.contains_key(*k)).map(|k| format!("{k} (gone)")));
        out
    }
}

fn looks_hashed(v: &str) -> bool {
    v.starts_with("sha256:")
}

/// `sha256:<hex>` of some bytes (a part of the inputs).
pub(crate) fn hash_bytes(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    format!("sha256:{}", d.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>())
}

/// `sha256:<hex>` of a file, or of every file under a directory (names and contents,
/// sorted; dot directories, states and plans left out; `.terraform.lock.hcl` counts).
pub(crate) fn hash_path(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    if path.is_dir() {
        // .terraform, .git, a stand-in's .standin: tools' own, not inputs.
        let skip = |name: &str, is_dir: bool| {
            name.starts_with("terraform.tfstate") || name.ends_with(".tfplan") || (is_dir && name.starts_with('.'))
        };
        let mut files = crate::hash::files_under(path, true, &skip)?;
        files.sort();
        for rel in files {
            h.update(rel.to_string_lossy().as_bytes());
            h.update([0]);
            h.update(std::fs::read(path.join(&rel))?);
            h.update([1]);
        }
    } else {
        h.update(std::fs::read(path)?);
    }
    Ok(format!("sha256:{}", h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect::<String>()))
}

impl Journal {
    pub(crate) fn path(work: &Path) -> PathBuf {
        work.join(JOURNAL_FILE)
    }

    /// A new run's journal: nothing started yet.
    pub(crate) fn new(customer: &str, run: &str, inputs: &Inputs) -> Self {
        Self {
            schema_version: JOURNAL_SCHEMA,
            customer: customer.to_owned(),
            run: run.to_owned(),
            status: RunState::Running,
            updated_at: run.to_owned(),
            fingerprint: inputs.fingerprint(),
            inputs: inputs.parts.clone(),
            stages: Vec::new(),
        }
    }

    /// Reads the journal; `None` when there is none. One that cannot be read or
    /// parsed is an error naming the file and what to do (never taken as absent).
    pub(crate) fn read(path: &Path, customer: &str) -> Result<Option<Self>, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::usage_hint(format!("cannot read the run journal {}: {e}", path.display()), fix(path, customer)));
            }
        };
        let j: Journal = serde_json::from_str(&text).map_err(|e| {
            Error::usage_hint(format!("{}: not a stamp run journal ({e}); nothing was started", path.display()), fix(path, customer))
        })?;
        if j.schema_version > JOURNAL_SCHEMA {
            return Err(Error::usage_hint(
                format!(
                    "{}: written by a newer stamp (journal schema {}, this stamp reads {JOURNAL_SCHEMA})",
                    path.display(),
                    j.schema_version
                ),
                fix(path, customer),
            ));
        }
        Ok(Some(j))
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::stage(format!("run journal: {e}")))?;
        crate::files::write_atomic(path, &format!("{text}\n"))
    }

    pub(crate) fn entry(&self, stage: Stage) -> Option<&StageEntry> {
        self.stages.iter().find(|e| e.stage == stage)
    }

    pub(crate) fn done(&self, stage: Stage) -> Option<&StageEntry> {
        self.entry(stage).filter(|e| e.status == StageState::Done)
    }

    /// Sets a stage's entry, keeping stage order.
    pub(crate) fn set(&mut self, entry: StageEntry) {
        self.stages.retain(|e| e.stage != entry.stage);
        self.stages.push(entry);
        self.stages.sort_by_key(|e| e.stage);
    }

    /// The first stage that is not done, if any.
    pub(crate) fn first_not_done(&self) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| self.done(*s).is_none())
    }
}

fn fix(path: &Path, customer: &str) -> String {
    format!(
        "delete {} (the next deploy then runs every stage), or run `stamp deploy {customer} --from bucket`, which does not read it and writes a new one",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stage: Stage, status: StageState) -> StageEntry {
        StageEntry {
            stage,
            status,
            run: "t".into(),
            started_at: "t".into(),
            finished_at: None,
            fingerprint: "f".into(),
            bucket: None,
            ami_id: None,
            error: None,
        }
    }

    #[test]
    fn the_first_stage_not_done_is_where_a_run_resumes() {
        let mut j = Journal::new("acme", "t", &Inputs::default());
        assert_eq!(j.first_not_done(), Some(Stage::Bucket));
        j.set(entry(Stage::Vpc, StageState::Done));
        j.set(entry(Stage::Bucket, StageState::Done));
        j.set(entry(Stage::Ami, StageState::Running));
        assert_eq!(j.stages.iter().map(|e| e.stage).collect::<Vec<_>>(), vec![Stage::Bucket, Stage::Vpc, Stage::Ami]);
        assert_eq!(j.first_not_done(), Some(Stage::Ami));
    }

    #[test]
    fn changed_inputs_are_named() {
        let mut a = Inputs::default();
        a.add("git_id", "v1");
        a.add("customer file x.toml", "sha256:aa");
        let mut b = a.clone();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.add("git_id", "v2");
        b.add("customer file x.toml", "sha256:bb");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(b.changed_since(&a.parts), vec!["customer file x.toml (changed)", "git_id (v1 -> v2)"]);
    }

    #[test]
    fn a_journal_that_does_not_parse_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        assert!(Journal::read(&path, "acme").unwrap().is_none());
        std::fs::write(&path, "{\"schema_version\": 1, \"cust").unwrap();
        let e = Journal::read(&path, "acme").unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()) && e.contains("not a stamp run journal"), "{e}");
        assert!(e.contains("--from bucket") && e.contains("delete"), "{e}");
        let mut j = Journal::new("acme", "t", &Inputs::default());
        j.set(entry(Stage::Bucket, StageState::Done));
        j.save(&path).unwrap();
        assert_eq!(Journal::read(&path, "acme").unwrap(), Some(j));
    }
}
