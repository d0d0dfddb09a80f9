-- Binds: $1 reservation id, $2 owner's user id (NULL: any owner).
--
-- A reservation with its seat and its payment saga (none before the client pays), the state
-- stored and the one a reader sees now; callers that change it lock the reservation first
-- (`saga::find`).
SELECT r.id AS reservation_id, r.user_id, r.seat_id, s.seat_no, s.schedule_id, r.amount,
       r.held_until, r.status AS stored,
       reservation_status_at(r.status, r.held_until, now()) AS status,
       reservation_hold_active(r.status, r.held_until, now()) AS hold_active,
       g.state AS saga, g.idempotency_key, coalesce(g.payment_id, r.payment_id) AS payment_id,
       g.balance_after, g.declined_reason, g.refunded_amount, g.refund_balance
FROM reservations r
JOIN seats s ON s.id = r.seat_id
LEFT JOIN payment_sagas g ON g.reservation_id = r.id
WHERE r.id = $1 AND ($2::bigint IS NULL OR r.user_id = $2)
