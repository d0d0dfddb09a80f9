-- Binds: $1 reservation id, $2 payment id, $3 balance after, $4 event id, $5 aggregate type,
-- $6 event type, $7 confirmed reservation state, $8 confirmed saga state.
--
-- The saga's happy end, in one statement: the reservation confirmed with payment-svc's
-- payment, the saga marked confirmed with the balance the payment left, and the
-- `reservation.confirmed` event for the data platform, built by `reservation_event_payload`
-- as the monolith builds it.
WITH confirmed AS (
    UPDATE reservations SET status = $7, confirmed_at = now(), payment_id = $2
    WHERE id = $1
    RETURNING id, user_id, seat_id, amount),
saga AS (
    UPDATE payment_sagas SET state = $8, payment_id = $2, balance_after = $3, updated_at = now()
    WHERE reservation_id = $1),
event AS (
    INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, payload)
    SELECT $4, $5, c.id, $6,
           reservation_event_payload($4, $6, now(), c.id, c.user_id, c.seat_id, s.seat_no,
                                     s.schedule_id, sc.concert_id, c.amount, now())
    FROM confirmed c JOIN seats s ON s.id = c.seat_id JOIN schedules sc ON sc.id = s.schedule_id)
SELECT count(*) AS confirmed FROM confirmed
