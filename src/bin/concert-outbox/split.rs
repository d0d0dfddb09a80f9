//! `concert-outbox split`: the same product as reservation-svc and payment-svc, each on its own
//! database of the private PostgreSQL (or of `DATABASE_URL`'s server), with their relays, the
//! mock data platform and, when `NATS_URL` is set, JetStream between them; in one process, so
//! one command tries it. The client's address is reservation-svc's (`BIND_ADDR`).

use super::{bind_or_any_port, ensure_database, env_or, AnyError};
use concert_outbox::db::url_for_database;
use concert_outbox::embedded_postgres::EmbeddedPostgres;
use concert_outbox::split::payment::{self, PaymentService};
use concert_outbox::split::reservation::{ReservationService, ReservationSettings};
use mock_platform::{Faults, MockPlatformConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

pub async fn run(nats_url: Option<String>) -> Result<(), AnyError> {
    let data_dir =
        PathBuf::from(std::env::var("CONCERT_DATA_DIR").unwrap_or_else(|_| ".data".into()));
    // Held until the end: dropping it stops the private server.
    let (server_url, postgres) = match std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty())
    {
        Some(url) => (url, None),
        None => {
            let postgres = tokio::task::spawn_blocking({
                let root = data_dir.clone();
                move || EmbeddedPostgres::start(&root)
            })
            .await??;
            (postgres.url("postgres"), Some(postgres))
        }
    };
    for database in ["concert_reservation", "concert_payment"] {
        ensure_database(&server_url, database)?;
    }
    let mock_listener = bind_or_any_port("MOCK_BIND", "127.0.0.1:9090")?;
    let mock_url = format!("http://{}", mock_listener.local_addr()?);
    let mock = mock_platform::start(MockPlatformConfig {
        listener: mock_listener,
        faults: Faults::default(),
        log_file: None,
        jetstream: None,
    })?;
    let mock_handle = mock.handle();
    tokio::spawn(mock);

    // Held from here, so nothing takes the port while the databases migrate.
    let api_listener = bind_or_any_port("BIND_ADDR", "127.0.0.1:8080")?;
    let api_addr = api_listener.local_addr()?.to_string();
    let payment_addr = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    let admin_token = env_or(
        "ADMIN_TOKEN",
        &format!("admin-{}", uuid::Uuid::new_v4().simple()),
    );
    let mut common: HashMap<String, String> = std::env::vars().collect();
    common.insert("ADMIN_TOKEN".into(), admin_token.clone());
    common.insert("RESERVATION_SVC_URL".into(), format!("http://{api_addr}"));
    common.insert("PAYMENT_SVC_URL".into(), format!("http://{payment_addr}"));
    common
        .entry("DATA_PLATFORM_URL".into())
        .or_insert_with(|| mock_url.clone());
    if let Some(urls) = nats_url {
        common.insert("NATS_URL".into(), urls);
    }
    let settings_for = |database: &str, bind: &str| {
        let mut settings = common.clone();
        settings.insert(
            "DATABASE_URL".into(),
            url_for_database(&server_url, database),
        );
        settings.insert("BIND_ADDR".into(), bind.to_owned());
        settings
    };
    let payment_settings = settings_for("concert_payment", &payment_addr);
    let reservation_settings = settings_for("concert_reservation", &api_addr);
    let payment = PaymentService::build(payment::settings_from(|n| {
        payment_settings.get(n).cloned()
    })?)
    .await?;
    let reservation = ReservationService::build_on(
        ReservationSettings::from_lookup(|n| reservation_settings.get(n).cloned())?,
        api_listener,
    )
    .await?;
    let api = format!("http://127.0.0.1:{}", reservation.port());
    // Both serve from here on; Ctrl-C (or SIGTERM) stops them.
    let payment_handle = tokio::spawn(payment.run_until_stopped());
    let reservation_handle = tokio::spawn(reservation.run_until_stopped());
    let demo = seed_demo(&api, &admin_token, &data_dir).await?;
    let bus = match common.get("NATS_URL") {
        Some(urls) => format!("JetStream ({urls}; streams SAGA_COMMANDS, SAGA_REPLIES)"),
        None => format!("HTTP (payment-svc at http://{payment_addr})"),
    };
    let database = match &postgres {
        Some(postgres) => format!(
            "private PostgreSQL, data in {}",
            postgres.folder().path.display()
        ),
        None => "DATABASE_URL's server".to_string(),
    };
    println!(
        "\nconcert-outbox (split) is running: reservation-svc and payment-svc, each with its own database.\n\
         \n  API:            {api}  (reservation-svc; a payment may answer 202 payment_pending)\
         \n  payment-svc:    http://{payment_addr}  (internal)\
         \n  between them:   {bus}\
         \n  data platform:  {mock_url}  (mock)\
         \n  databases:      concert_reservation, concert_payment on the {database}\
         \n\n  demo token:     {token}\n  admin token:    {admin_token}\n\
         \nTry it:\n\
         \n  curl -s -X POST {api}/reservations -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"seat_id\": {seat}}}'\
         \n  curl -s -X POST {api}/reservations/<reservation id>/payment -H 'Authorization: Bearer {token}'\
         \n  curl -s {api}/reservations/<reservation id> -H 'Authorization: Bearer {token}'\
         \n  curl -s {mock_url}/received\n\
         \nCtrl-C stops everything.\n",
        token = demo.token,
        seat = demo.seat,
    );
    for (service, handle) in [
        ("reservation-svc", reservation_handle),
        ("payment-svc", payment_handle),
    ] {
        match handle.await {
            Ok(stopped) => stopped?,
            Err(error) => log::error!("{service} task failed error=\"{error}\""),
        }
    }
    mock_handle.stop(true).await;
    drop(postgres);
    log::info!("concert-outbox (split) stopped");
    Ok(())
}

struct Demo {
    token: String,
    seat: i64,
}

/// On first start, a demo concert and a user with points, through the API itself (the points
/// live on payment-svc); later starts reuse the user's token from `split-demo-token`.
async fn seed_demo(
    api: &str,
    admin_token: &str,
    data_dir: &std::path::Path,
) -> Result<Demo, AnyError> {
    let client = reqwest::Client::new();
    let token_file = data_dir.join("split-demo-token");
    let concerts: Value = client
        .get(format!("{api}/concerts"))
        .send()
        .await?
        .json()
        .await?;
    let empty = concerts.as_array().is_none_or(Vec::is_empty);
    if empty {
        client
            .post(format!("{api}/admin/concerts"))
            .bearer_auth(admin_token)
            .json(&json!({"title": "Split Demo Night", "schedules": [
                {"starts_at": "2031-06-01T19:00:00Z", "seat_count": 50, "price": 1000}]}))
            .send()
            .await?
            .error_for_status()?;
    }
    let token = match std::fs::read_to_string(&token_file).ok().filter(|_| !empty) {
        Some(token) => token.trim().to_owned(),
        None => {
            let user: Value = client
                .post(format!("{api}/users"))
                .json(&json!({"name": "Demo User"}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let token = user["token"].as_str().unwrap_or_default().to_owned();
            client
                .post(format!("{api}/points/charge"))
                .bearer_auth(&token)
                .json(&json!({"amount": 100_000}))
                .send()
                .await?
                .error_for_status()?;
            std::fs::create_dir_all(data_dir)?;
            std::fs::write(&token_file, &token)?;
            token
        }
    };
    let seats: Value = client
        .get(format!("{api}/schedules/1/seats"))
        .send()
        .await?
        .json()
        .await?;
    let seat = seats
        .as_array()
        .and_then(|seats| seats.iter().find(|s| s["status"] == "available"))
        .and_then(|s| s["id"].as_i64())
        .unwrap_or(1);
    Ok(Demo { token, seat })
}
