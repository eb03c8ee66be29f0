//! `outputs`: customers' outputs, read back from their states in S3.

use serde_json::{Value, json};

use crate::cli::Target;
use crate::config::Fleet;
use crate::error::Error;
use crate::names::{BucketName, CustomerName, EnvName};
use crate::tools::find;
use crate::tools::process::StageLog;
use crate::tools::terraform;

pub(super) async fn outputs(fleet: &Fleet, names: &[CustomerName], target: &Target, as_json: bool, show: bool) -> Result<(), Error> {
    if names.len() == 1 && !as_json {
        return one(fleet, &names[0], target.env.as_ref(), as_json, show, true).await.map(|_| ());
    }
    // Several, or JSON: one block each, or one entry each in the document.
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    let mut single = None;
    for n in names {
        match one(fleet, n, target.env.as_ref(), as_json, show, false).await {
            Ok(v) => rows.push(json!({"customer": n.as_str(), "outputs": v})),
            Err(e) => {
                rows.push(json!({"customer": n.as_str(), "error": e.to_string()}));
                missing.push(n.to_string());
                if names.len() == 1 {
                    single = Some(e);
                } else {
                    eprintln!("error: {n}: {e}");
                }
            }
        }
    }
    if as_json {
        let summary = json!({"total": rows.len(), "ok": rows.len() - missing.len(), "failed": missing.len()});
        super::json_out::print("outputs", json!({"customers": rows, "summary": summary}));
    }
    // One customer: its own error and exit code, as without --json.
    if let Some(e) = single {
        return Err(e);
    }
    if !missing.is_empty() {
        return Err(Error::Reported { message: format!("no outputs for {}", missing.join(", ")), code: crate::error::EXIT_STAGE_FAILED });
    }
    Ok(())
}

/// One customer's outputs; printed as one customer's when `print`, else as one block
/// of several (text) or only returned (JSON).
async fn one(fleet: &Fleet, name: &CustomerName, env: Option<&EnvName>, as_json: bool, show: bool, print: bool) -> Result<Value, Error> {
    let mut customer = fleet.load_customer(name)?;
    if let Some(env) = env {
        fleet.check_env(env)?;
        customer.env = env.clone();
    }
    let aws_path = find::find_aws(fleet)?;
    let env = find::tool_env(fleet, &customer.region, &fleet.paths.work)?;
    let aws = crate::tools::aws::Aws::new(fleet, aws_path, env);
    let mut log = StageLog::discard_with_notes();
    let bucket: BucketName = crate::stages::bucket::state_bucket(fleet, &customer, &aws, &mut log).await?;
    let keys = crate::customer::plan::state_keys(&customer);
    let mut all = serde_json::Map::new();
    let mut order = Vec::new();
    for (section, key) in &keys {
        order.push(section.clone());
        let state = aws.read_object("outputs", &mut log, &bucket, key).await?;
        let outs = match state {
            Some(s) => terraform::outputs_from_state(&s).map_err(|m| Error::stage(format!("s3://{bucket}/{key}: {m}")))?,
            None => terraform::Outputs::new(),
        };
        if show {
            crate::ui::github::mask_shown_outputs(&outs, as_json);
        }
        all.insert(section.clone(), crate::customer::pipeline::outputs_json(&outs, show));
    }
    if all.values().all(|v| v.as_object().is_some_and(|m| m.is_empty())) {
        return Err(Error::stage_hint(
            format!("{} has no outputs in s3://{bucket}: not deployed", customer.name),
            format!("run `stamp deploy {}`", customer.name),
        ));
    }
    if !print {
        if !as_json {
            println!("{name}:");
            for section in &order {
                for (k, v) in all[section].as_object().into_iter().flatten() {
                    println!("  {section}.{k} = {}", value_text(v));
                }
            }
        }
        return Ok(Value::Object(all));
    }
    for section in &order {
        let v = &all[section];
        println!("{section}:");
        if let Some(m) = v.as_object() {
            if m.is_empty() {
                println!("  (not deployed)");
            }
            for (k, v) in m {
                println!("  {k} = {}", value_text(v));
            }
        }
    }
    Ok(Value::Object(all))
}

pub(super) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
