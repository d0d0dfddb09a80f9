-- Binds: $1 reservation id, $2 event id, $3 aggregate type, $4 event type, $5 user id,
-- $6 seat id, $7 seat number, $8 schedule id, $9 concert id, $10 amount, $11 trace context.
--
-- A cancelled reservation's payment is marked refunded and its `reservation.cancelled` event
-- written in the same statement, the payload built by `reservation_event_payload` (the one
-- builder of a reservation event's JSON), occurring when the refund did, paid when the payment
-- was. No row (and no event) when the reservation has no completed payment.
WITH refunded AS (
    UPDATE payments SET status = 'refunded', refunded_at = now()
    WHERE reservation_id = $1 AND status = 'completed'
    RETURNING id, paid_at, refunded_at),
event AS (
    INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, payload, trace_context)
    SELECT $2, $3, $1, $4,
           reservation_event_payload($2, $4, r.refunded_at, $1, $5, $6, $7, $8, $9, $10,
                                     r.paid_at),
           $11
    FROM refunded r)
SELECT id AS payment_id FROM refunded
