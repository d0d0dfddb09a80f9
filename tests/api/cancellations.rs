//! Cancelling: the compensation of a payment, in one transaction, and its event after the
//! confirmation's at the platform.
use crate::delivery_helpers::{
    in_process_relay, relay_settings, wait_until_all_sent, MockPlatform,
};
use crate::helpers::{error_code, eventually, spawn_app, spawn_app_with, TestApp, TestUser};
use diesel::RunQueryDsl;
use serde_json::{json, Value};
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

/// The request that reaches a reservation's row lock first.
#[derive(Debug, Clone, Copy)]
enum First {
    Payment,
    Cancel,
}

/// Sends a payment and a cancel of `reservation` while a test transaction holds the
/// reservation's row lock, which both take before they read its state, and lets them go once
/// both wait on it: they take it in the order they queued, `first` first. Returns the
/// payment's and the cancel's status and body.
async fn race_at_the_row_lock(
    app: &Arc<TestApp>,
    user: &Arc<TestUser>,
    reservation: i64,
    first: First,
) -> ((u16, Value), (u16, Value)) {
    let mut blocker = app.db.connect();
    diesel::sql_query("BEGIN").execute(&mut blocker).unwrap();
    diesel::sql_query(format!(
        "SELECT id FROM reservations WHERE id = {reservation} FOR UPDATE"
    ))
    .execute(&mut blocker)
    .unwrap();
    let (pay_app, pay_user, cancel_app, cancel_user) =
        (app.clone(), user.clone(), app.clone(), user.clone());
    let paying =
        async move { status_and_body(pay_app.pay(&pay_user, reservation, None).await).await };
    let cancelling =
        async move { status_and_body(cancel(&cancel_app, &cancel_user, reservation).await).await };
    let (paying, cancelling) = match first {
        First::Payment => {
            let paying = tokio::spawn(paying);
            wait_for_lock_waiters(app, 1).await;
            (paying, tokio::spawn(cancelling))
        }
        First::Cancel => {
            let cancelling = tokio::spawn(cancelling);
            wait_for_lock_waiters(app, 1).await;
            (tokio::spawn(paying), cancelling)
        }
    };
    wait_for_lock_waiters(app, 2).await;
    diesel::sql_query("COMMIT").execute(&mut blocker).unwrap();
    (paying.await.unwrap(), cancelling.await.unwrap())
}

async fn wait_for_lock_waiters(app: &TestApp, waiters: i64) {
    eventually(
        &format!("{waiters} requests waiting on the row lock"),
        Duration::from_secs(30),
        || async {
            let waiting = "SELECT count(*) FROM pg_stat_activity \
                           WHERE datname = current_database() AND wait_event_type = 'Lock'";
            (app.db.scalar(waiting) == waiters).then_some(())
        },
    )
    .await;
}

async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The reservation ended cancelled with its seat free for anyone, and the outbox holds
/// `events` about it, in that order.
async fn assert_cancelled_and_seat_free(
    app: &TestApp,
    reservation: i64,
    seat: i64,
    events: &[&str],
) {
    assert_eq!(
        app.db.text(&format!(
            "SELECT status FROM reservations WHERE id = {reservation}"
        )),
        "cancelled"
    );
    let written = app.db.text(&format!(
        "SELECT coalesce(string_agg(event_type, ',' ORDER BY id), '') FROM outbox \
         WHERE aggregate_id = {reservation}"
    ));
    assert_eq!(
        written,
        events.join(","),
        "reservation {reservation}'s events"
    );
    let someone = app.create_user(0).await;
    app.held(&someone, seat).await; // asserts 201: the seat can be held again
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_racing_a_payment_leaves_money_and_seat_consistent_whichever_wins() {
    let app = Arc::new(spawn_app().await);
    let schedule = app.create_schedule(2, 100).await;
    let seats = app.seat_ids(schedule).await;
    let user = Arc::new(app.create_user(5_000).await);

    // The payment wins the lock: it pays, and the cancel then refunds it.
    let paid_first = app.held(&user, seats[0]).await;
    let ((paid, _), (cancelled, body)) =
        race_at_the_row_lock(&app, &user, paid_first, First::Payment).await;
    assert_eq!((paid, cancelled), (200, 200));
    assert_eq!(
        (&body["refunded"], &body["balance"]),
        (&json!(100), &json!(5_000))
    );
    assert_eq!(
        app.db.text(&format!(
            "SELECT status FROM payments WHERE reservation_id = {paid_first}"
        )),
        "refunded"
    );
    assert_books_balance(&app, &user, 5_000);
    assert_cancelled_and_seat_free(
        &app,
        paid_first,
        seats[0],
        &["reservation.confirmed", "reservation.cancelled"],
    )
    .await;

    // The cancel wins the lock: it releases the hold, and the payment finds nothing to pay.
    let cancelled_first = app.held(&user, seats[1]).await;
    let ((paid, body), (cancelled, released)) =
        race_at_the_row_lock(&app, &user, cancelled_first, First::Cancel).await;
    assert_eq!((paid, cancelled), (409, 200));
    assert_eq!(body["error"]["code"], "already_cancelled");
    assert_eq!(released["refunded"], 0);
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM payments WHERE reservation_id = {cancelled_first}"
        )),
        0
    );
    assert_books_balance(&app, &user, 5_000);
    assert_cancelled_and_seat_free(&app, cancelled_first, seats[1], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_platform_always_gets_the_cancellation_after_the_confirmation() {
    let platform = MockPlatform::start().await;
    platform
        .set_faults(serde_json::json!({"fail_rate": 0.3}))
        .await;
    let settings = relay_settings(&platform.url);
    let app = spawn_app_with(&in_process_relay(&settings)).await;
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
