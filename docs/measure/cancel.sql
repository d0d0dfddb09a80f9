-- cancel.sql: reservations::cancel_reservation of a paid reservation (refund, mark_cancelled).
-- Not measured: the seat pick, the hold and a payment, each autocommit, which create the paid
-- reservation to cancel (the payment without its outbox event, which cancel does not read).
-- Measured: BEGIN .. COMMIT (lock_reservation, refund's three statements, mark_cancelled).
-- Not run: the relay wake-up, which the API sends from a background task after the commit.
\set uid random(1, 1000)
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
WITH debited AS ( -- a payment without its event (setup)
    UPDATE users SET balance = balance - :h_amount WHERE id = :uid AND balance >= :h_amount
    RETURNING balance),
confirmed AS (
    UPDATE reservations SET status = 'confirmed', confirmed_at = now()
    WHERE id = :h_id AND status = 'held' AND EXISTS (SELECT FROM debited) RETURNING id),
paid AS (
    INSERT INTO payments (reservation_id, user_id, amount, balance_after, idempotency_key)
    SELECT confirmed.id, :uid, :h_amount, debited.balance, NULL FROM confirmed, debited
    RETURNING id, reservation_id, amount, balance_after),
ledger AS (
    INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after)
    SELECT :uid, -amount, 'payment', id, balance_after FROM paid)
SELECT id AS payment_id, reservation_id, amount, balance_after AS balance FROM paid \gset s_
BEGIN;
SELECT r.id, r.user_id, r.seat_id, s.seat_no, s.schedule_id, sc.concert_id, r.status, -- lock_reservation
       r.held_until <= now() AS hold_lapsed, r.amount
FROM reservations r
JOIN seats s ON s.id = r.seat_id
JOIN schedules sc ON sc.id = s.schedule_id
WHERE r.id = :h_id AND r.user_id = :uid
FOR UPDATE OF r \gset r_
UPDATE payments SET status = 'refunded', refunded_at = now() -- refund: payment
WHERE reservation_id = :r_id AND status = 'completed' RETURNING id AS payment_id, paid_at, refunded_at \gset p_
WITH credited AS ( -- refund: credit_points
    UPDATE users SET balance = balance + :r_amount WHERE id = :r_user_id RETURNING id, balance)
INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after)
SELECT id, :r_amount, 'refund', :p_payment_id, balance FROM credited
RETURNING balance_after AS balance;
INSERT INTO "outbox" ("event_id", "aggregate_type", "aggregate_id", "event_type", "payload", "trace_context") -- enqueue_event
VALUES (':eid', 'reservation', :r_id, 'reservation.cancelled',
        '{"event_id": ":eid", "event_type": "reservation.cancelled", "occurred_at": ":p_refunded_at", "reservation_id": :r_id, "user_id": :r_user_id, "seat_id": :r_seat_id, "seat_no": :r_seat_no, "schedule_id": :r_schedule_id, "concert_id": :r_concert_id, "amount": :r_amount, "paid_at": ":p_paid_at"}',
        '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
RETURNING "outbox"."id";
UPDATE reservations SET status = 'cancelled', cancelled_at = now() WHERE id = :r_id;
COMMIT;
