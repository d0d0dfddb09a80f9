//! The waiting queue's test harness: a real Redis (`REDIS_URL` when set, else the machine's on
//! 6379, else one private `redis-server` for the whole test process), a key prefix of each
//! test's own, so tests share a server without sharing a queue, and the API calls a queued
//! client makes.

use crate::helpers::{spawn_app_with, TestApp, TestUser};
use concert_outbox::queue::private_redis::FoundRedis;
use concert_outbox::queue::{Counts, Queue, QueueSettings};
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

/// The Redis every queue test but the crash test uses.
pub fn redis_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let given = std::env::var("REDIS_URL").ok();
        let folder = std::env::temp_dir().join(format!("concert-redis-{}", std::process::id()));
        let redis = FoundRedis::find(given.as_deref(), &folder).expect("a Redis for the tests");
        eprintln!("tests: Redis {} ({})", redis.url(), redis.source());
        let url = redis.url();
        // Kept for the life of the test process; a private server's watchdog stops it when the
        // process ends.
        std::mem::forget(redis);
        url
    })
}

/// A queue of this test's own on `redis`.
pub struct QueueUnderTest {
    pub prefix: String,
    pub redis: String,
    pub limit: u32,
}

impl QueueUnderTest {
    pub fn on(redis: &str, limit: u32) -> QueueUnderTest {
        QueueUnderTest {
            prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
            redis: redis.to_owned(),
            limit,
        }
    }

    /// The API settings that turn this queue on, plus `extra`.
    pub fn settings<'a>(
        &'a self,
        limit: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut settings = vec![
            ("QUEUE_ENABLED", "true"),
            ("REDIS_URL", self.redis.as_str()),
            ("QUEUE_KEY_PREFIX", self.prefix.as_str()),
            ("QUEUE_ACTIVE_LIMIT", limit),
        ];
        settings.extend_from_slice(extra);
        settings
    }

    /// Reads the queue straight from Redis, changing nothing: what a sampler sees.
    pub async fn counts(&self) -> Counts {
        self.handle()
            .counts()
            .await
            .expect("read the queue's counts")
    }

    fn handle(&self) -> &'static Queue {
        // One handle per queue under test, so sampling does not open a connection per read.
        static HANDLES: OnceLock<
            std::sync::Mutex<std::collections::HashMap<String, &'static Queue>>,
        > = OnceLock::new();
        let handles = HANDLES.get_or_init(Default::default);
        let mut handles = handles.lock().expect("handles");
        handles.entry(self.prefix.clone()).or_insert_with(|| {
            let settings = QueueSettings {
                redis_url: concert_outbox::config::Secret::new(self.redis.clone()),
                active_limit: self.limit,
                active_ttl: Duration::from_secs(300),
                token_ttl: Duration::from_secs(600),
                key_prefix: self.prefix.clone(),
            };
            Box::leak(Box::new(Queue::new(settings).expect("queue handle")))
        })
    }
}

/// An API with the queue on, on the shared test Redis; returns it and its queue.
pub async fn spawn_queued_app(limit: u32, extra: &[(&str, &str)]) -> (TestApp, QueueUnderTest) {
    let queue = QueueUnderTest::on(redis_url(), limit);
    let limit = limit.to_string();
    let app = spawn_app_with(&queue.settings(&limit, extra)).await;
    (app, queue)
}

/// `POST /queue/tokens` at `address`: the status and the body.
pub async fn join_at(app: &TestApp, address: &str, user: &TestUser) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{address}/queue/tokens"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("join");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Joins at the app's address and returns the body, asserting 201.
pub async fn join(app: &TestApp, user: &TestUser) -> Value {
    let (status, body) = join_at(app, &app.address, user).await;
    assert_eq!(status, 201, "join: {body}");
    body
}

/// `GET /queue/tokens/{token}` at `address` as `user`.
pub async fn poll_at(app: &TestApp, address: &str, user: &TestUser, token: &str) -> (u16, Value) {
    let response = app
        .client
        .get(format!("{address}/queue/tokens/{token}"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("poll");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The token's state as its owner polls it at the app, asserting 200.
pub async fn poll(app: &TestApp, user: &TestUser, token: &str) -> Value {
    let (status, body) = poll_at(app, &app.address, user, token).await;
    assert_eq!(status, 200, "poll: {body}");
    body
}

/// Polls every 20 ms until the token is active; panics after `within`.
pub async fn poll_until_active(app: &TestApp, user: &TestUser, token: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let place = poll(app, user, token).await;
        match place["status"].as_str() {
            Some("active") => return,
            Some("waiting") => {}
            other => panic!("token {token} became {other:?} while waiting"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not admitted within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Holds `seat_id` with the active token and pays for it, asserting both succeed.
pub async fn hold_and_pay(app: &TestApp, user: &TestUser, token: &str, seat_id: i64) {
    let held = app.hold_at(&app.address, user, Some(token), seat_id).await;
    assert_eq!(held.status(), 201, "hold during the turn");
    let reservation: Value = held.json().await.expect("reservation");
    let id = reservation["id"].as_i64().expect("reservation id");
    let paid = app.pay_at(&app.address, user, Some(token), None, id).await;
    assert_eq!(paid.status(), 200, "payment during the turn");
}

/// The token string of a join or poll body.
pub fn token_of(body: &Value) -> String {
    body["token"].as_str().expect("token").to_owned()
}

/// An error body's `error.code`.
pub fn code_of(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}
