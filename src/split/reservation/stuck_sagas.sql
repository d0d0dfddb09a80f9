-- Binds: $1 paying saga state, $2 timeout seconds.
--
-- Sagas still paying whose hold is over, or which got no answer within the timeout, oldest
-- first, skipping those another process is resolving or a reply is applying right now (every
-- transition locks the reservation first, then changes its saga).
SELECT g.reservation_id, r.held_until <= now() AS hold_lapsed
FROM payment_sagas g JOIN reservations r ON r.id = g.reservation_id
WHERE g.state = $1
  AND (r.held_until <= now() OR g.started_at <= now() - make_interval(secs => $2))
ORDER BY g.started_at
LIMIT 100
FOR UPDATE OF r SKIP LOCKED
