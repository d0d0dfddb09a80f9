//! Raw SQL that diesel may prepare once per connection and reuse.
//!
//! `diesel::sql_query` marks every query unsafe to cache, so Postgres plans it afresh on each
//! call; for the hot statements (a CTE for a hold, the relay's claim) planning costs more than
//! running. `cached_sql` has the same shape (`$n` placeholders, typed binds, `QueryableByName`
//! results) but its text is fixed, so diesel's statement cache keys it by that text and keeps
//! the prepared statement.
//!
//! A statement longer than a few lines lives in a `.sql` file next to the code that runs it,
//! included with `include_str!`, whose first comment names every bind (`-- Binds: $1
//! reservation id, $2 user id.`, or `-- Binds: none.`); [`check_named_binds`] holds a file to
//! its comment, and each crate that keeps `.sql` files runs it over them in a test.

mod named_binds;

pub use named_binds::{check_named_binds, check_sql_files_under};

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, SqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};
use std::marker::PhantomData;

pub fn cached_sql<'a>(sql: &'static str) -> CachedSql<'a> {
    CachedSql {
        sql,
        binds: Vec::new(),
    }
}

pub struct CachedSql<'a> {
    sql: &'static str,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'a>>,
}

impl<'a> CachedSql<'a> {
    /// Binds the value for the next placeholder (`$1`, then `$2`, ...).
    pub fn bind<ST, T>(mut self, value: T) -> Self
    where
        ST: SqlType + 'static,
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + Send + 'a,
    {
        self.binds.push(Box::new(Bound::<ST, T> {
            value,
            sql_type: PhantomData,
        }));
        self
    }
}

struct Bound<ST, T> {
    value: T,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST, T> QueryFragment<Pg> for Bound<ST, T>
where
    ST: SqlType,
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, T>(&self.value)
    }
}

impl QueryFragment<Pg> for CachedSql<'_> {
    /// Emits the text with each `$n` replaced by its bind, in order of appearance; diesel
    /// renumbers them, so a placeholder used twice binds its value twice.
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let pieces = split_placeholders(self.sql).map_err(|problem| {
            diesel::result::Error::QueryBuilderError(format!("{problem} in {:?}", self.sql).into())
        })?;
        for piece in pieces {
            match piece {
                Piece::Text(text) => out.push_sql(text),
                Piece::Placeholder(index) => {
                    let bind = self.binds.get(index.wrapping_sub(1)).ok_or_else(|| {
                        diesel::result::Error::QueryBuilderError(
                            format!("${index} has no bind").into(),
                        )
                    })?;
                    bind.walk_ast(out.reborrow())?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    /// `$n`, 1-based.
    Placeholder(usize),
}

/// Splits SQL text at its `$n` placeholders. A `$` inside a string literal (`'...'`,
/// `E'...'`), a quoted identifier, a comment or a dollar-quoted body (`$$...$$`,
/// `$tag$...$tag$`) is text, copied as it is; an unterminated one is an error.
pub fn split_placeholders(sql: &str) -> Result<Vec<Piece<'_>>, String> {
    let bytes = sql.as_bytes();
    let (mut pieces, mut text_start, mut i) = (Vec::new(), 0, 0);
    while i < bytes.len() {
        i = match bytes[i] {
            b'\'' => {
                // `E'...'` takes backslash escapes; the `E` must start a token of its own.
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !is_identifier_byte(bytes[i - 2]));
                skip_quoted(bytes, i, b'\'', escapes).ok_or("an unterminated string literal")?
            }
            // Inside an identifier (`a$1` is one) a `$` is part of its name.
            b'$' if i > 0 && is_identifier_byte(bytes[i - 1]) => i + 1,
            b'"' => {
                skip_quoted(bytes, i, b'"', false).ok_or("an unterminated quoted identifier")?
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                sql[i..].find('\n').map_or(bytes.len(), |end| i + end + 1)
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                skip_block_comment(bytes, i).ok_or("an unterminated comment")?
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let index = sql[i + 1..i + 1 + digits]
                    .parse()
                    .map_err(|_| "a placeholder number too large")?;
                pieces.push(Piece::Text(&sql[text_start..i]));
                pieces.push(Piece::Placeholder(index));
                text_start = i + 1 + digits;
                text_start
            }
            b'$' => match dollar_tag(&sql[i..]) {
                Some(tag) => {
                    let body = i + tag.len();
                    sql[body..]
                        .find(tag)
                        .map(|end| body + end + tag.len())
                        .ok_or("an unterminated dollar-quoted body")?
                }
                None => i + 1,
            },
            _ => i + 1,
        };
    }
    pieces.push(Piece::Text(&sql[text_start..]));
    Ok(pieces)
}

/// The index just past the closing `quote` of the quoted text starting at `start`; a doubled
/// quote stays inside, and so does a backslash-escaped one in an `E'...'` string.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash_escapes => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80
}

/// The index just past the `/* ... */` comment starting at `start`; comments nest, as in
/// PostgreSQL.
fn skip_block_comment(bytes: &[u8], start: usize) -> Option<usize> {
    let (mut depth, mut i) = (0usize, start);
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => (depth, i) = (depth + 1, i + 2),
            (b'*', b'/') => {
                (depth, i) = (depth - 1, i + 2);
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// `$$` or `$tag$` at the start of `text`, the opening of a dollar-quoted body.
fn dollar_tag(text: &str) -> Option<&str> {
    let name_len = text[1..]
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let starts_like_identifier = text[1..]
        .bytes()
        .next()
        .is_some_and(|b| !b.is_ascii_digit());
    (text[1 + name_len..].starts_with('$') && (name_len == 0 || starts_like_identifier))
        .then(|| &text[..name_len + 2])
}

impl QueryId for CachedSql<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for CachedSql<'_> {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for CachedSql<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::debug_query;
    use diesel::sql_types::{BigInt, Text};

    #[test]
    fn placeholders_become_binds_in_order_even_when_repeated() {
        let query = cached_sql("SELECT $2::text, $1::bigint, $1::bigint")
            .bind::<BigInt, _>(7_i64)
            .bind::<Text, _>("x".to_string());
        let shown = debug_query::<Pg, _>(&query).to_string();
        assert!(
            shown.starts_with("SELECT $1::text, $2::bigint, $3::bigint"),
            "{shown}"
        );
        assert!(shown.contains(r#"["x", 7, 7]"#), "{shown}");
    }

    #[test]
    fn dollars_inside_literals_identifiers_comments_and_dollar_quotes_are_text() {
        let sql = "SELECT '$1 costs', E'it\\'s $2', \"col$3\", $$ $4 $$, $f$ $5 $f$ -- $6\n \
                   /* $7 /* $8 */ $9 */ a$10, type='C:\\' || $1";
        let pieces = split_placeholders(sql).unwrap();
        let placeholders: Vec<&Piece> = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Placeholder(_)))
            .collect();
        assert_eq!(placeholders, [&Piece::Placeholder(1)]);
        let text: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => *t,
                Piece::Placeholder(_) => "?",
            })
            .collect();
        assert_eq!(text, sql.strip_suffix("$1").unwrap().to_owned() + "?");
    }

    #[test]
    fn an_unterminated_literal_or_body_is_a_clear_error() {
        for (sql, problem) in [
            ("SELECT 'open", "an unterminated string literal"),
            ("SELECT $$ body", "an unterminated dollar-quoted body"),
            ("SELECT \"open", "an unterminated quoted identifier"),
            ("SELECT /* open", "an unterminated comment"),
        ] {
            assert_eq!(split_placeholders(sql), Err(problem.to_string()), "{sql}");
        }
        let query = cached_sql("SELECT '$1");
        let error =
            QueryFragment::<Pg>::to_sql(&query, &mut diesel::pg::PgQueryBuilder::default(), &Pg)
                .unwrap_err()
                .to_string();
        assert!(error.contains("an unterminated string literal"), "{error}");
    }

    #[test]
    fn a_placeholder_without_a_bind_is_an_error_not_a_panic() {
        let query = cached_sql("SELECT $3");
        assert!(QueryFragment::<Pg>::to_sql(
            &query,
            &mut diesel::pg::PgQueryBuilder::default(),
            &Pg
        )
        .is_err());
    }
}
