//! ARCHITECTURE.md's module table, held against the code: every top-level
//! module has a row, imports only what its row's "may use" column names, and
//! no two top-level modules import each other, directly or round a loop;
//! and no Rust file grows past the size one reader can hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Rows whose "may use" column admits any module (the binary's glue, the wiring).
const UNRESTRICTED: [&str; 2] = ["everything", "all of the above"];

struct Row {
    uses: BTreeSet<String>,
    unrestricted: bool,
}

#[test]
fn modules_import_only_what_the_architecture_table_admits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = top_level_modules(&root.join("src"));
    let table = module_table(&std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap());
    let imports: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|(name, files)| (name.clone(), imported_modules(name, files, &modules)))
        .collect();

    let mut problems = Vec::new();
    for (name, used) in &imports {
        let Some(row) = table.get(name) else {
            problems.push(format!(
                "`{name}` has no row in ARCHITECTURE.md's module table"
            ));
            continue;
        };
        if row.unrestricted {
            continue;
        }
        for other in used.iter().filter(|u| !row.uses.contains(*u)) {
            problems.push(format!(
                "`{name}` imports `{other}`, which its row's \"may use\" does not name"
            ));
        }
    }
    for name in table.keys().filter(|n| !modules.contains_key(*n)) {
        problems.push(format!(
            "the table has a row for `{name}`, which does not exist"
        ));
    }
    if let Some(cycle) = find_cycle(&imports) {
        problems.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Top-level library modules (`src/x.rs` and `src/x/**.rs`), the binary
/// and the crate root left out; each with its files.
fn top_level_modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            modules
                .entry(stem)
                .or_insert_with(Vec::new)
                .extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && stem != "lib" && stem != "main" {
            modules.entry(stem).or_insert_with(Vec::new).push(path);
        }
    }
    modules
}

/// Files past this many lines do several jobs: split them along their seams.
const MAX_LINES: usize = 600;

#[test]
fn no_rust_file_is_over_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut over = Vec::new();
    for dir in ["src", "tests", "benches", "examples"] {
        for file in rust_files(&root.join(dir)) {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > MAX_LINES {
                over.push(format!(
                    "{} ({lines})",
                    file.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        over.is_empty(),
        "over {MAX_LINES} lines: {}",
        over.join(", ")
    );
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The rows of the table under "## Modules and what each may touch".
fn module_table(markdown: &str) -> BTreeMap<String, Row> {
    let section = markdown
        .split("## Modules and what each may touch")
        .nth(1)
        .expect("ARCHITECTURE.md has the module table");
    let mut rows = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(name), Some(uses)) = (cells.get(1), cells.get(3)) else {
            continue;
        };
        let Some(name) = backticked(name).into_iter().next() else {
            continue; // the header and its rule
        };
        if name == "main.rs" {
            continue; // the binary: may use everything public
        }
        let name = name.to_string();
        let uses_modules = backticked(uses)
            .into_iter()
            .map(|u| u.split("::").next().unwrap_or_default().to_string())
            .collect();
        let unrestricted = UNRESTRICTED.iter().any(|u| uses.contains(u));
        rows.insert(
            name,
            Row {
                uses: uses_modules,
                unrestricted,
            },
        );
    }
    rows
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The other top-level modules a module's files name as `crate::x`,
/// including inside `use crate::{x, y::z}` groups.
fn imported_modules(
    name: &str,
    files: &[PathBuf],
    modules: &BTreeMap<String, Vec<PathBuf>>,
) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for after in text.split("crate::").skip(1) {
            let names: Vec<&str> = match after.strip_prefix('{') {
                Some(group) => top_level_of_group(group),
                None => vec![leading_ident(after)],
            };
            used.extend(
                names
                    .into_iter()
                    .filter(|n| *n != name && modules.contains_key(*n))
                    .map(str::to_string),
            );
        }
    }
    used
}

fn leading_ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segment of each path in a `{…}` group, nested groups skipped.
fn top_level_of_group(group: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let (mut depth, mut start_of_item) = (0, true);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start_of_item = true,
            c if start_of_item && !c.is_whitespace() => {
                names.push(leading_ident(&group[i..]));
                start_of_item = false;
            }
            _ => {}
        }
    }
    names
}

/// A loop in the import graph, if there is one.
fn find_cycle(imports: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        imports: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in imports.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, imports, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    imports
        .keys()
        .find_map(|start| visit(start, imports, &mut Vec::new(), &mut done))
}

#[test]
fn the_import_scanner_reads_groups_and_paths() {
    assert_eq!(top_level_of_group("a, b::{c, d}, e::f}"), ["a", "b", "e"]);
    assert_eq!(leading_ident("store::writer::X;"), "store");
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "a"]);
}
