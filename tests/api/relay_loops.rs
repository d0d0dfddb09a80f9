//! The relay's loops and threads over its lifetime: a destination loop that panics is restarted
//! (counted in `/metrics`) and its destination still gets every event while the others carry
//! on; shutdown ends the loops and the LISTEN thread.
use crate::delivery_helpers::*;
use crate::helpers::{eventually, TestDb};
use concert_outbox::outbox::metrics::relay_metrics_server;
use concert_outbox::outbox::RelaySettings;
use futures_util::future::BoxFuture;
use pg_outbox::db::build_relay_pool;
use pg_outbox::relay::delivery;
use pg_outbox::relay::store::{Claim, ClaimedDelivery};
use pg_outbox::relay::{event_payload, Destination, HttpEndpoint, Verdict};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DRAIN: Duration = Duration::from_secs(60);

/// A destination whose delivery code has a bug that strikes once: its first claim panics (as
/// an out-of-bounds index or an `unwrap` on a surprise would), later claims are POSTed.
struct PanicsOnFirstClaim {
    endpoint: HttpEndpoint,
    client: reqwest::Client,
    claims: AtomicUsize,
}

impl PanicsOnFirstClaim {
    fn posting_to(name: &str, url: String) -> Arc<PanicsOnFirstClaim> {
        Arc::new(PanicsOnFirstClaim {
            endpoint: HttpEndpoint {
                name: name.into(),
                url,
                render: event_payload,
                batch: true,
                event_types: None,
                bearer_token: None,
            },
            client: reqwest::Client::new(),
            claims: AtomicUsize::new(0),
        })
    }
}

impl Destination for PanicsOnFirstClaim {
    fn name(&self) -> &str {
        &self.endpoint.name
    }

    fn deliver<'a>(
        &'a self,
        claim: &'a Arc<Claim>,
        _shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Vec<(i64, Verdict)>> {
        Box::pin(async move {
            if self.claims.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("audit bug: cannot handle {} events", claim.deliveries.len());
            }
            let events: Vec<&ClaimedDelivery> = claim.deliveries.iter().collect();
            let verdict = delivery::post(&self.client, &self.endpoint, &events).await;
            claim
                .deliveries
                .iter()
                .map(|event| (event.outbox_id, verdict.clone()))
                .collect()
        })
    }
}

/// The test relay's settings, with one loop per destination: a second loop of the panicking
/// destination would otherwise deliver in its place and hide a loop that stayed dead.
fn one_loop_per_destination(db: &TestDb, platform: &MockPlatform) -> RelaySettings {
    let mut env: HashMap<String, String> = relay_env(db, &platform.url).into_iter().collect();
    env.insert("RELAY_WORKERS".into(), "1".into());
    RelaySettings::from_lookup(|name| env.get(name).cloned()).unwrap()
}

/// Serves the relay's `/metrics` and returns its URL.
fn serve_relay_metrics(pool: concert_outbox::db::DbPool) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(relay_metrics_server(listener, pool).unwrap());
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_loop_that_panics_is_restarted_and_its_destination_still_gets_every_event() {
    let _ = env_logger::builder().is_test(true).try_init();
    let (platform, audit) = (MockPlatform::start().await, MockPlatform::start().await);
    let db = TestDb::create();
    let settings = one_loop_per_destination(&db, &platform);
    // A connection for each loop, the panicking destination's included.
    let loops = settings.destination_count() + 1;
    let pool = build_relay_pool(&db.url, settings.relay.pool_size(loops)).unwrap();
    let panicking =
        PanicsOnFirstClaim::posting_to("audit_panics_once", format!("{}/reservations", audit.url));
    let relay = settings
        .start_relay(pool.clone())
        .await
        .unwrap()
        .with_destination(panicking.clone());
    relay.register_destinations().await.unwrap();
    let expected = write_events(&db, 20, 2);
    let metrics = serve_relay_metrics(pool);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    platform
        .wait_for_all("reservations", &expected, DRAIN)
        .await;
    platform
        .wait_for_all("notifications", &expected, DRAIN)
        .await;
    assert_eq!(
        db.scalar("SELECT count(*) FROM outbox_deliveries WHERE destination = 'audit_panics_once'"),
        expected.len() as i64,
        "the others delivered everything while the panicked claim waits for its lease"
    );
    audit.wait_for_all("reservations", &expected, DRAIN).await;
    wait_until_all_sent(&db, DRAIN).await;
    assert_in_aggregate_order(&platform.received().await);
    assert_in_aggregate_order(&audit.received().await);
    assert!(panicking.claims.load(Ordering::SeqCst) >= 2);
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            r#"outbox_relay_loop_restarts_total{destination="audit_panics_once"}"#
        ),
        1.0,
        "{text}"
    );

    shutdown.cancel();
    let stopped = tokio::time::timeout(DRAIN, running).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the relay stops cleanly after a restart: {stopped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_the_relay_and_its_listen_thread() {
    let platform = MockPlatform::start().await;
    let db = TestDb::create();
    let settings = one_loop_per_destination(&db, &platform);
    let relay = settings
        .start_relay(settings.build_pool().unwrap())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let listening = "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query = 'LISTEN outbox_events'";
    eventually("the relay to LISTEN", DRAIN, || async {
        (db.scalar(listening) == 1).then_some(())
    })
    .await;

    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), running).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    // `run` joins the thread, which closes its connection as it ends.
    eventually("the LISTEN connection to close", DRAIN, || async {
        (db.scalar(listening) == 0).then_some(())
    })
    .await;
}
