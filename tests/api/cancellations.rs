//! Cancelling: the compensation of a payment, in one transaction, and its event after the
//! confirmation's at the platform.
use crate::delivery_helpers::{relay_settings, wait_until_all_sent, MockPlatform};
use crate::helpers::{error_code, join_all, spawn_app, spawn_app_with, TestApp, TestUser};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

async fn cancel(app: &TestApp, user: &TestUser, reservation: i64) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/reservations/{reservation}/cancel")))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap()
}

/// Money and seats add up: the balance is what the ledger says, and nothing is sold.
fn assert_books_balance(app: &TestApp, user: &TestUser, expected_balance: i64) {
    let balance = app
        .db
        .scalar(&format!("SELECT balance FROM users WHERE id = {}", user.id));
    assert_eq!(balance, expected_balance);
    let ledger = app.db.scalar(&format!(
        "SELECT coalesce(sum(delta), 0) FROM point_ledger WHERE user_id = {}",
        user.id
    ));
    assert_eq!(ledger, balance, "the ledger explains the balance");
}

#[tokio::test]
async fn cancelling_a_paid_reservation_refunds_it_and_frees_the_seat() {
    let app = spawn_app().await;
    let schedule = app.create_schedule(1, 400).await;
    let seat = app.seat_ids(schedule).await[0];
    let user = app.create_user(1_000).await;
    let reservation = app.held(&user, seat).await;
    assert_eq!(app.pay(&user, reservation, None).await.status(), 200);

    let response = cancel(&app, &user, reservation).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (
            body["status"].as_str(),
            body["refunded"].as_i64(),
            body["balance"].as_i64()
        ),
        (Some("cancelled"), Some(400), Some(1_000))
    );
    assert_books_balance(&app, &user, 1_000);
    assert_eq!(
        app.db.scalar(
            "SELECT count(*) FROM payments WHERE status = 'refunded' AND refunded_at IS NOT NULL"
        ),
        1
    );
    let (_, shown) = app
        .get_json(&user, &format!("/reservations/{reservation}"))
        .await;
    assert_eq!(shown["status"], "cancelled");
    let (_, seats) = app
        .get_json(&user, &format!("/schedules/{schedule}/seats"))
        .await;
    assert_eq!(seats[0]["status"], "available");
    assert_eq!(app.db.scalar(&format!(
        "SELECT count(*) FROM outbox WHERE aggregate_id = {reservation} AND event_type = 'reservation.cancelled' \
         AND id > (SELECT id FROM outbox WHERE event_type = 'reservation.confirmed')"
    )), 1);

    let again = cancel(&app, &user, reservation).await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_code(again).await, "already_cancelled");
    let someone = app.create_user(0).await;
    app.held(&someone, seat).await; // asserts 201: the seat can be held again
}

#[tokio::test]
async fn cancelling_a_hold_releases_it_without_money_or_events() {
    let app = spawn_app().await;
    let schedule = app.create_schedule(1, 400).await;
    let seat = app.seat_ids(schedule).await[0];
    let (user, stranger) = (app.create_user(1_000).await, app.create_user(0).await);
    let reservation = app.held(&user, seat).await;

    assert_eq!(cancel(&app, &stranger, reservation).await.status(), 404);
    let response = cancel(&app, &user, reservation).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["refunded"], 0);
    assert_books_balance(&app, &user, 1_000);
    assert_eq!(app.db.scalar("SELECT count(*) FROM outbox"), 0);
    let paying = app.pay(&user, reservation, None).await;
    assert_eq!(paying.status(), 409);
    assert_eq!(error_code(paying).await, "already_cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_racing_a_payment_leaves_the_money_consistent_either_way() {
    let app = Arc::new(spawn_app().await);
    let schedule = app.create_schedule(20, 100).await;
    let user = Arc::new(app.create_user(5_000).await);
    let mut outcomes = Vec::new();
    for seat in app.seat_ids(schedule).await {
        let reservation = app.held(&user, seat).await;
        let (pay_app, pay_user, cancel_app, cancel_user) =
            (app.clone(), user.clone(), app.clone(), user.clone());
        let racers = join_all([
            tokio::spawn(async move {
                pay_app
                    .pay(&pay_user, reservation, None)
                    .await
                    .status()
                    .as_u16()
            }),
            tokio::spawn(async move {
                cancel(&cancel_app, &cancel_user, reservation)
                    .await
                    .status()
                    .as_u16()
            }),
        ])
        .await;
        let (paid, cancelled) = (racers[0].as_ref().unwrap(), racers[1].as_ref().unwrap());
        assert_eq!(
            *cancelled, 200,
            "a cancel always succeeds on a held or paid reservation"
        );
        let payments = app.db.scalar(&format!(
            "SELECT count(*) FROM payments WHERE reservation_id = {reservation}"
        ));
        match paid {
            // The payment won the lock: the cancel then refunded it.
            200 => assert_eq!(app.db.scalar(&format!(
                "SELECT count(*) FROM payments WHERE reservation_id = {reservation} AND status = 'refunded'")), 1),
            // The cancel won: the payment found nothing to pay.
            409 => assert_eq!(payments, 0),
            other => panic!("unexpected payment status {other}"),
        }
        outcomes.push(*paid);
        assert_books_balance(&app, &user, 5_000);
    }
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM reservations WHERE status <> 'cancelled'"),
        0
    );
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM outbox WHERE event_type = 'reservation.confirmed'"),
        app.db
            .scalar("SELECT count(*) FROM outbox WHERE event_type = 'reservation.cancelled'"),
        "every confirmation that happened is compensated by a cancellation event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_platform_always_gets_the_cancellation_after_the_confirmation() {
    let platform = MockPlatform::start().await;
    platform
        .set_faults(serde_json::json!({"fail_rate": 0.3}))
        .await;
    let settings = relay_settings(&platform.url);
    let mut overrides: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    overrides.push(("RELAY_IN_PROCESS", "true"));
    let app = spawn_app_with(&overrides).await;
    let schedule = app.create_schedule(15, 100).await;
    let user = app.create_user(10_000).await;
    let mut reservations = Vec::new();
    for seat in app.seat_ids(schedule).await {
        let reservation = app.held(&user, seat).await;
        assert_eq!(app.pay(&user, reservation, None).await.status(), 200);
        assert_eq!(cancel(&app, &user, reservation).await.status(), 200);
        reservations.push(reservation);
    }
    wait_until_all_sent(&app.db, Duration::from_secs(60)).await;
    let received = platform.received().await;
    let events = received["reservations"]["events"].as_array().unwrap();
    for reservation in reservations {
        let types: Vec<&str> = events
            .iter()
            .filter(|e| e["reservation_id"] == reservation)
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["reservation.confirmed", "reservation.cancelled"],
            "reservation {reservation}"
        );
    }
    let refunds = received["notifications"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["message"].as_str().unwrap().contains("refunded"))
        .count();
    assert_eq!(refunds, 15);
}
