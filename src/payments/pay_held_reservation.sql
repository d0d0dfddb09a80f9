-- Binds: $1 reservation id, $2 user id, $3 idempotency key, $4 event id, $5 aggregate type,
-- $6 event type, $7 trace context, $8 confirmed state.
--
-- The whole payment, top to bottom, each step running only if the one before it produced a
-- row, so the statement writes everything or nothing:
-- 1. `target`: lock the caller's reservation if its hold is still active (a concurrent payment
--    or cancellation of it queues on this lock, then sees it no longer held);
-- 2. `debited`: debit the price if the balance covers it (`balance >= 0` CHECK backs it up);
-- 3. `confirmed`: confirm the reservation, which marks the seat sold;
-- 4. `paid`, `ledger`: the payment row and its ledger row;
-- 5. `event`: the `reservation.confirmed` outbox event, its payload built by
--    `reservation_event_payload` (the one builder), with `now()`, the statement's transaction
--    time, as `paid_at` in the payment row and the event.
WITH target AS (
    SELECT r.id, r.user_id, r.seat_id, s.seat_no, s.schedule_id, sc.concert_id, r.amount
    FROM reservations r
    JOIN seats s ON s.id = r.seat_id
    JOIN schedules sc ON sc.id = s.schedule_id
    WHERE r.id = $1 AND r.user_id = $2 AND reservation_hold_active(r.status, r.held_until, now())
    FOR UPDATE OF r),
debited AS (
    UPDATE users u SET balance = u.balance - t.amount FROM target t
    WHERE u.id = t.user_id AND u.balance >= t.amount
    RETURNING u.balance),
confirmed AS (
    UPDATE reservations r SET status = $8, confirmed_at = now()
    FROM target t WHERE r.id = t.id AND EXISTS (SELECT FROM debited)
    RETURNING r.id),
paid AS (
    INSERT INTO payments (reservation_id, user_id, amount, balance_after, idempotency_key)
    SELECT c.id, t.user_id, t.amount, d.balance, $3 FROM confirmed c, debited d, target t
    RETURNING id, reservation_id, amount, balance_after),
ledger AS (
    INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after)
    SELECT $2, -amount, 'payment', id, balance_after FROM paid),
event AS (
    INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, payload, trace_context)
    SELECT $4, $5, t.id, $6,
           reservation_event_payload($4, $6, now(), t.id, t.user_id, t.seat_id, t.seat_no,
                                     t.schedule_id, t.concert_id, t.amount, now()),
           $7
    FROM target t, paid)
SELECT id AS payment_id, reservation_id, amount, balance_after AS balance FROM paid
