//! The layering of ARCHITECTURE.md, enforced: every `crate::`, `super::` and child
//! module path in `src/` (test modules aside) is an edge between two files; an edge
//! from a lower layer to a higher one, a path through `lib.rs`, or a circle between
//! files fails the test, naming the edges. Also: no file over 600 lines outside its
//! test module. No `syn`: a small lexer drops comments and literals, which is all
//! the paths need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the top (index 0) down. A file belongs to the entry with the longest
/// root that is a prefix of its module path; it may import its own layer (without a circle) and any
/// layer below it.
const LAYERS: &[(&str, &[&str])] = &[
    ("commands", &["commands"]),
    ("cli", &["cli"]),
    ("ui", &["ui"]),
    ("fleet", &["fleet"]),
    ("customer", &["customer"]),
    ("stages", &["stages"]),
    // A customer's resolved plan and its report's types: data the stages read and fill.
    ("customer data", &["customer::plan", "customer::report"]),
    ("shared", &["shared"]),
    ("interrupt", &["interrupt"]),
    ("tools", &["tools"]),
    (
        "leaves",
        &[
            "config",
            "render",
            "retry",
            "signals",
            "cancel",
            "env_vars",
            "error",
            "names",
            "events",
            "running",
            "files",
            "operation",
            "hash",
            "shell",
        ],
    ),
];

/// The source of a file without comments, string and char literals (each replaced by
/// a space, newlines kept so line numbers hold).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let keep_newlines = |out: &mut String, s: &[char]| {
        out.push(' ');
        for c in s {
            if *c == '\n' {
                out.push('\n');
            }
        }
    };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_newlines(&mut out, &b[start..i.min(b.len())]);
        } else if (c == 'r' || c == 'b') && !prev_is_ident(&b, i) && raw_string_start(&b, i).is_some() {
            let (hashes, body) = raw_string_start(&b, i).unwrap();
            let start = i;
            i = body;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            keep_newlines(&mut out, &b[start..i.min(b.len())]);
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            keep_newlines(&mut out, &b[start..i.min(b.len())]);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): skip only literals.
            if next == Some('\\') {
                let start = i;
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                keep_newlines(&mut out, &b[start..i.min(b.len())]);
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push(' ');
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// `r"`, `r#"`, `br"`: the number of hashes and where the body starts.
fn raw_string_start(b: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if b[j] == 'b' {
        j += 1;
    }
    if b.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while b.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (b.get(j) == Some(&'"')).then_some((hashes, j + 1))
}

/// The stripped source with every `#[cfg(test)]` item blanked (newlines kept), and
/// the number of lines outside them.
fn without_tests(stripped: &str) -> String {
    let mut out = stripped.to_string();
    while let Some(at) = out.find("#[cfg(test)]") {
        let bytes = out.as_bytes();
        let mut i = at + "#[cfg(test)]".len();
        // The item ends at `;` or at the brace matching its first `{`.
        let mut depth = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b';' if depth == 0 => {
                    i += 1;
                    break;
                }
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let blank: String = out[at..i].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
        out.replace_range(at..i, &blank);
    }
    out
}

struct SrcFile {
    rel: String,
    module: Vec<String>,
    code: String,
    children: BTreeSet<String>,
}

fn src_files() -> Vec<SrcFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "main.rs"))
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
            let mut module: Vec<String> = rel.trim_end_matches(".rs").split('/').map(String::from).collect();
            if module.last().is_some_and(|l| l == "mod" || l == "lib") {
                module.pop();
            }
            let code = without_tests(&strip(&std::fs::read_to_string(&p).unwrap()));
            let children = declared_mods(&code);
            SrcFile { rel, module, code, children }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `mod x;` / `pub mod x;` / `pub(crate) mod x;`: the file's child modules.
fn declared_mods(code: &str) -> BTreeSet<String> {
    let mut mods = BTreeSet::new();
    for line in code.lines() {
        let l = line.trim();
        let l = l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
        if let Some(rest) = l.strip_prefix("mod ")
            && let Some(name) = rest.strip_suffix(';')
        {
            mods.insert(name.trim().to_string());
        }
    }
    mods
}

#[derive(Debug)]
enum Tok {
    Ident(String),
    Sep,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let b: Vec<char> = code.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            toks.push((Tok::Ident(b[start..i].iter().collect()), line));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            toks.push((Tok::Sep, line));
            i += 2;
        } else {
            toks.push((
                match c {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    _ => Tok::Other,
                },
                line,
            ));
            i += 1;
        }
    }
    toks
}

/// Every path in the code (use trees expanded), with its line: `crate::a::b`,
/// `super::x`, `self::x`, and paths starting at a declared child module.
fn paths(code: &str, children: &BTreeSet<String>) -> Vec<(Vec<String>, usize)> {
    let toks = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let starts = match &toks[i].0 {
            Tok::Ident(s) => {
                let after_sep = i > 0 && matches!(toks[i - 1].0, Tok::Sep);
                !after_sep && (s == "crate" || s == "super" || s == "self" || children.contains(s))
            }
            _ => false,
        };
        let in_use = i > 0 && matches!(&toks[i - 1].0, Tok::Ident(s) if s == "use");
        if starts && (in_use || matches!(toks.get(i + 1).map(|t| &t.0), Some(Tok::Sep))) {
            let line = toks[i].1;
            i = use_tree(&toks, i, Vec::new(), &mut |p| out.push((p, line)));
        } else {
            i += 1;
        }
    }
    out
}

/// Reads a path or use tree from `toks[i]`, calling `emit` with each full path;
/// returns the index after it.
fn use_tree(toks: &[(Tok, usize)], mut i: usize, mut prefix: Vec<String>, emit: &mut dyn FnMut(Vec<String>)) -> usize {
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(s)) => {
                prefix.push(s.clone());
                i += 1;
                if matches!(toks.get(i).map(|t| &t.0), Some(Tok::Sep)) {
                    i += 1;
                } else {
                    emit(prefix);
                    // `x as y`: the alias is no path.
                    if matches!(toks.get(i).map(|t| &t.0), Some(Tok::Ident(s)) if s == "as") {
                        i += 2;
                    }
                    return i;
                }
            }
            Some(Tok::Open) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Close) => return i + 1,
                        Some(Tok::Comma) => i += 1,
                        None => return i,
                        _ => i = use_tree(toks, i, prefix.clone(), emit),
                    }
                }
            }
            _ => {
                // `crate::a::*` or a path followed by `<`, `(`, ...: what was read.
                if !prefix.is_empty() {
                    emit(prefix);
                }
                return i + 1;
            }
        }
    }
}

/// The file a path resolves to, from the importing module: the longest prefix that is
/// a module with a file. `None` for a path that names nothing in `src/`.
fn resolve(from: &SrcFile, path: &[String], modules: &BTreeMap<Vec<String>, String>) -> Option<String> {
    let mut full: Vec<String> = match path[0].as_str() {
        "crate" => Vec::new(),
        "super" => from.module[..from.module.len().saturating_sub(1)].to_vec(),
        _ => from.module.clone(), // `self::` or a child module's name.
    };
    let skip = if path[0] == "crate" || path[0] == "super" || path[0] == "self" { 1 } else { 0 };
    let mut rest = &path[skip..];
    while rest.first().is_some_and(|s| s == "super") {
        full.pop();
        rest = &rest[1..];
    }
    full.extend(rest.iter().cloned());
    (0..=full.len()).rev().find_map(|n| modules.get(&full[..n]).cloned())
}

fn layer_of(module: &[String]) -> Option<(usize, &'static str)> {
    // The longest root that is a prefix of the module's path wins
    // (`customer::plan` before `customer`).
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(rank, (name, roots))| roots.iter().map(move |r| (rank, *name, r.split("::").collect::<Vec<_>>())))
        .filter(|(_, _, root)| root.len() <= module.len() && root.iter().zip(module).all(|(r, m)| r == m))
        .max_by_key(|(_, _, root)| root.len())
        .map(|(rank, name, _)| (rank, name))
}

struct Edge {
    from: String,
    to: String,
    line: usize,
    path: String,
}

fn edges() -> (Vec<SrcFile>, Vec<Edge>) {
    let files = src_files();
    let modules: BTreeMap<Vec<String>, String> = files.iter().map(|f| (f.module.clone(), f.rel.clone())).collect();
    let mut edges = Vec::new();
    for f in &files {
        for (path, line) in paths(&f.code, &f.children) {
            if let Some(to) = resolve(f, &path, &modules)
                && to != f.rel
            {
                edges.push(Edge { from: f.rel.clone(), to, line, path: path.join("::") });
            }
        }
    }
    (files, edges)
}

#[test]
fn no_import_runs_upward_or_through_lib_rs() {
    let (files, edges) = edges();
    let module_of: BTreeMap<&str, &Vec<String>> = files.iter().map(|f| (f.rel.as_str(), &f.module)).collect();
    let mut bad = BTreeSet::new();
    for e in &edges {
        if e.from == "lib.rs" {
            continue; // lib.rs declares the modules, nothing else
        }
        let (Some((from_rank, from_layer)), to) = (layer_of(module_of[e.from.as_str()]), layer_of(module_of[e.to.as_str()])) else {
            panic!("{} is in no layer of LAYERS (tests/layers.rs)", e.from);
        };
        let why = match to {
            None if e.to == "lib.rs" => Some("through lib.rs's re-export: use the module's own path".to_string()),
            None => Some(format!("{} is in no layer", e.to)),
            Some((to_rank, to_layer)) if to_rank < from_rank => Some(format!("{from_layer} imports {to_layer}, a higher layer")),
            _ => None,
        };
        if let Some(why) = why {
            bad.insert(format!("src/{}:{} -> src/{} ({}): {why}", e.from, e.line, e.to, e.path));
        }
    }
    // lib.rs declares the modules (and the crate's lints) and nothing else: a re-export
    // there is a second path.
    let lib = files.iter().find(|f| f.rel == "lib.rs").unwrap();
    let declares = |l: &str| ["pub mod ", "pub(crate) mod ", "#!["].iter().any(|p| l.starts_with(p));
    for line in lib.code.lines().map(str::trim).filter(|l| !l.is_empty() && !declares(l)) {
        bad.insert(format!("src/lib.rs: `{line}`: lib.rs only declares modules"));
    }
    assert!(
        bad.is_empty(),
        "{} imports break the layers of ARCHITECTURE.md:\n{}",
        bad.len(),
        bad.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn no_two_files_import_each_other_even_through_others() {
    let (_, edges) = edges();
    let mut graph: BTreeMap<&str, BTreeMap<&str, &Edge>> = BTreeMap::new();
    for e in edges.iter().filter(|e| e.from != "lib.rs") {
        graph.entry(e.from.as_str()).or_default().entry(e.to.as_str()).or_insert(e);
    }
    let cycles = strongly_connected(&graph);
    let mut report = Vec::new();
    for scc in &cycles {
        report.push(format!("a circle of {} files:", scc.len()));
        for from in scc {
            for (to, e) in &graph[from] {
                if scc.contains(to) {
                    report.push(format!("  src/{}:{} -> src/{} ({})", from, e.line, to, e.path));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "{}", report.join("\n"));
}

/// Tarjan's algorithm: the strongly connected components of more than one file.
fn strongly_connected<'a>(graph: &BTreeMap<&'a str, BTreeMap<&'a str, &Edge>>) -> Vec<BTreeSet<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<BTreeSet<&'a str>>,
    }
    fn visit<'a>(v: &'a str, g: &BTreeMap<&'a str, BTreeMap<&'a str, &Edge>>, s: &mut State<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in g.get(v).map(|m| m.keys().copied().collect::<Vec<_>>()).unwrap_or_default() {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.insert(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                s.out.push(scc);
            }
        }
    }
    let mut s =
        State { index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), next: 0, out: Vec::new() };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(v, graph, &mut s);
        }
    }
    s.out
}

#[test]
fn no_source_file_is_over_600_lines_outside_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    let mut long = Vec::new();
    for p in paths {
        let src = std::fs::read_to_string(&p).unwrap();
        let lines = lines_outside_test_module(&src);
        if lines > 600 {
            long.push(format!("{} has {lines} lines outside its test module", p.strip_prefix(&root).unwrap().display()));
        }
    }
    long.sort();
    assert!(long.is_empty(), "files over 600 lines:\n{}", long.join("\n"));
}

/// Lines of a file but those of its `#[cfg(test)] mod tests { ... }`.
fn lines_outside_test_module(src: &str) -> usize {
    let total = src.lines().count();
    let code = strip(src);
    let Some(at) = code.find("#[cfg(test)]\nmod tests {") else { return total };
    let open = at + code[at..].find('{').unwrap();
    let mut depth = 0usize;
    let mut end = code.len();
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = open + i;
                    break;
                }
            }
            _ => {}
        }
    }
    total - code[at..=end.min(code.len() - 1)].lines().count()
}

/// The parser's own check: the paths it reads from known shapes.
#[test]
fn the_path_reader_expands_use_trees_and_skips_comments_and_strings() {
    let code = strip(
        "use crate::a::{b::{C, d}, e as f, self};\n// crate::no::comment\nlet s = \"crate::no::string\";\nlet x = super::g::h(1);\nx::y::Z;\nlet c = '\"'; crate::z::W;",
    );
    let children: BTreeSet<String> = ["x".to_string()].into();
    let got: Vec<String> = paths(&code, &children).into_iter().map(|(p, l)| format!("{l}:{}", p.join("::"))).collect();
    assert_eq!(
        got,
        ["1:crate::a::b::C", "1:crate::a::b::d", "1:crate::a::e", "1:crate::a::self", "4:super::g::h", "5:x::y::Z", "6:crate::z::W"]
    );
    let with_tests = "fn a() {}\n#[cfg(test)]\nmod tests {\n use crate::q;\n}\n";
    assert_eq!(lines_outside_test_module(with_tests), 1);
    let no_tests = without_tests(with_tests);
    assert!(!no_tests.contains("crate::q") && no_tests.lines().count() == 5);
}
