//! A stand-in for the external data platform, for demos and tests. It keeps what it receives
//! in memory (and optionally as JSONL), drops events it has already seen (the inbox pattern:
//! at-least-once delivery, exactly-once view), and can be made slow, flaky or down at run time.
//! Events arrive over HTTP (`POST /reservations`, `POST /notifications`) and, when given a
//! JetStream stream, from a durable consumer of it (`jetstream.rs`).

mod jetstream;

pub use jetstream::JetStreamSource;

use actix_web::dev::Server;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Run-time behaviour; `POST /faults` changes any subset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Share of deliveries answered with 500.
    #[serde(default)]
    pub fail_rate: f64,
    /// Delay before every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Answer 503 to every delivery.
    #[serde(default)]
    pub down: bool,
    /// Events refused with 422 (a receiver that cannot accept this content).
    #[serde(default)]
    pub reject_event_ids: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsPatch {
    fail_rate: Option<f64>,
    latency_ms: Option<u64>,
    down: Option<bool>,
    reject_event_ids: Option<Vec<String>>,
}

#[derive(Default)]
pub(crate) struct Inbox {
    events: Vec<Value>,
    seen: HashSet<String>,
    duplicates: u64,
    /// Requests answered with an error (down, injected failure, refused or malformed), so a
    /// test can tell that its events arrived through retries.
    failed_requests: u64,
    /// `traceparent` headers in arrival order, to follow a payment into the platform.
    traceparents: Vec<String>,
}

impl Inbox {
    /// Keeps `event` unless its id was seen before; says whether it was new.
    pub(crate) fn record(&mut self, event_id: String, event: Value) -> bool {
        if self.seen.insert(event_id) {
            self.events.push(event);
            true
        } else {
            self.duplicates += 1;
            false
        }
    }

    fn view(&self) -> Value {
        json!({"events": self.events, "duplicates": self.duplicates,
               "failed_requests": self.failed_requests, "traceparents": self.traceparents})
    }
}

struct Platform {
    faults: Mutex<Faults>,
    reservations: Mutex<Inbox>,
    notifications: Mutex<Inbox>,
    /// What the JetStream consumer recorded (empty without one).
    jetstream: Arc<Mutex<Inbox>>,
    log: Option<Mutex<File>>,
    /// Ends the consumer when the server's data goes.
    _consumer: Option<jetstream::StopOnDrop>,
}

pub struct MockPlatformConfig {
    pub listener: TcpListener,
    pub faults: Faults,
    pub log_file: Option<PathBuf>,
    /// Also consume events from this JetStream stream (shown under `jetstream` in
    /// `GET /received`).
    pub jetstream: Option<JetStreamSource>,
}

/// Starts the mock platform on `config.listener` (and its JetStream consumer, on the current
/// tokio runtime); the returned server runs until stopped.
pub fn start(config: MockPlatformConfig) -> std::io::Result<Server> {
    let log = match config.log_file {
        Some(path) => Some(Mutex::new(
            File::options().create(true).append(true).open(path)?,
        )),
        None => None,
    };
    let received_from_jetstream = Arc::new(Mutex::new(Inbox::default()));
    let consumer = config
        .jetstream
        .map(|source| jetstream::spawn_consumer(source, received_from_jetstream.clone()));
    let platform = web::Data::new(Platform {
        faults: Mutex::new(config.faults),
        reservations: Mutex::new(Inbox::default()),
        notifications: Mutex::new(Inbox::default()),
        jetstream: received_from_jetstream,
        log,
        _consumer: consumer,
    });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(platform.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/reservations", web::post().to(receive_reservations))
            .route("/notifications", web::post().to(receive_notifications))
            .route("/received", web::get().to(received))
            .route("/faults", web::post().to(set_faults))
            .route("/faults", web::get().to(get_faults))
            .route(
                "/health",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
            )
    })
    .workers(2)
    .listen(config.listener)?
    .shutdown_timeout(2)
    .run())
}

async fn receive_reservations(
    platform: web::Data<Platform>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    receive(&platform, &platform.reservations, &req, &body).await
}

async fn receive_notifications(
    platform: web::Data<Platform>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    receive(&platform, &platform.notifications, &req, &body).await
}

async fn receive(
    platform: &Platform,
    inbox: &Mutex<Inbox>,
    req: &HttpRequest,
    body: &[u8],
) -> HttpResponse {
    let answer = accept(platform, inbox, req, body).await;
    if !answer.status().is_success() {
        lock(inbox).failed_requests += 1;
    }
    answer
}

async fn accept(
    platform: &Platform,
    inbox: &Mutex<Inbox>,
    req: &HttpRequest,
    body: &[u8],
) -> HttpResponse {
    let faults = lock(&platform.faults).clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.down {
        return HttpResponse::ServiceUnavailable().json(json!({"error": "platform is down"}));
    }
    if faults.fail_rate > 0.0 && fastrand::f64() < faults.fail_rate {
        return HttpResponse::InternalServerError().json(json!({"error": "injected failure"}));
    }
    let events = match parse_events(body) {
        Ok(events) => events,
        Err(reason) => return HttpResponse::BadRequest().json(json!({"error": reason})),
    };
    if let Some(refused) = events
        .iter()
        .find(|(id, _)| faults.reject_event_ids.contains(id))
    {
        return HttpResponse::UnprocessableEntity()
            .json(json!({"error": "event refused", "event_id": refused.0}));
    }
    let (mut accepted, mut to_log, mut duplicates) = (0, Vec::new(), 0);
    {
        let mut inbox = lock(inbox);
        if let Some(traceparent) = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
        {
            inbox.traceparents.push(traceparent.to_owned());
        }
        for (event_id, event) in events {
            // Copied only for the log file, so a mock without one stays cheap in a drain.
            let logged = platform.log.as_ref().map(|_| event.clone());
            if inbox.record(event_id, event) {
                to_log.extend(logged);
                accepted += 1;
            } else {
                duplicates += 1;
            }
        }
    }
    if let Some(log) = &platform.log {
        append_log(log, &to_log);
    }
    HttpResponse::Ok().json(json!({"accepted": accepted, "duplicates": duplicates}))
}

/// One event object or an array of them, each with a string `event_id`.
fn parse_events(body: &[u8]) -> Result<Vec<(String, Value)>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let events = match value {
        Value::Array(events) => events,
        single @ Value::Object(_) => vec![single],
        _ => return Err("expected an event object or an array of them".into()),
    };
    events
        .into_iter()
        .map(
            |event| match event.get("event_id").and_then(Value::as_str) {
                Some(id) => Ok((id.to_owned(), event)),
                None => Err("every event needs a string event_id".into()),
            },
        )
        .collect()
}

fn append_log(log: &Mutex<File>, events: &[Value]) {
    let mut file = lock(log);
    for event in events {
        if let Err(error) = writeln!(file, "{event}") {
            log::error!("cannot append to the event log error=\"{error}\"");
        }
    }
}

async fn received(platform: web::Data<Platform>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "reservations": lock(&platform.reservations).view(),
        "notifications": lock(&platform.notifications).view(),
        "jetstream": lock(&platform.jetstream).view(),
    }))
}

async fn set_faults(platform: web::Data<Platform>, patch: web::Json<FaultsPatch>) -> HttpResponse {
    let patch = patch.into_inner();
    if patch
        .fail_rate
        .is_some_and(|rate| !(0.0..=1.0).contains(&rate))
    {
        return HttpResponse::BadRequest()
            .json(json!({"error": "fail_rate must be between 0.0 and 1.0"}));
    }
    let mut faults = lock(&platform.faults);
    if let Some(rate) = patch.fail_rate {
        faults.fail_rate = rate;
    }
    if let Some(latency) = patch.latency_ms {
        faults.latency_ms = latency;
    }
    if let Some(down) = patch.down {
        faults.down = down;
    }
    if let Some(ids) = patch.reject_event_ids {
        faults.reject_event_ids = ids;
    }
    log::info!("faults changed {faults:?}");
    HttpResponse::Ok().json(&*faults)
}

async fn get_faults(platform: web::Data<Platform>) -> HttpResponse {
    HttpResponse::Ok().json(&*lock(&platform.faults))
}

/// A poisoned lock only means another handler panicked mid-update; the data is still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
