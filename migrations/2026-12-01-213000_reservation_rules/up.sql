-- Each rule about a reservation's state, in one place that every query uses. The functions are
-- single-expression SQL functions, which PostgreSQL inlines: a query that calls one plans
-- exactly as if the expression were written out, so partial-index matching and
-- `ON CONFLICT ... WHERE` inference see through them. They are IMMUTABLE and take the moment
-- to judge at (`now()` at the call site) as an argument.
--
-- In SQL, reservation states are spelled here and in the `reservations.status` CHECK only;
-- in Rust, in `domain::ReservationStatus`. A test holds the two to each other.
--
-- Changing one of these functions changes what `reservations_one_live_per_seat` means:
-- a later migration that does so must rebuild that index in the same step.

-- The reservation occupies its seat as far as uniqueness goes: it is held (even past its
-- hold, until marked expired) or confirmed. The predicate of `reservations_one_live_per_seat`.
CREATE FUNCTION reservation_is_live(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN status IN ('held', 'confirmed');

-- The index, rebuilt on the function (same columns, same predicate once inlined), so the
-- live set is written once. The new index is built before the old one goes, so no moment is
-- without the constraint.
CREATE UNIQUE INDEX reservations_one_live_per_seat_new
    ON reservations (seat_id) WHERE reservation_is_live(status);
DROP INDEX reservations_one_live_per_seat;
ALTER INDEX reservations_one_live_per_seat_new RENAME TO reservations_one_live_per_seat;

-- Held and still within its hold at `at`: payable, and the seat shows as held.
CREATE FUNCTION reservation_hold_active(status text, held_until timestamptz, at timestamptz)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN status = 'held' AND held_until > at;

-- Held and past its hold at `at`: reads as expired, and may be marked so.
CREATE FUNCTION reservation_hold_lapsed(status text, held_until timestamptz, at timestamptz)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN status = 'held' AND held_until <= at;

-- The seat is taken at `at`: sold, or held within its hold.
CREATE FUNCTION reservation_takes_seat(status text, held_until timestamptz, at timestamptz)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN status = 'confirmed' OR reservation_hold_active(status, held_until, at);

-- The state a reader sees at `at`: a lapsed hold reads as expired before it is marked so.
CREATE FUNCTION reservation_status_at(status text, held_until timestamptz, at timestamptz)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN reservation_hold_lapsed(status, held_until, at) THEN 'expired'
                ELSE status END;

-- A seat's state at `at` from its live reservation (NULLs when it has none): `sold`, `held`
-- or `available`.
CREATE FUNCTION seat_state_at(status text, held_until timestamptz, at timestamptz)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN status = 'confirmed' THEN 'sold'
                WHEN reservation_hold_active(status, held_until, at) THEN 'held'
                ELSE 'available' END;

-- The JSON object a reservation event carries (the data platform's contract: add no key,
-- rename none). Times are RFC 3339 in UTC with microseconds. The one builder of it: the
-- payment statement and the cancellation both call it.
CREATE FUNCTION reservation_event_payload(
    event_id uuid, event_type text, occurred_at timestamptz, reservation_id bigint,
    user_id bigint, seat_id bigint, seat_no integer, schedule_id bigint, concert_id bigint,
    amount bigint, paid_at timestamptz)
    RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN jsonb_build_object(
        'event_id', event_id, 'event_type', event_type,
        'occurred_at', to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'reservation_id', reservation_id, 'user_id', user_id, 'seat_id', seat_id,
        'seat_no', seat_no, 'schedule_id', schedule_id, 'concert_id', concert_id,
        'amount', amount,
        'paid_at', to_char(paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
