//! Keeps `docs/threat-model.md` honest: every test it names exists, and
//! every security test is named in it.
//!
//! The convention (the page says it too): in a **table row**, a cell that
//! proves a threat holds a backticked path from the repository root ending
//! in `.rs`, followed by the backticked names of test functions in that
//! file, e.g. `` `core/tests/token_attacks.rs` `alg_none_hs256_and_rs256_are_refused` ``;
//! several paths may follow each other in one cell. For the browser
//! scenarios the path is `` `e2e/browser/run.mjs` `` and the names are the
//! scenarios' titles in double quotes. A path must name at least one test.
//!
//! Checked:
//! - each named function exists in its file as `fn <name>`, and each
//!   browser title as a `scenario("<title>"` in `run.mjs`;
//! - each test whose doc comment has a line starting with the threat tag
//!   (`///` then `Threat` and a colon) is named, with its path, somewhere in
//!   the page; a file whose module doc (`//!`) carries the tag is named at
//!   least once.
//!
//! So renaming a security test, or adding one, fails here until the page
//! follows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOC: &str = "docs/threat-model.md";
const BROWSER: &str = "e2e/browser/run.mjs";
/// Directories never searched for tagged tests.
const SKIP_DIRS: [&str; 3] = ["target", "node_modules", "dist"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// One test the page names: the file, and the function name or scenario title.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    path: String,
    name: String,
    /// 1-based line of the page.
    line: usize,
}

/// The tokens of one table cell, in order: backticked spans and
/// double-quoted strings (outside backticks).
fn tokens(cell: &str) -> Vec<(char, String)> {
    let mut out = Vec::new();
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        if c == '`' || c == '"' {
            let text: String = chars.by_ref().take_while(|d| *d != c).collect();
            out.push((c, text));
        }
    }
    out
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The references of a page, and the problems of its form (a path naming
/// no test).
fn parse(doc: &str) -> (Vec<Reference>, Vec<String>) {
    let mut refs = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in doc.lines().enumerate() {
        if !line.trim_start().starts_with('|') {
            continue;
        }
        for cell in line.split('|') {
            let mut current: Option<(String, usize)> = None;
            let close = |current: &mut Option<(String, usize)>, problems: &mut Vec<String>| {
                if let Some((path, 0)) = current.take() {
                    problems.push(format!(
                        "{DOC}:{}: `{path}` is followed by no test name; name the tests \
                         (`{path}` `test_fn` …) that prove the row",
                        i + 1
                    ));
                }
            };
            for (quote, text) in tokens(cell) {
                let is_path = quote == '`'
                    && text.contains('/')
                    && (text.ends_with(".rs") || text.ends_with(".mjs"));
                if is_path {
                    close(&mut current, &mut problems);
                    current = Some((text, 0));
                    continue;
                }
                let Some((path, count)) = current.as_mut() else {
                    continue;
                };
                let browser = path.ends_with(".mjs");
                let name = match (quote, browser) {
                    ('`', false) if is_identifier(&text) => text,
                    ('"', true) => text,
                    _ => continue,
                };
                *count += 1;
                refs.push(Reference {
                    path: path.clone(),
                    name,
                    line: i + 1,
                });
            }
            close(&mut current, &mut problems);
        }
    }
    (refs, problems)
}

/// Whether `source` defines function `name`: `fn name(` or `fn name<`.
/// Not necessarily under a test attribute: some scenarios are functions
/// that a macro runs once per backend (state/tests/audit_append.rs).
fn has_fn(source: &str, name: &str) -> bool {
    let needle = format!("fn {name}");
    source.match_indices(&needle).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = source[at + needle.len()..].chars().next();
        before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            && matches!(after, Some('(' | '<'))
    })
}

/// The problems of each reference: a missing file, test or scenario.
fn check_references(refs: &[Reference]) -> Vec<String> {
    let mut files: BTreeMap<&str, Option<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for r in refs {
        let source = files
            .entry(&r.path)
            .or_insert_with(|| std::fs::read_to_string(repo().join(&r.path)).ok());
        let Some(source) = source else {
            problems.push(format!(
                "{DOC}:{}: `{}` does not exist (moved or deleted?); point the row at the \
                 file that now holds the test",
                r.line, r.path
            ));
            continue;
        };
        if r.path == BROWSER {
            if !source.contains(&format!("scenario(\"{}\"", r.name)) {
                problems.push(format!(
                    "{DOC}:{}: {BROWSER} has no scenario titled \"{}\"; the scenario was \
                     renamed or removed: update the row to its current title (or restore it)",
                    r.line, r.name
                ));
            }
        } else if !has_fn(source, &r.name) {
            problems.push(format!(
                "{DOC}:{}: `{}` has no test `fn {}`; the test was renamed or removed: \
                 update the row to the test's current name (or restore the test)",
                r.line, r.path, r.name
            ));
        }
    }
    problems
}

/// Every `.rs` file of the repository, as paths from its root.
fn rust_files(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && !SKIP_DIRS.contains(&name.as_str()) {
                rust_files(&path, root, out);
            }
        } else if name.ends_with(".rs")
            && let Ok(relative) = path.strip_prefix(root)
        {
            out.push(relative.to_string_lossy().into_owned());
        }
    }
}

/// The threat tag, built so that this file does not carry it.
fn tag() -> String {
    format!("{}:", "Threat")
}

/// Tagged tests as (path, fn name), and files whose module doc is tagged.
fn tagged() -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let root = repo();
    let mut files = Vec::new();
    rust_files(&root, &root, &mut files);
    let (mut tests, mut modules) = (BTreeSet::new(), BTreeSet::new());
    for file in files {
        let Ok(source) = std::fs::read_to_string(root.join(&file)) else {
            continue;
        };
        let mut waiting = false;
        for line in source.lines() {
            let t = line.trim_start();
            if let Some(doc) = t.strip_prefix("//!") {
                if doc.contains(&tag()) {
                    modules.insert(file.clone());
                }
            } else if let Some(doc) = t.strip_prefix("///") {
                waiting |= doc.trim_start().starts_with(&tag());
            } else if waiting && let Some(at) = t.find("fn ") {
                let name: String = t[at + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                tests.insert((file.clone(), name));
                waiting = false;
            }
        }
    }
    (tests, modules)
}

#[test]
fn every_test_the_threat_model_names_exists() {
    let doc = std::fs::read_to_string(repo().join(DOC)).unwrap();
    let (refs, mut problems) = parse(&doc);
    problems.extend(check_references(&refs));
    assert!(
        refs.len() >= 100,
        "only {} test references parsed from {DOC}: has the convention changed?",
        refs.len()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s) in {DOC}:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn every_security_test_is_in_the_threat_model() {
    let doc = std::fs::read_to_string(repo().join(DOC)).unwrap();
    let (refs, _) = parse(&doc);
    let named: BTreeSet<(String, String)> = refs
        .iter()
        .map(|r| (r.path.clone(), r.name.clone()))
        .collect();
    let named_files: BTreeSet<&str> = refs.iter().map(|r| r.path.as_str()).collect();
    let (tests, modules) = tagged();
    assert!(
        tests.len() >= 60,
        "only {} tagged tests found: is the repository walk broken?",
        tests.len()
    );
    let mut missing: Vec<String> = tests
        .difference(&named)
        .map(|(path, name)| {
            format!(
                "`{path}` `{name}` carries a `{}` line but {DOC} does not name it: add it \
                 to the row of its threat (or a new row: threat | mitigation | `{path}` `{name}`)",
                tag()
            )
        })
        .collect();
    missing.extend(
        modules
            .iter()
            .filter(|m| !named_files.contains(m.as_str()))
            .map(|m| {
                format!(
                    "`{m}`'s module doc carries a `{}` line but {DOC} names none of its tests",
                    tag()
                )
            }),
    );
    assert!(
        missing.is_empty(),
        "{} security test(s) missing from {DOC}:\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

/// The check itself: a renamed test, a missing file, a path without names
/// and a renamed browser scenario are each reported with the line.
#[test]
fn a_renamed_or_missing_test_is_reported() {
    let doc = "\
| threat | mitigation | test |
|---|---|---|
| alg none | refused | `core/tests/token_attacks.rs` `alg_none_hs256_and_rs256_are_refused`, `alg_none_was_renamed` |
| gone | - | `core/tests/no_such_file.rs` `anything` |
| unnamed | - | `core/tests/token_attacks.rs` |
| browser | - | `e2e/browser/run.mjs` \"an approval attempted from a page on another origin is refused\", \"a renamed scenario\" |
";
    let (refs, mut problems) = parse(doc);
    assert_eq!(refs.len(), 5, "{refs:?}");
    problems.extend(check_references(&refs));
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].contains(":5: `core/tests/token_attacks.rs` is followed by no test name"));
    assert!(problems[1].contains("has no test `fn alg_none_was_renamed`"));
    assert!(problems[2].contains("`core/tests/no_such_file.rs` does not exist"));
    assert!(problems[3].contains("no scenario titled \"a renamed scenario\""));
    // An identifier in another cell (an error code) is not a test name.
    let (refs, problems) =
        parse("| `grant_suspended` | `core/tests/token_attacks.rs` `a_genuine_token_verifies` |");
    assert_eq!(refs.len(), 1);
    assert!(problems.is_empty());
}
