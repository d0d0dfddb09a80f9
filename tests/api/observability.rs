//! Operators' view: metrics move as work happens, requests carry ids, traces reach the
//! platform, and the outbox admin routes show and replay dead deliveries.
use crate::delivery_helpers::{
    in_process_relay, relay_settings, sample, wait_until_all_sent, MockPlatform,
};
use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

async fn metrics_text(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_and_show_the_outbox_backlog() {
    let app = spawn_app().await;
    let pay_count =
        r#"http_requests_total{method="POST",route="/reservations/{id}/payment",status="200"}"#;
    let backlog = r#"outbox_backlog{destination="data_platform",state="pending"}"#;
    let before = metrics_text(&app).await;

    let schedule = app.create_schedule(2, 100).await;
    let user = app.create_user(1_000).await;
    for seat in app.seat_ids(schedule).await {
        let reservation = app.held(&user, seat).await;
        assert_eq!(app.pay(&user, reservation, None).await.status(), 200);
    }
    let after = metrics_text(&app).await;
    // The request counters are the process's, and other tests of this binary pay meanwhile:
    // at least these two payments were counted.
    let counted = sample(&after, pay_count) - sample(&before, pay_count);
    assert!(counted >= 2.0, "{counted} payments counted: {after}");
    // No relay runs here, so both events wait in this app's own database.
    assert_eq!(sample(&after, backlog), 2.0);
    assert!(after.contains("http_request_duration_seconds_bucket"));
    assert!(after.contains(r#"db_pool_connections{pool="api",state="idle"}"#));
}

#[tokio::test]
async fn requests_are_labelled_by_the_route_they_matched_and_strays_as_unmatched() {
    let app = spawn_app().await;
    let user = app.create_user(0).await;
    let shown = format!("/reservations/{}", 9_000_000 + user.id);
    assert_eq!(app.get_json(&user, &shown).await.0, 404);
    let stray = app
        .client
        .get(app.url("/no/such/route/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status(), 404);
    let wrong_method = app
        .client
        .delete(app.url("/concerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let text = metrics_text(&app).await;
    for expected in [
        r#"http_requests_total{method="GET",route="/reservations/{id}",status="404"}"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"}"#,
        r#"http_requests_total{method="DELETE",route="/concerts",status="405"}"#,
    ] {
        assert!(sample(&text, expected) >= 1.0, "{expected} in {text}");
    }
    assert!(
        !text.contains("/no/such/route"),
        "a stray path is not a label"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payments_trace_context_arrives_at_the_platform_with_its_request_id_returned() {
    let platform = MockPlatform::start().await;
    let mut settings = relay_settings(&platform.url);
    settings.push(("DATA_PLATFORM_BATCH".into(), "false".into()));
    let app = spawn_app_with(&in_process_relay(&settings)).await;
    let schedule = app.create_schedule(1, 100).await;
    let seat = app.seat_ids(schedule).await[0];
    let user = app.create_user(1_000).await;
    let reservation = app.held(&user, seat).await;

    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let response = app
        .client
        .post(app.url(&format!("/reservations/{reservation}/payment")))
        .bearer_auth(&user.token)
        .header("traceparent", traceparent)
        .header("X-Request-Id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    let minted = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(
        minted.headers()["x-request-id"].len(),
        32,
        "a request without an id gets one"
    );

    wait_until_all_sent(&app.db, Duration::from_secs(30)).await;
    let received = platform.received().await;
    assert_eq!(
        received["reservations"]["traceparents"],
        json!([traceparent])
    );
    let delivered = r#"outbox_deliveries_total{destination="data_platform",outcome="delivered"}"#;
    assert!(sample(&metrics_text(&app).await, delivered) >= 1.0);
    assert!(metrics_text(&app)
        .await
        .contains("outbox_commit_to_delivery_seconds_bucket"));
}

#[tokio::test]
async fn admin_outbox_shows_dead_deliveries_and_replays_them() {
    let app = spawn_app().await;
    crate::delivery_helpers::write_events(&app.db, 1, 1);
    app.db.execute("UPDATE outbox_deliveries SET status = 'dead', attempts = 12, last_error = 'HTTP 422' WHERE destination = 'data_platform'");
    let outbox_id = app.db.scalar("SELECT id FROM outbox");

    let unauthorized = app
        .client
        .get(app.url("/admin/outbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let status: Value = app
        .client
        .get(app.url("/admin/outbox"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["dead"][0]["outbox_id"], outbox_id);
    assert_eq!(status["dead"][0]["last_error"], "HTTP 422");
    let data_platform = status["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == "data_platform")
        .unwrap();
    assert_eq!(data_platform["dead"], 1);

    let replay = |id: i64| {
        app.client
            .post(app.url(&format!("/admin/outbox/{id}/replay")))
            .bearer_auth(&app.admin_token)
            .send()
    };
    let replayed = replay(outbox_id).await.unwrap();
    assert_eq!(replayed.status(), 200);
    assert_eq!(replayed.json::<Value>().await.unwrap()["requeued"], 1);
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM outbox_deliveries WHERE status = 'dead'"),
        0
    );
    assert_eq!(
        replay(outbox_id).await.unwrap().status(),
        404,
        "nothing dead is left to replay"
    );
}

#[tokio::test]
async fn admin_outbox_shows_which_relay_has_what_in_flight() {
    let app = spawn_app().await;
    crate::delivery_helpers::write_events(&app.db, 2, 1);
    app.db.execute(
        "UPDATE outbox_deliveries SET lease_owner = 'relay-a:42:data_platform#0', \
         lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 minute' \
         WHERE destination = 'data_platform'",
    );
    let status: Value = app
        .client
        .get(app.url("/admin/outbox"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let in_flight_by = status["in_flight_by"].as_array().unwrap();
    assert_eq!(in_flight_by.len(), 1, "{status}");
    assert_eq!(in_flight_by[0]["destination"], "data_platform");
    assert_eq!(in_flight_by[0]["lease_owner"], "relay-a:42:data_platform#0");
    assert_eq!(in_flight_by[0]["in_flight"], 2);
    assert!(status["destinations"].is_array() && status["dead"].is_array());
}
