//! The mock data platform, served in-process on a random port, and what it says it received.

use crate::BenchResult;
use actix_web::dev::ServerHandle;
use mock_platform::{Faults, MockPlatformConfig};
use serde_json::Value;
use std::collections::HashSet;
use std::net::TcpListener;
use tokio::task::JoinHandle;

pub struct MockPlatform {
    pub url: String,
    handle: ServerHandle,
    server: JoinHandle<std::io::Result<()>>,
}

/// What `GET /received` reports for the reservations channel.
pub struct Received {
    pub event_ids: HashSet<String>,
    /// Events in the inbox; more than `event_ids` would mean the same id was stored twice.
    pub stored: usize,
    /// Deliveries of an event the platform already had (redeliveries it dropped).
    pub duplicates: u64,
}

impl MockPlatform {
    pub fn start() -> BenchResult<MockPlatform> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let server = mock_platform::start(MockPlatformConfig {
            listener,
            faults: Faults::default(),
            log_file: None,
            jetstream: None,
        })?;
        Ok(MockPlatform {
            url: format!("http://127.0.0.1:{port}"),
            handle: server.handle(),
            server: tokio::spawn(server),
        })
    }

    pub async fn received(&self) -> BenchResult<Received> {
        let body: Value = reqwest::get(format!("{}/received", self.url))
            .await?
            .error_for_status()?
            .json()
            .await?;
        let channel = &body["reservations"];
        let events = channel["events"]
            .as_array()
            .ok_or("GET /received: reservations.events is not an array")?;
        let event_ids = events
            .iter()
            .filter_map(|event| event["event_id"].as_str().map(str::to_owned))
            .collect();
        Ok(Received {
            event_ids,
            stored: events.len(),
            duplicates: channel["duplicates"].as_u64().unwrap_or(0),
        })
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        // The server's own result says nothing the bench needs once it has stopped.
        let _ = self.server.await;
    }
}

impl Received {
    /// Whether the platform holds exactly `expected`, each once, with no redelivery.
    pub fn is_exactly(&self, expected: &HashSet<String>) -> bool {
        self.duplicates == 0 && self.stored == expected.len() && &self.event_ids == expected
    }

    pub fn missing_from(&self, expected: &HashSet<String>) -> usize {
        expected.difference(&self.event_ids).count()
    }
}
