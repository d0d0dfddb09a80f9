//! The pages, clicked through in headless Chromium as a person would: the seat map from a new
//! user to a paid seat whose event reaches the platform, and the dashboard from its login to a
//! dead delivery replayed and delivered.
use crate::browser::Browser;
use crate::delivery_helpers::{in_process_relay, relay_settings, MockPlatform};
use crate::helpers::{eventually, spawn_app_with, TestApp, TestUser};
use serde_json::{json, Value};
use std::time::Duration;

async fn app_with_platform(extra: &[(&str, &str)]) -> (TestApp, MockPlatform) {
    let platform = MockPlatform::start().await;
    let settings = relay_settings(&platform.url);
    let mut overrides = in_process_relay(&settings);
    overrides.extend_from_slice(extra);
    (spawn_app_with(&overrides).await, platform)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_creates_a_user_charges_holds_and_pays_on_the_seat_map() {
    let (app, platform) = app_with_platform(&[]).await;
    app.create_schedule(50, 1000).await;
    let browser = Browser::start().await;
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(
            ".seat.available[data-seat-no=\"7\"]",
            Duration::from_secs(10),
        )
        .await;

    browser.click("#create-user").await;
    browser.wait_for_text("#who", "Signed in as Guest").await;
    browser.wait_for_exact_text("#balance", "0").await;

    // An error of the API is shown as its own message.
    browser.fill("#charge-amount", "0").await;
    browser.click("#charge").await;
    let refused = app
        .client
        .post(app.url("/points/charge"))
        .bearer_auth(app.create_user(0).await.token)
        .json(&json!({"amount": 0}))
        .send()
        .await
        .unwrap();
    let api_message = refused.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.wait_for_text("#message", &api_message).await;

    browser.fill("#charge-amount", "5000").await;
    browser.click("#charge").await;
    browser.wait_for_exact_text("#balance", "5000").await;

    browser.click(".seat[data-seat-no=\"7\"]").await;
    browser
        .wait_for(
            ".seat.held.mine[data-seat-no=\"7\"]",
            Duration::from_secs(10),
        )
        .await;
    browser.wait_for_text("#countdown", "Held for").await;

    browser.click("#pay").await;
    browser
        .wait_for_text("#message", "Paid 1000 points for seat 7")
        .await;
    browser
        .wait_for(".seat.sold[data-seat-no=\"7\"]", Duration::from_secs(10))
        .await;
    browser.wait_for_exact_text("#balance", "4000").await;

    let event = eventually(
        "the payment at the data platform",
        Duration::from_secs(20),
        || async {
            let received = platform.received().await;
            received["reservations"]["events"]
                .as_array()?
                .first()
                .cloned()
        },
    )
    .await;
    assert_eq!(event["event_type"], "reservation.confirmed");
    assert_eq!(event["seat_no"], 7);
    assert_eq!(event["amount"], 1000);

    // Another visitor's hold shows up on this page by itself, without a reload.
    let other = app.create_user(5000).await;
    let seat_8 = app.seat_ids(event["schedule_id"].as_i64().unwrap()).await[7];
    app.held(&other, seat_8).await;
    browser
        .wait_for(".seat.held[data-seat-no=\"8\"]", Duration::from_secs(10))
        .await;
    browser.screenshot("seat-map").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_a_refused_event_dead_on_the_dashboard_and_replays_it() {
    let (app, platform) = app_with_platform(&[("RELAY_MAX_ATTEMPTS", "1")]).await;
    let schedule = app.create_schedule(50, 1000).await;
    let seats = app.seat_ids(schedule).await;
    let user = app.create_user(10_000).await;

    // Two payments the platform will refuse: held back with a 503 until their ids are known.
    platform.set_faults(json!({"down": true})).await;
    let refused = [
        pay(&app, &user, seats[0]).await,
        pay(&app, &user, seats[1]).await,
    ];
    let event_ids: Vec<String> = refused
        .iter()
        .map(|reservation| {
            app.db.text(&format!(
                "SELECT event_id::text FROM outbox WHERE aggregate_id = {reservation}"
            ))
        })
        .collect();
    platform
        .set_faults(json!({"down": false, "reject_event_ids": event_ids}))
        .await;

    let browser = Browser::start().await;
    browser.goto(&app.url("/admin")).await;
    browser.fill("#admin-token", "not-the-token").await;
    browser.click("#login button[type=submit]").await;
    browser
        .wait_for_text(".message.error", "That is not the admin token")
        .await;
    browser.fill("#admin-token", &app.admin_token).await;
    browser.click("#login button[type=submit]").await;
    browser.wait_for("#backlog", Duration::from_secs(10)).await;

    // Both events, dead at both destinations, appear without a reload.
    let (first, second) = (outbox_id(&app, refused[0]), outbox_id(&app, refused[1]));
    for id in [first, second] {
        browser
            .wait_for(
                &format!(
                    "tr.dead-row[data-outbox-id=\"{id}\"][data-destination=\"data_platform\"]"
                ),
                Duration::from_secs(20),
            )
            .await;
    }
    let row = browser
        .wait_for_text(&format!("tr.dead-row[data-outbox-id=\"{first}\"]"), "422")
        .await;
    assert!(
        row.contains(&event_ids[0]),
        "the row shows the event id: {row}"
    );
    browser
        .wait_for_text("#replay-all summary", "Replay all 4 dead deliveries")
        .await;
    // Some deliveries for the latency chart and the latest list, then the picture.
    pay(&app, &user, seats[2]).await;
    browser
        .wait_for("tr.latest-row", Duration::from_secs(20))
        .await;
    browser.client.set_window_size(1280, 1500).await.unwrap();
    browser.screenshot("admin").await;

    // Replay one: the platform takes it now.
    platform.set_faults(json!({"reject_event_ids": []})).await;
    browser
        .click(&format!(
            "tr.dead-row[data-outbox-id=\"{first}\"] button.replay"
        ))
        .await;
    browser
        .wait_for_text(
            "#notice",
            &format!("Event {first}: 2 dead deliveries re-queued"),
        )
        .await;
    browser
        .wait_for(
            &format!("tr.latest-row[data-outbox-id=\"{first}\"]"),
            Duration::from_secs(20),
        )
        .await;
    browser
        .wait_for_none(
            &format!("tr.dead-row[data-outbox-id=\"{first}\"]"),
            Duration::from_secs(20),
        )
        .await;

    // Replay all: the count is shown before confirming.
    browser.click("#replay-all summary").await;
    browser
        .wait_for_text("#replay-all-confirm", "Replay all 2")
        .await;
    browser.click("#replay-all-confirm").await;
    browser
        .wait_for_text("#notice", "2 dead deliveries re-queued")
        .await;
    browser
        .wait_for(
            &format!("tr.latest-row[data-outbox-id=\"{second}\"]"),
            Duration::from_secs(20),
        )
        .await;

    let delivered = platform.event_ids("reservations").await;
    for id in &event_ids {
        assert!(delivered.contains(id), "{id} delivered after its replay");
    }
    browser.close().await;
}

/// Holds `seat` and pays for it; returns the reservation id.
async fn pay(app: &TestApp, user: &TestUser, seat: i64) -> i64 {
    let reservation = app.held(user, seat).await;
    assert_eq!(app.pay(user, reservation, None).await.status(), 200);
    reservation
}

fn outbox_id(app: &TestApp, reservation: i64) -> i64 {
    app.db.scalar(&format!(
        "SELECT id FROM outbox WHERE aggregate_id = {reservation}"
    ))
}
