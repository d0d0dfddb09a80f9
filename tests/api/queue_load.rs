//! The waiting queue under load and under failure: a thousand users joining at once, the
//! limit held while hundreds go through, and Redis SIGKILLed in the middle of payments.

use crate::helpers::{error_code, eventually, join_all, spawn_app_with, TestApp, TestUser};
use crate::queue_helpers::*;
use concert_outbox::queue::private_redis::PrivateRedis;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn users(app: &Arc<TestApp>, count: usize, points: i64) -> Vec<Arc<TestUser>> {
    let made = join_all((0..count).map(|_| {
        let app = app.clone();
        async move { Arc::new(app.create_user(points).await) }
    }))
    .await;
    made.into_iter().collect()
}

#[tokio::test]
async fn a_thousand_users_joining_at_once_get_places_one_to_a_thousand_once_each() {
    let (app, queue) = spawn_queued_app(100, &[]).await;
    let app = Arc::new(app);
    let people = users(&app, 1000, 0).await;
    let joined = join_all(people.iter().map(|user| {
        let (app, user) = (app.clone(), user.clone());
        async move { (user.clone(), join(&app, &user).await) }
    }))
    .await;
    let mut positions: Vec<u64> = joined
        .iter()
        .map(|(_, b)| b["position"].as_u64().unwrap())
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=1000).collect::<Vec<u64>>());
    // The first hundred to reach Redis are the active ones; the rest wait in arrival order.
    for (_, body) in &joined {
        let position = body["position"].as_u64().unwrap();
        let expected = if position <= 100 { "active" } else { "waiting" };
        assert_eq!(body["status"], expected, "position {position}");
    }
    let counts = queue.counts().await;
    assert_eq!((counts.active, counts.waiting), (100, 900));
    // Each place is stable: polled again, every token answers the place it was given.
    let polled = join_all(joined.iter().map(|(user, body)| {
        let (app, user, token) = (app.clone(), user.clone(), token_of(body));
        async move { poll(&app, &user, &token).await }
    }))
    .await;
    for ((_, joined), polled) in joined.iter().zip(polled) {
        assert_eq!(joined["position"], polled["position"]);
        assert_eq!(
            polled["ahead"].as_u64(),
            Some(polled["position"].as_u64().unwrap() - 1)
        );
    }
}

#[tokio::test]
async fn the_active_set_stays_at_the_limit_while_five_hundred_users_go_through() {
    const LIMIT: u64 = 20;
    let (app, queue) = spawn_queued_app(LIMIT as u32, &[("QUEUE_ACTIVE_TTL_SECONDS", "1")]).await;
    let app = Arc::new(app);
    let schedule = app.create_schedule(500, 10).await;
    let seats = app.seat_ids(schedule).await;
    let people = users(&app, 500, 10).await;
    let queue = Arc::new(queue);

    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (queue, done) = (queue.clone(), done.clone());
        async move {
            let mut samples = 0u64;
            while !done.load(Ordering::Relaxed) {
                let counts = queue.counts().await;
                assert!(
                    counts.active <= LIMIT,
                    "{} active over the limit",
                    counts.active
                );
                if counts.waiting > 0 {
                    assert_eq!(
                        counts.active, LIMIT,
                        "a slot left free while {} wait",
                        counts.waiting
                    );
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        }
    });
    // Churn: most pay (their payment hands the turn on), some leave, and every tenth never
    // acts, so its turn runs out after a second.
    let outcomes = join_all(
        people
            .iter()
            .zip(seats)
            .enumerate()
            .map(|(i, (user, seat))| {
                let (app, user) = (app.clone(), user.clone());
                async move {
                    let token = token_of(&join(&app, &user).await);
                    poll_until_active(&app, &user, &token, Duration::from_secs(120)).await;
                    match i % 10 {
                        0 => "idle",
                        1 | 2 => {
                            let left = app
                                .client
                                .post(app.url(&format!("/queue/tokens/{token}/leave")))
                                .bearer_auth(&user.token)
                                .send()
                                .await
                                .expect("leave");
                            assert_eq!(left.status(), 200);
                            "left"
                        }
                        _ => {
                            hold_and_pay(&app, &user, &token, seat).await;
                            "paid"
                        }
                    }
                }
            }),
    )
    .await;
    eventually(
        "the idle turns to run out",
        Duration::from_secs(10),
        || async { (queue.counts().await.active == 0).then_some(()) },
    )
    .await;
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("sampler");
    assert!(samples > 100, "only {samples} samples");
    let paid = outcomes.iter().filter(|o| **o == "paid").count() as i64;
    assert_eq!(paid, 350);
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), paid);
    assert_eq!(queue.counts().await.waiting, 0);
}

#[tokio::test]
async fn redis_killed_mid_run_gives_clear_503s_writes_nothing_and_the_queue_resumes() {
    let folder =
        std::env::temp_dir().join(format!("queue-crash-{}", uuid::Uuid::new_v4().simple()));
    let mut redis = PrivateRedis::start(&folder).expect("private redis-server");
    let queue = QueueUnderTest::on(&redis.url(), 50);
    let app = Arc::new(spawn_app_with(&queue.settings("50", &[])).await);
    let schedule = app.create_schedule(40, 10).await;
    let seats = app.seat_ids(schedule).await;
    let people = users(&app, 40, 10).await;
    let mut held = Vec::new();
    for (user, seat) in people.iter().zip(&seats) {
        let token = token_of(&join(&app, user).await);
        let response = app.hold_at(&app.address, user, Some(&token), *seat).await;
        let id = response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        held.push((user.clone(), token, id));
    }

    // Four clients pay ten reservations each, one after another; Redis is SIGKILLed once ten
    // payments are confirmed, so the rest meet a dead Redis at every step of the request.
    let confirmed_so_far = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let paying = join_all(held.chunks(10).map(|chunk| {
        let (app, chunk, confirmed_so_far) =
            (app.clone(), chunk.to_vec(), confirmed_so_far.clone());
        async move {
            let mut answers = Vec::new();
            for (user, token, id) in chunk {
                let response = app
                    .pay_at(&app.address, &user, Some(&token), None, id)
                    .await;
                let status = response.status().as_u16();
                if status == 200 {
                    confirmed_so_far.fetch_add(1, Ordering::SeqCst);
                }
                let code = if status == 200 {
                    String::new()
                } else {
                    error_code(response).await
                };
                answers.push((id, status, code));
            }
            answers
        }
    }));
    let killer = async {
        while confirmed_so_far.load(Ordering::SeqCst) < 10 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        redis.kill();
    };
    let (answers, ()) = tokio::join!(paying, killer);
    let answers: Vec<(i64, u16, String)> = answers.into_iter().flatten().collect();
    for (_, status, code) in &answers {
        assert!(
            *status == 200 || (*status == 503 && code == "queue_unavailable"),
            "a payment answered {status} {code}"
        );
    }
    // Every 200 is a payment, and nothing else is: a refused payment wrote nothing, and a payment
    // whose turn could not be ended afterwards still stands.
    let confirmed: Vec<i64> = answers.iter().filter(|a| a.1 == 200).map(|a| a.0).collect();
    assert!(
        confirmed.len() >= 10 && confirmed.len() < 40,
        "{} confirmed",
        confirmed.len()
    );
    assert_eq!(
        app.db.scalar("SELECT count(*) FROM payments"),
        confirmed.len() as i64
    );
    for id in &confirmed {
        assert_eq!(
            app.db
                .text(&format!("SELECT status FROM reservations WHERE id = {id}")),
            "confirmed"
        );
    }

    // With Redis gone: clear 503s, the health check names the queue, and nothing is written.
    let (user, token, _) = &held[0];
    let (status, body) = join_at(&app, &app.address, user).await;
    assert_eq!((status, code_of(&body)), (503, "queue_unavailable"));
    let (status, body) = poll_at(&app, &app.address, user, token).await;
    assert_eq!((status, code_of(&body)), (503, "queue_unavailable"));
    let reservations = app.db.scalar("SELECT count(*) FROM reservations");
    let hold = app.hold_at(&app.address, user, Some(token), seats[0]).await;
    assert_eq!(hold.status(), 503);
    assert_eq!(error_code(hold).await, "queue_unavailable");
    assert_eq!(
        app.db.scalar("SELECT count(*) FROM reservations"),
        reservations
    );
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(
        (health["database"].as_str(), health["queue"].as_str()),
        (Some("up"), Some("down"))
    );

    // Redis back (empty: the queue keeps nothing on disk): users join again and pay.
    let port = redis.port();
    drop(redis);
    let _redis = PrivateRedis::start_on(&folder, port).expect("redis-server again");
    eventually(
        "the health check to see Redis again",
        Duration::from_secs(10),
        || async {
            let health = app.client.get(app.url("/health")).send().await.ok()?;
            (health.status() == 200).then_some(())
        },
    )
    .await;
    for (user, _, id) in held.iter().filter(|h| !confirmed.contains(&h.2)) {
        let token = token_of(&join(&app, user).await);
        let paid = app
            .pay_at(&app.address, user, Some(&token), None, *id)
            .await;
        assert_eq!(paid.status(), 200);
    }
    assert_eq!(app.db.scalar("SELECT count(*) FROM payments"), 40);
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_that_commits_stands_when_redis_dies_before_its_turn_ends() {
    let folder =
        std::env::temp_dir().join(format!("queue-after-{}", uuid::Uuid::new_v4().simple()));
    let mut redis = PrivateRedis::start(&folder).expect("private redis-server");
    let queue = QueueUnderTest::on(&redis.url(), 5);
    let app = Arc::new(spawn_app_with(&queue.settings("5", &[])).await);
    let schedule = app.create_schedule(1, 10).await;
    let seat = app.seat_ids(schedule).await[0];
    let user = Arc::new(app.create_user(10).await);
    let token = token_of(&join(&app, &user).await);
    let held = app.hold_at(&app.address, &user, Some(&token), seat).await;
    let id = held.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();

    // The payment passes the queue's check, then waits on the reservation's row lock, which
    // this transaction holds; Redis dies meanwhile, so ending the turn after the commit fails.
    use diesel::RunQueryDsl;
    let mut blocker = app.db.connect();
    diesel::sql_query("BEGIN").execute(&mut blocker).unwrap();
    diesel::sql_query(format!(
        "SELECT id FROM reservations WHERE id = {id} FOR UPDATE"
    ))
    .execute(&mut blocker)
    .unwrap();
    let paying = tokio::spawn({
        let (app, user, token) = (app.clone(), user.clone(), token.clone());
        async move {
            app.pay_at(&app.address, &user, Some(&token), None, id)
                .await
                .status()
        }
    });
    eventually(
        "the payment to wait on the row lock",
        Duration::from_secs(30),
        || async {
            let waiting = "SELECT count(*) FROM pg_stat_activity \
                       WHERE datname = current_database() AND wait_event_type = 'Lock'";
            (app.db.scalar(waiting) == 1).then_some(())
        },
    )
    .await;
    redis.kill();
    diesel::sql_query("COMMIT").execute(&mut blocker).unwrap();

    assert_eq!(
        paying.await.unwrap(),
        200,
        "the committed payment is answered as paid"
    );
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM payments WHERE reservation_id = {id}"
        )),
        1
    );
    assert_eq!(
        app.db
            .text(&format!("SELECT status FROM reservations WHERE id = {id}")),
        "confirmed"
    );
    drop(redis);
    let _ = std::fs::remove_dir_all(&folder);
}
