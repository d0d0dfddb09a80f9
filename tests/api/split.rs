//! The split, as a client and the data platform see it: reservation-svc and payment-svc as
//! real processes on databases of their own, over HTTP and over JetStream.
use crate::delivery_helpers::sample;
use crate::helpers::eventually;
use crate::nats::{jetstream_at, NatsNode};
use crate::split_helpers::{Bus, Split};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const QUIET: Duration = Duration::from_secs(60);

/// Hold, pay (200, or 202 then poll), confirmed; the platform gets one `reservation.confirmed`.
async fn happy_path(split: &Split) {
    let user = split.user(1_000).await;
    let seats = split.seats(3, 100).await;
    let reservation = split.hold(&user, seats[0]).await;
    let (status, receipt) = split.pay(&user, reservation).await;
    match status {
        200 => {
            assert_eq!(receipt["status"], "confirmed");
            assert_eq!(receipt["reservation_id"], reservation);
            assert_eq!(receipt["amount"], 100);
            assert_eq!(receipt["balance"], 900);
        }
        202 => assert_eq!(receipt["status"], "payment_pending"),
        other => panic!("{other}: {receipt}"),
    }
    eventually("the reservation to be confirmed", QUIET, || async {
        let now = split.reservation(&user, reservation).await;
        (now["status"] == "confirmed").then_some(())
    })
    .await;
    assert_eq!(split.balance(&user).await, 900);
    let seat_map = split
        .client
        .get(split.url("/schedules/1/seats"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(seat_map[0]["status"], "sold");

    let event_id = split
        .reservation_db
        .text("SELECT event_id::text FROM outbox WHERE event_type = 'reservation.confirmed'");
    let received = split
        .platform
        .wait_for_all("reservations", &HashSet::from([event_id]), QUIET)
        .await;
    assert_eq!(received.len(), 1, "one reservation.confirmed: {received:?}");
    split.wait_until_quiet(QUIET).await;
    assert_eq!(split.assert_books(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_saga_confirms_over_http() {
    let split = Split::start(Bus::Http, &[]).await;
    happy_path(&split).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_saga_confirms_over_jetstream() {
    let node = NatsNode::start();
    let split = Split::start(Bus::JetStream(node.url()), &[]).await;
    happy_path(&split).await;
    // The messages went through the broker, not over HTTP.
    assert_eq!(
        split
            .reservation_db
            .scalar("SELECT count(*) FROM outbox_destinations WHERE name = 'payment_svc'"),
        1
    );
    let commands = split.payment_db.scalar("SELECT count(*) FROM inbox");
    assert!(commands >= 1, "payment-svc consumed the command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn either_service_started_alone_is_ready_to_consume_before_its_peer_exists() {
    for payment_svc_alone in [true, false] {
        let node = NatsNode::start();
        let mut split = Split::configure(Bus::JetStream(node.url()), &[]).await;
        let (service, stream, durable) = match payment_svc_alone {
            true => (&mut split.payment, "SAGA_COMMANDS", "payment-svc"),
            false => (&mut split.reservation, "SAGA_REPLIES", "reservation-svc"),
        };
        service.start().await;
        // The stream it consumes exists, made by the consumer itself, with its durable
        // consumer on it: what the peer sends once it starts is taken at once.
        let context = jetstream_at(&node.url()).await;
        eventually(
            &format!("{durable}'s consumer on {stream}"),
            Duration::from_secs(10),
            || async {
                let found = context.get_stream(stream).await.ok()?;
                found.consumer_info(durable).await.ok().map(|_| ())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_few_points_fails_the_payment_frees_the_seat_and_debits_nothing() {
    let split = Split::start(Bus::Http, &[]).await;
    let user = split.user(50).await;
    let seats = split.seats(1, 100).await;
    let reservation = split.hold(&user, seats[0]).await;
    let (status, body) = split.pay(&user, reservation).await;
    if status == 409 {
        assert_eq!(body["error"]["code"], "insufficient_points", "{body}");
    } else {
        assert_eq!(status, 202, "{body}");
    }
    eventually("payment_failed", QUIET, || async {
        let now = split.reservation(&user, reservation).await;
        (now["status"] == "payment_failed").then_some(())
    })
    .await;
    assert_eq!(split.balance(&user).await, 50, "nothing debited");
    // The seat is free again: another user holds it.
    let other = split.user(0).await;
    split.hold(&other, seats[0]).await;
    split.wait_until_quiet(QUIET).await;
    assert_eq!(split.assert_books(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_answered_after_the_hold_ran_out_releases_the_seat_and_refunds() {
    let mut split = Split::start(Bus::Http, &[("HOLD_TTL_SECONDS", "3")]).await;
    let user = split.user(1_000).await;
    let seats = split.seats(1, 100).await;
    let reservation = split.hold(&user, seats[0]).await;
    // payment-svc is down: the command waits in reservation-svc's outbox.
    split.payment.sigkill();
    let (status, body) = split.pay(&user, reservation).await;
    assert_eq!((status, &body["status"]), (202, &"payment_pending".into()));
    assert_eq!(
        split.reservation(&user, reservation).await["status"],
        "payment_pending"
    );
    // The hold runs out while the payment is still unanswered: the seat is released.
    eventually(
        "the hold to run out and the seat to be released",
        QUIET,
        || async {
            let now = split.reservation(&user, reservation).await;
            (now["status"] == "expired").then_some(())
        },
    )
    .await;
    let other = split.user(0).await;
    split.hold(&other, seats[0]).await;
    // payment-svc comes back and pays the command it finds; the refund follows it.
    split.payment.start().await;
    split.wait_until_quiet(QUIET).await;
    assert_eq!(split.balance(&user).await, 1_000, "the money came back");
    assert_eq!(
        split
            .payment_db
            .scalar("SELECT count(*) FROM payments WHERE status = 'refunded'")
            + split
                .payment_db
                .scalar("SELECT count(*) FROM voided_reservations"),
        1,
        "paid then refunded, or voided before it was paid"
    );
    assert_eq!(split.assert_books(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_racing_the_payment_reply_ends_consistent_either_way() {
    let mut split = Split::start(Bus::Http, &[]).await;
    let user = split.user(1_000).await;
    let seats = split.seats(2, 100).await;

    // The reply first: confirmed, then cancelled: the seat is released, then refunded.
    let paid_first = split.hold(&user, seats[0]).await;
    let (status, _) = split.pay(&user, paid_first).await;
    assert!(status == 200 || status == 202);
    eventually("confirmed", QUIET, || async {
        let now = split.reservation(&user, paid_first).await;
        (now["status"] == "confirmed").then_some(())
    })
    .await;
    let (status, cancelled) = split.cancel(&user, paid_first).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["refunded"], 100);

    // The cancel first: payment-svc has not answered when the client cancels.
    let cancelled_first = split.hold(&user, seats[1]).await;
    split.payment.sigkill();
    let (status, _) = split.pay(&user, cancelled_first).await;
    assert_eq!(status, 202);
    let (status, cancelled) = split.cancel(&user, cancelled_first).await;
    assert_eq!(status, 200, "{cancelled}");
    split.payment.start().await;

    split.wait_until_quiet(QUIET).await;
    for reservation in [paid_first, cancelled_first] {
        assert_eq!(
            split.reservation(&user, reservation).await["status"],
            "cancelled"
        );
    }
    assert_eq!(split.balance(&user).await, 1_000);
    assert_eq!(split.assert_books(), 0);
    // The platform saw the paid one confirmed, then cancelled; the other not at all.
    let events = split.reservation_db.text(
        "SELECT string_agg(event_type || ':' || aggregate_id, ',' ORDER BY id) FROM outbox \
         WHERE event_type LIKE 'reservation.%'",
    );
    assert_eq!(
        events,
        format!("reservation.confirmed:{paid_first},reservation.cancelled:{paid_first}")
    );
}

/// reservation-svc's migration carries its own `reservation_event_payload`; the event the
/// platform gets from the split is still exactly what `ReservationEvent` serialises, rebuilt
/// here from the rows the saga wrote, as the monolith's is (`payments.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_splits_confirmed_event_is_exactly_what_reservation_event_serialises() {
    use concert_outbox::outbox::events::{ReservationEvent, RESERVATION_CONFIRMED};
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Integer, Jsonb, Timestamptz, Uuid};
    #[derive(QueryableByName)]
    struct Confirmed {
        #[diesel(sql_type = Uuid)]
        event_id: uuid::Uuid,
        #[diesel(sql_type = Jsonb)]
        payload: serde_json::Value,
        #[diesel(sql_type = Timestamptz)]
        confirmed_at: chrono::DateTime<chrono::Utc>,
        #[diesel(sql_type = BigInt)]
        user_id: i64,
        #[diesel(sql_type = BigInt)]
        seat_id: i64,
        #[diesel(sql_type = Integer)]
        seat_no: i32,
        #[diesel(sql_type = BigInt)]
        schedule_id: i64,
        #[diesel(sql_type = BigInt)]
        concert_id: i64,
    }
    let split = Split::start(Bus::Http, &[]).await;
    let user = split.user(1_000).await;
    let seats = split.seats(2, 300).await;
    let reservation = split.hold(&user, seats[1]).await;
    split.pay(&user, reservation).await;
    eventually("confirmed", QUIET, || async {
        let now = split.reservation(&user, reservation).await;
        (now["status"] == "confirmed").then_some(())
    })
    .await;
    let row: Confirmed = diesel::sql_query(
        "SELECT o.event_id, o.payload, r.confirmed_at, r.user_id, r.seat_id, s.seat_no, \
         s.schedule_id, sc.concert_id FROM reservations r JOIN seats s ON s.id = r.seat_id \
         JOIN schedules sc ON sc.id = s.schedule_id \
         JOIN outbox o ON o.aggregate_id = r.id AND o.event_type = 'reservation.confirmed'",
    )
    .get_result(&mut split.reservation_db.connect())
    .unwrap();
    let expected = ReservationEvent {
        event_id: row.event_id,
        event_type: RESERVATION_CONFIRMED,
        occurred_at: row.confirmed_at,
        reservation_id: reservation,
        user_id: row.user_id,
        seat_id: row.seat_id,
        seat_no: row.seat_no,
        schedule_id: row.schedule_id,
        concert_id: row.concert_id,
        amount: 300,
        paid_at: row.confirmed_at,
    };
    assert_eq!(row.payload, serde_json::to_value(&expected).unwrap());
}

/// The states the code spells (`split::reservation::states`) are exactly those the columns'
/// CHECKs allow, in reservation-svc's migrated database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_states_the_code_spells_are_the_ones_the_columns_allow() {
    use concert_outbox::split::reservation::states::{ReservationState, SagaState};
    let split = Split::start(Bus::Http, &[]).await;
    let allowed = |table: &str, column: &str| -> HashSet<String> {
        let check = split.reservation_db.text(&format!(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = '{table}'::regclass AND contype = 'c' \
             AND pg_get_constraintdef(oid) LIKE '%{column} = ANY%'"
        ));
        // The quoted words of `CHECK ((column = ANY (ARRAY['a'::text, 'b'::text])))`.
        check
            .split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let spelled = |all: Vec<&str>| all.into_iter().map(str::to_owned).collect::<HashSet<_>>();
    assert_eq!(
        allowed("reservations", "status"),
        spelled(ReservationState::ALL.iter().map(|s| s.as_str()).collect())
    );
    assert_eq!(
        allowed("payment_sagas", "state"),
        spelled(SagaState::ALL.iter().map(|s| s.as_str()).collect())
    );
}

/// The inboxes and payment-svc's balances take only the services' `INTERNAL_TOKEN`: a client
/// of reservation-svc's public address cannot confirm a payment that did not happen by posting
/// the reply itself, nor credit points on payment-svc.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_routes_between_the_services_refuse_callers_without_the_internal_token() {
    let mut split = Split::start(Bus::Http, &[]).await;
    let user = split.user(1_000).await;
    let user_id = split.reservation_db.scalar("SELECT max(id) FROM users");
    let seats = split.seats(1, 100).await;
    let reservation = split.hold(&user, seats[0]).await;
    split.payment.sigkill();
    let (status, _) = split.pay(&user, reservation).await;
    assert_eq!(status, 202);
    let forged = json!({"event_id": uuid::Uuid::new_v4(), "event_type": "payment.completed",
        "reservation_id": reservation, "payment_id": 1, "amount": 100, "balance_after": 900});
    let inbox = split.url("/internal/inbox");
    for token in [
        None,
        Some(user.token.as_str()),
        Some(split.admin_token.as_str()),
    ] {
        let mut request = split.client.post(&inbox).json(&forged);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "token {token:?}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(
        split.reservation(&user, reservation).await["status"],
        "payment_pending",
        "the forged reply changed nothing"
    );
    split.payment.start().await;
    let charges = format!("{}/internal/balances/{user_id}/charges", split.payment.url);
    let answer = split
        .client
        .post(&charges)
        .json(&json!({"amount": 1_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    // With the token, the services' own calls go through: the payment completes.
    eventually("confirmed", QUIET, || async {
        let now = split.reservation(&user, reservation).await;
        (now["status"] == "confirmed").then_some(())
    })
    .await;
    assert_eq!(split.balance(&user).await, 900);
}

/// payment-svc applies messages of different sagas side by side (JetStream), so a saga's
/// refund may reach it before the payment it gives back: the refund voids the payment, and the
/// payment that comes after it is declined with nothing debited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refund_that_overtakes_its_payment_voids_it() {
    let split = Split::start(Bus::Http, &[]).await;
    let user = split.user(1_000).await;
    let user_id = split.reservation_db.scalar("SELECT max(id) FROM users");
    let reservation = 1_000_000;
    let inbox = format!("{}/internal/inbox", split.payment.url);
    for message in [
        json!({"event_type": "payment.refund_requested", "reservation_id": reservation}),
        json!({"event_type": "payment.requested", "reservation_id": reservation,
               "user_id": user_id, "amount": 100, "payment_key": format!("reservation-{reservation}")}),
    ] {
        let mut message = message;
        message["event_id"] = json!(uuid::Uuid::new_v4());
        let answer = split
            .client
            .post(&inbox)
            .bearer_auth(&split.internal_token)
            .json(&message)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{message}");
    }
    assert_eq!(split.balance(&user).await, 1_000, "nothing debited");
    let payments = format!("SELECT count(*) FROM payments WHERE reservation_id = {reservation}");
    assert_eq!(split.payment_db.scalar(&payments), 0);
    let replies = split.payment_db.text(&format!(
        "SELECT string_agg(event_type || ':' || coalesce(payload->>'reason', ''), ',' ORDER BY id) \
         FROM outbox WHERE aggregate_id = {reservation}"
    ));
    assert_eq!(replies, "payment.refunded:,payment.declined:voided");
}

/// Fifty payments, each sent at the same moment as a cancel of its reservation: whichever lands
/// first, every reservation ends cancelled, every point comes back, and the platform sees each
/// confirmed one cancelled after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_cancels_racing_their_payments_end_cancelled_with_the_money_back() {
    let split = Split::start(Bus::Http, &[]).await;
    let user = split.user(5_000).await;
    let mut reservations = Vec::new();
    for seat in split.seats(50, 100).await {
        reservations.push(split.hold(&user, seat).await);
    }
    let raced = futures_util::future::join_all(reservations.iter().map(|&reservation| {
        let (split, user) = (&split, &user);
        async move {
            tokio::join!(
                split.pay(user, reservation),
                split.cancel(user, reservation)
            )
        }
    }))
    .await;
    for ((paid, receipt), (cancelled, body)) in &raced {
        // 409 already_cancelled when the cancel came first.
        assert!([200, 202, 409].contains(paid), "{paid}: {receipt}");
        assert_eq!(*cancelled, 200, "{body}");
    }
    split.wait_until_quiet(QUIET).await;
    for &reservation in &reservations {
        assert_eq!(
            split.reservation(&user, reservation).await["status"],
            "cancelled"
        );
    }
    assert_eq!(split.balance(&user).await, 5_000);
    assert_eq!(split.assert_books(), 0);
    let confirmed_without_a_later_cancel = split.reservation_db.scalar(
        "SELECT count(*) FROM outbox c WHERE c.event_type = 'reservation.confirmed' \
         AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.aggregate_id = c.aggregate_id \
         AND x.event_type = 'reservation.cancelled' AND x.id > c.id)",
    );
    assert_eq!(confirmed_without_a_later_cancel, 0);
}

/// Every message between the services delivered twice changes nothing: the same books.
async fn twice(bus: Bus) {
    let split = Split::start(bus, &[("SAGA_DUPLICATE_DELIVERIES", "true")]).await;
    let user = split.user(350).await;
    let seats = split.seats(5, 100).await;
    let mut reservations = Vec::new();
    for seat in &seats {
        let reservation = split.hold(&user, *seat).await;
        split.pay(&user, reservation).await;
        reservations.push(reservation);
    }
    // One confirmed reservation is cancelled, so a refund crosses twice as well.
    split.wait_until_quiet(QUIET).await;
    let (status, _) = split.cancel(&user, reservations[0]).await;
    assert_eq!(status, 200);
    split.wait_until_quiet(QUIET).await;
    // 350 points pay for three seats; one of them was given back.
    assert_eq!(split.assert_books(), 2);
    assert_eq!(split.balance(&user).await, 150);
    let received = split.payment_db.scalar("SELECT count(*) FROM inbox");
    let sent = split
        .reservation_db
        .scalar("SELECT count(*) FROM outbox WHERE event_type LIKE 'payment.%'");
    assert_eq!(
        received, sent,
        "every command recorded once, however often it came"
    );
    // And each did come twice: payment-svc's inbox recognised the second copies.
    let metrics = reqwest::get(format!("{}/metrics", split.payment.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let repeated = sample(
        &metrics,
        r#"saga_messages_total{event_type="payment.requested",outcome="duplicate"}"#,
    );
    assert!(repeated >= 5.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_message_delivered_twice_over_http_keeps_the_books() {
    twice(Bus::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_message_delivered_twice_over_jetstream_keeps_the_books() {
    let node = NatsNode::start();
    twice(Bus::JetStream(node.url())).await;
}
