DROP FUNCTION reservation_event_payload(uuid, text, timestamptz, bigint, bigint, bigint, integer, bigint, bigint, bigint, timestamptz);
DROP FUNCTION seat_state_at(text, timestamptz, timestamptz);
DROP FUNCTION reservation_status_at(text, timestamptz, timestamptz);
DROP FUNCTION reservation_takes_seat(text, timestamptz, timestamptz);
DROP FUNCTION reservation_hold_lapsed(text, timestamptz, timestamptz);
DROP FUNCTION reservation_hold_active(text, timestamptz, timestamptz);
CREATE UNIQUE INDEX reservations_one_live_per_seat_old
    ON reservations (seat_id) WHERE status IN ('held', 'confirmed');
DROP INDEX reservations_one_live_per_seat;
ALTER INDEX reservations_one_live_per_seat_old RENAME TO reservations_one_live_per_seat;
DROP FUNCTION reservation_is_live(text);
