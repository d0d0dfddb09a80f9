-- hold.sql: reservations::hold_seat, one autocommit statement (HOLD_TTL_SECONDS = 300).
-- Measured: the hold statement. The nextval before it only picks an unused seat, so every hold
-- wins (run.sh checks that at the end).
\set uid random(1, 1000)
SELECT nextval('bench_seat') AS seat \gset
WITH expired AS ( -- hold_seat
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
FROM seats s LEFT JOIN held ON true WHERE s.id = :seat;
