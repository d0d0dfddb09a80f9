//! The connection pool and the embedded migrations.
//!
//! # Running SQL
//! One way, in this order of preference:
//! 1. diesel's DSL, where it expresses the query (the schema in [`schema`] checks it at
//!    compile time);
//! 2. otherwise [`cached_sql::cached_sql`] (the `cached-sql` crate, which the outbox uses too):
//!    fixed text with `$n` placeholders and typed binds, prepared once per connection and
//!    reused. A statement longer than a few lines lives in a `.sql` file next to its module,
//!    included with `include_str!`, whose first comment names every bind (`-- Binds: $1
//!    reservation id, $2 user id.`, or `-- Binds: none.`); a test below checks that each file
//!    uses exactly the binds it names.
//!
//! Rules about reservations (live, held within or past its hold, taking its seat, the state a
//! reader sees, a seat's state) and the reservation event's JSON are SQL functions in the
//! migration `reservation_rules`; queries call them instead of spelling the rule out, and a
//! state a statement writes is bound from [`crate::domain::ReservationStatus`].
//!
//! `diesel::sql_query` is left for text that cannot be fixed at compile time (`CREATE
//! DATABASE` naming one, `EXPLAIN` in tests) and for one-off session commands (`LISTEN`),
//! where a prepared statement kept for the connection's life buys nothing.

pub mod schema;

pub use cached_sql;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use pg_outbox::db::DbPool;
pub type DbConnection = PooledConnection<ConnectionManager<PgConnection>>;

/// This service's own migrations; [`run_migrations`] runs them with the outbox's
/// (`pg_outbox::MIGRATIONS`), in one pass ordered by version.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The API's pool (`pg_outbox::db::pool_builder`): a request waits at most 5 s for a connection
/// before it is told the service is busy. No connection is pinged (`SELECT 1`) at checkout, as
/// r2d2 does by default: that was one more round trip per request, on the hot path of every hold
/// and payment. A connection that broke while idle (the server restarted) fails the one request
/// that uses it, is seen as broken when it comes back (diesel checks libpq's status) and is
/// replaced.
pub fn build_pool(database_url: &str, size: u32) -> Result<DbPool, diesel::r2d2::PoolError> {
    pg_outbox::db::pool_builder(size).build(ConnectionManager::new(database_url))
}

/// Key of the advisory lock that serialises migrations across processes starting together.
const MIGRATION_LOCK_KEY: i64 = 0x0063_6f6e_6365_7274; // "concert" in ASCII

/// Applies every migration of this service (and the outbox's) that has not run yet; returns
/// the versions it applied.
pub fn run_migrations(conn: &mut PgConnection) -> Result<Vec<String>, MigrationError> {
    run_migrations_of(conn, MIGRATIONS)
}

/// Applies every migration of `service` and the outbox's that has not run yet; returns the
/// versions it applied. Several processes may start at once (replicas, tests): an advisory
/// lock lets one migrate at a time.
pub fn run_migrations_of(
    conn: &mut PgConnection,
    service: EmbeddedMigrations,
) -> Result<Vec<String>, MigrationError> {
    use diesel::RunQueryDsl;
    let lock = |sql: &'static str, conn: &mut PgConnection| {
        cached_sql::cached_sql(sql)
            .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK_KEY)
            .execute(conn)
            .map_err(MigrationError::Lock)
    };
    lock("SELECT pg_advisory_lock($1)", conn)?;
    let applied = conn
        .run_pending_migrations(pg_outbox::migrations::with_service_migrations(service))
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(MigrationError::Apply);
    lock("SELECT pg_advisory_unlock($1)", conn)?;
    applied
}

/// Runs this service's migrations with a pooled connection, off the async runtime's workers.
pub async fn migrate(pool: &DbPool) -> Result<Vec<String>, MigrationError> {
    migrate_with(pool, MIGRATIONS).await
}

/// Runs `service`'s migrations (and the outbox's) with a pooled connection, off the async
/// runtime's worker threads.
pub async fn migrate_with(
    pool: &DbPool,
    service: EmbeddedMigrations,
) -> Result<Vec<String>, MigrationError> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(MigrationError::Connect)?;
        run_migrations_of(&mut conn, service)
    })
    .await
    .map_err(MigrationError::Task)?
}

/// Why the migrations did not run, with the cause kept for the one log line that reports it.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("no database connection to migrate with")]
    Connect(#[source] diesel::r2d2::PoolError),
    #[error("cannot take or release the migration lock")]
    Lock(#[source] diesel::result::Error),
    #[error("database migration failed")]
    Apply(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the migration task ended abnormally")]
    Task(#[source] tokio::task::JoinError),
}

/// `url` with its database name replaced by `database`; credentials and options are kept.
pub fn url_for_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{authority}/{database}?{query}"),
        None => format!("{authority}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::url_for_database;

    #[test]
    fn every_sql_file_names_exactly_the_binds_it_uses() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let checked = cached_sql::check_sql_files_under(&src).unwrap();
        assert!(checked >= 3, "found only {checked} .sql files");
    }

    #[test]
    fn database_urls_keep_credentials_and_options() {
        assert_eq!(
            url_for_database("postgres://u:p@h:5432/test?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(url_for_database("postgres://h", "x"), "postgres://h/x");
    }
}
