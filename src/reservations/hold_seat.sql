-- Binds: $1 seat id, $2 user id, $3 hold seconds, $4 expired state, $5 held state.
--
-- One statement, one round trip for winners and losers alike:
-- 1. `expired`: mark this seat's lapsed hold expired, so an unswept one never blocks the seat
--    (it runs first because the insert reads its row count);
-- 2. `held`: insert the hold; of racing holds exactly one inserts, the rest hit the partial
--    unique index `reservations_one_live_per_seat` (inferred from the `WHERE`) and get none;
-- 3. the seat row (none if there is no such seat) with the new reservation, if any.
WITH expired AS (
    UPDATE reservations SET status = $4
    WHERE seat_id = $1 AND reservation_hold_lapsed(status, held_until, now())
    RETURNING id),
held AS (
    INSERT INTO reservations (user_id, seat_id, status, amount, held_until)
    SELECT $2, s.id, $5, s.price, now() + make_interval(secs => $3)
    FROM seats s WHERE s.id = $1 AND (SELECT count(*) FROM expired) >= 0
    ON CONFLICT (seat_id) WHERE reservation_is_live(status) DO NOTHING
    RETURNING id, amount, held_until)
SELECT s.id AS seat_id, s.seat_no, s.schedule_id, held.id, held.amount, held.held_until
FROM seats s LEFT JOIN held ON true
WHERE s.id = $1
