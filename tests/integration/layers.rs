//! The layers of DESIGN.md §2, held against the code: every `crate::` path in `src/` is
//! read, and a module that imports one its row in `src/lib.rs` does not allow fails the
//! test with the file and line. The table itself must be free of cycles, and so must the
//! imports actually written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One `crate::` (or climbing `super::`) reference: where it is, and the top-level module
/// (or, for a rule on a submodule, the module path) it reaches.
#[derive(Debug)]
struct Reference {
    file: PathBuf,
    line: usize,
    from: Vec<String>,
    to: String,
}

/// The table in `src/lib.rs`: module path → the top-level modules it may import.
type Table = BTreeMap<Vec<String>, BTreeSet<String>>;

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `src/…/file.rs` as a person types it.
fn shown(file: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// Reads the table between the `layers:` marker lines of the crate documentation.
fn table() -> Table {
    let lib = std::fs::read_to_string(source_root().join("lib.rs")).expect("read src/lib.rs");
    let mut rows = Table::new();
    let mut inside = false;
    for line in lib.lines() {
        let text = line.trim_start_matches("//!").trim();
        if text.starts_with("```") {
            inside = !inside && text.contains("layers");
            continue;
        }
        if !inside {
            continue;
        }
        let Some((module, allowed)) = text.split_once(" : ") else {
            continue;
        };
        let module: Vec<String> = module.trim().split("::").map(str::to_owned).collect();
        let allowed = allowed
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty() && *name != "—")
            .map(str::to_owned)
            .collect();
        rows.insert(module, allowed);
    }
    assert!(!rows.is_empty(), "src/lib.rs has no ```layers table");
    rows
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `lib.rs` and `main.rs` are the root.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(source_root()).expect("a file under src/");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The identifiers a path starts with after `crate::`: one, or each of a `{…}` group.
fn heads_after(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = text.strip_prefix('{') else {
        return Some(ident(text))
            .filter(|head| !head.is_empty())
            .into_iter()
            .collect();
    };
    // Top-level items of the group: split on commas outside nested braces.
    let mut heads = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                heads.push(ident(group[start..i].trim()));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.push(ident(group[start..i].trim()));
                start = i + 1;
            }
            _ => {}
        }
    }
    heads.retain(|h| !h.is_empty() && h != "self");
    heads
}

/// The references of one file. Comments are skipped; a `use crate::{…}` group spanning
/// lines is read as one statement; inline modules (`mod tests {`, as rustfmt lays them out)
/// deepen the module a `super::` climbs from.
fn references(file: &Path) -> Vec<Reference> {
    let text = std::fs::read_to_string(file).expect("read a source file");
    let lines: Vec<&str> = text.lines().collect();
    let mut module = module_of(file);
    let mut inline: Vec<String> = Vec::new(); // the closing line of each open inline module
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if inline.last().is_some_and(|close| line == close) {
            inline.pop();
            module.pop();
            continue;
        }
        if let Some((indent, name)) = inline_module(line) {
            inline.push(format!("{indent}}}"));
            module.push(name);
            continue;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            if before.ends_with(|c: char| c == '$' || c.is_alphanumeric() || c == '_') {
                continue;
            }
            let statement = statement_from(rest, &lines[index + 1..]);
            found.extend(heads_after(&statement).into_iter().map(|to| Reference {
                file: file.to_owned(),
                line: index + 1,
                from: module.clone(),
                to,
            }));
        }
        found.extend(climbing_super(code, &module, file, index + 1));
    }
    found
}

/// `mod name {` opening an inline module: its indentation and name.
fn inline_module(line: &str) -> Option<(&str, String)> {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    let declaration = trimmed
        .strip_prefix("pub(crate) ")
        .or_else(|| trimmed.strip_prefix("pub "))
        .unwrap_or(trimmed);
    let name = declaration.strip_prefix("mod ")?.strip_suffix(" {")?;
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '_')
        .then(|| (indent, name.to_owned()))
}

/// The path text after `crate::`, with the following lines of a `{…}` group that is still
/// open at the end of this one.
fn statement_from(rest: &str, following: &[&str]) -> String {
    let mut statement = rest.to_owned();
    let mut next = following.iter();
    while statement.starts_with('{') && !balanced(&statement) {
        let Some(line) = next.next() else { break };
        statement.push_str(line.split("//").next().unwrap_or(""));
    }
    statement
}

fn balanced(text: &str) -> bool {
    text.matches('{').count() <= text.matches('}').count()
}

/// `super::super::x` in `a::b` reaches the crate root's `x`: a path that climbs out of its
/// top-level module imports another one.
fn climbing_super(code: &str, from: &[String], file: &Path, line: usize) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let path = &rest[at..];
        let climbs = path.split("::").take_while(|part| *part == "super").count();
        rest = &path["super::".len() * climbs..];
        if climbs >= from.len() {
            found.extend(heads_after(rest).into_iter().map(|to| Reference {
                file: file.to_owned(),
                line,
                from: from.to_vec(),
                to,
            }));
        }
    }
    found
}

/// The row that governs a module: the longest module path in the table it lies in.
fn row_of<'t>(
    table: &'t Table,
    module: &[String],
) -> Option<(&'t Vec<String>, &'t BTreeSet<String>)> {
    table
        .iter()
        .filter(|(path, _)| module.starts_with(path))
        .max_by_key(|(path, _)| path.len())
}

fn all_references() -> Vec<Reference> {
    let mut files = Vec::new();
    rust_files(&source_root(), &mut files);
    files.sort();
    files.iter().flat_map(|f| references(f)).collect()
}

/// The cycles of a graph of top-level modules, each as its path.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(start) = path.iter().position(|n| n == node) {
            found.push(path[start..].to_vec());
            return;
        }
        if !done.insert(node.to_owned()) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done, found);
        }
        path.pop();
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn layers_every_module_imports_only_what_its_row_allows() {
    let table = table();
    let mut broken = Vec::new();
    for reference in all_references() {
        let Some(top) = reference.from.first() else {
            continue; // lib.rs and main.rs declare and call; they are the root.
        };
        if *top == reference.to {
            continue;
        }
        match row_of(&table, &reference.from) {
            None => broken.push(format!(
                "{}:{}: module `{}` has no row in the layer table of src/lib.rs",
                shown(&reference.file),
                reference.line,
                reference.from.join("::")
            )),
            Some((_, allowed)) if allowed.contains("*") || allowed.contains(&reference.to) => {}
            Some((row, allowed)) => broken.push(format!(
                "{}:{}: `{}` imports `{}`, which its row `{}` does not allow (it may import: {})",
                shown(&reference.file),
                reference.line,
                reference.from.join("::"),
                reference.to,
                row.join("::"),
                allowed.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    }
    assert!(
        broken.is_empty(),
        "layer violations:\n{}",
        broken.join("\n")
    );
}

#[test]
fn layers_neither_the_table_nor_the_imports_go_in_a_circle() {
    let table = table();
    let mut declared: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, allowed) in &table {
        let top = &module[0];
        let targets = allowed.iter().filter(|t| *t != "*" && *t != top).cloned();
        declared.entry(top.clone()).or_default().extend(targets);
    }
    assert_eq!(
        cycles(&declared),
        Vec::<Vec<String>>::new(),
        "cycles in the table"
    );
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for reference in all_references() {
        if let Some(top) = reference.from.first() {
            if *top != reference.to {
                written.entry(top.clone()).or_default().insert(reference.to);
            }
        }
    }
    assert_eq!(
        cycles(&written),
        Vec::<Vec<String>>::new(),
        "cycles in the imports"
    );
}

#[test]
fn layers_every_top_level_module_has_a_row() {
    let table = table();
    let mut files = Vec::new();
    rust_files(&source_root(), &mut files);
    let missing: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(f).first().cloned())
        .filter(|top| !table.contains_key(&vec![top.clone()]))
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a row in src/lib.rs: {missing:?}"
    );
}

#[test]
fn layers_the_reader_sees_groups_and_climbing_paths() {
    assert_eq!(heads_after("{a, b::{c, d}, self}"), ["a", "b"]);
    assert_eq!(heads_after("store::counts;"), ["store"]);
    let file = source_root().join("http/api/events.rs");
    let from = module_of(&file);
    assert_eq!(from, ["http", "api", "events"]);
    let up = climbing_super("use super::super::super::cli::x;", &from, &file, 1);
    assert_eq!(
        up.iter().map(|r| r.to.as_str()).collect::<Vec<_>>(),
        ["cli"]
    );
    assert!(climbing_super("use super::input;", &from, &file, 1).is_empty());
}
