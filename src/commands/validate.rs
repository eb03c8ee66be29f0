//! `validate`: every check that needs no AWS and no tool run, for each customer;
//! all problems of all customers are reported, not only the first.

use std::rc::Rc;

use serde_json::{Value, json};

use crate::cli::Target;
use crate::config::Fleet;
use crate::error::{EXIT_USAGE, Error};
use crate::names::CustomerName;
use crate::shared::context::FleetContext;

pub(super) fn validate(fleet: Fleet, names: &[CustomerName], t: &Target, as_json: bool) -> Result<(), Error> {
    let ctx = Rc::new(FleetContext::new(fleet, None).offline());
    let mut bad = 0usize;
    let mut problems = 0usize;
    // For --json: one entry per customer (and per file that is not one), as on stderr.
    let mut rows: Vec<Value> = Vec::new();
    // Files in the customers directory whose names are not customers are problems too.
    if t.all {
        for entry in ctx.fleet.customer_names()? {
            if let Err((path, m)) = entry {
                bad += 1;
                problems += 1;
                eprintln!("error: {}: not a valid customer name: {m}", path.display());
                crate::ui::github::annotate(&Error::usage(format!("not a valid customer name: {m}")), Some(&path));
                let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
                rows.push(json!({"customer": name, "file": path, "valid": false, "problems": [format!("not a valid customer name: {m}")], "notes": []}));
            }
        }
    }
    for n in names {
        let file = ctx.fleet.customer_file(n);
        match crate::customer::plan::CustomerPlan::resolve(&ctx, n, t.env.as_ref()) {
            Ok(plan) => {
                // A secret's value is not part of the files: plan, deploy and render
                // read it, and refuse without it.
                for m in &plan.unavailable_secrets {
                    eprintln!("note: {n}: {m}\n  (only a note here: plan, deploy and render read the value, and refuse without it)");
                }
                rows.push(json!({"customer": n.as_str(), "file": file, "valid": true, "problems": [], "notes": plan.unavailable_secrets}));
            }
            Err(errors) => {
                bad += 1;
                for e in &errors {
                    problems += 1;
                    eprintln!("error: {n}: {e}");
                    crate::ui::github::annotate(e, Some(&file));
                }
                let listed: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                rows.push(json!({"customer": n.as_str(), "file": file, "valid": false, "problems": listed, "notes": []}));
            }
        }
    }
    let checked = names.len();
    if as_json {
        let summary = json!({"total": rows.len(), "valid": rows.len() - bad, "invalid": bad, "problems": problems});
        super::json_out::print("validate", json!({"customers": rows, "summary": summary}));
    }
    if bad > 0 {
        return Err(Error::Reported { message: format!("{problems} problem(s) in {bad} of {checked} customer(s)"), code: EXIT_USAGE });
    }
    eprintln!("{checked} customer(s) valid");
    Ok(())
}
