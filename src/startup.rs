//! Builds the runnable API server from a config. `main` and every test use this, so tests
//! exercise the real wiring.

use crate::app_state::AppState;
use crate::config::ApiConfig;
use crate::db;
use crate::queue::Queue;
use crate::reservations::SeatHolds;
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use pg_outbox::relay::Relay;
use pg_outbox::waker::RelayWaker;
use std::net::TcpListener;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot connect to the database")]
    Database(#[from] diesel::r2d2::PoolError),
    #[error(transparent)]
    Migration(#[from] db::MigrationError),
    #[error("cannot start the in-process relay")]
    Relay(#[from] crate::outbox::StartRelayError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot set up the waiting queue")]
    Queue(#[from] crate::queue::QueueError),
    #[error("cannot bind the listening socket")]
    Bind(#[from] std::io::Error),
}

/// The API's HTTP server on `listener`: its middleware (metrics, request ids, the access log),
/// `routes` (the API, each route documented at `/openapi.json`, which also answers a known
/// path's missing methods with 405) and the pages. The monolith and reservation-svc differ
/// only in the routes they register.
pub fn serve<F>(
    listener: TcpListener,
    state: web::Data<AppState>,
    routes: F,
) -> std::io::Result<Server>
where
    F: Fn(&mut ServiceConfig) + Clone + Send + 'static,
{
    Ok(HttpServer::new(move || {
        App::new()
            .into_utoipa_app()
            .openapi(crate::routes::api_doc())
            .map(|app| {
                app.wrap(middleware::from_fn(crate::metrics::http_middleware))
                    .wrap(middleware::from_fn(crate::trace::request_id_middleware))
                    .wrap(middleware::Logger::new(
                        "http request=\"%r\" status=%s ms=%D request_id=%{x-request-id}o",
                    ))
            })
            .app_data(state.clone())
            .configure(routes.clone())
            .openapi_service(crate::routes::serve_document)
            .into_app()
            .configure(crate::pages::routes)
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .run())
}

pub struct Application {
    port: u16,
    server: Server,
    relay: Option<Relay>,
    relay_waker: RelayWaker,
    queue: Option<Arc<Queue>>,
}

impl Application {
    /// Connects, migrates, binds and returns the server, ready to run.
    pub async fn build(config: ApiConfig) -> Result<Self, StartupError> {
        let pool = db::build_pool(config.database_url.expose(), config.db_pool_size)?;
        let applied = db::migrate(&pool).await?;
        if !applied.is_empty() {
            log::info!("migrations applied versions={}", applied.join(","));
        }
        let listener = TcpListener::bind(config.bind_addr)?;
        let port = listener.local_addr()?.port();
        let relay_waker = RelayWaker::spawn(pool.clone());
        let queue = match config.queue {
            Some(settings) => {
                log::info!(
                    "waiting queue enabled active_limit={} active_ttl_s={} token_ttl_s={} key_prefix={}",
                    settings.active_limit,
                    settings.active_ttl.as_secs(),
                    settings.token_ttl.as_secs(),
                    settings.key_prefix
                );
                Some(Arc::new(Queue::new(settings)?))
            }
            None => None,
        };
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            admin_token: config.admin_token.clone(),
            tokens: Default::default(),
            holds: std::sync::Arc::new(SeatHolds::new(
                config.hold_concurrency as usize,
                config.hold_ttl,
            )),
            relay_waker: relay_waker.clone(),
            queue: queue.clone(),
        });
        let server = serve(listener, state, crate::routes::configure)?;
        log::info!(
            "concert-api listening addr={}:{port}",
            config.bind_addr.ip()
        );
        let relay = match config.relay {
            // Its own pool, so delivery never competes with payments for connections.
            Some(settings) => Some(settings.start_relay(settings.build_pool()?).await?),
            None => None,
        };
        Ok(Application {
            port,
            server,
            relay,
            relay_waker,
            queue,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests, stops the relay waker
    /// (after the NOTIFY the last requests asked for) and the in-process relay (which finishes
    /// or releases its batch) and the queue's settler, and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let shutdown = CancellationToken::new();
        let relay = self
            .relay
            .map(|relay| tokio::spawn(relay.run(shutdown.clone())));
        let settler = self
            .queue
            .map(|queue| tokio::spawn(queue.run_settler(shutdown.clone())));
        let served = self.server.await;
        shutdown.cancel();
        self.relay_waker.stop().await;
        if let Some(settler) = settler {
            if let Err(error) = settler.await {
                log::error!("queue settler task failed error=\"{error}\"");
            }
        }
        if let Some(relay) = relay {
            match relay.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => log::error!(
                    "in-process relay failed error=\"{}\"",
                    crate::error::cause_chain(&error)
                ),
                Err(error) => log::error!("in-process relay task failed error=\"{error}\""),
            }
        }
        served
    }
}
