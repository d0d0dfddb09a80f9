-- Binds: $1 outbox id (NULL for every dead delivery).
--
-- Dead deliveries back to pending with fresh attempts, due now and unleased.
UPDATE outbox_deliveries
SET status = 'pending', attempts = 0, next_attempt_at = now(),
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE status = 'dead' AND ($1::bigint IS NULL OR outbox_id = $1)
