-- Binds: $1 most rows listed.
--
-- The dead deliveries, oldest first, each with how many later events of its aggregate wait
-- behind it for the same destination.
SELECT d.outbox_id, d.destination, o.event_id, o.event_type, d.aggregate_type, d.aggregate_id,
       d.attempts, d.last_error,
       (SELECT count(*) FROM outbox_deliveries later
        WHERE later.destination = d.destination AND later.aggregate_type = d.aggregate_type
          AND later.aggregate_id = d.aggregate_id AND later.outbox_id > d.outbox_id
          AND later.status = 'pending') AS blocked_events
FROM outbox_deliveries d
JOIN outbox o ON o.id = d.outbox_id
WHERE d.status = 'dead'
ORDER BY d.outbox_id
LIMIT $1
