//! The command line's contract with scripts and shells: every `--json` document has
//! one shape whatever is selected and validates against docs/schema; `list --json`
//! exits as the text does; completions and the man page are generated from the
//! command line and cover every command; `--color` with NO_COLOR and CLICOLOR_FORCE;
//! `--no-progress` is `--progress plain`. Real stamp; the emulator where AWS is read.

mod common;

use std::process::{Command, Stdio};

use common::{Emulator, Fleet, Run};

/// stamp with no fleet file, in an empty directory.
fn bare(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = common::hermetic(&mut Command::new(env!("CARGO_BIN_EXE_stamp"))).args(args).current_dir(dir.path()).output().unwrap();
    Run::from(out, args)
}

/// The commands `stamp --help` lists (but `help`).
fn commands() -> Vec<String> {
    let help = bare(&["--help"]).ok().stdout;
    let list = help.split("Commands:").nth(1).unwrap().split("Options:").next().unwrap();
    // A command's line is indented two spaces; its wrapped description more.
    let names: Vec<String> = list
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect();
    assert!(names.len() >= 13 && names.contains(&"deploy".to_owned()) && names.contains(&"man".to_owned()), "{help}");
    names
}

#[test]
fn every_schema_is_a_draft_2020_12_schema_and_every_json_command_has_one() {
    let dir = common::repo().join("docs/schema");
    let out = Command::new(common::tools().join("../venv/bin/python"))
        .arg(common::repo().join("tests/support/json_schema.py"))
        .arg("--check-schemas")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // A command that takes --json has docs/schema/<command>.schema.json.
    for c in commands() {
        let help = bare(&[&c, "--help"]).ok().stdout;
        let has_json = help.contains("--json");
        assert_eq!(dir.join(format!("{c}.schema.json")).exists(), has_json, "{c}: --json {has_json}, and its schema");
    }
}

#[test]
fn a_broken_document_is_refused_by_its_schema() {
    // The validator the tests use can fail: a missing key, a wrong type, an extra key.
    let good = r#"{"schema_version": 2, "kind": "list", "customers": [], "summary": {"total": 0, "invalid": 0}}"#;
    common::check_schema("list", good).unwrap();
    for (bad, why) in [
        (r#"{"schema_version": 2, "kind": "list", "customers": []}"#, "'summary' is a required property"),
        (r#"{"schema_version": 1, "kind": "list", "customers": [], "summary": {"total": 0, "invalid": 0}}"#, "2 was expected"),
        (r#"{"schema_version": 2, "kind": "list", "customers": {}, "summary": {"total": 0, "invalid": 0}}"#, "is not of type 'array'"),
        (r#"{"schema_version": 2, "kind": "list", "customers": [], "summary": {"total": 0, "invalid": 0}, "x": 1}"#, "'x' was unexpected"),
    ] {
        let errors = common::check_schema("list", bad).expect_err(bad);
        assert!(errors.contains(why), "{bad}: {errors}");
    }
}

#[test]
fn list_and_validate_print_one_shape_for_one_customer_or_many_and_exit_as_the_text_does() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\ntags = [\"eu\"]\n");
    fleet.customer("globex", "git_id = \"v1\"\n");

    let list = fleet.stamp(&["list", "--json"]).ok().json();
    assert_eq!((list["schema_version"].as_u64(), list["kind"].as_str()), (Some(2), Some("list")));
    assert_eq!(list["summary"], serde_json::json!({"total": 2, "invalid": 0}));
    assert_eq!(list["customers"][0]["tags"], serde_json::json!(["eu"]));

    // A customer without outputs: the document says why, and the exit code is the text's.
    let text = fleet.stamp(&["outputs", "acme"]).code(1);
    let run = fleet.stamp(&["outputs", "acme", "--json"]).code(text.code);
    let acme = run.report();
    assert!(acme["error"].as_str().unwrap().contains("not deployed"), "{acme:#}");
    assert_eq!(run.json()["summary"], serde_json::json!({"total": 1, "ok": 0, "failed": 1}));

    let one = fleet.stamp(&["validate", "acme", "--json"]).ok().report();
    assert_eq!((one["customer"].as_str(), one["valid"].as_bool()), (Some("acme"), Some(true)), "{one:#}");
    let all = fleet.stamp(&["validate", "--all", "--json"]).ok().json();
    assert_eq!(all["summary"]["valid"], 2, "{all:#}");

    // An invalid customer file: exit 2 with --json as without, the file listed with its error.
    fleet.customer("initech", "git_id = 3\n");
    let text = fleet.stamp(&["list"]).code(2);
    assert!(text.stdout.contains("initech") && text.stdout.contains("invalid:"), "{}", text.stdout);
    let run = fleet.stamp(&["list", "--json"]).code(2);
    assert!(run.stderr.contains("1 customer file(s) are invalid"), "{}", run.stderr);
    let list = run.json();
    assert_eq!(list["summary"], serde_json::json!({"total": 3, "invalid": 1}));
    let initech = list["customers"].as_array().unwrap().iter().find(|c| c["customer"] == "initech").unwrap().clone();
    assert!(initech["error"].as_str().unwrap().contains("git_id"), "{initech:#}");

    let run = fleet.stamp(&["validate", "--all", "--json"]).code(2);
    let v = run.json();
    assert_eq!(v["summary"]["invalid"], 1, "{v:#}");
    let initech = v["customers"].as_array().unwrap().iter().find(|c| c["customer"] == "initech").unwrap().clone();
    assert_eq!(initech["valid"], false);
    assert!(initech["problems"][0].as_str().unwrap().contains("git_id"), "{initech:#}");
    assert!(run.stderr.contains("error: initech:"), "the problems stay on stderr: {}", run.stderr);
}

#[test]
fn doctor_json_lists_each_check_with_the_text_s_verdict() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    let text = fleet.stamp(&["doctor"]).ok();
    let doc = fleet.stamp(&["doctor", "--json"]).ok().json();
    let checks = doc["checks"].as_array().unwrap();
    // One entry per line of the text, in its order.
    assert_eq!(checks.len(), text.stdout.lines().count(), "{}\n{doc:#}", text.stdout);
    assert_eq!((checks[0]["check"].as_str(), checks[0]["status"].as_str()), (Some("config"), Some("ok")), "{doc:#}");
    assert!(checks.iter().any(|c| c["check"] == "aws" && c["detail"].as_str().unwrap().contains("credentials work")), "{doc:#}");
    assert_eq!(doc["summary"]["problems"], 0);
    // A failure keeps exit 1, and the document says what failed.
    let broken = bare(&["--config", "/nonexistent/dir/stamp.toml", "doctor", "--json"]);
    let doc = broken.json();
    assert_eq!(doc["summary"]["problems"].as_u64() > Some(0), broken.code == 1, "{doc:#}\n{}", broken.stderr);
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_command() {
    let commands = commands();
    for shell in ["bash", "zsh", "fish"] {
        let script = bare(&["completions", shell]).ok().stdout;
        for c in &commands {
            assert!(script.contains(c.as_str()), "{shell}: no {c} in the completions");
        }
        assert!(script.contains("approved-plan") && script.contains("color"), "{shell}: options are completed too");
    }
    // bash reads its script without complaint.
    let script = bare(&["completions", "bash"]).ok().stdout;
    let out = Command::new("bash").arg("-n").arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    bare(&["completions", "tcsh"]).code(2).stderr_has("invalid value 'tcsh'");
}

#[test]
fn the_man_page_renders_and_names_every_command() {
    let page = bare(&["man"]).ok().stdout;
    let rendered = groff(&page);
    for c in commands() {
        assert!(rendered.contains(&format!("stamp-{c}(1)")), "no {c} in the man page:\n{rendered}");
    }
    // groff justifies lines, spreading spaces from the left or the right by the line's
    // parity: words are compared with single spaces.
    let words = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(rendered.contains("--color") && words.contains("Exit codes:"), "{rendered}");
    // A command's own page, with its options.
    let deploy = groff(&bare(&["man", "deploy"]).ok().stdout);
    assert!(deploy.contains("stamp-deploy") && deploy.contains("--approved-plan"), "{deploy}");
    bare(&["man", "nope"]).code(2).stderr_has("`nope` is not a stamp command");
}

/// The page as `man` shows it (groff, warnings on: a malformed page fails).
fn groff(page: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("groff (man's formatter)");
    child.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "groff: {stderr}");
    // Bold and underline as overstrikes, and hyphens as U+2010: plain text to search.
    let text = String::from_utf8_lossy(&out.stdout).replace(['\u{2010}', '\u{2212}'], "-");
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn color_follows_the_flag_then_no_color_then_clicolor_force_and_no_progress_is_plain() {
    let emu = Emulator::start();
    let fleet = Fleet::new(&emu);
    fleet.customer("acme", "git_id = \"v1\"\n");
    // A never-deployed customer's plan: its placeholder lines are yellow when coloured.
    let plan = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["plan", "acme"];
        args.extend(extra);
        let out = fleet.stamp_cmd(&args).envs(env.iter().copied()).output().unwrap();
        Run::from(out, &args).ok()
    };
    let coloured = |r: &Run| r.stdout.contains("\x1b[33m* frontends: planned with placeholder");
    // stdout is a pipe here: no colour by default.
    let plain = plan(&[], &[]);
    assert!(plain.stdout.contains("* frontends: planned with placeholder") && !plain.stdout.contains('\x1b'), "{}", plain.stdout);
    assert!(coloured(&plan(&["--color", "always"], &[("NO_COLOR", "1")])), "the flag wins over NO_COLOR");
    assert!(!plan(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]).stdout.contains('\x1b'), "the flag wins over CLICOLOR_FORCE");
    assert!(coloured(&plan(&[], &[("CLICOLOR_FORCE", "1")])), "CLICOLOR_FORCE colours a pipe");
    assert!(!plan(&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).stdout.contains('\x1b'), "NO_COLOR wins over CLICOLOR_FORCE");
    assert!(coloured(&plan(&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")])), "an empty NO_COLOR is unset");
    bare(&["--color", "sometimes", "list"]).code(2).stderr_has("invalid value 'sometimes'");
    // On a terminal (a pseudo-terminal from util-linux `script`), auto colours, unless NO_COLOR.
    let on_terminal = |env: &[(&str, &str)]| {
        let cmd = format!("{} plan acme --progress plain", env!("CARGO_BIN_EXE_stamp"));
        let mut script = Command::new("script");
        common::hermetic(&mut script)
            .args(["-qec", &cmd, "/dev/null"])
            .current_dir(fleet.path())
            .env("TERM", "xterm")
            .env("TF_CLI_CONFIG_FILE", common::tools().join("../terraformrc"))
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        fleet.trust(&mut script);
        let out = script.output().expect("util-linux script");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let screen = on_terminal(&[]);
    assert!(screen.contains("\x1b[33m* frontends: planned with placeholder"), "{screen}");
    let screen = on_terminal(&[("NO_COLOR", "1")]);
    assert!(screen.contains("* frontends: planned with placeholder") && !screen.contains("\x1b[33m"), "{screen}");

    // Under GitHub Actions, auto gives groups; --no-progress, like --progress plain, plain lines.
    let gha = [("GITHUB_ACTIONS", "true")];
    assert!(plan(&[], &gha).stderr.contains("::group::"), "GitHub groups under auto");
    for flag in [&["--no-progress"][..], &["--progress", "plain"]] {
        let r = plan(flag, &gha);
        assert!(!r.stderr.contains("::group::") && r.stderr.contains("acme vpc"), "{flag:?}:\n{}", r.stderr);
    }
}
