-- Binds: $1 most rows returned, $2 newest events scanned.
--
-- The newest events every destination acknowledged, among the last $2 by id (`sent_at` is
-- not indexed, so the walk back along the primary key is bounded).
SELECT id AS outbox_id, event_id, event_type, aggregate_type, aggregate_id, created_at, sent_at
FROM outbox
WHERE sent_at IS NOT NULL AND id > (SELECT coalesce(max(id), 0) - $2 FROM outbox)
ORDER BY id DESC
LIMIT $1
