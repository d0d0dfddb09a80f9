//! Raw SQL that diesel may prepare once per connection and reuse.
//!
//! `diesel::sql_query` marks every query unsafe to cache, so Postgres plans it afresh on each
//! call; for the hot statements (a CTE for a hold, the relay's claim) planning costs more than
//! running. `cached_sql` has the same shape (`$n` placeholders, typed binds, `QueryableByName`
//! results) but its text is fixed, so diesel's statement cache keys it by that text and keeps
//! the prepared statement.

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
        let mut rest = self.sql;
        while let Some(dollar) = rest.find('$') {
            out.push_sql(&rest[..dollar]);
            let digits = rest[dollar + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let index: usize = rest[dollar + 1..dollar + 1 + digits].parse().map_err(|_| {
                diesel::result::Error::QueryBuilderError(
                    format!("bad placeholder in {:?}", self.sql).into(),
                )
            })?;
            let bind = self.binds.get(index.wrapping_sub(1)).ok_or_else(|| {
                diesel::result::Error::QueryBuilderError(format!("${index} has no bind").into())
            })?;
            bind.walk_ast(out.reborrow())?;
            rest = &rest[dollar + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
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
