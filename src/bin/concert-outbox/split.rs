//! `concert-outbox split`: the same product as reservation-svc and payment-svc, each on its own
//! database of the private PostgreSQL (or of `DATABASE_URL`'s server), with their relays, the
//! mock data platform and, when `NATS_URL` is set, JetStream between them; in one process, so
//! one command tries it. The client's address is reservation-svc's (`BIND_ADDR`).

use super::{
    bind_or_any_port, data_dir, demo, ensure_database, env_or, given_or_private_database,
    print_welcome, AnyError, SplitWelcome, Welcome,
};
use concert_outbox::db::url_for_database;
use concert_outbox::split::payment::{self, PaymentService};
use concert_outbox::split::reservation::{ReservationService, ReservationSettings};
use mock_platform::{Faults, MockPlatformConfig};
use std::collections::HashMap;

pub async fn run(nats_url: Option<String>) -> Result<(), AnyError> {
    let data_dir = data_dir();
    // Held until the end: dropping it stops the private server. Its maintenance database
    // names the server; each service gets a database of its own on it below.
    let (server_url, postgres) = given_or_private_database(&data_dir, "postgres").await?;
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
    // The services' shared secret for the routes they call on each other; no one else needs it.
    common
        .entry("INTERNAL_TOKEN".into())
        .or_insert_with(|| format!("internal-{}", uuid::Uuid::new_v4().simple()));
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
    std::fs::create_dir_all(&data_dir)?;
    let demo =
        demo::seed_demo_through_api(&api, &admin_token, &data_dir.join("split-demo-token")).await?;
    let bus = match common.get("NATS_URL") {
        Some(urls) => format!("JetStream on {urls} (streams SAGA_COMMANDS, SAGA_REPLIES)"),
        None => "HTTP (each relay posts to the other's /internal/inbox)".to_string(),
    };
    print_welcome(&Welcome {
        api: &api,
        mock: &mock_url,
        admin_token: &admin_token,
        demo: &demo,
        postgres: postgres.as_ref(),
        jetstream: None,
        queue: None,
        split: Some(SplitWelcome {
            payment_svc: &format!("http://{payment_addr}"),
            bus: &bus,
        }),
    });
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
