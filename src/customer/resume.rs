//! Where a deploy starts: from the run journal of the last deploy, this run's
//! inputs and `--from`. A pure decision (the journal is read by the caller), so each
//! case is a unit test.

use std::collections::BTreeMap;
use std::path::Path;

use crate::customer::journal::{Inputs, Journal, RunState, StageEntry};
use crate::error::Error;
use crate::events::Stage;

/// Where a deploy starts.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Start {
    /// The stages before the start, with their journal entries: checked, not rerun.
    pub carried: BTreeMap<Stage, StageEntry>,
    /// What the operator is told about it (a resume, a resume refused, a stale `--from`).
    pub note: Option<String>,
}

/// The start of a deploy of `customer`, given `--from`, the last run's journal (at
/// `path`; `None`: none, or not read) and this run's inputs. An unfinished run with
/// the same inputs resumes at its first stage not done; with other inputs, or after
/// a complete run, everything runs. `--from` takes the earlier stages as they are
/// (each must have been done), saying so when their inputs differ.
pub(crate) fn decide(from: Option<Stage>, old: Option<&Journal>, inputs: &Inputs, path: &Path, customer: &str) -> Result<Start, Error> {
    let fingerprint = inputs.fingerprint();
    let mut start = Start::default();
    match from {
        Some(Stage::Bucket) => {}
        Some(from) => {
            start.carried = from_stages(path, customer, from, old)?;
            let stale: Vec<&str> = start.carried.values().filter(|e| e.fingerprint != fingerprint).map(|e| e.stage.as_str()).collect();
            if !stale.is_empty() {
                let changed = old.map(|j| inputs.changed_since(&j.inputs)).unwrap_or_default();
                start.note = Some(format!(
                    "--from {from}: {} done with other inputs than this run's{}; taken as they are, as --from asks",
                    stale.join(", "),
                    if changed.is_empty() { String::new() } else { format!(" ({} changed)", changed.join(", ")) }
                ));
            }
        }
        None => match old {
            None => {}
            Some(j) if j.status == RunState::Complete => {}
            Some(j) => match j.first_not_done() {
                None | Some(Stage::Bucket) => {}
                Some(at) => {
                    let how = j.entry(at).map(|e| e.status.word()).unwrap_or("was not reached");
                    let done: Vec<&StageEntry> = Stage::ALL.iter().filter(|s| **s < at).filter_map(|s| j.done(*s)).collect();
                    if done.iter().all(|e| e.fingerprint == fingerprint) {
                        start.note = Some(format!(
                            "resuming the run of {} at stage {at} (it {how}); {} checked, not rerun",
                            j.run,
                            done.iter().map(|e| e.stage.as_str()).collect::<Vec<_>>().join(", ")
                        ));
                        start.carried = done.into_iter().map(|e| (e.stage, e.clone())).collect();
                    } else {
                        let changed = inputs.changed_since(&j.inputs);
                        let what = if changed.is_empty() { "inputs".to_owned() } else { changed.join(", ") };
                        start.note = Some(format!(
                            "not resuming the run of {} (stage {at} {how}): {what} changed since; starting from the beginning",
                            j.run
                        ));
                    }
                }
            },
        },
    }
    Ok(start)
}

/// The journal entries of the stages before `from`, each of which must be done.
pub(crate) fn from_stages(
    path: &Path,
    customer: &str,
    from: Stage,
    journal: Option<&Journal>,
) -> Result<BTreeMap<Stage, StageEntry>, Error> {
    let mut out = BTreeMap::new();
    for s in Stage::ALL.into_iter().filter(|s| *s < from) {
        match journal.and_then(|j| j.done(s)) {
            Some(e) => {
                out.insert(s, e.clone());
            }
            None => {
                let why = match journal.and_then(|j| j.entry(s)) {
                    None if journal.is_none() => format!("there is no run journal {}: {customer} was never deployed", path.display()),
                    None => format!("the last deploy (run journal {}) did not reach it", path.display()),
                    Some(e) => format!("in the run of {} it {} (run journal {})", e.run, e.status.word(), path.display()),
                };
                return Err(Error::usage_hint(
                    format!("--from {from}: stage {s} of {customer} never completed: {why}"),
                    format!("run `stamp deploy {customer}` (it resumes where the last run stopped) or `--from {s}`"),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::journal::StageState;

    fn inputs(commit: &str) -> Inputs {
        let mut i = Inputs::default();
        i.add("git_id", "main");
        i.add("commit", commit);
        i
    }

    /// A journal of the run "r1" with these stages in these states.
    fn journal(inputs: &Inputs, status: RunState, stages: &[(Stage, StageState)]) -> Journal {
        let mut j = Journal::new("acme", "r1", inputs);
        j.status = status;
        for (stage, state) in stages {
            j.set(StageEntry {
                stage: *stage,
                status: *state,
                run: "r1".into(),
                started_at: "t".into(),
                finished_at: None,
                fingerprint: inputs.fingerprint(),
                bucket: None,
                ami_id: None,
                error: None,
            });
        }
        j
    }

    fn stages(start: &Start) -> Vec<Stage> {
        start.carried.keys().copied().collect()
    }

    const PATH: &str = "/w/acme/journal.json";

    #[test]
    fn without_a_journal_a_deploy_starts_at_the_beginning() {
        let start = decide(None, None, &inputs("a"), Path::new(PATH), "acme").unwrap();
        assert_eq!(start, Start::default());
    }

    #[test]
    fn an_interrupted_run_with_the_same_inputs_resumes_at_its_first_stage_not_done() {
        let i = inputs("a");
        let j = journal(
            &i,
            RunState::Interrupted,
            &[(Stage::Bucket, StageState::Done), (Stage::Vpc, StageState::Done), (Stage::Ami, StageState::Interrupted)],
        );
        let start = decide(None, Some(&j), &i, Path::new(PATH), "acme").unwrap();
        assert_eq!(stages(&start), [Stage::Bucket, Stage::Vpc]);
        let note = start.note.unwrap();
        assert!(note.starts_with("resuming the run of r1 at stage ami"), "{note}");
        assert!(note.contains("bucket, vpc checked, not rerun"), "{note}");
    }

    #[test]
    fn a_run_with_other_inputs_is_not_resumed_and_the_note_names_what_changed() {
        let j = journal(&inputs("a"), RunState::Failed, &[(Stage::Bucket, StageState::Done), (Stage::Vpc, StageState::Failed)]);
        let start = decide(None, Some(&j), &inputs("b"), Path::new(PATH), "acme").unwrap();
        assert!(start.carried.is_empty());
        let note = start.note.unwrap();
        assert!(note.starts_with("not resuming the run of r1 (stage vpc"), "{note}");
        assert!(note.contains("commit (a -> b) changed since"), "{note}");
    }

    #[test]
    fn a_complete_run_or_one_stopped_in_its_first_stage_starts_over_silently() {
        let i = inputs("a");
        let done = journal(&i, RunState::Complete, &[(Stage::Bucket, StageState::Done)]);
        assert_eq!(decide(None, Some(&done), &i, Path::new(PATH), "acme").unwrap(), Start::default());
        let first = journal(&i, RunState::Failed, &[(Stage::Bucket, StageState::Failed)]);
        assert_eq!(decide(None, Some(&first), &i, Path::new(PATH), "acme").unwrap(), Start::default());
    }

    #[test]
    fn from_takes_the_earlier_stages_as_they_are_and_says_when_their_inputs_differ() {
        let j = journal(&inputs("a"), RunState::Complete, &[(Stage::Bucket, StageState::Done), (Stage::Vpc, StageState::Done)]);
        let same = decide(Some(Stage::Ami), Some(&j), &inputs("a"), Path::new(PATH), "acme").unwrap();
        assert_eq!((stages(&same), same.note), (vec![Stage::Bucket, Stage::Vpc], None));
        let other = decide(Some(Stage::Ami), Some(&j), &inputs("b"), Path::new(PATH), "acme").unwrap();
        assert_eq!(stages(&other), [Stage::Bucket, Stage::Vpc]);
        let note = other.note.unwrap();
        assert!(note.starts_with("--from ami: bucket, vpc done with other inputs"), "{note}");
        assert!(note.contains("(commit (a -> b) changed)"), "{note}");
    }

    #[test]
    fn from_a_stage_whose_predecessor_never_completed_is_refused() {
        let i = inputs("a");
        let j = journal(&i, RunState::Failed, &[(Stage::Bucket, StageState::Done), (Stage::Vpc, StageState::Failed)]);
        let e = decide(Some(Stage::Ami), Some(&j), &i, Path::new(PATH), "acme").unwrap_err().to_string();
        assert!(e.contains("--from ami: stage vpc of acme never completed: in the run of r1 it failed"), "{e}");
        let never = decide(Some(Stage::Vpc), None, &i, Path::new(PATH), "acme").unwrap_err().to_string();
        assert!(never.contains("there is no run journal /w/acme/journal.json: acme was never deployed"), "{never}");
    }

    #[test]
    fn from_bucket_runs_everything() {
        let i = inputs("a");
        assert_eq!(decide(Some(Stage::Bucket), None, &i, Path::new(PATH), "acme").unwrap(), Start::default());
    }
}
