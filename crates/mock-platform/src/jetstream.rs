//! The platform as a JetStream consumer: a durable pull consumer with explicit acks on the
//! events stream. A message is acknowledged only after it is recorded, so a platform that
//! dies in between gets it again; an event id seen before is acknowledged and counted as a
//! duplicate, as over HTTP.

use super::{lock, Inbox};
use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::{self, Message};
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Wait before trying again when the stream does not exist yet or the broker is away.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The stream to consume and the durable consumer's name.
#[derive(Debug, Clone)]
pub struct JetStreamSource {
    pub servers: Vec<String>,
    pub stream: String,
    pub durable: String,
}

/// Ends the consumer task when dropped.
pub(crate) struct StopOnDrop(JoinHandle<()>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Consumes `source` into `inbox` until dropped, starting over after any failure (the stream
/// not created yet, the broker gone, a consumer that lost its leader).
pub(crate) fn spawn_consumer(source: JetStreamSource, inbox: Arc<Mutex<Inbox>>) -> StopOnDrop {
    StopOnDrop(tokio::spawn(async move {
        loop {
            if let Err(error) = consume(&source, &inbox).await {
                log::info!(
                    "jetstream consumer stream={} waiting error=\"{error}\"",
                    source.stream
                );
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }))
}

async fn consume(source: &JetStreamSource, inbox: &Mutex<Inbox>) -> Result<(), async_nats::Error> {
    let servers = source
        .servers
        .iter()
        .map(|url| url.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()?;
    let client = async_nats::ConnectOptions::new()
        .name("mock-data-platform")
        .retry_on_initial_connect()
        .connect(servers)
        .await?;
    let stream = jetstream::new(client).get_stream(&source.stream).await?;
    let consumer = stream
        .get_or_create_consumer(
            &source.durable,
            pull::Config {
                durable_name: Some(source.durable.clone()),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    log::info!(
        "jetstream consumer started stream={} durable={}",
        source.stream,
        source.durable
    );
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        record(inbox, &message);
        message.ack().await?;
    }
    Ok(())
}

/// Records the message's event under its `Nats-Msg-Id` (the event id).
fn record(inbox: &Mutex<Inbox>, message: &Message) {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
    };
    let event: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
    let event_id = header("Nats-Msg-Id").or_else(|| {
        event
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let mut inbox = lock(inbox);
    let Some(event_id) = event_id else {
        inbox.failed_requests += 1;
        return;
    };
    if let Some(traceparent) = header("traceparent") {
        inbox.traceparents.push(traceparent);
    }
    inbox.record(event_id, event);
}
