//! The waiting queue's rules, against a real Redis: joining, polling, the token on holds and
//! payments, and turns passed on by payments and by time.

use crate::helpers::{error_code, eventually, spawn_app, start_api};
use crate::queue_helpers::*;
use std::time::Duration;

#[tokio::test]
async fn the_first_users_are_active_at_once_and_the_rest_wait_in_arrival_order() {
    let (app, _queue) = spawn_queued_app(2, &[]).await;
    let mut places = Vec::new();
    for _ in 0..4 {
        let user = app.create_user(0).await;
        places.push(join(&app, &user).await);
    }
    let statuses: Vec<&str> = places
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "active", "waiting", "waiting"]);
    let positions: Vec<u64> = places
        .iter()
        .map(|p| p["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    assert!(places[0]["active_until"].as_str().is_some());
    assert!(places[2]["active_until"].is_null());
}

#[tokio::test]
async fn asking_again_gives_the_same_token_and_place() {
    let (app, _queue) = spawn_queued_app(1, &[]).await;
    let first = app.create_user(0).await;
    let second = app.create_user(0).await;
    join(&app, &first).await;
    let joined = join(&app, &second).await;
    let again = join(&app, &second).await;
    assert_eq!(token_of(&again), token_of(&joined));
    assert_eq!(
        (again["status"].as_str(), again["position"].as_u64()),
        (Some("waiting"), Some(2))
    );
    let polled = poll(&app, &second, &token_of(&joined)).await;
    assert_eq!(polled["position"], 2);
    assert_eq!(polled["ahead"], 1);
}

#[tokio::test]
async fn a_strangers_token_is_not_found_and_cannot_hold() {
    let (app, _queue) = spawn_queued_app(5, &[]).await;
    let schedule = app.create_schedule(1, 10).await;
    let seat = app.seat_ids(schedule).await[0];
    let owner = app.create_user(0).await;
    let stranger = app.create_user(0).await;
    let token = token_of(&join(&app, &owner).await);
    let (status, body) = poll_at(&app, &app.address, &stranger, &token).await;
    assert_eq!((status, code_of(&body)), (404, "not_found"));
    let (status, _) = poll_at(&app, &app.address, &owner, "not-a-token").await;
    assert_eq!(status, 404);
    let refused = app
        .hold_at(&app.address, &stranger, Some(&token), seat)
        .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(error_code(refused).await, "queue_token_required");
    assert_eq!(app.db.scalar("SELECT count(*) FROM reservations"), 0);
}

#[tokio::test]
async fn holds_and_payments_need_an_active_token_of_the_caller() {
    let (app, _queue) = spawn_queued_app(1, &[]).await;
    let schedule = app.create_schedule(2, 10).await;
    let seats = app.seat_ids(schedule).await;
    let first = app.create_user(100).await;
    let second = app.create_user(100).await;
    let active = token_of(&join(&app, &first).await);
    let waiting = token_of(&join(&app, &second).await);

    let missing = app.hold_at(&app.address, &first, None, seats[0]).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(error_code(missing).await, "queue_token_required");
    let garbage = app
        .hold_at(&app.address, &first, Some("garbage"), seats[0])
        .await;
    assert_eq!(garbage.status(), 401);
    let early = app
        .hold_at(&app.address, &second, Some(&waiting), seats[1])
        .await;
    assert_eq!(early.status(), 403);
    let body: serde_json::Value = early.json().await.unwrap();
    assert_eq!(
        (code_of(&body), body["error"]["position"].as_u64()),
        ("not_admitted", Some(2))
    );
    assert_eq!(app.db.scalar("SELECT count(*) FROM reservations"), 0);

    let held = app
        .hold_at(&app.address, &first, Some(&active), seats[0])
        .await;
    assert_eq!(held.status(), 201);
    let id = held.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let unpaid = app.pay_at(&app.address, &first, None, None, id).await;
    assert_eq!(unpaid.status(), 401);
    assert_eq!(error_code(unpaid).await, "queue_token_required");
    let by_waiting = app
        .pay_at(&app.address, &first, Some(&waiting), None, id)
        .await;
    assert_eq!(
        by_waiting.status(),
        401,
        "the second user's token is not the first's"
    );
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), 0);

    let paid = app
        .pay_at(&app.address, &first, Some(&active), None, id)
        .await;
    assert_eq!(paid.status(), 200);
    // The payment ended the turn: the token is expired for holding and paying again.
    let after = app
        .hold_at(&app.address, &first, Some(&active), seats[1])
        .await;
    assert_eq!(after.status(), 403);
    assert_eq!(error_code(after).await, "queue_token_expired");
    let expired = poll(&app, &first, &active).await;
    assert_eq!(
        (expired["status"].as_str(), expired["position"].as_u64()),
        (Some("expired"), Some(0))
    );
}

#[tokio::test]
async fn a_payment_admits_the_next_user() {
    let (app, _queue) = spawn_queued_app(1, &[]).await;
    let schedule = app.create_schedule(2, 10).await;
    let seats = app.seat_ids(schedule).await;
    let first = app.create_user(10).await;
    let second = app.create_user(10).await;
    let first_token = token_of(&join(&app, &first).await);
    let second_token = token_of(&join(&app, &second).await);
    assert_eq!(
        poll(&app, &second, &second_token).await["status"],
        "waiting"
    );
    hold_and_pay(&app, &first, &first_token, seats[0]).await;
    // Admitted in the paying request itself, not by the next settle.
    let admitted = poll(&app, &second, &second_token).await;
    assert_eq!(
        (admitted["status"].as_str(), admitted["position"].as_u64()),
        (Some("active"), Some(1))
    );
    hold_and_pay(&app, &second, &second_token, seats[1]).await;
}

#[tokio::test]
async fn an_active_user_who_never_pays_is_expired_and_replaced_within_a_second() {
    let (app, queue) = spawn_queued_app(1, &[("QUEUE_ACTIVE_TTL_SECONDS", "1")]).await;
    let idle = app.create_user(0).await;
    let next = app.create_user(0).await;
    let idle_token = token_of(&join(&app, &idle).await);
    let next_token = token_of(&join(&app, &next).await);
    // Nobody calls the API meanwhile: the settler alone must pass the turn on. The sampler reads
    // Redis without settling anything.
    let started = std::time::Instant::now();
    eventually(
        "the idle turn to pass to the next user",
        Duration::from_secs(5),
        || async { (queue.counts().await.waiting == 0).then_some(()) },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "passed on after {:?}",
        started.elapsed()
    );
    assert_eq!(queue.counts().await.active, 1);
    assert_eq!(poll(&app, &idle, &idle_token).await["status"], "expired");
    assert_eq!(poll(&app, &next, &next_token).await["status"], "active");
}

#[tokio::test]
async fn a_waiting_user_who_stops_polling_loses_the_place_and_those_behind_move_up() {
    let (app, _queue) = spawn_queued_app(1, &[("QUEUE_TOKEN_TTL_SECONDS", "1")]).await;
    let users = [
        app.create_user(0).await,
        app.create_user(0).await,
        app.create_user(0).await,
    ];
    let mut tokens = Vec::new();
    for user in &users {
        tokens.push(token_of(&join(&app, user).await));
    }
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        poll(&app, &users[2], &tokens[2]).await;
    }
    assert_eq!(poll(&app, &users[1], &tokens[1]).await["status"], "expired");
    let moved = poll(&app, &users[2], &tokens[2]).await;
    assert_eq!(
        (moved["status"].as_str(), moved["position"].as_u64()),
        (Some("waiting"), Some(2))
    );
    // An active turn is not ended by the waiting TTL.
    assert_eq!(poll(&app, &users[0], &tokens[0]).await["status"], "active");
}

#[tokio::test]
async fn a_user_who_leaves_hands_the_turn_on() {
    let (app, _queue) = spawn_queued_app(1, &[]).await;
    let first = app.create_user(0).await;
    let second = app.create_user(0).await;
    let first_token = token_of(&join(&app, &first).await);
    let second_token = token_of(&join(&app, &second).await);
    let stranger_leaves = app
        .client
        .post(app.url(&format!("/queue/tokens/{first_token}/leave")))
        .bearer_auth(&second.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stranger_leaves.status(), 404);
    let left = app
        .client
        .post(app.url(&format!("/queue/tokens/{first_token}/leave")))
        .bearer_auth(&first.token)
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 200);
    let left: serde_json::Value = left.json().await.unwrap();
    assert_eq!(
        (left["status"].as_str(), left["position"].as_u64()),
        (Some("expired"), Some(0))
    );
    assert_eq!(poll(&app, &second, &second_token).await["status"], "active");
    assert_eq!(poll(&app, &first, &first_token).await["status"], "expired");
    // Joining again is a new token at the back of the line.
    let rejoined = join(&app, &first).await;
    assert_ne!(token_of(&rejoined), first_token);
    assert_eq!(rejoined["position"], 2);
}

#[tokio::test]
async fn two_api_processes_share_the_positions_and_the_limit() {
    let (app, _queue) = spawn_queued_app(3, &[]).await;
    let limit = "3".to_string();
    let settings = _queue.settings(&limit, &[]);
    let other = start_api(&app.db.url, &app.admin_token, &settings).await;
    let addresses = [app.address.clone(), other];
    let mut users = Vec::new();
    for i in 0..10 {
        let user = app.create_user(10).await;
        let (status, body) = join_at(&app, &addresses[i % 2], &user).await;
        assert_eq!(status, 201);
        assert_eq!(
            body["position"].as_u64(),
            Some(i as u64 + 1),
            "joined at process {}",
            i % 2
        );
        let expected = if i < 3 { "active" } else { "waiting" };
        assert_eq!(body["status"], expected);
        users.push((user, token_of(&body)));
    }
    // Each process answers the same place for every token, whichever took the join.
    for (i, (user, token)) in users.iter().enumerate() {
        for address in &addresses {
            let (status, body) = poll_at(&app, address, user, token).await;
            assert_eq!(
                (status, body["position"].as_u64()),
                (200, Some(i as u64 + 1))
            );
        }
    }
    // A payment through one process admits the fourth user, as the other sees it.
    let schedule = app.create_schedule(1, 10).await;
    let seat = app.seat_ids(schedule).await[0];
    let (first, first_token) = &users[0];
    let held = app
        .hold_at(&addresses[1], first, Some(first_token), seat)
        .await;
    let id = held.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.pay_at(&addresses[1], first, Some(first_token), None, id)
            .await
            .status(),
        200
    );
    let (fourth, fourth_token) = &users[3];
    let (_, body) = poll_at(&app, &addresses[0], fourth, fourth_token).await;
    assert_eq!(body["status"], "active");
    let (_, body) = poll_at(&app, &addresses[1], &users[4].0, &users[4].1).await;
    assert_eq!(
        (body["status"].as_str(), body["position"].as_u64()),
        (Some("waiting"), Some(4))
    );
}

#[tokio::test]
async fn with_the_queue_off_the_queue_routes_say_so_and_holds_need_no_token() {
    let app = spawn_app().await;
    let user = app.create_user(0).await;
    let (status, body) = join_at(&app, &app.address, &user).await;
    assert_eq!((status, code_of(&body)), (404, "queue_disabled"));
    let schedule = app.create_schedule(1, 10).await;
    let seat = app.seat_ids(schedule).await[0];
    assert_eq!(
        app.hold_at(&app.address, &user, None, seat).await.status(),
        201
    );
}

#[tokio::test]
async fn health_and_metrics_show_the_queue() {
    let (app, _queue) = spawn_queued_app(1, &[]).await;
    for _ in 0..3 {
        let user = app.create_user(0).await;
        join(&app, &user).await;
    }
    let health: serde_json::Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (health["status"].as_str(), health["queue"].as_str()),
        (Some("ok"), Some("up"))
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("queue_waiting 2"), "{metrics}");
    assert!(metrics.contains("queue_active 1"), "{metrics}");
    assert!(metrics.contains("queue_admitted_per_second"), "{metrics}");
    assert!(metrics.contains("queue_admissions_total"), "{metrics}");
}

#[tokio::test]
async fn a_retried_payment_is_answered_from_its_receipt_after_its_turn_ended() {
    let (app, _queue) = spawn_queued_app(1, &[]).await;
    let schedule = app.create_schedule(2, 10).await;
    let seats = app.seat_ids(schedule).await;
    let user = app.create_user(100).await;
    let token = token_of(&join(&app, &user).await);
    let held = app
        .hold_at(&app.address, &user, Some(&token), seats[0])
        .await;
    let id = held.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let pay_with_key = |queue_token: Option<String>, key: &'static str| {
        let (app, user) = (&app, &user);
        async move {
            app.pay_at(&app.address, user, queue_token.as_deref(), Some(key), id)
                .await
        }
    };
    let paid = pay_with_key(Some(token.clone()), "first-try").await;
    assert_eq!(paid.status(), 200);
    let receipt: serde_json::Value = paid.json().await.unwrap();

    // The answer was lost; the retry finds the turn ended by the payment itself, or no token.
    for queue_token in [Some(token.clone()), None] {
        let retried = pay_with_key(queue_token, "first-try").await;
        assert_eq!(retried.status(), 200);
        assert_eq!(retried.json::<serde_json::Value>().await.unwrap(), receipt);
    }
    // A new key is a new payment, which needs a turn.
    let new_key = pay_with_key(Some(token.clone()), "second-try").await;
    assert_eq!(new_key.status(), 403);
    assert_eq!(error_code(new_key).await, "queue_token_expired");
    // Replaying the old payment does not end the turn the user has since.
    let again = token_of(&join(&app, &user).await);
    assert_eq!(
        pay_with_key(Some(again.clone()), "first-try")
            .await
            .status(),
        200
    );
    assert_eq!(poll(&app, &user, &again).await["status"], "active");
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), 1);
}
