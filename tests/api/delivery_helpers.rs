//! Harness for delivery tests: the mock platform served in-process, relays run as real
//! processes (so they can be SIGKILLed) or in-process, and events written through the real
//! outbox writer.

use crate::helpers::{eventually, join_all, TestApp, TestDb, TestUser};
use mock_platform::{Faults, JetStreamSource, MockPlatformConfig};
use pg_outbox::{enqueue_event, NewEvent};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub struct MockPlatform {
    pub url: String,
    client: reqwest::Client,
}

impl MockPlatform {
    pub async fn start() -> MockPlatform {
        Self::start_consuming(None).await
    }

    /// A platform that also consumes `jetstream`'s stream (shown under `jetstream`).
    pub async fn start_consuming(jetstream: Option<JetStreamSource>) -> MockPlatform {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let server = mock_platform::start(MockPlatformConfig {
            listener,
            faults: Faults::default(),
            log_file: None,
            jetstream,
        })
        .unwrap();
        tokio::spawn(server);
        MockPlatform {
            url,
            client: reqwest::Client::new(),
        }
    }

    pub async fn set_faults(&self, faults: Value) {
        let response = self
            .client
            .post(format!("{}/faults", self.url))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    pub async fn received(&self) -> Value {
        self.client
            .get(format!("{}/received", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Event ids the `channel` (`reservations` or `notifications`) holds, in arrival order.
    pub async fn event_ids(&self, channel: &str) -> Vec<String> {
        self.received().await[channel]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn duplicates(&self, channel: &str) -> i64 {
        self.received().await[channel]["duplicates"]
            .as_i64()
            .unwrap()
    }

    /// Waits until both destinations hold every event of `expected` and the outbox has marked
    /// them all sent, then checks each reservation's events arrived in commit order.
    pub async fn assert_all_delivered_in_order(
        &self,
        db: &TestDb,
        expected: &HashSet<String>,
        timeout: Duration,
    ) {
        self.wait_for_all("reservations", expected, timeout).await;
        self.wait_for_all("notifications", expected, timeout).await;
        wait_until_all_sent(db, timeout).await;
        assert_in_aggregate_order(&self.received().await);
    }

    /// Waits until `channel` holds every one of `expected` event ids.
    pub async fn wait_for_all(
        &self,
        channel: &str,
        expected: &HashSet<String>,
        timeout: Duration,
    ) -> Vec<String> {
        eventually(
            &format!("{} events on /{channel}", expected.len()),
            timeout,
            || async {
                let ids = self.event_ids(channel).await;
                let got: HashSet<String> = ids.iter().cloned().collect();
                expected.is_subset(&got).then_some(ids)
            },
        )
        .await
    }
}

/// Settings for a relay process in tests: quick retries, a short lease, the given platform.
pub fn relay_env(db: &TestDb, platform_url: &str) -> Vec<(String, String)> {
    let mut env = relay_settings(platform_url);
    env.push(("DATABASE_URL".into(), db.url.clone()));
    env
}

/// `relay_env` without the database, for a relay inside the API (which shares its database).
pub fn relay_settings(platform_url: &str) -> Vec<(String, String)> {
    [
        ("DATA_PLATFORM_URL", platform_url),
        ("RELAY_BACKOFF_BASE_MS", "20"),
        ("RELAY_BACKOFF_MAX_MS", "200"),
        ("RELAY_REQUEST_TIMEOUT_MS", "1000"),
        ("RELAY_LEASE_SECONDS", "5"),
        ("RELAY_POLL_INTERVAL_MS", "100"),
        ("RUST_LOG", "warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Overrides for an API that runs the relay in its own process, with `settings`.
pub fn in_process_relay(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut overrides: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    overrides.push(("RELAY_IN_PROCESS", "true"));
    overrides
}

/// The value of the `/metrics` sample whose line starts with `prefix` (name plus labels), or 0.
pub fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A real `outbox-relay` process.
pub struct RelayProcess {
    child: Child,
}

impl RelayProcess {
    pub fn start(env: &[(String, String)]) -> RelayProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start outbox-relay");
        RelayProcess { child }
    }

    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn sigterm(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs an `outbox-relay` subcommand to completion and returns its stdout.
pub fn relay_command(db: &TestDb, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "outbox-relay {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Writes `per_aggregate` events for each of `aggregates` reservations through the real outbox
/// writer, interleaved (round-robin across aggregates) like concurrent traffic. Each payload
/// carries its aggregate and its position `seq` within it. Returns the event ids.
pub fn write_events(db: &TestDb, aggregates: i64, per_aggregate: i64) -> HashSet<String> {
    write_events_from(db, 1, aggregates, per_aggregate)
}

/// [`write_events`] for the reservations numbered from `first`.
pub fn write_events_from(
    db: &TestDb,
    first: i64,
    aggregates: i64,
    per_aggregate: i64,
) -> HashSet<String> {
    let mut conn = db.connect();
    let mut ids = HashSet::new();
    for seq in 0..per_aggregate {
        for aggregate in first..first + aggregates {
            let event_id = uuid::Uuid::new_v4();
            let event = NewEvent {
                event_id,
                aggregate_type: "reservation",
                aggregate_id: aggregate,
                event_type: "reservation.confirmed",
                payload: json!({"event_id": event_id, "reservation_id": aggregate, "user_id": 1,
                                "seq": seq, "amount": 100, "seat_no": 1}),
                trace_context: None,
            };
            enqueue_event(&mut conn, &event).unwrap();
            ids.insert(event_id.to_string());
        }
    }
    ids
}

/// Asserts each aggregate's events arrived in `seq` order on both channels (the dedup views).
/// Notifications carry no `seq`, so theirs is looked up by event id.
pub fn assert_in_aggregate_order(received: &Value) {
    let reservations = received["reservations"]["events"].as_array().unwrap();
    let seq_of: HashMap<&str, i64> = reservations
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap(), e["seq"].as_i64().unwrap()))
        .collect();
    for channel in ["reservations", "notifications"] {
        let mut last_seq: HashMap<i64, i64> = HashMap::new();
        for event in received[channel]["events"].as_array().unwrap() {
            let aggregate = event["reservation_id"].as_i64().unwrap();
            let Some(&seq) = seq_of.get(event["event_id"].as_str().unwrap()) else {
                continue;
            };
            let previous = last_seq.insert(aggregate, seq);
            assert_eq!(
                previous.map_or(0, |p| p + 1),
                seq,
                "{channel}: aggregate {aggregate} out of order"
            );
        }
    }
}

/// The event ids (as text, in an `id` column) a query of the outbox returns.
pub fn event_ids(db: &TestDb, sql: &str) -> HashSet<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    diesel::sql_query(sql)
        .load::<Row>(&mut db.connect())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Asserts `channel` stored exactly the `expected` events, one copy each and one for each
/// reservation of `reservations`, and was sent none of them again. The platform drops a
/// second copy of an event id before storing it, so its stored list alone cannot show a copy
/// sent twice: `duplicates` counts those. A second event for one reservation (under a new id)
/// would be stored, so the list is counted per reservation too.
pub fn assert_each_event_stored_once(
    received: &Value,
    channel: &str,
    expected: &HashSet<String>,
    reservations: &HashSet<i64>,
) {
    let events = received[channel]["events"].as_array().unwrap();
    let mut copies: HashMap<&str, usize> = HashMap::new();
    let mut per_reservation: HashMap<i64, usize> = HashMap::new();
    for event in events {
        *copies
            .entry(event["event_id"].as_str().unwrap())
            .or_default() += 1;
        *per_reservation
            .entry(event["reservation_id"].as_i64().unwrap())
            .or_default() += 1;
    }
    let twice = more_than_once(&copies);
    assert!(twice.is_empty(), "/{channel} stored copies: {twice:?}");
    let twice = more_than_once(&per_reservation);
    assert!(
        twice.is_empty(),
        "/{channel} stored more than one event for reservations: {twice:?}"
    );
    let stored: HashSet<String> = copies.keys().map(|id| id.to_string()).collect();
    assert_eq!(&stored, expected, "/{channel} stored the events written");
    let stored_for: HashSet<i64> = per_reservation.keys().copied().collect();
    assert_eq!(
        &stored_for, reservations,
        "/{channel} covers every reservation"
    );
    assert_eq!(
        received[channel]["duplicates"], 0,
        "/{channel} was sent again an event it had already accepted"
    );
}

/// The keys counted more than once, with their counts.
fn more_than_once<K: std::fmt::Display>(counts: &HashMap<K, usize>) -> Vec<String> {
    counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(key, n)| format!("{key} x{n}"))
        .collect()
}

/// Waits until every outbox row is marked sent, then checks no delivery is still owed (an
/// acknowledged delivery is deleted) and no event still counts one.
pub async fn wait_until_all_sent(db: &TestDb, timeout: Duration) {
    eventually("every outbox row marked sent", timeout, || async {
        (db.scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0).then_some(())
    })
    .await;
    assert_eq!(db.scalar("SELECT count(*) FROM outbox_deliveries"), 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox WHERE pending_deliveries <> 0"),
        0
    );
}

/// Clients paying concurrently: client `i` holds and pays for its share of `seats`
/// (`per_client` of them) in turn, as `users[i]`, each payment with a client that gives up
/// after `timeout`, so a payment that waited on a slow or dead receiver shows as status 0.
/// Resolves to every payment's status.
pub fn pay_in_turns(
    app: &Arc<TestApp>,
    users: &[Arc<TestUser>],
    seats: &[i64],
    per_client: usize,
    timeout: Duration,
) -> impl std::future::Future<Output = Vec<u16>> + Send + 'static {
    let strict = reqwest::Client::builder().timeout(timeout).build().unwrap();
    let clients: Vec<_> = seats
        .chunks(per_client)
        .enumerate()
        .map(|(i, seats)| {
            let (app, user, strict) = (app.clone(), users[i % users.len()].clone(), strict.clone());
            let seats = seats.to_vec();
            async move {
                let mut statuses = Vec::new();
                for seat in seats {
                    let reservation = app.held(&user, seat).await;
                    let url = app.url(&format!("/reservations/{reservation}/payment"));
                    let sent = strict.post(url).bearer_auth(&user.token).send().await;
                    statuses.push(sent.map(|r| r.status().as_u16()).unwrap_or(0));
                }
                statuses
            }
        })
        .collect();
    async move { join_all(clients).await.concat() }
}

/// `count` users with `points` each, created concurrently.
pub async fn users_with_points(
    app: &Arc<TestApp>,
    count: usize,
    points: i64,
) -> Vec<Arc<TestUser>> {
    join_all((0..count).map(|_| {
        let app = app.clone();
        async move { Arc::new(app.create_user(points).await) }
    }))
    .await
}
