-- pay.sql: payments::pay_for_reservation with an Idempotency-Key, on a fresh hold: the
-- one statement of payments::held::pay_held_reservation, which pays a payable reservation
-- (lock, debit, confirm, payment, ledger row, outbox event) in one autocommit round trip.
-- Not measured: the seat pick and the hold (autocommit) that create the reservation to pay.
-- Not run: the full transaction (payments::check_then_pay_under_lock), which runs only when this
-- statement writes nothing, and the relay wake-up, which the API sends from a background task.
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
WITH target AS ( -- pay_held_reservation
    SELECT r.id, r.user_id, r.seat_id, s.seat_no, s.schedule_id, sc.concert_id, r.amount,
    to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS paid_at
    FROM reservations r
    JOIN seats s ON s.id = r.seat_id
    JOIN schedules sc ON sc.id = s.schedule_id
    WHERE r.id = :h_id AND r.user_id = :uid AND r.status = 'held' AND r.held_until > now()
    FOR UPDATE OF r),
debited AS (
    UPDATE users u SET balance = u.balance - t.amount FROM target t
    WHERE u.id = t.user_id AND u.balance >= t.amount RETURNING u.balance),
confirmed AS (
    UPDATE reservations r SET status = 'confirmed', confirmed_at = now()
    FROM target t WHERE r.id = t.id AND EXISTS (SELECT FROM debited) RETURNING r.id),
paid AS (
    INSERT INTO payments (reservation_id, user_id, amount, balance_after, idempotency_key)
    SELECT c.id, t.user_id, t.amount, d.balance, 'pay-:seat' FROM confirmed c, debited d, target t
    RETURNING id, reservation_id, amount, balance_after),
ledger AS (
    INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after)
    SELECT :uid, -amount, 'payment', id, balance_after FROM paid),
event AS (
    INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, payload, trace_context)
    SELECT ':eid', 'reservation', t.id, 'reservation.confirmed', jsonb_build_object(
    'event_id', ':eid', 'event_type', 'reservation.confirmed', 'occurred_at', t.paid_at,
    'reservation_id', t.id, 'user_id', t.user_id, 'seat_id', t.seat_id,
    'seat_no', t.seat_no, 'schedule_id', t.schedule_id,
    'concert_id', t.concert_id, 'amount', t.amount, 'paid_at', t.paid_at), '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    FROM target t, paid)
SELECT id AS payment_id, reservation_id, amount, balance_after AS balance FROM paid;
