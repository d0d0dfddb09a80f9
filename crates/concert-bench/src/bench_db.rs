//! A database of the bench's own on DATABASE_URL's server: created fresh and migrated, and
//! dropped (connections and all) when the guard drops, so a failed or interrupted run leaves
//! nothing behind. No other database on the server is ever touched.

use crate::BenchResult;
use concert_outbox::db::{build_pool, run_migrations, url_for_database, DbPool};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

pub struct BenchDb {
    pub url: String,
    name: String,
    server_url: String,
}

impl BenchDb {
    pub fn create(server_url: &str) -> BenchResult<BenchDb> {
        let db = BenchDb::create_empty(server_url)?;
        run_migrations(&mut db.connect()?)?;
        Ok(db)
    }

    /// A fresh database with no migration applied, for a service that migrates its own.
    pub fn create_empty(server_url: &str) -> BenchResult<BenchDb> {
        let name = format!("concert_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(server_url)?;
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin)?;
        // The guard exists from here on, so a failed migration still drops the database.
        Ok(BenchDb {
            url: url_for_database(server_url, &name),
            name,
            server_url: server_url.to_owned(),
        })
    }

    pub fn connect(&self) -> BenchResult<PgConnection> {
        Ok(PgConnection::establish(&self.url)?)
    }

    pub fn pool(&self, size: u32) -> BenchResult<DbPool> {
        Ok(build_pool(&self.url, size)?)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        let dropped = PgConnection::establish(&self.server_url)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut admin)
                .map_err(|e| e.to_string())
            });
        if let Err(error) = dropped {
            eprintln!(
                "concert-bench: could not drop database {}: {error}",
                self.name
            );
        }
    }
}

/// The single bigint `sql` evaluates to (`count(*) ...`, `EXISTS (...)::int`).
pub fn scalar(conn: &mut PgConnection, sql: &str) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Scalar {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }
    diesel::sql_query(format!("SELECT ({sql})::bigint AS value"))
        .get_result::<Scalar>(conn)
        .map(|row| row.value)
}
