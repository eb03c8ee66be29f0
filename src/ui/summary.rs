//! Summaries printed on stdout when a run ends: one customer's stages and outputs
//! (as stamp always printed), and for several customers the fleet table; `--json`
//! prints the same as data.

use std::time::Duration;

use serde_json::{Value, json};

use crate::customer::report::{Changes, Placeholder, ResourceChange, RunReport};
use crate::events::{Stage, Status, format_elapsed};
use crate::operation::Operation;

/// `rows` (a header row first) as left-aligned columns two spaces apart, each line
/// without trailing blanks: the plain tables of `stamp status` and `stamp history`.
pub(crate) fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n).map(|i| rows.iter().filter_map(|l| l.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for l in rows {
        let cells: Vec<String> = l.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Colour for stdout (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`: `ui::colour`). Every
/// marker also carries its meaning without colour (`!!`, `-/+`, `*`).
pub(crate) fn stdout_colour() -> bool {
    crate::ui::colour::stdout()
}

/// `text` in bold red (destroys, replacements, drift) when `colour` is on.
fn loud(text: &str, colour: bool) -> String {
    if colour { format!("\x1b[1;31m{text}\x1b[0m") } else { text.to_owned() }
}

/// `text` in yellow (placeholders) when `colour` is on.
fn warn(text: &str, colour: bool) -> String {
    if colour { format!("\x1b[33m{text}\x1b[0m") } else { text.to_owned() }
}

/// One planned change: terraform's marker, the action, the address; a destroy or
/// replacement is marked `!!` (and red in a terminal).
fn change_line(indent: &str, who: &str, c: &ResourceChange, colour: bool) -> String {
    let tainted = if c.tainted { " (tainted: its create failed, or it was tainted by hand)" } else { "" };
    let line =
        format!("{indent}{} {:>3} {:<8} {who}{}{tainted}", if c.destroys() { "!!" } else { "  " }, c.action.marker(), c.action, c.address);
    if c.destroys() { format!("{}\n", loud(&line, colour)) } else { format!("{line}\n") }
}

/// The human summary of a run: each stage's status and duration, then the outputs.
pub(crate) fn summary_text(r: &RunReport) -> String {
    summary_text_styled(r, stdout_colour())
}

/// `summary_text`, with colour or without.
pub(crate) fn summary_text_styled(r: &RunReport, colour: bool) -> String {
    let verb = match (r.operation, r.status) {
        (_, Status::Failed) => "FAILED",
        (_, Status::Interrupted) => "INTERRUPTED",
        (_, Status::NotStarted) => "NOT STARTED",
        (Operation::Deploy, _) => "deployed",
        (Operation::Plan, _) => "planned",
        (Operation::Destroy, _) => "destroyed",
        (Operation::Render, _) => "rendered",
        (Operation::Drift, _) => "checked for drift",
    };
    let mut s = format!(
        "\n{} {verb}: env {}, region {}, {}\n",
        r.customer,
        r.env,
        r.region,
        format_elapsed(std::time::Duration::from_secs_f64(r.duration_s))
    );
    if let (Some(g), Some(c)) = (&r.git_id, &r.commit) {
        let short = &c[..12.min(c.len())];
        if g.eq_ignore_ascii_case(c) {
            s.push_str(&format!("  app commit {c}\n"));
        } else {
            s.push_str(&format!("  app {g} at commit {short} ({c})\n"));
        }
    }
    for st in &r.stages {
        s.push_str(&format!(
            "  {:<10} {:<12} {:>7}  {}\n",
            st.name.as_str(),
            st.status.word(),
            format_elapsed(std::time::Duration::from_secs_f64(st.duration_s)),
            st.detail
        ));
    }
    if r.operation == Operation::Plan {
        for st in r.stages.iter().filter(|st| !st.plan.resources.is_empty()) {
            s.push_str(&format!("{} plan:\n", st.name));
            for c in &st.plan.resources {
                s.push_str(&change_line("  ", "", c, colour));
            }
        }
        for st in r.stages.iter().filter(|st| st.plan.placeholder) {
            s.push_str(&format!("{}\n", warn(&format!("* {}: {}", st.name, Placeholder::label(&st.plan.placeholders)), colour)));
        }
        let destroys = r.stages.iter().flat_map(|st| st.plan.resources.iter()).filter(|c| c.destroys()).count();
        if destroys > 0 {
            s.push_str(&format!("{}\n", loud(&format!("!! {destroys} resource(s) would be destroyed or replaced"), colour)));
        }
        for st in r.stages.iter() {
            if let Some(l) = &st.plan.lock_held {
                s.push_str(&format!("{}\n", warn(&lock_held_line(&r.customer, st.name, l), colour)));
            }
        }
    }
    let mut flat: Vec<(String, String)> = Vec::new();
    // In pipeline order, not alphabetical.
    let sections = ["vpc", "ami_id", "frontends"].into_iter().filter_map(|k| r.outputs.get(k).map(|v| (k, v)));
    for (section, v) in sections {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    flat.push((format!("{section}.{k}"), value_text(v)));
                }
            }
            other => flat.push((section.to_owned(), value_text(other))),
        }
    }
    if !flat.is_empty() {
        s.push_str("outputs:\n");
        for (k, v) in flat {
            s.push_str(&format!("  {k} = {v}\n"));
        }
    }
    if let Some(url) = r.outputs.get("frontends").and_then(|f| f.get("public_url")).and_then(Value::as_str) {
        s.push_str(&format!("public URL: {url}\n"));
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s.push_str(&format!("logs: {}\n", r.log_dir.display()));
    s
}

/// A plan made while another run held the stack's state lock (a plan takes none).
fn lock_held_line(customer: &str, stage: Stage, l: &crate::customer::report::LockInfo) -> String {
    format!(
        "lock: {customer} {stage}: the state lock is held by {}: another run is changing this stack, so this plan may be out of date; \
         `stamp status {customer}` shows it and how to release it if no run is active",
        l.describe()
    )
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The fleet table: customer, env, region, result, duration, changes, public URL;
/// then each customer that did not succeed, with its failed stage and log.
pub(crate) fn fleet_text(reports: &[RunReport], wall: Duration) -> String {
    fleet_text_styled(reports, wall, stdout_colour())
}

/// `fleet_text`, with colour or without. A plan's table marks placeholder plans
/// `*`, ends with a TOTAL line, and lists every destroy and replacement.
pub(crate) fn fleet_text_styled(reports: &[RunReport], wall: Duration, colour: bool) -> String {
    let mut s =
        format!("\n{:<24} {:<12} {:<12} {:<12} {:>8}  {:<22} PUBLIC URL\n", "CUSTOMER", "ENV", "REGION", "RESULT", "TIME", "CHANGES");
    let mut total = Changes::default();
    let any_changes = reports.iter().any(|r| r.stages.iter().any(|st| st.changes.is_some()));
    for r in reports {
        let c = r.changes();
        total = total.plus(c);
        let mut changes = if r.stages.iter().any(|st| st.changes.is_some()) { c.short() } else { "-".into() };
        if r.placeholder() {
            changes.push_str(" *");
        }
        s.push_str(&format!(
            "{:<24} {:<12} {:<12} {:<12} {:>8}  {:<22} {}\n",
            r.customer,
            r.env,
            r.region,
            r.status.word(),
            format_elapsed(Duration::from_secs_f64(r.duration_s)),
            changes,
            r.public_url().unwrap_or("-")
        ));
    }
    if any_changes {
        s.push_str(format!("{:<24} {:<12} {:<12} {:<12} {:>8}  {:<22}", "TOTAL", "", "", "", "", total.short()).trim_end());
        s.push('\n');
    }
    let placeholders: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.stages
                .iter()
                .filter(|st| st.plan.placeholder)
                .map(|st| format!("* {} {}: {}", r.customer, st.name, Placeholder::label(&st.plan.placeholders)))
        })
        .collect();
    for p in &placeholders {
        s.push_str(&format!("{}\n", warn(p, colour)));
    }
    for r in reports {
        for st in &r.stages {
            if let Some(l) = &st.plan.lock_held {
                s.push_str(&format!("{}\n", warn(&lock_held_line(&r.customer, st.name, l), colour)));
            }
        }
    }
    let destroys: Vec<(&str, Stage, &ResourceChange)> = reports
        .iter()
        .flat_map(|r| {
            r.stages
                .iter()
                .flat_map(move |st| st.plan.resources.iter().filter(|c| c.destroys()).map(move |c| (r.customer.as_str(), st.name, c)))
        })
        .collect();
    if !destroys.is_empty() {
        s.push_str(&format!("{}\n", loud(&format!("\n!! {} resource(s) would be destroyed or replaced:", destroys.len()), colour)));
        for (customer, stage, c) in destroys {
            s.push_str(&change_line("  ", &format!("{customer} {stage}: "), c, colour));
        }
    }
    let count = |st: &[Status]| reports.iter().filter(|r| st.contains(&r.status)).count();
    s.push_str(&format!(
        "\n{} customers in {}: {} ok, {} failed, {} interrupted, {} not started\n",
        reports.len(),
        format_elapsed(wall),
        count(&[Status::Ok, Status::Unchanged, Status::Skipped, Status::Resumed]),
        count(&[Status::Failed]),
        count(&[Status::Interrupted]),
        count(&[Status::NotStarted]),
    ));
    for r in reports.iter().filter(|r| !r.status.succeeded()) {
        match (r.status, r.failed_stage) {
            (Status::NotStarted, _) => {
                s.push_str(&format!("  {}: not started ({})\n", r.customer, r.error.as_deref().unwrap_or("the run stopped")))
            }
            (_, Some(stage)) => s.push_str(&format!(
                "  {}: {} at stage {stage}; log {}\n",
                r.customer,
                r.status.word(),
                r.log_dir.join(format!("{stage}.log")).display()
            )),
            _ => s.push_str(&format!(
                "  {}: {}: {}\n",
                r.customer,
                r.status.word(),
                r.error.as_deref().unwrap_or_default().lines().next().unwrap_or_default()
            )),
        }
    }
    s
}

/// The body of deploy's, plan's and destroy's `--json` (any number of customers):
/// `{"customers": [<run report>...], "summary": {...}}`.
pub(crate) fn fleet_json(reports: &[RunReport], wall: Duration) -> Value {
    let count = |st: &[Status]| reports.iter().filter(|r| st.contains(&r.status)).count();
    let total = reports.iter().map(RunReport::changes).fold(Changes::default(), Changes::plus);
    json!({
        "customers": reports,
        "summary": {
            "changes": total,
            "placeholder_plans": reports.iter().filter(|r| r.placeholder()).count(),
            "total": reports.len(),
            "ok": count(&[Status::Ok, Status::Unchanged, Status::Skipped, Status::Resumed]),
            "failed": count(&[Status::Failed]),
            "interrupted": count(&[Status::Interrupted]),
            "not_started": count(&[Status::NotStarted]),
            "wall_time_s": (wall.as_secs_f64() * 100.0).round() / 100.0,
        }
    })
}

/// Where one customer stands after `stamp drift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DriftState {
    /// Some real infrastructure differs from its state.
    Drifted,
    /// No drift, but configuration not yet applied.
    Pending,
    InSync,
    /// No stack deployed: nothing to compare (not drift).
    NotDeployed,
    /// The check failed, was interrupted or did not start.
    Unknown,
}

impl DriftState {
    pub(crate) fn of(r: &RunReport) -> Self {
        if !r.status.succeeded() {
            return DriftState::Unknown;
        }
        let checked: Vec<_> = r.stages.iter().filter(|s| s.plan.drifted.is_some()).collect();
        if checked.is_empty() {
            DriftState::NotDeployed
        } else if !r.drifted().is_empty() {
            DriftState::Drifted
        } else if r.changes().total() > 0 {
            DriftState::Pending
        } else {
            DriftState::InSync
        }
    }

    pub(crate) fn word(self, r: &RunReport) -> &'static str {
        match self {
            DriftState::Drifted => "drifted",
            DriftState::Pending => "pending",
            DriftState::InSync => "in sync",
            DriftState::NotDeployed => "not deployed",
            DriftState::Unknown => r.status.word(),
        }
    }
}

/// `stamp drift`'s table (one customer or many): per customer the drift state,
/// then per stack the drifted resources (loud) and the pending changes.
pub(crate) fn drift_text(reports: &[RunReport], wall: Duration, colour: bool) -> String {
    let mut s = format!("\n{:<24} {:<12} {:<12} {:<14} {:>8}  {:<8} PENDING\n", "CUSTOMER", "ENV", "REGION", "DRIFT", "TIME", "DRIFTED");
    for r in reports {
        let state = DriftState::of(r);
        let pending = if r.stages.iter().any(|st| st.plan.drifted.is_some()) { r.changes().short() } else { "-".into() };
        let drifted =
            if state == DriftState::NotDeployed || state == DriftState::Unknown { "-".into() } else { r.drifted().len().to_string() };
        let line = format!(
            "{:<24} {:<12} {:<12} {:<14} {:>8}  {:<8} {pending}",
            r.customer,
            r.env,
            r.region,
            state.word(r),
            format_elapsed(Duration::from_secs_f64(r.duration_s)),
            drifted
        );
        s.push_str(&if state == DriftState::Drifted { loud(&line, colour) } else { line });
        s.push('\n');
    }
    let drifted: Vec<(&str, Stage, &ResourceChange)> =
        reports.iter().flat_map(|r| r.drifted().into_iter().map(move |(st, c)| (r.customer.as_str(), st, c))).collect();
    if !drifted.is_empty() {
        s.push_str(&format!(
            "{}\n",
            loud(&format!("\n!! drifted: {} resource(s) differ from their state (changed outside terraform):", drifted.len()), colour)
        ));
        for (customer, stage, c) in drifted {
            let attrs = if c.attributes.is_empty() { String::new() } else { format!(" ({})", c.attributes.join(", ")) };
            s.push_str(&loud(&format!("  !! {:>3} {:<8} {customer} {stage}: {}{attrs}", c.action.marker(), c.action, c.address), colour));
            s.push('\n');
        }
    }
    let pending: Vec<(&str, Stage, &ResourceChange)> = reports
        .iter()
        .flat_map(|r| r.stages.iter().flat_map(move |st| st.plan.resources.iter().map(move |c| (r.customer.as_str(), st.name, c))))
        .collect();
    if !pending.is_empty() {
        s.push_str(&format!("\npending: {} change(s) a deploy would apply:\n", pending.len()));
        for (customer, stage, c) in pending {
            s.push_str(&change_line("  ", &format!("{customer} {stage}: "), c, colour));
        }
    }
    let n = |want: DriftState| reports.iter().filter(|r| DriftState::of(r) == want).count();
    s.push_str(&format!(
        "\n{} customer(s) in {}: {} drifted, {} pending, {} in sync, {} not deployed, {} failed or not checked\n",
        reports.len(),
        format_elapsed(wall),
        n(DriftState::Drifted),
        n(DriftState::Pending),
        n(DriftState::InSync),
        n(DriftState::NotDeployed),
        n(DriftState::Unknown),
    ));
    for r in reports.iter().filter(|r| DriftState::of(r) == DriftState::Unknown) {
        let why = match r.failed_stage {
            Some(stage) => format!("at stage {stage}; log {}", r.log_dir.join(format!("{stage}.log")).display()),
            None => r.error.as_deref().unwrap_or_default().lines().next().unwrap_or_default().to_owned(),
        };
        s.push_str(&format!("  {}: {} {why}\n", r.customer, r.status.word()));
    }
    s
}

/// One customer's drift report as data: the run report with `drift` added.
pub(crate) fn drift_customer_json(r: &RunReport) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("drift".into(), json!(DriftState::of(r).word(r)));
    }
    v
}

/// The body of `stamp drift --json` (any number of customers).
pub(crate) fn drift_json(reports: &[RunReport], wall: Duration) -> Value {
    let n = |want: DriftState| reports.iter().filter(|r| DriftState::of(r) == want).count();
    json!({
        "customers": reports.iter().map(drift_customer_json).collect::<Vec<_>>(),
        "summary": {
            "total": reports.len(),
            "drifted": n(DriftState::Drifted),
            "pending": n(DriftState::Pending),
            "in_sync": n(DriftState::InSync),
            "not_deployed": n(DriftState::NotDeployed),
            "failed": n(DriftState::Unknown),
            "wall_time_s": (wall.as_secs_f64() * 100.0).round() / 100.0,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::report::{Action, PlanDetail, StageReport};

    #[test]
    fn columns_are_left_aligned_two_spaces_apart_without_trailing_blanks() {
        let rows =
            vec![vec!["NAME".to_owned(), "URL".to_owned()], vec!["acme".to_owned(), "-".to_owned()], vec!["é".to_owned(), "".to_owned()]];
        assert_eq!(columns(&rows), "NAME  URL\nacme  -\né\n");
    }

    fn stack(
        name: Stage,
        resources: Vec<ResourceChange>,
        placeholders: Vec<Placeholder>,
        drifted: Option<Vec<ResourceChange>>,
    ) -> StageReport {
        StageReport {
            name,
            status: Status::Ok,
            duration_s: 1.0,
            detail: String::new(),
            changes: Some(Changes::of(&resources)),
            destroys: Vec::new(),
            plan: PlanDetail { placeholder: !placeholders.is_empty(), placeholders, resources, drifted, ..PlanDetail::default() },
        }
    }

    fn report(customer: &str, op: Operation, stages: Vec<StageReport>) -> RunReport {
        let mut r = RunReport::not_started(customer, op, "production", "eu-west-1", "/logs".into(), "");
        r.status = Status::Ok;
        r.error = None;
        r.stages = stages;
        r
    }

    fn rc(address: &str, action: Action) -> ResourceChange {
        ResourceChange { address: address.into(), action, attributes: vec![], tainted: false }
    }

    #[test]
    fn the_fleet_plan_totals_marks_placeholders_and_lists_destroys_loudly() {
        let a = report(
            "acme",
            Operation::Plan,
            vec![stack(Stage::Vpc, vec![rc("aws_vpc.this", Action::Replace), rc("aws_subnet.a", Action::Update)], vec![], None)],
        );
        let b = report(
            "globex",
            Operation::Plan,
            vec![stack(Stage::Frontends, vec![rc("aws_lb.this", Action::Create)], vec![Placeholder::VpcOutputs, Placeholder::Ami], None)],
        );
        let plain = fleet_text_styled(&[a.clone(), b.clone()], Duration::from_secs(3), false);
        assert!(plain.contains("+0 ~1 -0 -/+1 "), "{plain}");
        assert!(plain.contains("+1 ~0 -0 -/+0 *"), "{plain}");
        let total = plain.lines().find(|l| l.starts_with("TOTAL")).unwrap();
        assert!(total.ends_with("+1 ~1 -0 -/+1"), "{total}");
        assert!(plain.contains("!! 1 resource(s) would be destroyed or replaced:"), "{plain}");
        assert!(plain.contains("  !! -/+ replace  acme vpc: aws_vpc.this"), "{plain}");
        assert!(!plain.contains("aws_subnet.a"), "only destroys and replacements are listed: {plain}");
        assert!(plain.contains("* globex frontends: planned with placeholder vpc outputs / AMI: the real plan comes after `stamp deploy`"));
        assert!(!plain.contains('\x1b'));
        let coloured = fleet_text_styled(&[a, b], Duration::from_secs(3), true);
        assert!(coloured.contains("\x1b[1;31m  !! -/+ replace  acme vpc: aws_vpc.this\x1b[0m"), "{coloured}");
    }

    #[test]
    fn drift_tells_drifted_from_pending_and_not_deployed() {
        let drifted = report(
            "acme",
            Operation::Drift,
            vec![stack(
                Stage::Vpc,
                vec![rc("aws_vpc.this", Action::Update)],
                vec![],
                Some(vec![rc("aws_security_group.app", Action::Update)]),
            )],
        );
        let pending =
            report("globex", Operation::Drift, vec![stack(Stage::Vpc, vec![rc("aws_vpc.this", Action::Update)], vec![], Some(vec![]))]);
        let never = report("initech", Operation::Drift, vec![]);
        assert_eq!(DriftState::of(&drifted), DriftState::Drifted);
        assert_eq!(DriftState::of(&pending), DriftState::Pending);
        assert_eq!(DriftState::of(&never), DriftState::NotDeployed);
        let text = drift_text(&[drifted.clone(), pending.clone(), never.clone()], Duration::from_secs(1), false);
        assert!(text.contains("  !!   ~ update   acme vpc: aws_security_group.app"), "{text}");
        assert!(text.contains("1 drifted, 1 pending, 0 in sync, 1 not deployed, 0 failed"), "{text}");
        let json = drift_json(&[drifted, pending, never], Duration::from_secs(1));
        assert_eq!(json["customers"][0]["drift"], "drifted");
        assert_eq!(json["customers"][0]["stages"][0]["drifted"][0]["address"], "aws_security_group.app");
        assert_eq!(json["summary"]["not_deployed"], 1);
    }
}
