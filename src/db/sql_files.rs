//! Every `.sql` file under `src/` names its binds in its first comment
//! (`-- Binds: $1 reservation id, $2 user id, ...`), and uses exactly the placeholders named.

use super::cached_sql::{split_placeholders, Piece};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn sql_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sql_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "sql") {
            found.push(path);
        }
    }
}

/// The numbers named in the leading `-- Binds:` comment, which runs until a line that is
/// only `--` or is not a comment.
fn named_binds(sql: &str) -> Option<BTreeSet<usize>> {
    let mut lines = sql.lines();
    let first = lines.next()?.strip_prefix("-- Binds:")?;
    let comment = std::iter::once(first)
        .chain(lines.map_while(|line| line.strip_prefix("-- ").filter(|rest| !rest.is_empty())))
        .collect::<Vec<_>>()
        .join(" ");
    if comment.trim() == "none." {
        return Some(BTreeSet::new());
    }
    Some(
        comment
            .split(',')
            .map(|bind| {
                let number = bind.trim().strip_prefix('$').unwrap_or_else(|| {
                    panic!("{bind:?} does not start with $n");
                });
                let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap()
            })
            .collect(),
    )
}

fn used_binds(sql: &str) -> BTreeSet<usize> {
    split_placeholders(sql)
        .unwrap()
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Placeholder(n) => Some(n),
            Piece::Text(_) => None,
        })
        .collect()
}

#[test]
fn every_sql_file_names_exactly_the_binds_it_uses() {
    let mut files = Vec::new();
    sql_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() >= 3, "found only {files:?}");
    for file in files {
        let sql = std::fs::read_to_string(&file).unwrap();
        let named = named_binds(&sql)
            .unwrap_or_else(|| panic!("{} has no `-- Binds:` first line", file.display()));
        assert_eq!(named, used_binds(&sql), "{}", file.display());
        let expected: BTreeSet<usize> = (1..=named.len()).collect();
        assert_eq!(named, expected, "{}: binds are $1..$n", file.display());
    }
}

#[test]
fn a_bind_named_but_unused_or_used_but_unnamed_is_caught() {
    let sql = "-- Binds: $1 id, $2 user.\nSELECT $1, $3";
    assert_ne!(named_binds(sql), Some(used_binds(sql)));
}
