//! The documentation holds together: every relative link of README.md, ARCHITECTURE.md
//! and docs/**/*.md reaches a file (and a heading, by GitHub's anchor rules), and every
//! `stamp <command>`, `--option` and `make <target>` README names is one the built
//! binary's `--help` (or the Makefile) knows. A renamed heading, a moved file or a
//! removed option then fails here, not in a reader's browser.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, ARCHITECTURE.md (when present) and every Markdown file under docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    if repo().join("ARCHITECTURE.md").exists() {
        files.push(repo().join("ARCHITECTURE.md"));
    }
    let mut dirs = vec![repo().join("docs")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// A Markdown file cut into what links and anchors are read from (prose, with inline
/// code removed) and what commands are read from (inline code spans and the lines of
/// fenced blocks), each with its line number.
#[derive(Default)]
struct Doc {
    prose: Vec<(usize, String)>,
    code: Vec<(usize, String)>,
    headings: Vec<String>,
}

fn parse(text: &str) -> Doc {
    let mut doc = Doc::default();
    let mut fence: Option<String> = None;
    // A code span may run on over a line break: the text from its opening backtick
    // waits for the next line (within the paragraph), with the line it started on.
    let mut open_span: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim_start();
        if let Some(f) = &fence {
            if t.starts_with(f.as_str()) {
                fence = None;
            } else {
                doc.code.push((n, line.to_string()));
            }
            continue;
        }
        if t.starts_with("```") || t.starts_with("~~~") || t.is_empty() {
            if let Some((m, rest)) = open_span.take() {
                doc.prose.push((m, rest)); // never closed: a lone backtick
            }
            if !t.is_empty() {
                fence = Some(t[..3].to_string());
            }
            continue;
        }
        if let Some(h) = heading(line) {
            doc.headings.push(h);
        }
        let (n, joined) = match open_span.take() {
            Some((m, rest)) => (m, format!("{rest} {line}")),
            None => (n, line.to_string()),
        };
        let (prose, spans, unclosed) = split_code_spans(&joined);
        doc.prose.push((n, prose));
        doc.code.extend(spans.into_iter().map(|s| (n, s)));
        open_span = unclosed.map(|u| (n, u));
    }
    if let Some((m, rest)) = open_span {
        doc.prose.push((m, rest));
    }
    doc
}

/// The line without its `code spans`, the spans, and the text from a backtick that
/// no later one on the line closes.
fn split_code_spans(line: &str) -> (String, Vec<String>, Option<String>) {
    let mut prose = String::new();
    let mut spans = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let delim = &rest[start..start + ticks];
        let after = &rest[start + ticks..];
        match after.find(delim) {
            Some(end) => {
                prose.push_str(&rest[..start]);
                prose.push(' ');
                spans.push(after[..end].to_string());
                rest = &after[end + ticks..];
            }
            None => {
                prose.push_str(&rest[..start]);
                return (prose, spans, Some(rest[start..].to_string()));
            }
        }
    }
    prose.push_str(rest);
    (prose, spans, None)
}

/// The text of an ATX heading (`## Title`), if the line is one.
fn heading(line: &str) -> Option<String> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
        Some(line[hashes..].trim().trim_end_matches('#').trim().to_string())
    } else {
        None
    }
}

/// GitHub's anchor for a heading: the rendered text (links by their text, no code
/// ticks or emphasis marks), lower-cased, every character but letters, digits, `-`,
/// `_` and spaces dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // [text](target) -> text
    while let Some(open) = rest.find('[') {
        match rest[open..].find("](").map(|c| open + c).and_then(|c| rest[c..].find(')').map(|e| (c, c + e))) {
            Some((close, end)) => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..close]);
                rest = &rest[end + 1..];
            }
            None => break,
        }
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor of a Markdown file: its headings' slugs (a repeated one gets `-1`,
/// `-2`, ... as on GitHub) and explicit `<a id=..>`/`<a name=..>`.
fn anchors(text: &str) -> BTreeSet<String> {
    let doc = parse(text);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for h in &doc.headings {
        let s = slug(h);
        let n = seen.entry(s.clone()).or_insert(0);
        out.insert(if *n == 0 { s.clone() } else { format!("{s}-{n}") });
        *n += 1;
    }
    for (_, line) in &doc.prose {
        for attr in ["id=\"", "name=\""] {
            let mut rest = line.as_str();
            while let Some(i) = rest.find(attr) {
                let v = &rest[i + attr.len()..];
                if let Some(end) = v.find('"') {
                    out.insert(v[..end].to_string());
                }
                rest = v;
            }
        }
    }
    out
}

/// The targets of the inline links `[text](target)` and reference definitions
/// `[label]: target` of a line of prose.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let inside = &after[..end];
        let target = match inside.strip_prefix('<').and_then(|t| t.split_once('>')) {
            Some((t, _)) => t,
            None => inside.split_whitespace().next().unwrap_or(""),
        };
        out.push(target.to_string());
        rest = &after[end..];
    }
    let t = line.trim_start();
    if t.starts_with('[')
        && let Some(i) = t.find("]: ")
    {
        out.push(t[i + 3..].split_whitespace().next().unwrap_or("").to_string());
    }
    out
}

fn is_external(target: &str) -> bool {
    target.is_empty() || target.contains("://") || target.starts_with("mailto:")
}

#[test]
fn every_relative_link_of_readme_architecture_and_docs_resolves() {
    let files = markdown_files();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        for (n, line) in parse(&text).prose {
            for target in link_targets(&line) {
                if is_external(&target) {
                    continue;
                }
                checked += 1;
                let (path, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let dest = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
                if !dest.exists() {
                    broken.push(format!("{name}:{n}: {target}: no such file {}", dest.display()));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if dest.extension().is_none_or(|x| x != "md") {
                    broken.push(format!("{name}:{n}: {target}: an anchor into a file that is not Markdown"));
                    continue;
                }
                let known = anchors(&std::fs::read_to_string(&dest).unwrap());
                if !known.contains(anchor) {
                    broken.push(format!("{name}:{n}: {target}: no heading with the anchor #{anchor} in {path:?}; there are: {known:?}"));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} relative links found in {files:?}: is the parser reading them?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// An option of `--help`: its name and whether it takes a value (`--config <FILE>`).
type Options = BTreeMap<String, bool>;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_stamp")).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "stamp {args:?} --help: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The long options an `--help` lists, from its lines `  -h, --help` and
/// `      --config <FILE>  ...`.
fn options(help: &str) -> Options {
    let mut out = Options::new();
    for line in help.lines() {
        let t = line.trim_start();
        if !t.starts_with('-') {
            continue;
        }
        let t = t.strip_prefix("-h, ").or_else(|| t.strip_prefix("-V, ")).unwrap_or(t);
        if let Some(name) = t.strip_prefix("--") {
            let mut words = name.split_whitespace();
            let name = words.next().unwrap().to_string();
            let takes_value = words.next().is_some_and(|w| w.starts_with('<'));
            out.insert(name, takes_value);
        }
    }
    out
}

/// The subcommands `stamp --help` lists under "Commands:".
fn subcommands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `--name` at the start of a token such as `[--env`, `--parallel=2` or `--all,`.
fn option_name(token: &str) -> Option<String> {
    let t = token.trim_start_matches(['[', '(', '"', '\'']);
    let name = t.strip_prefix("--")?;
    let name: String = name.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    (!name.is_empty()).then_some(name)
}

/// Programs other than stamp whose options README may show (`cargo install --locked`).
const OTHER_PROGRAMS: &[&str] = &["cargo", "make", "aws", "terraform", "packer", "git", "sha256sum", "bash", "python3", "curl", "scripts/"];

#[test]
fn every_command_option_and_make_target_readme_names_exists() {
    let top = help(&[]);
    let commands = subcommands(&top);
    assert!(commands.contains("deploy") && commands.contains("plan"), "{commands:?} from:\n{top}");
    let global = options(&top);
    assert!(global.contains_key("config"), "{global:?}");
    let per_command: BTreeMap<String, Options> = commands
        .iter()
        .filter(|c| *c != "help")
        .map(|c| {
            let mut o = options(&help(&[c]));
            o.extend(global.clone());
            (c.clone(), o)
        })
        .collect();
    let every_option: BTreeSet<String> = per_command.values().flat_map(|o| o.keys().cloned()).collect();
    let makefile = std::fs::read_to_string(repo().join("Makefile")).unwrap();
    let targets: BTreeSet<String> = makefile
        .lines()
        .filter_map(|l| l.split_once(':').map(|(t, _)| t))
        .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .map(str::to_string)
        .collect();

    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let doc = parse(&readme);
    let mut wrong = Vec::new();
    let (mut commands_seen, mut options_seen) = (0, 0);
    for (n, code) in &doc.code {
        let tokens: Vec<&str> = code.split_whitespace().collect();
        let first = tokens.iter().map(|t| t.trim_start_matches('$')).find(|t| !t.is_empty()).unwrap_or("");
        let foreign = OTHER_PROGRAMS.iter().any(|p| first == *p || (p.ends_with('/') && first.starts_with(p)));
        let mut i = 0;
        while i < tokens.len() {
            let tok = tokens[i].trim_start_matches(['$', '(', '"']);
            if tok == "make"
                && let Some(t) = tokens.get(i + 1).filter(|t| t.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                && !targets.contains(*t)
            {
                wrong.push(format!("README.md:{n}: `make {t}`: no such Makefile target"));
            }
            let is_stamp = tok == "stamp" || (tok.ends_with("/stamp") && !tok.contains("://"));
            if foreign || !is_stamp {
                i += 1;
                continue;
            }
            // stamp [global options] COMMAND [options and arguments]
            let mut j = i + 1;
            let mut command: Option<String> = None;
            while j < tokens.len() {
                let t = tokens[j];
                if matches!(t, "|" | "&&" | ";" | "#" | "||") {
                    break;
                }
                if let Some(name) = option_name(t) {
                    options_seen += 1;
                    let known = match &command {
                        Some(c) => per_command.get(c).map(|o| o.get(&name).copied()),
                        None => Some(global.get(&name).copied()),
                    };
                    match known {
                        Some(Some(takes_value)) if takes_value && !t.contains('=') && command.is_none() => {
                            j += 1; // the value of a global option, not the command
                        }
                        Some(Some(_)) => {}
                        Some(None) => wrong.push(format!(
                            "README.md:{n}: `{code}`: --{name} is not an option of `stamp{}`",
                            command.as_ref().map(|c| format!(" {c}")).unwrap_or_default()
                        )),
                        None => {}
                    }
                } else if command.is_none() {
                    let word = t.trim_matches(['[', ']']);
                    if word.chars().all(|c| c.is_ascii_lowercase()) && !word.is_empty() {
                        commands_seen += 1;
                        if !commands.contains(word) {
                            wrong.push(format!("README.md:{n}: `{code}`: `stamp {word}` is not a command ({commands:?})"));
                        }
                        command = Some(word.to_string());
                    } else {
                        break;
                    }
                }
                j += 1;
            }
            i = j;
        }
        if !foreign && !tokens.iter().any(|t| *t == "stamp" || t.ends_with("/stamp")) {
            // An option named alone, `--auto-approve`: some command of stamp has it.
            for t in &tokens {
                if let Some(name) = option_name(t) {
                    options_seen += 1;
                    if !every_option.contains(&name) {
                        wrong.push(format!("README.md:{n}: `{code}`: no command of stamp has --{name}"));
                    }
                }
            }
        }
    }
    // Options in prose (outside code) are options of stamp too.
    for (n, line) in &doc.prose {
        for t in line.split_whitespace() {
            if let Some(name) = option_name(t) {
                options_seen += 1;
                if !every_option.contains(&name) {
                    wrong.push(format!("README.md:{n}: --{name} (in prose) is no option of stamp"));
                }
            }
        }
    }
    assert!(
        commands_seen > 10 && options_seen > 10,
        "README names {commands_seen} commands and {options_seen} options: is the parser reading them?"
    );
    assert!(wrong.is_empty(), "README names what stamp does not have:\n{}", wrong.join("\n"));
}

#[test]
fn the_anchor_rules_are_githubs() {
    assert_eq!(slug("Progress, logs and run reports"), "progress-logs-and-run-reports");
    assert_eq!(slug("`stamp matrix`"), "stamp-matrix");
    assert_eq!(slug("Redeploys, `status` and `plan` over a fleet"), "redeploys-status-and-plan-over-a-fleet");
    assert_eq!(slug("`customers/<name>.toml`"), "customersnametoml");
    assert_eq!(slug("See [the guide](docs/ci.md) now"), "see-the-guide-now");
    let a = anchors("# A\n## Tests\n```\n# not a heading\n```\n### Tests\n");
    assert_eq!(a, ["a", "tests", "tests-1"].into_iter().map(String::from).collect());
    assert_eq!(link_targets("see [x](a.md#b) and [y](<c d.md>) [z](e.md \"t\")"), ["a.md#b", "c d.md", "e.md"]);
    assert_eq!(split_code_spans("a `x` b ``y`z`` c").1, ["x", "y`z"]);
    let doc = parse("run `aws ec2\n--tags x` then\n\n`a` b");
    assert_eq!(doc.code, [(1, "aws ec2 --tags x".to_string()), (4, "a".to_string())]);
}

/// A reader's first two commands are the demo and the tests, before anything else.
#[test]
fn readme_starts_with_make_demo_then_make_test() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let commands: Vec<String> = parse(&readme)
        .code
        .iter()
        .map(|(_, c)| c.split('#').next().unwrap().trim().to_string())
        .filter(|c| !c.is_empty())
        .take(2)
        .collect();
    assert_eq!(commands, ["make demo", "make test"]);
}
