//! Fleets past GitHub's limits: `stamp matrix --max-jobs N` over 1,000 customer files
//! groups them into at most N jobs (each canary alone and first), and stamp writes
//! the matrices to $GITHUB_OUTPUT itself. The real binary, no emulator, no git.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-2"];

/// A fleet of `n` customers `cust-0000`...: regions and envs in turn; `[fleet] canary`
/// names two of them, in an order that is not the name order.
fn big_fleet(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stamp.toml"),
        "[fleet]\nregion = \"eu-west-1\"\nenvs = [\"production\", \"staging\"]\napp_repo = \"https://example.com/app.git\"\n\
         canary = [\"cust-0500\", \"cust-0007\"]\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("customers")).unwrap();
    for i in 0..n {
        let env = if i % 2 == 0 { "production" } else { "staging" };
        std::fs::write(
            dir.path().join(format!("customers/cust-{i:04}.toml")),
            format!("git_id = \"v1\"\nregion = \"{}\"\nenv = \"{env}\"\n", REGIONS[i % 3]),
        )
        .unwrap();
    }
    dir
}

fn stamp(dir: &Path, args: &[&str], github_output: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stamp"));
    c.current_dir(dir).args(args).env("CI", "true").env_remove("STAMP_CONFIG").env_remove("GITHUB_ACTIONS").env_remove("GITHUB_OUTPUT");
    if let Some(f) = github_output {
        c.env("GITHUB_OUTPUT", f);
    }
    c.output().unwrap()
}

/// `$GITHUB_OUTPUT` read back as the runner reads it: `name=value` lines.
fn outputs(file: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not name=value: {l}"));
            assert!(!k.contains("<<"), "a single-line value: {l}");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn a_thousand_customers_fit_in_max_jobs_with_every_customer_exactly_once_and_canaries_first() {
    let dir = big_fleet(1000);
    let file = dir.path().join("github-output");
    let out = stamp(dir.path(), &["matrix", "--canary", "2", "--max-jobs", "50"], Some(&file));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one compact line");
    let matrix = json(&stdout);
    let entries = matrix["include"].as_array().unwrap();
    assert_eq!(entries.len(), 50, "at most N entries, and N are used for 1,000 customers");

    // The canaries first, alone, in [fleet] canary's order.
    let customers = |e: &Value| -> Vec<String> { e["customers"].as_str().unwrap().split(' ').map(String::from).collect() };
    assert_eq!((customers(&entries[0]), entries[0]["canary"].clone()), (vec!["cust-0500".to_owned()], Value::Bool(true)));
    assert_eq!((customers(&entries[1]), entries[1]["canary"].clone()), (vec!["cust-0007".to_owned()], Value::Bool(true)));
    assert!(entries[2..].iter().all(|e| e["canary"] == false), "only the canaries are canaries");

    // Every customer exactly once.
    let mut seen: Vec<String> = entries.iter().flat_map(customers).collect();
    assert_eq!(seen.len(), 1000);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 1000, "a customer is in two entries");

    // Each entry: its job number, its count, the region and env of its first customer.
    let region = |name: &str| REGIONS[name[5..].parse::<usize>().unwrap() % 3];
    for (i, e) in entries.iter().enumerate() {
        let names = customers(e);
        assert_eq!(e["job"], (i + 1).to_string());
        assert_eq!(e["count"], names.len());
        assert_eq!(e["region"], region(&names[0]), "{e}");
        assert!(e["env"] == "production" || e["env"] == "staging", "{e}");
    }
    // The others: ordered by (region, name), cut into near-equal contiguous groups.
    let rest: Vec<String> = entries[2..].iter().flat_map(customers).collect();
    let mut sorted = rest.clone();
    sorted.sort_by(|a, b| (region(a), a).cmp(&(region(b), b)));
    assert_eq!(rest, sorted);
    let sizes: Vec<u64> = entries[2..].iter().map(|e| e["count"].as_u64().unwrap()).collect();
    assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");

    // $GITHUB_OUTPUT, written by stamp, parsed back.
    let o = outputs(&file);
    assert_eq!(json(&o["matrix"]), matrix);
    assert_eq!(o["count"], "50");
    let canary = json(&o["canary"]);
    assert_eq!(canary["include"].as_array().unwrap().as_slice(), &entries[..2]);
    assert_eq!(o["canary_count"], "2");
    assert_eq!(json(&o["rest"])["include"].as_array().unwrap().as_slice(), &entries[2..]);
    assert_eq!(o["rest_count"], "48");
}

#[test]
fn max_jobs_bounds_and_the_ungrouped_matrix_in_github_output() {
    let dir = big_fleet(1000);
    // GitHub's own limit: 256 jobs for 1,000 customers.
    let out = stamp(dir.path(), &["matrix", "--max-jobs", "256"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = json(&String::from_utf8(out.stdout).unwrap());
    let entries = m["include"].as_array().unwrap();
    assert_eq!(entries.len(), 256);
    assert_eq!(entries.iter().map(|e| e["count"].as_u64().unwrap()).sum::<u64>(), 1000);
    assert!(entries.iter().all(|e| e["canary"] == false), "no canary asked for");
    // Out of range, or no room for the others after the canaries: exit 2, nothing on stdout.
    for (args, why) in [
        (&["matrix", "--max-jobs", "0"][..], "0 is not in 1..=256"),
        (&["matrix", "--max-jobs", "257"][..], "257 is not in 1..=256"),
        (&["matrix", "--canary", "2", "--max-jobs", "2"][..], "--max-jobs 2: 2 canaries (one job each) and at least one job"),
    ] {
        let out = stamp(dir.path(), args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    // Without --max-jobs: one entry per customer, and the outputs split the same way.
    let small = big_fleet(3);
    let file = small.path().join("github-output");
    let out = stamp(small.path(), &["matrix", "--canary", "1"], Some(&file));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let o = outputs(&file);
    assert_eq!(json(&o["matrix"]), json(&String::from_utf8(out.stdout).unwrap()));
    assert_eq!((o["count"].as_str(), o["canary_count"].as_str(), o["rest_count"].as_str()), ("3", "1", "2"));
    assert_eq!(json(&o["canary"])["include"][0]["customer"], "cust-0000", "the fleet's canaries are not among these three");
    assert_eq!(json(&o["rest"])["include"].as_array().unwrap().len(), 2);
}
