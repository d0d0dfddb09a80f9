//! Builds the runnable API server from a config. `main` and every test use this, so tests
//! exercise the real wiring.

use crate::config::{ApiConfig, Secret};
use crate::db::{self, DbPool};
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use std::net::TcpListener;
use std::time::Duration;

/// What every handler can reach.
pub struct AppState {
    pub pool: DbPool,
    pub admin_token: Secret,
    pub hold_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot connect to the database")]
    Database(#[from] diesel::r2d2::PoolError),
    #[error(transparent)]
    Migration(#[from] db::MigrationError),
    #[error("cannot bind the listening socket")]
    Bind(#[from] std::io::Error),
    #[error("start-up task failed")]
    Join(#[from] tokio::task::JoinError),
}

pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
}

impl Application {
    /// Connects, migrates, binds and returns the server, ready to run.
    pub async fn build(config: ApiConfig) -> Result<Self, StartupError> {
        let pool = db::build_pool(config.database_url.expose(), config.db_pool_size)?;
        let migrate_pool = pool.clone();
        let applied = tokio::task::spawn_blocking(move || -> Result<_, StartupError> {
            let mut conn = migrate_pool.get()?;
            Ok(db::run_migrations(&mut conn)?)
        })
        .await??;
        if !applied.is_empty() {
            log::info!("migrations applied versions={}", applied.join(","));
        }
        let listener = TcpListener::bind(config.bind_addr)?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            admin_token: config.admin_token.clone(),
            hold_ttl: config.hold_ttl,
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::Logger::new(
                    "http method=%{METHOD}xi path=%U status=%s ms=%D",
                ))
                .app_data(state.clone())
                .configure(crate::routes::configure)
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        log::info!(
            "concert-api listening addr={}:{port}",
            config.bind_addr.ip()
        );
        Ok(Application { port, server, pool })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
