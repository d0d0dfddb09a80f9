-- reservation-svc's own tables: users and their tokens, the catalog, the reservations and the
-- state of each payment saga. Balances and payments are payment-svc's; no foreign key crosses
-- to its database. Every invariant the code relies on is also a constraint here, as in the
-- monolith's schema.

CREATE TABLE users (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- SHA-256 of the bearer token; the token itself is shown once and never stored.
    token_hash  bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE concerts (
    id          bigserial   PRIMARY KEY,
    title       text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE schedules (
    id          bigserial   PRIMARY KEY,
    concert_id  bigint      NOT NULL REFERENCES concerts (id),
    starts_at   timestamptz NOT NULL,
    seat_count  integer     NOT NULL CHECK (seat_count BETWEEN 1 AND 1000),
    price       bigint      NOT NULL CHECK (price > 0)
);
CREATE INDEX schedules_concert_id ON schedules (concert_id);

CREATE TABLE seats (
    id          bigserial   PRIMARY KEY,
    schedule_id bigint      NOT NULL REFERENCES schedules (id),
    seat_no     integer     NOT NULL CHECK (seat_no >= 1),
    price       bigint      NOT NULL CHECK (price > 0),
    UNIQUE (schedule_id, seat_no)
);

-- `payment_pending`: a payment was asked of payment-svc and has not been answered; the seat
-- stays taken until `held_until`, as for a hold. `payment_failed`: payment-svc declined it
-- (too few points); the seat is free again. The states are spelled in Rust only in
-- `split::reservation::ReservationState`, and a test holds the two to each other.
CREATE TABLE reservations (
    id            bigserial   PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES users (id),
    seat_id       bigint      NOT NULL REFERENCES seats (id),
    status        text        NOT NULL CHECK (status IN
        ('held', 'payment_pending', 'confirmed', 'payment_failed', 'expired', 'cancelled')),
    amount        bigint      NOT NULL CHECK (amount > 0),
    held_until    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at  timestamptz,
    cancelled_at  timestamptz,
    -- payment-svc's payment, once it has reported one.
    payment_id    bigint,
    CHECK (status <> 'confirmed' OR (confirmed_at IS NOT NULL AND payment_id IS NOT NULL))
);
CREATE INDEX reservations_user_id ON reservations (user_id);

-- The rules, as in the monolith's `reservation_rules` migration, with the saga's states: a
-- reservation waiting for its payment takes its seat like a hold, until the hold's end.
CREATE FUNCTION reservation_is_live(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN status IN ('held', 'payment_pending', 'confirmed');

CREATE UNIQUE INDEX reservations_one_live_per_seat
    ON reservations (seat_id) WHERE reservation_is_live(status);

CREATE FUNCTION reservation_hold_active(status text, held_until timestamptz, at timestamptz)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN status IN ('held', 'payment_pending') AND held_until > at;

CREATE FUNCTION reservation_hold_lapsed(status text, held_until timestamptz, at timestamptz)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN status IN ('held', 'payment_pending') AND held_until <= at;

CREATE FUNCTION reservation_takes_seat(status text, held_until timestamptz, at timestamptz)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN status = 'confirmed' OR reservation_hold_active(status, held_until, at);

CREATE FUNCTION reservation_status_at(status text, held_until timestamptz, at timestamptz)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN reservation_hold_lapsed(status, held_until, at) THEN 'expired'
                ELSE status END;

CREATE FUNCTION seat_state_at(status text, held_until timestamptz, at timestamptz)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN status = 'confirmed' THEN 'sold'
                WHEN reservation_hold_active(status, held_until, at) THEN 'held'
                ELSE 'available' END;

-- The reservation event's JSON, the data platform's contract, exactly as the monolith builds it.
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

-- One payment saga per reservation, orchestrated here (`split::reservation::saga`): where it
-- is, when it started (a saga that stops moving is resolved after `SAGA_TIMEOUT_SECONDS`),
-- the client's Idempotency-Key, and what payment-svc reported.
CREATE TABLE payment_sagas (
    reservation_id  bigint      PRIMARY KEY REFERENCES reservations (id),
    user_id         bigint      NOT NULL REFERENCES users (id),
    state           text        NOT NULL CHECK (state IN
        ('paying', 'confirmed', 'declined', 'compensating', 'compensated')),
    idempotency_key text        CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    started_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- payment.completed: the payment and the balance it left.
    payment_id      bigint,
    balance_after   bigint,
    -- payment.declined's reason.
    declined_reason text,
    -- payment.refunded: what came back, and the balance it left (NULL when nothing had moved).
    refunded_amount bigint,
    refund_balance  bigint,
    -- How a saga that stopped moving was resolved, if it was.
    resolved_by     text        CHECK (resolved_by IN ('timeout', 'hold_lapsed')),
    UNIQUE (user_id, idempotency_key)
);
-- The sweeper's walk: sagas still waiting for their payment.
CREATE INDEX payment_sagas_paying ON payment_sagas (started_at) WHERE state = 'paying';
