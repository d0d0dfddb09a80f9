use crate::helpers::join_all;
use crate::helpers::{error_code, eventually, spawn_app, spawn_app_with};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_parallel_holds_of_one_seat_give_one_winner() {
    let app = std::sync::Arc::new(spawn_app().await);
    let schedule = app.create_schedule(1, 1000).await;
    let seat = app.seat_ids(schedule).await[0];
    let mut users = Vec::new();
    for _ in 0..200 {
        users.push(app.create_user(0).await);
    }
    let attempts = users.into_iter().map(|user| {
        let app = app.clone();
        async move { app.hold(&user, seat).await.status().as_u16() }
    });
    let statuses = join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        199,
        "{statuses:?}"
    );
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM reservations WHERE seat_id = {seat}"
        )),
        1
    );
}

#[tokio::test]
async fn a_held_seat_shows_as_held_and_cannot_be_held_again() {
    let app = spawn_app().await;
    let schedule = app.create_schedule(3, 500).await;
    let seat = app.seat_ids(schedule).await[1];
    let (alice, bob) = (app.create_user(0).await, app.create_user(0).await);

    let response = app.hold(&alice, seat).await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "held");
    assert_eq!(body["seat_id"], seat);
    assert_eq!(body["amount"], 500);
    assert!(body["held_until"].as_str().is_some());

    let again = app.hold(&bob, seat).await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_code(again).await, "seat_unavailable");

    let (_, seats) = app
        .get_json(&bob, &format!("/schedules/{schedule}/seats"))
        .await;
    let statuses: Vec<&str> = seats
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["available", "held", "available"]);
}

#[tokio::test]
async fn holding_an_unknown_seat_is_404() {
    let app = spawn_app().await;
    let user = app.create_user(0).await;
    let response = app.hold(&user, 999_999).await;
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(response).await, "not_found");
}

#[tokio::test]
async fn an_expired_hold_frees_the_seat_and_cannot_be_paid() {
    let app = spawn_app_with(&[("HOLD_TTL_SECONDS", "1")]).await;
    let schedule = app.create_schedule(1, 100).await;
    let seat = app.seat_ids(schedule).await[0];
    let (alice, bob) = (app.create_user(1000).await, app.create_user(1000).await);
    let reservation = app.held(&alice, seat).await;

    eventually("the hold to expire", Duration::from_secs(5), || async {
        let (_, body) = app
            .get_json(&alice, &format!("/reservations/{reservation}"))
            .await;
        (body["status"] == "expired").then_some(())
    })
    .await;

    let payment = app.pay(&alice, reservation, None).await;
    assert_eq!(payment.status(), 410);
    assert_eq!(error_code(payment).await, "hold_expired");
    // No sweeper has run: the seat is free for a new hold straight away.
    assert_eq!(app.hold(&bob, seat).await.status(), 201);
    assert_eq!(
        app.db
            .scalar("SELECT balance FROM users WHERE id = (SELECT min(id) FROM users)"),
        1000
    );
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), 0);
}

#[tokio::test]
async fn a_stranger_gets_404_for_someone_elses_reservation() {
    let app = spawn_app().await;
    let schedule = app.create_schedule(1, 100).await;
    let seat = app.seat_ids(schedule).await[0];
    let (owner, stranger) = (app.create_user(1000).await, app.create_user(1000).await);
    let reservation = app.held(&owner, seat).await;

    let (status, body) = app
        .get_json(&stranger, &format!("/reservations/{reservation}"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let payment = app.pay(&stranger, reservation, None).await;
    assert_eq!(payment.status(), 404);
    let (status, _) = app
        .get_json(&owner, &format!("/reservations/{reservation}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), 0);
}

/// Holds stuck on one seat's lock (a rush on a seat whose first hold has not committed) take at
/// most HOLD_CONCURRENCY of the pool's connections: a payment still gets one and completes
/// while they wait. Without the limit they would take the whole pool and the payment would
/// be turned away with 503 after the checkout timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_waiting_on_a_seat_leave_a_connection_for_payments() {
    use diesel::prelude::*;
    let app = std::sync::Arc::new(
        spawn_app_with(&[("DB_POOL_SIZE", "2"), ("HOLD_CONCURRENCY", "1")]).await,
    );
    let schedule = app.create_schedule(2, 100).await;
    let seats = app.seat_ids(schedule).await;
    let payer = app.create_user(1000).await;
    let reservation = app.held(&payer, seats[0]).await;
    let rusher = std::sync::Arc::new(app.create_user(1000).await);
    assert_eq!(app.get_json(&rusher, "/points").await.0, 200);

    // An uncommitted hold of the second seat: every hold of it waits for this transaction.
    let mut blocker = app.db.connect();
    diesel::sql_query("BEGIN").execute(&mut blocker).unwrap();
    diesel::sql_query(format!(
        "INSERT INTO reservations (user_id, seat_id, status, amount, held_until) \
         VALUES ({}, {}, 'held', 100, now() + interval '5 minutes')",
        payer.id, seats[1]
    ))
    .execute(&mut blocker)
    .unwrap();
    let holds: Vec<_> = (0..3)
        .map(|_| {
            let (app, rusher, seat) = (app.clone(), rusher.clone(), seats[1]);
            tokio::spawn(async move { app.hold(&rusher, seat).await.status().as_u16() })
        })
        .collect();
    eventually(
        "a hold waits on the seat",
        Duration::from_secs(10),
        || async {
            let waiting = app.db.scalar(
                "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
            );
            (waiting >= 1).then_some(())
        },
    )
    .await;

    assert_eq!(app.pay(&payer, reservation, None).await.status(), 200);
    assert!(
        holds.iter().all(|hold| !hold.is_finished()),
        "the payment went through while the holds were still waiting"
    );
    diesel::sql_query("ROLLBACK").execute(&mut blocker).unwrap();
    let mut statuses: Vec<u16> = Vec::new();
    for hold in holds {
        statuses.push(hold.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409]);
}
