//! The code's shape, held by tests: no file outside the tests is longer than
//! [`MAX_LINES`], and the modules' imports form layers: no two top-level
//! modules (`domain`, `api`, `ui`, and each `server::*`) import each other,
//! directly or round about, and none imports a layer above its own.
//!
//! Imports are read from the source text (`crate::a::b` and `super::`
//! paths, comments left out), so a new arrow is caught the day it is
//! written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most lines a file outside the tests may hold (a file's own
/// `#[cfg(test)] mod tests` block at its end does not count).
const MAX_LINES: usize = 600;

/// Modules and the modules above them, which they may not import.
const NOT_UP: &[(&str, &[&str])] = &[
    ("domain", &["*"]),
    (
        "server::store",
        &["server::service", "server::rest", "server::proxy", "server::state", "server::metrics", "api", "ui"],
    ),
    (
        "server::service",
        &[
            "server::rest",
            "server::proxy",
            "server::state",
            "server::web",
            "server::policy",
            "server::startup",
            "api",
            "ui",
        ],
    ),
    (
        "server::views",
        &["server::service", "server::rest", "server::proxy", "server::state", "server::web", "api", "ui"],
    ),
    ("server::proxy", &["server::state", "server::rest", "server::startup", "api", "ui"]),
    ("server::web", &["server::state", "server::identity", "server::policy", "server::service", "api", "ui"]),
    ("server::identity", &["api", "ui", "server::rest", "server::proxy", "server::startup"]),
    ("server::metrics", &["server::state", "server::rest", "server::service"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/server/proxy/mod.rs` → `["server", "proxy"]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

fn is_test_file(rel: &Path) -> bool {
    let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name == "tests.rs" || name.ends_with("_tests.rs") || name == "testing.rs" || rel.iter().any(|p| p == "tests")
}

/// The file without its trailing `#[cfg(test)] mod tests` block.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests").map_or(text, |i| &text[..i])
}

/// The top-level module a module path belongs to.
fn top(path: &[String]) -> Option<String> {
    match path {
        [] => None,
        [first, second, ..] if first == "server" => Some(format!("server::{second}")),
        [first, ..] => Some(first.clone()),
    }
}

/// Every top-level module `text` (the code of module `me`) names by path.
fn targets(me: &[String], text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find(['c', 's']) {
            let tail = &rest[i..];
            let boundary = rest[..i].chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let (base, after) = if let Some(after) = tail.strip_prefix("crate::") {
                (Some(Vec::new()), after)
            } else if tail.starts_with("super::") {
                let mut depth = 0;
                let mut after = tail;
                while let Some(a) = after.strip_prefix("super::") {
                    depth += 1;
                    after = a;
                }
                (me.len().checked_sub(depth).map(|n| me[..n].to_vec()), after)
            } else {
                (None, "")
            };
            match base {
                Some(mut path) if boundary => {
                    for segment in after.split("::").take(2) {
                        let name: String = segment.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
                            break;
                        }
                        path.push(name);
                    }
                    if let Some(t) = top(&path) {
                        out.insert(t);
                    }
                    rest = &tail[1..];
                }
                _ => rest = &tail[1..],
            }
        }
    }
    out
}

/// Top-level module → the top-level modules its non-test code imports,
/// and the non-test files over [`MAX_LINES`].
fn read_crate() -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut long = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src").to_path_buf();
        if is_test_file(&rel) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let code = without_tests(&text);
        let lines = code.lines().count();
        if lines > MAX_LINES {
            long.push(format!("{} ({lines} lines)", rel.display()));
        }
        let me = module_of(&rel);
        let Some(from) = top(&me) else { continue };
        for to in targets(&me, code) {
            if to != from && to != "server" {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    (edges, long)
}

fn reaches(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(m) = stack.pop() {
        if m == to {
            return true;
        }
        if seen.insert(m.clone()) {
            stack.extend(edges.get(&m).into_iter().flatten().cloned());
        }
    }
    false
}

#[test]
fn no_file_outside_the_tests_is_longer_than_the_limit() {
    let (_, long) = read_crate();
    assert!(long.is_empty(), "split these by what they hold: {long:?}");
}

#[test]
fn top_level_modules_import_in_layers_without_circles() {
    let (edges, _) = read_crate();
    // The reader finds what it must: these arrows exist.
    assert!(edges["server::service"].contains("server::store"), "{edges:?}");
    assert!(edges["server::startup"].contains("server::state"), "{edges:?}");
    let mut wrong = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if reaches(&edges, to, from) {
                wrong.push(format!("{from} -> {to} closes a circle"));
            }
            for (module, above) in NOT_UP {
                if from == module && (above.contains(&to.as_str()) || (above.contains(&"*") && to != "domain")) {
                    wrong.push(format!("{from} -> {to} points up a layer"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_import_reader_resolves_paths() {
    let me: Vec<String> = ["server", "proxy", "answer"].map(String::from).to_vec();
    let code = "use super::*;\nuse super::super::web::x;\nlet a = crate::server::state::AppState;\n// crate::ui::App\n";
    let found = targets(&me, code);
    assert_eq!(found, ["server::proxy", "server::state", "server::web"].map(String::from).into());
}
