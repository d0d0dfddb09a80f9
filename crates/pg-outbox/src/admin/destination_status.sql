-- Binds: none.
--
-- Per registered destination, its deliveries by state (a destination with none shows zeros)
-- and the age of its oldest pending event.
SELECT dest.name AS destination,
       count(d.outbox_id) FILTER (WHERE d.status = 'pending') AS pending,
       count(d.outbox_id) FILTER (WHERE d.status = 'pending' AND d.next_attempt_at <= now()
           AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= now())) AS due,
       count(d.outbox_id) FILTER (WHERE d.status = 'pending' AND d.last_error IS NOT NULL) AS in_retry,
       count(d.outbox_id) FILTER (WHERE d.status = 'pending' AND d.lease_expires_at > now()) AS in_flight,
       count(d.outbox_id) FILTER (WHERE d.status = 'dead') AS dead,
       extract(epoch FROM now() - min(o.created_at) FILTER (WHERE d.status = 'pending'))::float8
           AS oldest_pending_age_seconds
FROM outbox_destinations dest
LEFT JOIN outbox_deliveries d ON d.destination = dest.name
LEFT JOIN outbox o ON o.id = d.outbox_id
GROUP BY dest.name
ORDER BY dest.name
