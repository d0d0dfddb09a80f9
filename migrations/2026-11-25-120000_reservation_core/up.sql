-- The reservation core. Every invariant the code relies on is also a constraint here,
-- so a race the code misses becomes a constraint violation (mapped to 409), never bad data.

CREATE TABLE users (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- SHA-256 of the bearer token; the token itself is shown once and never stored.
    token_hash  bytea       NOT NULL UNIQUE,
    balance     bigint      NOT NULL DEFAULT 0 CHECK (balance >= 0),
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

-- A seat's state is derived from the reservation that holds it: `confirmed` means sold,
-- `held` with held_until in the future means held, anything else leaves the seat available.
CREATE TABLE reservations (
    id           bigserial   PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id),
    seat_id      bigint      NOT NULL REFERENCES seats (id),
    status       text        NOT NULL CHECK (status IN ('held', 'confirmed', 'expired', 'cancelled')),
    amount       bigint      NOT NULL CHECK (amount > 0),
    held_until   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz,
    cancelled_at timestamptz,
    CHECK (status <> 'confirmed' OR confirmed_at IS NOT NULL)
);
-- One live reservation per seat: two racing holds cannot both succeed.
CREATE UNIQUE INDEX reservations_one_live_per_seat
    ON reservations (seat_id) WHERE status IN ('held', 'confirmed');
CREATE INDEX reservations_user_id ON reservations (user_id);

CREATE TABLE payments (
    id              bigserial   PRIMARY KEY,
    -- One payment per reservation, whatever the code does.
    reservation_id  bigint      NOT NULL UNIQUE REFERENCES reservations (id),
    user_id         bigint      NOT NULL REFERENCES users (id),
    amount          bigint      NOT NULL CHECK (amount > 0),
    balance_after   bigint      NOT NULL CHECK (balance_after >= 0),
    idempotency_key text        CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    status          text        NOT NULL DEFAULT 'completed' CHECK (status IN ('completed', 'refunded')),
    paid_at         timestamptz NOT NULL DEFAULT now(),
    refunded_at     timestamptz,
    UNIQUE (user_id, idempotency_key)
);

-- Every change of a balance, with the balance it left; sum(delta) per user = users.balance.
CREATE TABLE point_ledger (
    id            bigserial   PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES users (id),
    delta         bigint      NOT NULL CHECK (delta <> 0),
    reason        text        NOT NULL CHECK (reason IN ('charge', 'payment', 'refund')),
    payment_id    bigint      REFERENCES payments (id),
    balance_after bigint      NOT NULL CHECK (balance_after >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((reason = 'charge') = (payment_id IS NULL))
);
CREATE INDEX point_ledger_user_id ON point_ledger (user_id);
