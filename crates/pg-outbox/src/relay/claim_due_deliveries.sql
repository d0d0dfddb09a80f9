-- Binds: $1 destination, $2 limit, $3 owner, $4 token, $5 lease seconds.
--
-- `due`: the oldest pending, due, unleased deliveries of one destination whose aggregate owes
-- this destination no earlier event, locked with SKIP LOCKED so relays claim side by side;
-- `leased`: lease them (no indexed column changes, so a HOT update); then each with its event.
--
-- The "earlier event owed" check is meant to be one probe of `outbox_deliveries_by_aggregate`
-- per candidate. Statistics taken while nothing was owed (autovacuum's usual view of a healthy
-- outbox) make the planner expect one row, and it may then rescan every owed delivery for each
-- candidate: a burst of 5,000 took 1.3 s per claim instead of 15 ms, and 100,000 stalled a claim
-- for minutes. `OFFSET 0` keeps the check a subplan, which bounds that to the deliveries older
-- than the candidate (324 ms for the same burst); the relay's maintenance refreshes statistics
-- that have fallen that far behind within a second (`store::refresh_stale_statistics`).
WITH due AS (
    SELECT d.outbox_id FROM outbox_deliveries d
    WHERE d.destination = $1 AND d.status = 'pending' AND d.next_attempt_at <= now()
      AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= now())
      AND NOT EXISTS (
          SELECT 1 FROM outbox_deliveries earlier
          WHERE earlier.destination = d.destination
            AND earlier.aggregate_type = d.aggregate_type
            AND earlier.aggregate_id = d.aggregate_id
            AND earlier.outbox_id < d.outbox_id
          OFFSET 0)
    ORDER BY d.outbox_id
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED),
leased AS (
    UPDATE outbox_deliveries d
    SET lease_owner = $3, lease_token = $4, attempts = d.attempts + 1,
        lease_expires_at = now() + make_interval(secs => $5)
    WHERE d.destination = $1 AND d.outbox_id = ANY(ARRAY(SELECT outbox_id FROM due))
    RETURNING d.outbox_id, d.attempts)
SELECT leased.outbox_id, leased.attempts, o.event_id, o.event_type, o.aggregate_id,
       o.payload, o.trace_context, o.created_at
FROM leased CROSS JOIN LATERAL (
    SELECT * FROM outbox WHERE outbox.id = leased.outbox_id LIMIT 1) o
ORDER BY leased.outbox_id
