//! The outbox's and the inbox's tables, as diesel migrations of their own.
//!
//! A service runs them beside its own migrations, in one pass ordered by version, with
//! [`with_service_migrations`]: diesel records both sets in the same
//! `__diesel_schema_migrations` table, so the versions here must not be reused by the service.

use diesel::migration::{Migration, MigrationSource, Result};
use diesel::pg::Pg;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// This crate's migrations and `service`'s, as one source.
pub fn with_service_migrations(service: EmbeddedMigrations) -> impl MigrationSource<Pg> {
    Both(MIGRATIONS, service)
}

struct Both(EmbeddedMigrations, EmbeddedMigrations);

impl MigrationSource<Pg> for Both {
    fn migrations(&self) -> Result<Vec<Box<dyn Migration<Pg>>>> {
        let mut all = MigrationSource::<Pg>::migrations(&self.0)?;
        all.extend(MigrationSource::<Pg>::migrations(&self.1)?);
        Ok(all)
    }
}
