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
