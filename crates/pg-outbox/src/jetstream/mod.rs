//! A destination that publishes each event to a NATS JetStream stream.
//!
//! Each event goes to `<subject_prefix>.<aggregate_id>.<event_type>` with header `Nats-Msg-Id`
//! set to its event id, so the stream stores it once however often the relay sends it (within
//! the stream's duplicate window, which therefore has to outlast the relay's longest gap
//! between two sends; [`JetStreamDestination::connect`] refuses a stream whose window does
//! not). An event counts as delivered only when its PubAck arrives; a PubAck saying
//! `duplicate` is a delivery too. A claim's events are published back to back and their
//! PubAcks awaited together, so a round costs one wait, not one per event.
//!
//! Failures that may pass (no server reachable, no responders, a cluster without a stream
//! leader, a PubAck that did not come in time) are retried with the relay's backoff, forever.
//! A publish the stream refuses (a subject it does not cover, a message over its size limit,
//! another stream capturing the subject) counts towards `RELAY_MAX_ATTEMPTS` and parks dead.

mod stream;
mod verdict;

pub use stream::subject_matches;

use crate::relay::destination::{claim_cut_off, Destination, Verdict};
use crate::relay::store::{Claim, ClaimedDelivery};
use crate::relay::RelayConfig;
use async_nats::jetstream;
use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use async_nats::jetstream::message::PublishMessage;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use stream::StreamCheck;
use tokio_util::sync::CancellationToken;
use verdict::{pub_ack_verdict, publish_verdict};

/// How long start-up waits to check the stream before it leaves the check to a background task
/// (the broker may be down when the relay starts; the relay starts anyway).
const START_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// Server URLs; several name a cluster's members, for failover.
    pub servers: Vec<String>,
    /// The stream; created if missing (file storage, `replicas`, `duplicate_window`).
    pub stream: String,
    /// Each event is published to `<subject_prefix>.<aggregate_id>.<event_type>`; a stream
    /// this destination creates covers `<subject_prefix>.>`.
    pub subject_prefix: String,
    pub replicas: usize,
    pub duplicate_window: Duration,
    /// The event types it takes; `None` for every event.
    pub event_types: Option<Vec<String>>,
}

impl JetStreamConfig {
    /// The subject `delivery` is published to.
    pub fn subject_for(&self, delivery: &ClaimedDelivery) -> String {
        format!(
            "{}.{}.{}",
            self.subject_prefix, delivery.aggregate_id, delivery.event_type
        )
    }
}

/// Finds `config`'s stream, or creates it as a destination publishing to it would, for `who`
/// (a consumer that may start before any publisher); refused when its duplicate window is
/// shorter than `needed_window`.
pub async fn ensure_stream(
    who: &str,
    context: &jetstream::Context,
    config: &JetStreamConfig,
    needed_window: Duration,
) -> Result<(), JetStreamError> {
    StreamCheck::new(who, context, config, needed_window)
        .checked()
        .await
        .map(|_| ())
}

#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    #[error("cannot use NATS server address")]
    Address(#[source] std::io::Error),
    #[error("cannot connect to NATS")]
    Connect(#[source] async_nats::ConnectError),
    #[error(
        "stream {stream} keeps message ids for duplicate detection for {window:?}, less than the relay's \
         longest gap between two sends of one event ({needed:?}: RELAY_LEASE_SECONDS plus \
         RELAY_BACKOFF_MAX_MS); an event sent again after the window would be stored twice. \
         Raise the stream's duplicate window or lower those settings"
    )]
    DuplicateWindowTooShort {
        stream: String,
        window: Duration,
        needed: Duration,
    },
    #[error("cannot read or create stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
}

pub struct JetStreamDestination {
    name: String,
    context: jetstream::Context,
    config: JetStreamConfig,
    relay: Arc<RelayConfig>,
    stream: StreamCheck,
}

impl JetStreamDestination {
    /// Connects (in the background: a broker that is down now is retried until it answers)
    /// and checks the stream, creating it if it is missing. A stream whose duplicate window
    /// is shorter than the relay's longest gap between two sends is refused here. When the
    /// broker does not answer within a few seconds the relay starts anyway: the check goes on
    /// in the background, and each round waits for it before publishing.
    pub async fn connect(
        name: &str,
        config: JetStreamConfig,
        relay: &RelayConfig,
    ) -> Result<Self, JetStreamError> {
        let servers = config
            .servers
            .iter()
            .map(|url| url.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(JetStreamError::Address)?;
        let destination = name.to_owned();
        let client = async_nats::ConnectOptions::new()
            .name(format!("outbox-relay {name}"))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .event_callback(move |event| {
                let destination = destination.clone();
                async move { log::info!("nats destination={destination} event=\"{event}\"") }
            })
            .connect(servers)
            .await
            .map_err(JetStreamError::Connect)?;
        let context = jetstream::ContextBuilder::new()
            .timeout(relay.request_timeout)
            // Every loop's whole claim can be in flight at once.
            .max_ack_inflight(relay.workers * relay.batch_size as usize)
            .backpressure_on_inflight(true)
            .build(client);
        let stream = StreamCheck::new(name, &context, &config, relay.longest_resend_gap());
        match tokio::time::timeout(START_CHECK_TIMEOUT, stream.checked()).await {
            Ok(Ok(_)) => {}
            Ok(Err(refused @ JetStreamError::DuplicateWindowTooShort { .. })) => {
                return Err(refused)
            }
            Ok(Err(error)) => {
                log::warn!(
                    "jetstream stream not checked yet destination={name} error=\"{}\"; checking again in the background",
                    crate::error::cause_chain(&error)
                );
                tokio::spawn(stream.clone().check_until_done());
            }
            Err(_) => {
                log::warn!(
                    "jetstream does not answer yet destination={name}; events wait, and the stream is checked once it does"
                );
                tokio::spawn(stream.clone().check_until_done());
            }
        }
        Ok(JetStreamDestination {
            name: name.to_owned(),
            context,
            config,
            relay: Arc::new(relay.clone()),
            stream,
        })
    }

    /// Publishes `claim`'s events back to back, then awaits their PubAcks together, until
    /// all are answered or the claim is cut off (shutdown, lease running out).
    async fn publish_claim(
        &self,
        claim: &Claim,
        shutdown: &CancellationToken,
    ) -> Vec<(i64, Verdict)> {
        let stream = match self.stream.checked().await {
            Ok(stream) => stream,
            Err(error) => {
                let error = format!("stream not ready: {}", crate::error::cause_chain(&error));
                return retry_all(claim, &error);
            }
        };
        let mut verdicts = Vec::with_capacity(claim.deliveries.len());
        // One future per event, publish then PubAck, all driven together: the publishes go
        // out back to back, and an event waiting for room among the PubAcks in flight (the
        // context's limit) gets it as earlier ones are answered.
        let mut acks = FuturesUnordered::new();
        for delivery in &claim.deliveries {
            let subject = self.config.subject_for(delivery);
            if !stream.subjects.iter().any(|f| subject_matches(f, &subject)) {
                let error = format!(
                    "stream {} does not cover subject {subject:?}",
                    self.config.stream
                );
                verdicts.push((delivery.outbox_id, Verdict::Rejected { error }));
                continue;
            }
            acks.push(async move {
                let answer = match self.publish(subject, delivery).await {
                    Ok(ack) => Answer::PubAck(ack.await),
                    Err(error) => Answer::NotSent(error),
                };
                (delivery.outbox_id, answer)
            });
        }
        let cut_off = claim_cut_off(&self.relay, shutdown, &self.name);
        tokio::pin!(cut_off);
        let mut duplicates = 0;
        loop {
            tokio::select! {
                next = acks.next() => match next {
                    Some((id, Answer::PubAck(answer))) => {
                        duplicates += u64::from(answer.as_ref().is_ok_and(|ack| ack.duplicate));
                        verdicts.push((id, pub_ack_verdict(answer)));
                    }
                    Some((id, Answer::NotSent(error))) => verdicts.push((id, publish_verdict(&error))),
                    None => break,
                },
                _ = &mut cut_off => break,
            }
        }
        if duplicates > 0 {
            // Sent before by a relay whose acknowledgement did not reach the database: the
            // stream recognised the event id and kept its first copy.
            crate::metrics::global().observe_delivery(&self.name, "duplicate", duplicates);
        }
        verdicts
    }

    async fn publish(
        &self,
        subject: String,
        delivery: &ClaimedDelivery,
    ) -> Result<PublishAckFuture, PublishError> {
        let payload = serde_json::to_vec(&delivery.payload).unwrap_or_default();
        let mut message = PublishMessage::build()
            .payload(payload.into())
            .message_id(delivery.event_id.to_string())
            .expected_stream(self.config.stream.as_str());
        if let Some(traceparent) = &delivery.trace_context {
            message = message.header("traceparent", traceparent.as_str());
        }
        self.context.send_publish(subject, message).await
    }
}

impl Destination for JetStreamDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!(
            "{}@nats(stream={}, subjects={}.>)",
            self.name, self.config.stream, self.config.subject_prefix
        )
    }

    fn event_types(&self) -> Option<&[String]> {
        self.config.event_types.as_deref()
    }

    fn deliver<'a>(
        &'a self,
        claim: &'a Arc<Claim>,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Vec<(i64, Verdict)>> {
        Box::pin(self.publish_claim(claim, shutdown))
    }
}

/// What became of one event's publish.
enum Answer {
    /// Sent; the PubAck, or why none came.
    PubAck(Result<jetstream::publish::PublishAck, PublishError>),
    /// Not sent at all.
    NotSent(PublishError),
}

fn retry_all(claim: &Claim, error: &str) -> Vec<(i64, Verdict)> {
    claim
        .deliveries
        .iter()
        .map(|d| {
            let verdict = Verdict::Retry {
                error: error.to_owned(),
                retry_after: None,
            };
            (d.outbox_id, verdict)
        })
        .collect()
}
