//! A `.sql` file names its binds in its first comment (`-- Binds: $1 reservation id, $2 user
//! id.`, or `-- Binds: none.`) and uses exactly the placeholders it names, `$1` to `$n`.

use super::{split_placeholders, Piece};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Checks `sql` (a `.sql` file's text) against its `-- Binds:` comment; the error says what
/// is wrong.
pub fn check_named_binds(sql: &str) -> Result<(), String> {
    let named = named_binds(sql)?;
    let used: BTreeSet<usize> = split_placeholders(sql)?
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Placeholder(n) => Some(n),
            Piece::Text(_) => None,
        })
        .collect();
    if named != used {
        return Err(format!("names binds {named:?} but uses {used:?}"));
    }
    if named != (1..=named.len()).collect() {
        return Err(format!("binds {named:?} are not $1..$n"));
    }
    Ok(())
}

/// Checks every `.sql` file under `dir` with [`check_named_binds`], for a crate's test; returns
/// how many it checked, or the first file that fails and why. Folders named `migrations` are
/// passed over: diesel runs their files as they are, with no binds.
pub fn check_sql_files_under(dir: &Path) -> Result<usize, String> {
    let files = sql_files_under(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for file in &files {
        let sql = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        check_named_binds(&sql).map_err(|problem| format!("{}: {problem}", file.display()))?;
    }
    Ok(files.len())
}

fn sql_files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && path.file_name().is_some_and(|name| name == "migrations") {
            continue;
        } else if path.is_dir() {
            found.extend(sql_files_under(&path)?);
        } else if path.extension().is_some_and(|ext| ext == "sql") {
            found.push(path);
        }
    }
    Ok(found)
}

/// The numbers named in the leading `-- Binds:` comment, which runs until a line that is
/// only `--` or is not a comment.
fn named_binds(sql: &str) -> Result<BTreeSet<usize>, String> {
    let mut lines = sql.lines();
    let first = lines
        .next()
        .and_then(|line| line.strip_prefix("-- Binds:"))
        .ok_or("has no `-- Binds:` first line")?;
    let comment = std::iter::once(first)
        .chain(lines.map_while(|line| line.strip_prefix("-- ").filter(|rest| !rest.is_empty())))
        .collect::<Vec<_>>()
        .join(" ");
    if comment.trim() == "none." {
        return Ok(BTreeSet::new());
    }
    comment
        .split(',')
        .map(|bind| {
            let digits: String = bind
                .trim()
                .strip_prefix('$')
                .ok_or_else(|| format!("{bind:?} does not start with $n"))?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits
                .parse()
                .map_err(|_| format!("{bind:?} does not start with $n"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_named_but_unused_or_used_but_unnamed_is_caught() {
        assert!(check_named_binds("-- Binds: $1 id, $2 user.\nSELECT $1, $2").is_ok());
        assert!(check_named_binds("-- Binds: none.\nSELECT 1").is_ok());
        assert!(check_named_binds("-- Binds: $1 id, $2 user.\nSELECT $1, $3").is_err());
        assert!(check_named_binds("-- Binds: $1 id.\nSELECT $1, $2").is_err());
        assert!(check_named_binds("-- Binds: $2 id.\nSELECT $2").is_err());
        assert!(check_named_binds("SELECT $1").is_err());
    }

    #[test]
    fn queries_are_checked_and_migrations_passed_over() {
        let dir = std::env::temp_dir().join(format!("cached-sql-{}", std::process::id()));
        let migration = dir.join("migrations").join("2026-01-01_init");
        std::fs::create_dir_all(&migration).unwrap();
        std::fs::write(migration.join("up.sql"), "CREATE TABLE t (id int);").unwrap();
        std::fs::write(dir.join("find.sql"), "-- Binds: $1 id.\nSELECT $1").unwrap();
        assert_eq!(check_sql_files_under(&dir), Ok(1));
        std::fs::write(dir.join("bad.sql"), "SELECT $1").unwrap();
        let refused = check_sql_files_under(&dir).unwrap_err();
        assert!(refused.contains("bad.sql"), "{refused}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
