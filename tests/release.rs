//! What a release of stamp carries besides the binary: `stamp --version` naming the
//! commit it was built from (build.rs), the LICENSE that Cargo.toml declares, and a
//! CHANGELOG in the Keep a Changelog form.

#[path = "../build.rs"]
#[allow(dead_code)]
mod build_script;

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").current_dir(repo()).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn version_names_the_commit_and_its_date() {
    let out = Command::new(env!("CARGO_BIN_EXE_stamp")).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let inner = text
        .trim_end()
        .strip_prefix(&format!("stamp {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `stamp <version> (<commit> <date>)`: {text:?}"));
    // What build.rs computed for this build (the same for the binary and this test).
    assert_eq!(inner, env!("STAMP_BUILD_COMMIT_INFO"));
    match option_env!("STAMP_BUILD_COMMIT") {
        // Built with the commit given (a build from a source archive).
        Some(c) if !c.trim().is_empty() => assert!(inner.starts_with(&c.trim().chars().take(12).collect::<String>()), "{inner}"),
        // Built from this checkout: a commit of its history (HEAD then, or before a
        // commit made since), with that commit's date.
        _ => {
            let (commit, date) = inner.split_once(' ').unwrap_or_else(|| panic!("no date: {inner}"));
            assert_eq!(commit.len(), 12, "{inner}");
            assert_eq!(git(&["show", "-s", "--format=%cs", commit]).as_deref(), Some(date), "{inner}");
            assert!(git(&["merge-base", "--is-ancestor", commit, "HEAD"]).is_some(), "{commit} is not in HEAD's history");
        }
    }
}

#[test]
fn the_build_commit_comes_from_the_environment_then_git_then_nowhere() {
    let no_git = |_: &[&str]| None;
    use build_script::commit_info as info;
    assert_eq!(info(Some("0123456789abcdef0123".into()), Some("2026-12-01".into()), no_git), "0123456789ab 2026-12-01");
    assert_eq!(info(Some("  ".into()), None, no_git), "unknown commit", "blank is unset");
    assert_eq!(info(None, None, no_git), "unknown commit");
    let fake_git = |args: &[&str]| match args {
        ["rev-parse", "HEAD"] => Some("fedcba9876543210fedc".to_owned()),
        ["show", ..] => Some("2026-11-30".to_owned()),
        _ => None,
    };
    assert_eq!(info(None, None, fake_git), "fedcba987654 2026-11-30");
    assert_eq!(info(Some("abc".into()), None, fake_git), "abc 2026-11-30", "the given commit wins; git dates it");
    assert_eq!(info(Some("abc".into()), None, no_git), "abc", "no date known");
}

#[test]
fn the_license_file_is_the_one_cargo_toml_declares() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(manifest.lines().any(|l| l.trim() == "license = \"MIT\""), "Cargo.toml declares MIT");
    let license = std::fs::read_to_string(repo().join("LICENSE")).unwrap();
    assert!(license.starts_with("MIT License\n\nCopyright (c) "), "{license}");
    for clause in [
        "Permission is hereby granted, free of charge, to any person obtaining a copy",
        "The above copyright notice and this permission notice shall be included in all",
        "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR",
    ] {
        assert!(license.contains(clause), "LICENSE lacks the MIT text: {clause}");
    }
}

#[test]
fn the_changelog_keeps_an_unreleased_section_above_the_released_versions() {
    let log = std::fs::read_to_string(repo().join("CHANGELOG.md")).unwrap();
    assert!(log.starts_with("# Changelog\n") && log.contains("keepachangelog.com"), "Keep a Changelog's heading and link");
    let sections: Vec<&str> = log.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(sections.first(), Some(&"## [Unreleased]"), "{sections:?}");
    let released = &sections[1..];
    assert!(!released.is_empty(), "at least the first release");
    for s in released {
        let (version, date) = s.trim_start_matches("## [").split_once("] - ").unwrap_or_else(|| panic!("not `## [x.y.z] - date`: {s}"));
        assert_eq!(version.split('.').filter(|p| p.parse::<u32>().is_ok()).count(), 3, "{s}");
        assert!(date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-', "{s}");
        assert!(log.contains(&format!("[{version}]: ")), "the link of {version}");
    }
    // The newest release is the version being built, or an older one (then unreleased).
    let newest = released[0].trim_start_matches("## [").split(']').next().unwrap();
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(parse(newest) <= parse(env!("CARGO_PKG_VERSION")), "{newest} is newer than Cargo.toml's version");
    for heading in log.lines().filter(|l| l.starts_with("### ")) {
        assert!(
            ["### Added", "### Changed", "### Deprecated", "### Removed", "### Fixed", "### Security"].contains(&heading),
            "not a Keep a Changelog kind of change: {heading}"
        );
    }
}
