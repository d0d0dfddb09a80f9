//! How the split's services reach each other. Each writes its messages to its own outbox, and
//! its own relay delivers them to the peer: through JetStream when `NATS_URL` is set (commands
//! on stream `SAGA_COMMANDS`, subjects `saga.commands.<reservation_id>.<event_type>`; replies on
//! `SAGA_REPLIES`, `saga.replies.<reservation_id>.<event_type>`), otherwise as HTTP POSTs to the
//! peer's `POST /internal/inbox`. Either way the receiver applies a message and records it in
//! its inbox in one transaction, and only then acknowledges it (a 2xx, or a JetStream ack).

use super::messages::{Envelope, COMMANDS, REPLIES};
use crate::auth::Internal;
use actix_web::{web, HttpResponse};
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::{self, AckKind};
use diesel::PgConnection;
use futures_util::StreamExt;
use pg_outbox::db::DbPool;
use pg_outbox::error::cause_chain;
use pg_outbox::inbox::Consumed;
use pg_outbox::jetstream::{ensure_stream, JetStreamConfig, JetStreamDestination, JetStreamError};
use pg_outbox::relay::{event_payload, Destination, HttpDestination, HttpEndpoint, RelayConfig};
use pg_outbox::settings::Secret;
use pg_outbox::waker::RelayWaker;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Which way a service's messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// reservation-svc's commands to payment-svc.
    Commands,
    /// payment-svc's replies to reservation-svc.
    Replies,
}

impl Direction {
    /// The destination's name in the sender's outbox.
    fn destination(self) -> &'static str {
        match self {
            Direction::Commands => "payment_svc",
            Direction::Replies => "reservation_svc",
        }
    }

    fn event_types(self) -> Vec<String> {
        let types: &[&str] = match self {
            Direction::Commands => &COMMANDS,
            Direction::Replies => &REPLIES,
        };
        types.iter().map(|t| t.to_string()).collect()
    }

    pub fn stream(self) -> &'static str {
        match self {
            Direction::Commands => "SAGA_COMMANDS",
            Direction::Replies => "SAGA_REPLIES",
        }
    }

    fn subject_prefix(self) -> &'static str {
        match self {
            Direction::Commands => "saga.commands",
            Direction::Replies => "saga.replies",
        }
    }
}

/// How this service reaches its peer.
#[derive(Debug, Clone)]
pub enum Transport {
    /// `POST {peer}/internal/inbox`.
    Http { peer_url: String },
    /// JetStream on these servers.
    JetStream { servers: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot build the HTTP client")]
    Http(#[from] reqwest::Error),
    #[error("JetStream")]
    JetStream(#[from] JetStreamError),
}

/// The destination that carries this service's `direction` messages to its peer.
pub async fn peer_destination(
    transport: &Transport,
    direction: Direction,
    relay: &RelayConfig,
    internal_token: &Secret,
) -> Result<Arc<dyn Destination>, BusError> {
    Ok(match transport {
        Transport::Http { peer_url } => Arc::new(HttpDestination::new(
            HttpEndpoint {
                name: direction.destination().into(),
                url: format!("{}/internal/inbox", peer_url.trim_end_matches('/')),
                render: event_payload,
                batch: true,
                event_types: Some(direction.event_types()),
                bearer_token: Some(internal_token.clone()),
            },
            relay,
        )?),
        Transport::JetStream { servers } => Arc::new(
            JetStreamDestination::connect(
                direction.destination(),
                stream_config(servers, direction, relay),
                relay,
            )
            .await?,
        ),
    })
}

/// `direction`'s stream, as its sender publishes to it and its receiver consumes it; either
/// creates it if it is missing.
fn stream_config(servers: &[String], direction: Direction, relay: &RelayConfig) -> JetStreamConfig {
    JetStreamConfig {
        servers: servers.to_vec(),
        stream: direction.stream().into(),
        subject_prefix: direction.subject_prefix().into(),
        replicas: 1,
        duplicate_window: relay.longest_resend_gap().max(Duration::from_secs(120)),
        event_types: Some(direction.event_types()),
    }
}

/// The test hook `SAGA_DUPLICATE_DELIVERIES`: every claim is sent twice, so the peer's inbox
/// gets every message two times (over JetStream the stream would keep one copy, so there the
/// consumer takes every message twice instead: see [`spawn_consumer`]).
pub struct SendTwice(pub Arc<dyn Destination>);

impl Destination for SendTwice {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn describe(&self) -> String {
        format!("{} (every claim sent twice)", self.0.describe())
    }

    fn event_types(&self) -> Option<&[String]> {
        self.0.event_types()
    }

    fn deliver<'a>(
        &'a self,
        claim: &'a Arc<pg_outbox::relay::store::Claim>,
        shutdown: &'a tokio_util::sync::CancellationToken,
    ) -> futures_util::future::BoxFuture<'a, Vec<(i64, pg_outbox::relay::Verdict)>> {
        Box::pin(async move {
            self.0.deliver(claim, shutdown).await;
            self.0.deliver(claim, shutdown).await
        })
    }
}

/// Why a message was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Worth another try: the database, a lock, a constraint raced.
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error("no database connection")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// Never worth another try: this service does not take this message.
    #[error("{0} is not a message this service takes")]
    NotForThisService(&'static str),
}

/// Applies one message in one transaction with its inbox row (and whatever it writes to the
/// outbox), and says whether it was new or a repeat; the relays are woken after it.
pub type Apply =
    Arc<dyn Fn(&mut PgConnection, &Envelope) -> Result<Consumed<()>, ApplyError> + Send + Sync>;

/// What `POST /internal/inbox` needs.
pub struct Inbox {
    pub pool: DbPool,
    pub apply: Apply,
    pub waker: RelayWaker,
}

impl Inbox {
    /// Applies `envelopes` one by one, each in its own transaction, off the async workers.
    async fn apply_all(&self, envelopes: Vec<Envelope>) -> Result<(), ApplyError> {
        let (pool, apply) = (self.pool.clone(), self.apply.clone());
        let applied = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            envelopes.iter().try_for_each(|e| {
                let outcome = match apply(&mut conn, e)? {
                    Consumed::Applied(()) => "applied",
                    Consumed::Duplicate => "duplicate",
                };
                crate::metrics::global().observe_saga_message(e.message.event_type(), outcome);
                Ok(())
            })
        })
        .await
        .unwrap_or_else(|panicked| {
            Err(ApplyError::Database(
                diesel::result::Error::QueryBuilderError(panicked.to_string().into()),
            ))
        });
        self.waker.wake();
        applied
    }
}

/// `POST /internal/inbox`: one message or a JSON array of them, as the peer's relay sends them
/// with the `INTERNAL_TOKEN` (401 without it). 200 once every one is applied (a repeated one
/// changes nothing), 500 when one could not be (the relay sends them again), 422 for a body
/// that is not messages of this service.
pub async fn receive(_: Internal, inbox: web::Data<Inbox>, body: web::Bytes) -> HttpResponse {
    let envelopes = match parse(&body) {
        Ok(envelopes) => envelopes,
        Err(reason) => return HttpResponse::UnprocessableEntity().json(error_body(&reason)),
    };
    match inbox.apply_all(envelopes).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "applied"})),
        Err(error @ ApplyError::NotForThisService(_)) => {
            HttpResponse::UnprocessableEntity().json(error_body(&error.to_string()))
        }
        Err(error) => {
            log::warn!("inbox cannot apply error=\"{}\"", cause_chain(&error));
            HttpResponse::InternalServerError().json(error_body("not applied; send it again"))
        }
    }
}

/// Applies one delivered message and answers the broker: acknowledged once applied (or, with
/// `twice`, handed back after its first delivery), terminated when this service does not take
/// it, handed back for a later try when it could not be applied now.
async fn handle(
    message: Result<jetstream::Message, jetstream::consumer::pull::MessagesError>,
    inbox: &Inbox,
    twice: bool,
) -> Result<(), async_nats::Error> {
    let message = message?;
    let applied = match serde_json::from_slice::<Envelope>(&message.payload) {
        Ok(envelope) => inbox.apply_all(vec![envelope]).await,
        Err(error) => {
            log::error!("saga message unreadable error=\"{error}\"; terminated");
            return message.ack_with(AckKind::Term).await;
        }
    };
    match applied {
        Ok(()) if twice && message.info()?.delivered == 1 => {
            message.ack_with(AckKind::Nak(None)).await
        }
        Ok(()) => message.ack().await,
        Err(error @ ApplyError::NotForThisService(_)) => {
            log::error!("saga message refused error=\"{error}\"; terminated");
            message.ack_with(AckKind::Term).await
        }
        Err(error) => {
            log::warn!(
                "saga message not applied error=\"{}\"; it comes again",
                cause_chain(&error)
            );
            message
                .ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
                .await
        }
    }
}

fn error_body(message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": "inbox", "message": message}})
}

fn parse(body: &[u8]) -> Result<Vec<Envelope>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    items
        .into_iter()
        .map(|item| serde_json::from_value(item).map_err(|e| format!("not a message: {e}")))
        .collect()
}

/// Consumes `direction`'s stream through a durable pull consumer named `durable`, applying each
/// message and acknowledging it once its transaction committed; starts over after a failure
/// (the stream not there yet, the broker away). A message that cannot be applied now is left
/// unacknowledged and comes again; one this service does not take is terminated. With
/// `twice` (the test hook `SAGA_DUPLICATE_DELIVERIES`) a message applied at its first delivery
/// is handed back unacknowledged, so the broker delivers it again.
pub fn spawn_consumer(
    servers: Vec<String>,
    relay: RelayConfig,
    direction: Direction,
    durable: &'static str,
    inbox: Arc<Inbox>,
    twice: bool,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = consume(&servers, &relay, direction, durable, &inbox, twice).await {
                log::info!(
                    "saga consumer waiting stream={} error=\"{error}\"",
                    direction.stream()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Messages a consumer applies at once, each on its own connection of the service's pool.
const APPLY_CONCURRENCY: usize = 4;

async fn consume(
    servers: &[String],
    relay: &RelayConfig,
    direction: Direction,
    durable: &str,
    inbox: &Inbox,
    twice: bool,
) -> Result<(), async_nats::Error> {
    let addresses = servers
        .iter()
        .map(|url| url.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()?;
    let client = async_nats::ConnectOptions::new()
        .name(durable)
        .retry_on_initial_connect()
        .connect(addresses)
        .await?;
    let context = jetstream::new(client);
    // The sender creates the stream too; whichever service starts first makes it, so the
    // consumer never waits for its peer to come up.
    let config = stream_config(servers, direction, relay);
    ensure_stream(durable, &context, &config, relay.longest_resend_gap()).await?;
    let stream = context.get_stream(direction.stream()).await?;
    let consumer = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(10),
                ..Default::default()
            },
        )
        .await?;
    log::info!(
        "saga consumer started stream={} durable={durable}",
        direction.stream()
    );
    // Messages of different sagas apply side by side; each saga's messages are built to be
    // applied in any order (a refund before its payment voids it), as over HTTP.
    let handled = consumer
        .messages()
        .await?
        .map(|message| handle(message, inbox, twice))
        .buffer_unordered(APPLY_CONCURRENCY);
    futures_util::pin_mut!(handled);
    while let Some(outcome) = handled.next().await {
        outcome?;
    }
    Ok(())
}
