//! README.md's settings tables held to the settings table: every declared
//! setting has a row with its key, flag and default, and no row names a
//! setting that does not exist. Without this the README drifted whenever a
//! setting was added or a default changed.

use super::{DefaultDoc, Layer};

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));

/// The rows of the Markdown table whose header row is `header`, each split
/// into its cells (`\|` inside a cell is kept as `|`).
fn rows(header: &str) -> Vec<Vec<String>> {
    let mut lines = README.lines().skip_while(|l| l.trim() != header);
    assert!(lines.next().is_some(), "README.md has no table {header:?}");
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.replace("\\|", "\u{0}")
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().replace('\u{0}', "|"))
                .collect()
        })
        .collect()
}

fn unquote(cell: &str) -> &str {
    cell.trim_matches('`')
}

#[test]
fn the_readme_settings_table_matches_the_declarations() {
    let rows = rows("| key | flag | default | meaning |");
    let mut seen = Vec::new();
    for row in &rows {
        let key = unquote(&row[0]);
        if let Some(table) = key.strip_prefix('[') {
            // `[backend.NAME]`: a table of tables, named by its key.
            let name = table.trim_matches(|c| c == '[' || c == ']');
            let name = name.strip_suffix(".NAME").unwrap_or(name);
            assert!(
                Layer::FILE_TABLES.contains(&name),
                "README.md has a row for a table {key} that the file may not hold"
            );
            assert_eq!(row[1], "—", "{key}: a table has no flag");
            seen.push(name.to_string());
            continue;
        }
        let Some(declared) = Layer::DECLARED.iter().find(|d| d.key == key) else {
            panic!("README.md has a row for `{key}`, which is no setting");
        };
        let flag = format!("`{}", declared.flag());
        assert!(
            row[1] == format!("{flag}`") || row[1].starts_with(&format!("{flag} ")),
            "{key}: the flag is {}, the README says {}",
            declared.flag(),
            row[1]
        );
        let default = match declared.default {
            DefaultDoc::Required => "required".to_string(),
            DefaultDoc::Value(value) => format!("`{value}`"),
            DefaultDoc::Described(words) => words.to_string(),
            DefaultDoc::None => "none".to_string(),
        };
        assert_eq!(row[2], default, "{key}: the README's default");
        seen.push(key.to_string());
    }
    for declared in Layer::DECLARED {
        assert!(
            seen.iter().any(|k| k == declared.key),
            "README.md's settings table has no row for `{}`",
            declared.key
        );
    }
    for table in Layer::FILE_TABLES {
        assert!(
            seen.iter().any(|k| k == table),
            "README.md's settings table has no row for [{table}]"
        );
    }
    assert_eq!(seen.len(), rows.len());
}

#[test]
fn the_readme_connection_limits_match_the_declarations() {
    for row in rows("| setting | default | what it stops |") {
        let key = unquote(&row[0]);
        let declared = Layer::DECLARED
            .iter()
            .find(|d| d.key == key)
            .unwrap_or_else(|| panic!("README.md names `{key}`, which is no setting"));
        let default = match declared.default {
            DefaultDoc::Value(value) => value,
            DefaultDoc::None => "unset",
            other => panic!("{key}: a default of {other:?} in this table"),
        };
        assert_eq!(row[1], default, "{key}: the README's default");
    }
}
