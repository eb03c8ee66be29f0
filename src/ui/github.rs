//! GitHub Actions: workflow commands (escaping, `::add-mask::`, `::error` annotations),
//! the Markdown step summary appended to `$GITHUB_STEP_SUMMARY` and a deploy's
//! outputs in `$GITHUB_OUTPUT`. The stage groups themselves are drawn by `ui::ci`.
//!
//! Workflow commands go to stderr, like every other progress line: the runner reads
//! commands on both streams, and stdout stays clean for `--json` and summaries.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::customer::report::RunReport;
use crate::error::Error;
use crate::events::{Stage, Status, format_elapsed};
use crate::operation::Operation;

/// Escapes a workflow command's message (the part after `::`).
pub(crate) fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow command's property value (`file=`, `title=`): `:` and `,`
/// delimit properties, so they are escaped too.
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::name k=v,k=v::data`, everything escaped.
pub(crate) fn command(name: &str, props: &[(&str, String)], data: &str) -> String {
    let props: Vec<String> = props.iter().map(|(k, v)| format!("{k}={}", escape_property(v))).collect();
    let sep = if props.is_empty() { "" } else { " " };
    format!("::{name}{sep}{}::{}", props.join(","), escape_data(data))
}

/// The `::add-mask::` lines for a secret: one per line of it (the runner masks
/// line by line), blank lines left out.
pub(crate) fn mask_lines(secret: &str) -> Vec<String> {
    secret.split(['\n', '\r']).filter(|l| !l.trim().is_empty()).map(|l| command("add-mask", &[], l)).collect()
}

/// A path as an annotation wants it: relative to the workspace (the repository's
/// checkout) when it is inside it, else as it is.
pub(crate) fn annotation_path(p: &Path, workspace: Option<&Path>) -> String {
    let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.into()) };
    match workspace.and_then(|w| abs.strip_prefix(w).ok()) {
        Some(rel) => rel.display().to_string(),
        None => p.display().to_string(),
    }
}

/// Where an annotation points.
#[derive(Debug, Clone, Default)]
pub(crate) struct Location {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub col: Option<u32>,
}

/// `::error file=..,line=..,col=..,title=..::message` (or `warning`).
pub(crate) fn annotation(level: &str, at: &Location, title: &str, message: &str, workspace: Option<&Path>) -> String {
    let mut props: Vec<(&str, String)> = Vec::new();
    if let Some(f) = &at.file {
        props.push(("file", annotation_path(f, workspace)));
        if let Some(l) = at.line {
            props.push(("line", l.to_string()));
            if let Some(c) = at.col {
                props.push(("col", c.to_string()));
            }
        }
    }
    props.push(("title", title.to_owned()));
    command(level, &props, message)
}

/// The annotation for a configuration or usage error (exit 2), pointing at its file
/// and line when it has them, else at `fallback` (the customer file). Other errors
/// have theirs from the renderer, or were annotated one by one already.
pub(crate) fn error_annotation(e: &Error, fallback: Option<&Path>, workspace: Option<&Path>) -> Option<String> {
    match e {
        Error::Config(c) => {
            let mut msg = c.message.clone();
            if let Some(h) = &c.hint {
                msg.push_str(&format!("\nhint: {h}"));
            }
            let at = Location { file: Some(c.file.clone()), line: c.line, col: c.col };
            Some(annotation("error", &at, "stamp: configuration error", &msg, workspace))
        }
        Error::Usage { .. } => {
            let at = Location { file: fallback.map(Path::to_path_buf), ..Default::default() };
            Some(annotation("error", &at, "stamp: usage error", &e.to_string(), workspace))
        }
        _ => None,
    }
}

/// Prints `e`'s annotation on stderr when GitHub Actions is on (within the cap).
pub(crate) fn annotate(e: &Error, fallback: Option<&Path>) {
    let ci = super::ci_env::get();
    if ci.github()
        && let Some(line) = error_annotation(e, fallback, ci.env.workspace.as_deref())
        && let Some(line) = capped(line)
    {
        let _ = std::io::stderr().lock().write_all(format!("{line}\n").as_bytes());
    }
}

/// GitHub shows at most 10 error annotations per step and drops the others silently:
/// one run of stamp (a step) prints at most this many, and says how many it held back.
pub(crate) const MAX_ERROR_ANNOTATIONS: usize = 10;

thread_local! {
    /// Error annotations printed and held back so far. A run of stamp renders on its
    /// one thread (a current-thread runtime, `commands::main`), so this counts the
    /// run's; a unit test (a thread of its own) counts its own.
    static ERRORS: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// An annotation line as it may be printed: an `::error` past the tenth of this run
/// is held back (and counted) instead; other levels pass.
pub(crate) fn capped(line: String) -> Option<String> {
    if !line.starts_with("::error") {
        return Some(line);
    }
    ERRORS.with(|c| {
        let (shown, held) = c.get();
        if shown < MAX_ERROR_ANNOTATIONS {
            c.set((shown + 1, held));
            Some(line)
        } else {
            c.set((shown, held + 1));
            None
        }
    })
}

/// The `::notice` for the error annotations held back, if any (once, at the end of
/// the run): how many, and where they all are.
pub(crate) fn held_back_notice() -> Option<String> {
    let held = ERRORS.with(|c| {
        let (shown, held) = c.get();
        c.set((shown, 0));
        held
    });
    (held > 0).then(|| {
        command(
            "notice",
            &[("title", "stamp: more errors".into())],
            &format!(
                "{held} more error(s) were not annotated (GitHub shows {MAX_ERROR_ANNOTATIONS} per step): every error is in this \
                 step's log, and each failed customer in the job summary"
            ),
        )
    })
}

/// Prints the notice of `held_back_notice` on stderr.
pub(crate) fn notice_held_back() {
    if let Some(line) = held_back_notice() {
        let _ = std::io::stderr().lock().write_all(format!("{line}\n").as_bytes());
    }
}

/// `outputs --show-sensitive` under GitHub Actions: the sensitive values are
/// masked before they are printed. The masks go on the stream the values go to
/// (the runner reads the two streams apart, so only that keeps the order), but for
/// `--json`, whose stdout must stay JSON: there they go to stderr first.
pub(crate) fn mask_shown_outputs(outs: &crate::tools::terraform::Outputs, json: bool) {
    if !super::ci_env::get().github() {
        return;
    }
    let text: String = outs
        .values()
        .filter(|o| o.sensitive)
        .flat_map(|o| crate::events::secret_leaves(&o.value))
        .flat_map(|s| mask_lines(&s))
        .map(|l| l + "\n")
        .collect();
    if json {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    }
}

/// A Markdown table cell: one line, `|` escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn mark(status: Status) -> &'static str {
    match status {
        Status::Ok => "✅",
        Status::Unchanged => "✅",
        Status::Skipped | Status::NotStarted => "➖",
        Status::Resumed => "⏩",
        Status::Failed => "❌",
        Status::Interrupted => "⚠️",
    }
}

/// The Markdown section a run appends to the step summary: the command, the fleet
/// table (customer, env, result, each stage's result, duration, public URL), the
/// destroys and replacements called out, the failures, a totals line. A function of
/// the run reports only, so it serves every operation.
pub(crate) fn summary_markdown(command: &str, reports: &[RunReport], wall: Duration) -> String {
    let mut s = format!("### `stamp {command}`: {} customer{}\n\n", reports.len(), if reports.len() == 1 { "" } else { "s" });
    s.push_str("| customer | env | region | result |");
    for st in Stage::ALL {
        s.push_str(&format!(" {st} |"));
    }
    s.push_str(" time | public URL |\n|---|---|---|---|");
    for _ in Stage::ALL {
        s.push_str("---|");
    }
    s.push_str("---:|---|\n");
    for r in reports {
        s.push_str(&format!(
            "| **{}** | {} | {} | {} {} |",
            cell(&r.customer),
            cell(&r.env),
            cell(&r.region),
            mark(r.status),
            r.status.word()
        ));
        for stage in Stage::ALL {
            let text = match r.stages.iter().find(|st| st.name == stage) {
                None => "–".to_owned(),
                Some(st) => {
                    let mut t = format!("{} {}", mark(st.status), st.status.word());
                    if let Some(c) = st.changes.filter(|c| c.total() > 0) {
                        t.push_str(&format!(" ({})", c.short()));
                        if st.plan.placeholder {
                            t.push_str(" with placeholders");
                        }
                    } else if matches!(st.status, Status::Failed | Status::Interrupted) && !st.detail.is_empty() {
                        t.push_str(&format!(" ({})", st.detail));
                    }
                    t
                }
            };
            s.push_str(&format!(" {} |", cell(&text)));
        }
        s.push_str(&format!(
            " {} | {} |\n",
            format_elapsed(Duration::from_secs_f64(r.duration_s)),
            r.public_url().map(cell).unwrap_or_else(|| "–".into())
        ));
    }
    let destroys: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.stages
                .iter()
                .flat_map(move |st| st.destroys.iter().map(move |d| format!("- ⚠️ **{}** {}: `{d}`", cell(&r.customer), st.name)))
        })
        .collect();
    if !destroys.is_empty() {
        let what = if reports.iter().all(|r| r.operation == Operation::Plan) { "would destroy or replace" } else { "destroys or replaces" };
        s.push_str(&format!("\n> [!WARNING]\n> This {command} {what} {} resource(s):\n\n", destroys.len()));
        for d in destroys {
            s.push_str(&d);
            s.push('\n');
        }
    }
    // plan: a stack planned while another run held its state lock.
    let locks: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.stages.iter().filter_map(move |st| {
                st.plan.lock_held.as_ref().map(|l| format!("- 🔒 **{}** {}: held by {}", cell(&r.customer), st.name, cell(&l.describe())))
            })
        })
        .collect();
    if !locks.is_empty() {
        s.push_str(&format!(
            "\n> [!NOTE]\n> {} stack(s) were planned while another run held their state lock: that run may change what this plan shows.\n\n",
            locks.len()
        ));
        for l in locks {
            s.push_str(&l);
            s.push('\n');
        }
    }
    // drift: what differs from the state, out of band.
    let drifted: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.stages.iter().flat_map(move |st| {
                st.plan.drifted.iter().flatten().map(move |c| {
                    let attrs = if c.attributes.is_empty() { String::new() } else { format!(" ({})", c.attributes.join(", ")) };
                    format!("- 🔀 **{}** {}: `{}`{attrs}", cell(&r.customer), st.name, c.address)
                })
            })
        })
        .collect();
    if !drifted.is_empty() {
        s.push_str(&format!("\n> [!CAUTION]\n> {} resource(s) drifted from their state:\n\n", drifted.len()));
        for d in drifted {
            s.push_str(&d);
            s.push('\n');
        }
    }
    let failed: Vec<&RunReport> = reports.iter().filter(|r| !r.status.succeeded()).collect();
    if !failed.is_empty() {
        s.push('\n');
        for r in failed {
            let why = match (r.failed_stage, r.error.as_deref()) {
                (Some(stage), _) => {
                    format!("{} at stage {stage}; log `{}`", r.status.word(), r.log_dir.join(format!("{stage}.log")).display())
                }
                (None, Some(e)) => format!("{}: {}", r.status.word(), e.lines().next().unwrap_or_default()),
                (None, None) => r.status.word().to_owned(),
            };
            s.push_str(&format!("- {} **{}**: {}\n", mark(r.status), cell(&r.customer), cell(&why)));
        }
    }
    let count = |st: &[Status]| reports.iter().filter(|r| st.contains(&r.status)).count();
    s.push_str(&format!(
        "\n**{} customer{} in {}: {} ok, {} failed, {} interrupted, {} not started**\n\n",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        format_elapsed(wall),
        count(&[Status::Ok, Status::Unchanged, Status::Skipped, Status::Resumed]),
        count(&[Status::Failed]),
        count(&[Status::Interrupted]),
        count(&[Status::NotStarted]),
    ));
    s
}

/// Appends `text` to a file (the step summary is shared by every step of a job:
/// never overwritten).
pub(crate) fn append(path: &Path, text: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).and_then(|_| f.flush()).map_err(|e| format!("{}: {e}", path.display()))
}

/// What stamp puts for a sensitive value in a report.
const SENSITIVE: &str = "(sensitive)";

/// A deploy's outputs as `$GITHUB_OUTPUT` lines: `customer`, `env`, `region`,
/// `status`, then each stack output by its own name (frontends first, then `ami_id`,
/// then vpc; a vpc output whose name the frontends also use is `vpc_<name>`).
/// Lists and maps are compact JSON (for `fromJSON()`); a value with a line break
/// uses the `name<<DELIMITER` form. Sensitive outputs are never written.
pub(crate) fn output_text(r: &RunReport) -> String {
    let status = serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let mut entries: Vec<(String, Value)> = vec![
        ("customer".into(), Value::from(r.customer.clone())),
        ("env".into(), Value::from(r.env.clone())),
        ("region".into(), Value::from(r.region.clone())),
        ("status".into(), Value::from(status)),
    ];
    let section = |k: &str| r.outputs.get(k).and_then(Value::as_object).cloned().unwrap_or_default();
    let add = |name: String, v: &Value, entries: &mut Vec<(String, Value)>| {
        if v.as_str() == Some(SENSITIVE) {
            return;
        }
        match entries.iter().find(|(n, _)| *n == name) {
            Some((_, old)) if old == v => {}
            Some(_) => entries.push((format!("vpc_{name}"), v.clone())),
            None => entries.push((name, v.clone())),
        }
    };
    for (k, v) in &section("frontends") {
        add(k.clone(), v, &mut entries);
    }
    if let Some(v) = r.outputs.get("ami_id") {
        add("ami_id".into(), v, &mut entries);
    }
    for (k, v) in &section("vpc") {
        add(k.clone(), v, &mut entries);
    }
    let mut s = String::new();
    for (name, v) in entries {
        let text = match &v {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        if text.contains('\n') || text.contains('\r') {
            let delim = delimiter(&text);
            s.push_str(&format!("{name}<<{delim}\n{text}\n{delim}\n"));
        } else {
            s.push_str(&format!("{name}={text}\n"));
        }
    }
    s
}

/// A plan's `$GITHUB_OUTPUT` lines: `change_count` (resources to add, change,
/// destroy or replace over the selection), `destroy_count` (to destroy or replace)
/// and `customers` (the names of those with any change, space-separated).
pub(crate) fn plan_output_text(reports: &[RunReport]) -> String {
    let changes = reports.iter().map(RunReport::changes).fold(crate::customer::report::Changes::default(), |a, b| a.plus(b));
    let changed: Vec<&str> = reports.iter().filter(|r| r.changes().total() > 0).map(|r| r.customer.as_str()).collect();
    format!("change_count={}\ndestroy_count={}\ncustomers={}\n", changes.total(), changes.destroy + changes.replace, changed.join(" "))
}

/// A heredoc delimiter that does not occur in `value`.
fn delimiter(value: &str) -> String {
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        ^ u128::from(std::process::id());
    loop {
        let d = format!("ghadelimiter_{:016x}", seed as u64);
        if !value.contains(&d) {
            return d;
        }
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
}

/// After a deploy, plan or destroy (or any operation with run reports): appends the
/// step summary, and for a one-customer deploy writes its outputs. A summary that
/// cannot be written is a warning (the run's result stands); outputs that cannot
/// be written are an error (later steps would read nothing).
pub(crate) fn after_run(op: Operation, reports: &[RunReport], wall: Duration) -> Result<(), Error> {
    let ci = super::ci_env::get();
    // A plan's counts for the next steps (`if: steps.plan.outputs.destroy_count != '0'`).
    if op == Operation::Plan
        && let Some(path) = &ci.env.output
    {
        append(path, &plan_output_text(reports)).map_err(|e| {
            Error::stage_hint(
                format!("cannot write the plan's outputs to $GITHUB_OUTPUT: {e}"),
                "the runner sets GITHUB_OUTPUT to a writable file; check the step's environment",
            )
        })?;
    }
    if !ci.github() {
        return Ok(());
    }
    let warn = |m: String| {
        let line = command("warning", &[("title", "stamp".into())], &m);
        let _ = std::io::stderr().lock().write_all(format!("warning: {m}\n{line}\n").as_bytes());
    };
    if let Some(path) = &ci.env.step_summary
        && let Err(e) = append(path, &summary_markdown(op.as_str(), reports, wall))
    {
        warn(format!("cannot append the step summary to $GITHUB_STEP_SUMMARY: {e}"));
    }
    if op == Operation::Deploy
        && let [report] = reports
        && let Some(path) = &ci.env.output
    {
        append(path, &output_text(report)).map_err(|e| {
            Error::stage_hint(
                format!("cannot write the deploy's outputs to $GITHUB_OUTPUT: {e}"),
                "the runner sets GITHUB_OUTPUT to a writable file; check the step's environment",
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::report::{Changes, SCHEMA_VERSION, StageReport};
    use std::collections::BTreeMap;

    #[test]
    fn escaping_follows_the_workflow_command_rules() {
        assert_eq!(escape_data("100% done\r\nnext: a, b"), "100%25 done%0D%0Anext: a, b");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(command("endgroup", &[], ""), "::endgroup::");
        assert_eq!(
            command("error", &[("file", "customers/acme.toml".into()), ("title", "acme: vpc, failed".into())], "line 1\nline 2"),
            "::error file=customers/acme.toml,title=acme%3A vpc%2C failed::line 1%0Aline 2"
        );
        assert_eq!(mask_lines("one\n\ntwo%\r\n"), ["::add-mask::one", "::add-mask::two%25"]);
    }

    #[test]
    fn annotations_point_at_file_line_and_column_relative_to_the_workspace() {
        let at = Location { file: Some("/ws/customers/acme.toml".into()), line: Some(3), col: Some(7) };
        assert_eq!(
            annotation("error", &at, "stamp: configuration error", "bad value", Some(Path::new("/ws"))),
            "::error file=customers/acme.toml,line=3,col=7,title=stamp%3A configuration error::bad value"
        );
        assert_eq!(annotation_path(Path::new("/elsewhere/x.toml"), Some(Path::new("/ws"))), "/elsewhere/x.toml");
        let e = Error::Config(crate::error::ConfigError::at(Path::new("/ws/c.toml"), "a = 1\nbad = x\n", 12..13, "invalid".into()));
        assert_eq!(
            error_annotation(&e, None, Some(Path::new("/ws"))).unwrap(),
            "::error file=c.toml,line=2,col=7,title=stamp%3A configuration error::invalid"
        );
        assert!(error_annotation(&Error::stage("x"), None, None).is_none());
    }

    fn report(customer: &str, op: Operation, status: Status, stages: Vec<StageReport>) -> RunReport {
        let mut r = RunReport::not_started(customer, op, "production", "eu-west-1", "/w/logs".into(), "");
        r.status = status;
        r.error = None;
        r.schema_version = SCHEMA_VERSION;
        r.stages = stages;
        r.duration_s = 62.0;
        r
    }

    fn stage(name: Stage, status: Status, changes: Option<Changes>, destroys: &[&str]) -> StageReport {
        StageReport {
            name,
            status,
            duration_s: 1.0,
            detail: if status == Status::Failed { "exit status 1".into() } else { String::new() },
            changes,
            destroys: destroys.iter().map(|d| d.to_string()).collect(),
            plan: Default::default(),
        }
    }

    #[test]
    fn a_drift_summary_lists_the_drifted_resources_with_their_attributes() {
        use crate::tools::terraform::{Action, ResourceChange};
        let mut vpc = stage(Stage::Vpc, Status::Ok, None, &[]);
        vpc.plan.drifted = Some(vec![ResourceChange {
            address: "aws_vpc.this".into(),
            action: Action::Update,
            attributes: vec!["tags.env".into()],
            tainted: false,
        }]);
        let acme = report("acme", Operation::Drift, Status::Ok, vec![vpc]);
        let md = summary_markdown("drift", &[acme], Duration::from_secs(3));
        assert!(md.contains("> 1 resource(s) drifted from their state:"), "{md}");
        assert!(md.contains("- 🔀 **acme** vpc: `aws_vpc.this` (tags.env)"), "{md}");
    }

    #[test]
    fn the_summary_has_the_table_the_destroys_and_the_totals() {
        let mut acme = report(
            "acme",
            Operation::Plan,
            Status::Ok,
            vec![
                stage(Stage::Bucket, Status::Unchanged, None, &[]),
                stage(Stage::Vpc, Status::Ok, Some(Changes { add: 0, change: 0, destroy: 0, replace: 1 }), &["replace aws_subnet.a|b"]),
                stage(Stage::Ami, Status::Skipped, None, &[]),
            ],
        );
        acme.outputs.insert("frontends".into(), serde_json::json!({"public_url": "http://acme.example"}));
        let mut globex = report("globex", Operation::Plan, Status::Failed, vec![stage(Stage::Bucket, Status::Failed, None, &[])]);
        globex.failed_stage = Some(Stage::Bucket);
        let md = summary_markdown("plan", &[acme, globex], Duration::from_secs(65));
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "### `stamp plan`: 2 customers");
        assert_eq!(lines[2], "| customer | env | region | result | bucket | vpc | ami | frontends | smoke | time | public URL |");
        assert_eq!(lines[3], "|---|---|---|---|---|---|---|---|---|---:|---|");
        assert_eq!(
            lines[4],
            "| **acme** | production | eu-west-1 | ✅ done | ✅ no changes | ✅ done (+0 ~0 -0 -/+1) | ➖ skipped | – | – | 1m02s | http://acme.example |"
        );
        assert!(lines[5].starts_with("| **globex** | production | eu-west-1 | ❌ FAILED | ❌ FAILED (exit status 1) | – |"), "{md}");
        assert!(md.contains("> This plan would destroy or replace 1 resource(s):"), "{md}");
        assert!(md.contains("- ⚠️ **acme** vpc: `replace aws_subnet.a|b`"), "{md}");
        assert!(md.contains("- ❌ **globex**: FAILED at stage bucket; log `/w/logs/bucket.log`"), "{md}");
        assert!(md.contains("**2 customers in 1m05s: 1 ok, 1 failed, 0 interrupted, 0 not started**"), "{md}");
    }

    #[test]
    fn appending_keeps_what_the_file_held() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.md");
        std::fs::write(&p, "earlier step\n").unwrap();
        append(&p, "ours\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "earlier step\nours\n");
        let err = append(&dir.path().join("no/such/dir"), "x").unwrap_err();
        assert!(err.contains("no/such/dir"), "{err}");
    }

    #[test]
    fn outputs_are_flat_never_sensitive_and_multiline_safe() {
        let mut r = report("acme", Operation::Deploy, Status::Ok, vec![]);
        r.outputs = BTreeMap::from([
            ("vpc".into(), serde_json::json!({"vpc_id": "vpc-1", "public_subnet_ids": ["subnet-1", "subnet-2"], "name": "v"})),
            ("ami_id".into(), serde_json::json!("ami-1")),
            (
                "frontends".into(),
                serde_json::json!({"public_url": "http://x", "ami_id": "ami-1", "db_password": "(sensitive)", "motd": "a\nb", "name": "f"}),
            ),
        ]);
        let text = output_text(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(&lines[..4], ["customer=acme", "env=production", "region=eu-west-1", "status=ok"]);
        assert!(lines.contains(&"public_url=http://x") && lines.contains(&"ami_id=ami-1") && lines.contains(&"vpc_id=vpc-1"), "{text}");
        assert!(lines.contains(&"public_subnet_ids=[\"subnet-1\",\"subnet-2\"]"), "{text}");
        assert!(lines.contains(&"name=f") && lines.contains(&"vpc_name=v"), "{text}");
        assert_eq!(text.matches("ami_id=").count(), 1, "{text}");
        assert!(!text.contains("sensitive") && !text.contains("db_password"), "{text}");
        let start = lines.iter().position(|l| l.starts_with("motd<<ghadelimiter_")).expect(&text);
        let delim = lines[start].trim_start_matches("motd<<");
        assert_eq!(&lines[start + 1..start + 4], ["a", "b", delim]);
    }

    #[test]
    fn at_most_ten_error_annotations_then_a_notice_of_how_many_more() {
        let error = |i: usize| command("error", &[("title", format!("e{i}"))], "boom");
        let shown = (0..13).filter_map(|i| capped(error(i))).count();
        assert_eq!(shown, MAX_ERROR_ANNOTATIONS);
        assert!(capped(command("warning", &[], "w")).is_some(), "warnings are not capped");
        let notice = held_back_notice().expect("a notice");
        assert!(notice.starts_with("::notice title=stamp%3A more errors::3 more error(s) were not annotated"), "{notice}");
        assert!(notice.contains("this step's log") && notice.contains("job summary"), "{notice}");
        assert_eq!(held_back_notice(), None, "said once");
    }
}
