//! Fleets: many customers in one run, with the real tools against the emulator and
//! the stand-in stacks. Side by side with one bake per image, the failure policies
//! (default, --fail-fast, canary), Ctrl-C, selection, and validate --all.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Emulator, Fleet, Run, stage_status};
use serde_json::Value;

fn report<'a>(fleet_report: &'a Value, customer: &str) -> &'a Value {
    fleet_report["customers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customer"] == customer)
        .unwrap_or_else(|| panic!("no {customer} in {fleet_report:#}"))
}

/// The `$ cd DIR && ...` command lines of a customer's stage log.
fn commands(fleet: &Fleet, customer: &str, stage: &str) -> Vec<String> {
    fleet.log(customer, stage).lines().filter(|l| l.contains("] $ cd ")).map(String::from).collect()
}

#[test]
fn four_customers_side_by_side_share_one_bake_per_revision_and_never_mix_logs() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("alpha", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.1.0.0/16\"\n");
    fleet.customer("bravo", "git_id = \"v1\"\nenv = \"staging\"\n[vpc.vars]\ncidr_block = \"10.2.0.0/16\"\n");
    fleet.customer("charlie", "git_id = \"v2\"\n[vpc.vars]\ncidr_block = \"10.3.0.0/16\"\n");
    fleet.customer("delta", "git_id = \"v2\"\nenv = \"staging\"\n[vpc.vars]\ncidr_block = \"10.4.0.0/16\"\n");
    let run = fleet.stamp(&["deploy", "--all", "--parallel", "2", "--auto-approve", "--json"]).ok();
    let out = run.json();
    assert_eq!(out["summary"]["ok"], 4, "{out:#}");
    assert_eq!(out["summary"]["failed"], 0);
    assert_eq!(out["customers"].as_array().unwrap().len(), 4);
    for c in ["alpha", "bravo", "charlie", "delta"] {
        let r = report(&out, c);
        for stage in ["bucket", "vpc", "frontends"] {
            assert_eq!(stage_status(r, stage), "ok", "{c}: {r:#}");
        }
        // Each element has the single-customer report's shape.
        assert_eq!(r["customer"], c);
        assert!(r["outputs"]["frontends"]["public_url"].as_str().unwrap().starts_with("http://"));
    }
    // One bake per revision: the pair shares the AMI, and packer ran once between them.
    let ami = |c: &str| report(&out, c)["outputs"]["ami_id"].as_str().unwrap().to_owned();
    assert_eq!(ami("alpha"), ami("bravo"));
    assert_eq!(ami("charlie"), ami("delta"));
    assert_ne!(ami("alpha"), ami("charlie"));
    let builds = |c: &str| commands(&fleet, c, "ami").iter().filter(|l| l.contains(" build -machine-readable")).count();
    assert_eq!(builds("alpha") + builds("bravo"), 1, "one packer build for v1");
    assert_eq!(builds("charlie") + builds("delta"), 1, "one packer build for v2");
    let images = fleet.aws_json(&["ec2", "describe-images", "--owners", "self"]);
    assert_eq!(images["Images"].as_array().unwrap().len(), 2, "{images:#}");
    // Logs never mix: every terraform command in a customer's logs ran in its own working copy.
    for c in ["alpha", "bravo", "charlie", "delta"] {
        let own = format!("/.stamp/{c}/terraform/");
        for stage in ["vpc", "frontends"] {
            let lines = commands(&fleet, c, stage);
            assert!(!lines.is_empty());
            for l in lines.iter().filter(|l| l.contains("terraform ")) {
                assert!(l.contains(&own), "{c}'s {stage} log has another customer's command: {l}");
            }
        }
    }
    // Without a terminal, every progress line is whole and names its customer.
    let names: BTreeSet<&str> = ["alpha", "bravo", "charlie", "delta"].into();
    for line in run.stderr.lines().filter(|l| l.starts_with('[')) {
        let who = line.split_once("] ").and_then(|(_, rest)| rest.split(' ').next()).unwrap_or_default();
        assert!(names.contains(who), "a progress line without its customer: {line}");
    }
    // A second run changes nothing and bakes nothing.
    let again = fleet.stamp(&["deploy", "--all", "--parallel", "4", "--auto-approve", "--json"]).ok().json();
    for c in ["alpha", "bravo", "charlie", "delta"] {
        assert_eq!(report(&again, c)["status"], "unchanged", "{again:#}");
    }
    // The table, in text.
    let text = fleet.stamp(&["plan", "alpha", "charlie"]).ok();
    assert!(text.stdout.contains("CUSTOMER") && text.stdout.contains("alpha") && text.stdout.contains("2 customers"), "{}", text.stdout);

    // Destroying one customer keeps the AMI another deployed customer still runs;
    // destroying that one too removes it.
    let shared = ami("alpha");
    let gone = fleet.stamp(&["destroy", "alpha", "--auto-approve", "--json"]).ok().report();
    let ami_stage = gone["stages"].as_array().unwrap().iter().find(|s| s["name"] == "ami").unwrap().clone();
    assert!(ami_stage["detail"].as_str().unwrap().contains(&format!("kept {shared} (run by bravo)")), "{ami_stage:#}");
    let ids = |f: &Fleet| -> Vec<String> {
        f.aws_json(&["ec2", "describe-images", "--owners", "self"])["Images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["ImageId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(ids(&fleet).contains(&shared));
    fleet.stamp(&["destroy", "bravo", "--auto-approve"]).ok();
    assert!(!ids(&fleet).contains(&shared), "the last customer running it is gone: so is the AMI");
    assert!(ids(&fleet).contains(&ami("charlie")), "other images are untouched");
}

#[test]
fn plan_jobs_bounds_the_inits_and_plans_running_at_once_and_not_the_applies() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    // The real terraform behind a script that writes down when each run starts and ends.
    let spans = fleet.path().join("spans.txt");
    let wrapper = fleet.path().join("terraform-timed");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\necho \"start $(date +%s%N) $1 $$\" >> {spans}\n{real} \"$@\"\nrc=$?\necho \"end $(date +%s%N) $1 $$\" >> {spans}\nexit $rc\n",
            spans = spans.display(),
            real = common::tool("terraform").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    fleet.write_config(&common::FLEET_TOML.replace("terraform = \"{tools}/terraform\"", &format!("terraform = \"{}\"", wrapper.display())));
    for (i, c) in ["acme", "globex", "initech"].iter().enumerate() {
        fleet.customer(c, &format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.{}.0.0/16\"\n", i + 1));
    }
    // Every stand-in vpc create waits until the three have begun (a barrier, not a
    // clock): the three vpc applies overlap if, and only if, the customers run side
    // by side.
    let barrier = tempfile::tempdir().unwrap();
    let out = fleet
        .stamp_cmd(&["deploy", "--all", "--parallel", "3", "--plan-jobs", "1", "--auto-approve", "--json"])
        .env("STAMP_STANDIN_BARRIER", format!("{}:3", barrier.path().display()))
        .output()
        .unwrap();
    let out = Run::from(out, &["deploy", "--all"]).ok().json();
    assert_eq!(out["summary"]["ok"], 3, "{out:#}");

    // (subcommand, start ns, end ns) of every terraform run.
    let text = std::fs::read_to_string(&spans).unwrap();
    let mut open = std::collections::BTreeMap::new();
    let mut runs: Vec<(String, u128, u128)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (t, cmd, pid) = (f[1].parse::<u128>().unwrap(), f[2].to_string(), f[3].to_string());
        match f[0] {
            "start" => {
                open.insert(pid, (cmd, t));
            }
            _ => {
                let (cmd, start) = open.remove(&pid).expect("an end after its start");
                runs.push((cmd, start, t));
            }
        }
    }
    let overlapping = |kinds: &[&str]| {
        let r: Vec<&(String, u128, u128)> = runs.iter().filter(|(c, _, _)| kinds.contains(&c.as_str())).collect();
        let mut n = 0;
        for (i, a) in r.iter().enumerate() {
            for b in &r[i + 1..] {
                if a.1 < b.2 && b.1 < a.2 {
                    n += 1;
                }
            }
        }
        (r.len(), n)
    };
    let (computing, overlaps) = overlapping(&["init", "plan", "show"]);
    assert!(computing >= 12, "two inits and two plans per customer: {runs:?}");
    assert_eq!(overlaps, 0, "--plan-jobs 1: never two inits or plans at once: {runs:?}");
    let (applies, overlaps) = overlapping(&["apply"]);
    assert_eq!(applies, 6);
    assert!(overlaps >= 3, "the applies are not limited: the three vpc applies ran side by side: {runs:?}");
}

/// STAMP_TOOL_MEMORY_MIB sizes one tool run: at 1 TiB a tool, no machine holds two,
/// so `--parallel 3` runs the customers one after another, and a note says why, once.
#[test]
fn parallel_starts_no_more_customers_than_memory_holds_and_says_so_once() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    // The real terraform behind a script that writes down where and when each run
    // starts and ends.
    let spans = fleet.path().join("spans.txt");
    let wrapper = fleet.path().join("terraform-timed");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\necho \"start $(date +%s%N) $$ $PWD\" >> {spans}\n{real} \"$@\"\nrc=$?\necho \"end $(date +%s%N) $$ $PWD\" >> {spans}\nexit $rc\n",
            spans = spans.display(),
            real = common::tool("terraform").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    fleet.write_config(&common::FLEET_TOML.replace("terraform = \"{tools}/terraform\"", &format!("terraform = \"{}\"", wrapper.display())));
    let names = ["acme", "globex", "initech"];
    for (i, c) in names.iter().enumerate() {
        fleet.customer(c, &format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.{}.0.0/16\"\n", i + 1));
    }
    let out = fleet
        .stamp_cmd(&["deploy", "--all", "--parallel", "3", "--auto-approve", "--json"])
        .env("STAMP_TOOL_MEMORY_MIB", "1048576")
        .output()
        .unwrap();
    let run = Run::from(out, &["deploy", "--all"]).ok();
    assert_eq!(run.json()["summary"]["ok"], 3, "{}", run.stdout);
    let notes: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("note: ") && l.contains("side by side")).collect();
    assert_eq!(notes.len(), 1, "{}", run.stderr);
    assert!(
        notes[0].starts_with("note: 1 customer(s) side by side, not --parallel 3: ")
            && notes[0].contains("holds 1 tool(s) of 1048576 MiB (STAMP_TOOL_MEMORY_MIB"),
        "{}",
        notes[0]
    );

    // Each customer's terraform runs, first start to last end: no two customers overlap.
    let text = std::fs::read_to_string(&spans).unwrap();
    let mut span: std::collections::BTreeMap<&str, (u128, u128)> = std::collections::BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        let t = f[1].parse::<u128>().unwrap();
        let who = names.iter().find(|c| f[3].contains(&format!("/.stamp/{c}/"))).unwrap_or_else(|| panic!("whose run? {line}"));
        let s = span.entry(who).or_insert((t, t));
        s.0 = s.0.min(t);
        s.1 = s.1.max(t);
    }
    assert_eq!(span.len(), 3, "{text}");
    let mut by_start: Vec<(u128, u128)> = span.values().copied().collect();
    by_start.sort();
    for pair in by_start.windows(2) {
        assert!(pair[0].1 < pair[1].0, "two customers' terraform ran at once: {span:?}");
    }
}

#[test]
fn customers_sharing_one_state_bucket_create_it_together() {
    let emu = Emulator::start();
    let toml = common::FLEET_TOML.replace("[fleet]\n", "[fleet]\nstate_bucket = \"tfstate-{{account_id}}-shared\"\n");
    let fleet = Fleet::with_toml(&emu, &toml);
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.1.0.0/16\"\n");
    fleet.customer("globex", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.2.0.0/16\"\n");
    let out = fleet.stamp(&["deploy", "--all", "--parallel", "2", "--auto-approve", "--json"]).ok().json();
    assert_eq!(out["summary"]["ok"], 2, "{out:#}");
    assert_eq!(fleet.buckets(), vec!["tfstate-123456789012-shared".to_string()]);
    // Each customer's state under its own keys.
    for key in ["acme/vpc", "globex/vpc", "acme/frontends/production", "globex/frontends/production"] {
        fleet.state("tfstate-123456789012-shared", key);
    }
}

#[test]
fn a_failing_customer_fails_alone_unless_fail_fast_or_a_canary_says_otherwise() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.1.0.0/16\"\n");
    fleet.customer(
        "broken",
        "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.2.0.0/16\"\n[frontends.vars]\ninstance_type = \"fail.standin\"\n",
    );
    fleet.customer("globex", "git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"10.3.0.0/16\"\n");

    // Default: the others still succeed; exit 1, the summary names the failed stage and log.
    let run = fleet.stamp(&["deploy", "acme", "broken", "globex", "--parallel", "1", "--auto-approve"]).code(1);
    assert!(run.stdout.contains("broken: FAILED at stage frontends; log "), "{}", run.stdout);
    assert!(run.stdout.contains("3 customers in") && run.stdout.contains("2 ok, 1 failed"), "{}", run.stdout);
    assert!(run.stderr.contains("fails on purpose"), "the failed customer's error is printed: {}", run.stderr);
    let last = |c: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(fleet.path().join(format!(".stamp/{c}/last-run.json"))).unwrap()).unwrap()
    };
    assert_eq!(last("globex")["status"], "ok");

    // --fail-fast: no customer starts after the failure.
    std::fs::remove_file(fleet.path().join(".stamp/globex/last-run.json")).unwrap();
    let out =
        fleet.stamp(&["deploy", "acme", "broken", "globex", "--parallel", "1", "--fail-fast", "--auto-approve", "--json"]).code(1).json();
    assert_eq!(report(&out, "broken")["status"], "failed");
    assert_eq!(report(&out, "globex")["status"], "not_started", "{out:#}");
    assert!(report(&out, "globex")["error"].as_str().unwrap().contains("broken failed (--fail-fast)"));
    assert_eq!(out["summary"]["not_started"], 1);
    assert!(!fleet.path().join(".stamp/globex/last-run.json").exists(), "globex did not run");

    // --max-failures 0: the same, counted (no customer starts after more than 0 failures).
    std::fs::remove_file(fleet.path().join(".stamp/acme/last-run.json")).unwrap();
    let out =
        fleet.stamp(&["deploy", "broken", "acme", "--parallel", "1", "--max-failures", "0", "--auto-approve", "--json"]).code(1).json();
    assert_eq!(report(&out, "acme")["status"], "not_started", "{out:#}");
    assert!(report(&out, "acme")["error"].as_str().unwrap().contains("more than 0 customers failed (--max-failures 0)"), "{out:#}");

    // A failed canary: nothing else starts.
    let run = fleet.stamp(&["deploy", "broken", "acme", "globex", "--canary", "1", "--auto-approve", "--json"]).code(1);
    let out = run.json();
    assert_eq!(report(&out, "acme")["status"], "not_started");
    assert_eq!(report(&out, "globex")["status"], "not_started");
    assert!(report(&out, "acme")["error"].as_str().unwrap().contains("canary broken did not succeed"), "{out:#}");
    assert!(run.stderr.contains("to resume: stamp deploy broken acme globex"), "{}", run.stderr);

    // A good canary: the rest follow.
    fleet.stamp(&["deploy", "acme", "globex", "--canary", "1", "--auto-approve"]).ok();
}

#[test]
fn ctrl_c_during_a_fleet_run_stops_every_terraform_gracefully() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    // --parallel 2: while acme's and globex's applies wait they lend their turns, so
    // hooli and initech start too (four in flight at most); umbrella never does.
    let names = [
        ("acme", "10.1.0.0/16"),
        ("globex", "10.2.0.0/16"),
        ("hooli", "10.4.0.0/16"),
        ("initech", "10.3.0.0/16"),
        ("umbrella", "10.5.0.0/16"),
    ];
    for (c, cidr) in names {
        fleet.customer(
            c,
            &format!("git_id = \"v1\"\n[vpc.vars]\ncidr_block = \"{cidr}\"\n[frontends.vars]\ninstance_type = \"slow.standin\"\n"),
        );
    }
    let child = fleet
        .stamp_cmd(&["deploy", "--all", "--parallel", "2", "--auto-approve", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let busy = |c: &str| fleet.log(c, "frontends").contains("\"type\":\"apply_start\"");
    let deadline = Instant::now() + Duration::from_secs(240);
    while !(busy("acme") && busy("globex")) {
        assert!(Instant::now() < deadline, "the two first customers never reached their slow frontends apply");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on a child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = Instant::now();
    let run = Run::from(child.wait_with_output().unwrap(), &["deploy", "--all"]).code(130);
    assert!(started.elapsed() < Duration::from_secs(60), "stopping took {:?}", started.elapsed());
    let out = run.json();
    for c in ["acme", "globex"] {
        assert_eq!(report(&out, c)["status"], "interrupted", "{out:#}");
        assert_eq!(report(&out, c)["failed_stage"], "frontends");
        let log = fleet.log(c, "frontends");
        assert!(log.contains("interrupt 1 received, sending signal 2"), "{log}");
        assert!(log.contains("Interrupt received"), "terraform's own graceful shutdown ran for {c}:\n{log}");
        let objects = fleet.aws(&["s3", "ls", "--recursive", &format!("s3://tfstate-123456789012-{c}/")]);
        assert!(!objects.contains(".tflock"), "a state lock was left for {c}: {objects}");
    }
    for c in ["hooli", "initech"] {
        assert_eq!(report(&out, c)["status"], "interrupted", "started on a lent turn: {out:#}");
    }
    assert_eq!(report(&out, "umbrella")["status"], "not_started", "no new customer starts after Ctrl-C: {out:#}");
    assert!(run.stderr.contains("to resume") || out["summary"]["interrupted"] == 4, "{}", run.stderr);
    // No process works in the fleet's directory any more (terraform runs there with
    // relative arguments: found by its working directory, not its command line).
    let left = common::processes(&fleet.path().display().to_string(), Some(fleet.path()));
    assert!(left.is_empty(), "tools still running after stamp exited: {left:?}");
}

#[test]
fn selection_by_name_tag_and_all_and_unknown_names_are_refused_with_suggestions() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\ntags = [\"eu\", \"tier-1\"]\n");
    fleet.customer("globex", "git_id = \"v1\"\ntags = [\"us\"]\n");
    fleet.customer("initech", "git_id = \"v1\"\n");
    let run = fleet.stamp(&["deploy", "acme", "acne", "--auto-approve"]).code(2);
    assert!(run.stderr.contains("no customer `acne`") && run.stderr.contains("did you mean acme"), "{}", run.stderr);
    assert!(fleet.buckets().is_empty(), "nothing started");
    let r = fleet.stamp(&["validate", "--tag", "eu", "--tag", "us"]).ok();
    assert!(r.stderr.contains("2 customer(s) valid"), "{}", r.stderr);
    let r = fleet.stamp(&["validate", "--all"]).ok();
    assert!(r.stderr.contains("3 customer(s) valid"), "{}", r.stderr);
    fleet.stamp(&["validate", "--tag", "apac"]).code(2).stderr_has("no customer has the tag apac");
    // None named (fleet::selection::Use): what only reads takes them all, deploy refuses.
    fleet.stamp(&["validate"]).ok().stderr_has("3 customer(s) valid");
    fleet.stamp(&["deploy", "--auto-approve"]).code(2).stderr_has("no customer given");
    let list = fleet.stamp(&["list", "--json"]).ok().json();
    assert_eq!(list["customers"][0]["tags"], serde_json::json!(["eu", "tier-1"]), "{list:#}");
}

#[test]
fn validate_all_reports_every_problem_of_every_customer_at_once() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    fleet.customer("badkey", "git_id = \"v1\"\nregoin = \"eu-west-1\"\n");
    fleet.customer("badtype", "git_id = 42\n");
    fleet.customer("badvars", "git_id = \"v1\"\n[vpc.vars]\nnot_a_var = 1\n[packer.vars]\nnope = \"x\"\n");
    fleet.customer("Bad_Name", "git_id = \"v1\"\n");
    let run = fleet.stamp(&["validate", "--all"]).code(2);
    for needle in ["badkey.toml: line 2", "regoin", "badtype.toml: line 1", "git_id", "not_a_var", "[packer.vars] `nope`", "Bad_Name.toml"]
    {
        assert!(run.stderr.contains(needle), "validate --all does not report {needle:?}:\n{}", run.stderr);
    }
    assert!(run.stderr.contains("in 4 of 4 customer(s)") || run.stderr.contains("problem(s) in"), "{}", run.stderr);
    // A deploy of the fleet refuses before anything is created, with the same problems.
    let run = fleet.stamp(&["deploy", "acme", "badvars", "--auto-approve"]).code(2);
    assert!(run.stderr.contains("not_a_var") && run.stderr.contains("nope"), "{}", run.stderr);
    assert!(fleet.buckets().is_empty());

    // A secret whose source holds no value here (a pull request's job has no secrets):
    // validate checks the files and notes it; plan, which needs the value, refuses.
    let secret = "git_id = \"v1\"\n[secrets]\ndb_instance_class = { env = \"STAMP_TEST_NEVER_SET\" }\n";
    fleet.customer("globex", secret);
    let run = fleet.stamp(&["validate", "globex"]).ok();
    assert!(
        run.stderr.contains("note: globex: ")
            && run.stderr.contains("STAMP_TEST_NEVER_SET is not set")
            && run.stderr.contains("1 customer(s) valid"),
        "{}",
        run.stderr
    );
    // Still a problem when the entry itself is wrong.
    fleet.customer("initech", "git_id = \"v1\"\n[secrets]\nnot_a_var = { env = \"STAMP_TEST_NEVER_SET\" }\n");
    fleet.stamp(&["validate", "initech"]).code(2).stderr_has("not a variable of any stack");
    let run = fleet.stamp(&["plan", "globex"]).code(2);
    assert!(run.stderr.contains("error: ") && run.stderr.contains("STAMP_TEST_NEVER_SET is not set"), "{}", run.stderr);
    assert!(fleet.buckets().is_empty());
}
