-- Binds: $1 reservation id, $2 event id, $3 aggregate type, $4 event type, $5 trace context.
--
-- The `reservation.cancelled` event of a cancelled confirmed reservation, for the data
-- platform: the monolith's payload, its payment time the confirmation's.
INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, payload, trace_context)
SELECT $2, $3, r.id, $4,
       reservation_event_payload($2, $4, r.cancelled_at, r.id, r.user_id, r.seat_id, s.seat_no,
                                 s.schedule_id, sc.concert_id, r.amount, r.confirmed_at),
       $5
FROM reservations r JOIN seats s ON s.id = r.seat_id JOIN schedules sc ON sc.id = s.schedule_id
WHERE r.id = $1
