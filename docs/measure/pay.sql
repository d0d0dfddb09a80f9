-- pay.sql: payments::pay_for_reservation with an Idempotency-Key, on a fresh hold.
-- Not measured: the seat pick and the hold (autocommit) that create the reservation to pay.
-- Measured: BEGIN .. COMMIT (lock_reservation, the key lookup, record_payment, enqueue_event),
-- then outbox::wake_relays, the autocommit statement after the commit.
-- Without an Idempotency-Key the key lookup is skipped: subtract its line.
-- The outbox payload is the ReservationEvent JSON (src/outbox/events.rs) with the values the
-- code takes from the locked row; the times are in PostgreSQL's text format, not RFC 3339.
\set uid random(1, :users)
SELECT nextval('bench_seat') AS seat, gen_random_uuid() AS eid \gset
WITH expired AS ( -- hold_seat (setup)
    UPDATE reservations SET status = 'expired'
    WHERE seat_id = :seat AND status = 'held' AND held_until <= now()
    RETURNING id),
held AS (
    INSERT INTO reservations (user_id, seat_id, status, amount, held_until)
    SELECT :uid, s.id, 'held', s.price, now() + make_interval(secs => 300)
    FROM seats s WHERE s.id = :seat AND (SELECT count(*) FROM expired) >= 0
    ON CONFLICT (seat_id) WHERE status IN ('held', 'confirmed') DO NOTHING
    RETURNING id, amount, held_until)
SELECT s.id AS seat_id, s.seat_no, s.schedule_id, held.id, held.amount, held.held_until
FROM seats s LEFT JOIN held ON true WHERE s.id = :seat \gset h_
BEGIN;
SELECT r.id, r.user_id, r.seat_id, s.seat_no, s.schedule_id, sc.concert_id, r.status, -- lock_reservation
       r.held_until <= now() AS hold_lapsed, r.amount, now() AS transaction_time
FROM reservations r
JOIN seats s ON s.id = r.seat_id
JOIN schedules sc ON sc.id = s.schedule_id
WHERE r.id = :h_id AND r.user_id = :uid
FOR UPDATE OF r \gset r_
SELECT id AS payment_id, reservation_id, amount, balance_after AS balance -- find_payment_by_key
FROM payments WHERE user_id = :uid AND idempotency_key = 'pay-:seat';
WITH debited AS ( -- record_payment
    UPDATE users SET balance = balance - :r_amount WHERE id = :r_user_id AND balance >= :r_amount
    RETURNING balance),
confirmed AS (
    UPDATE reservations SET status = 'confirmed', confirmed_at = now()
    WHERE id = :r_id AND status = 'held' AND EXISTS (SELECT FROM debited) RETURNING id),
paid AS (
    INSERT INTO payments (reservation_id, user_id, amount, balance_after, idempotency_key)
    SELECT confirmed.id, :r_user_id, :r_amount, debited.balance, 'pay-:seat' FROM confirmed, debited
    RETURNING id, reservation_id, amount, balance_after),
ledger AS (
    INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after)
    SELECT :r_user_id, -amount, 'payment', id, balance_after FROM paid)
SELECT id AS payment_id, reservation_id, amount, balance_after AS balance FROM paid \gset p_
INSERT INTO "outbox" ("event_id", "aggregate_type", "aggregate_id", "event_type", "payload", "trace_context") -- enqueue_event
VALUES (':eid', 'reservation', :r_id, 'reservation.confirmed',
        '{"event_id": ":eid", "event_type": "reservation.confirmed", "occurred_at": ":r_transaction_time", "reservation_id": :r_id, "user_id": :r_user_id, "seat_id": :r_seat_id, "seat_no": :r_seat_no, "schedule_id": :r_schedule_id, "concert_id": :r_concert_id, "amount": :r_amount, "paid_at": ":r_transaction_time"}',
        '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
RETURNING "outbox"."id";
COMMIT;
SELECT set_config('synchronous_commit', 'off', true), pg_notify('outbox_events', '');
