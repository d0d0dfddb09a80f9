-- payment-svc's own tables: the balances, every change of them, and the payments. It knows users
-- only by the id reservation-svc gives them, and reservations only by their id: no foreign key
-- crosses to the other service's database.

CREATE TABLE balances (
    user_id    bigint      PRIMARY KEY,
    balance    bigint      NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments (
    id             bigserial   PRIMARY KEY,
    -- One payment per reservation, however often it is asked for.
    reservation_id bigint      NOT NULL UNIQUE,
    user_id        bigint      NOT NULL REFERENCES balances (user_id),
    amount         bigint      NOT NULL CHECK (amount > 0),
    balance_after  bigint      NOT NULL CHECK (balance_after >= 0),
    -- Derived from the reservation by the requester (`reservation-<id>`).
    payment_key    text        NOT NULL UNIQUE CHECK (char_length(payment_key) BETWEEN 1 AND 255),
    status         text        NOT NULL DEFAULT 'completed' CHECK (status IN ('completed', 'refunded')),
    paid_at        timestamptz NOT NULL DEFAULT now(),
    refunded_at    timestamptz,
    CHECK ((status = 'refunded') = (refunded_at IS NOT NULL))
);

-- A refund asked for a reservation that had no payment yet: a payment requested for it later
-- (a command overtaken by its compensation) is declined, so no money moves for it.
CREATE TABLE voided_reservations (
    reservation_id bigint      PRIMARY KEY,
    voided_at      timestamptz NOT NULL DEFAULT now()
);

-- Every change of a balance, with the balance it left; sum(delta) per user = its balance.
CREATE TABLE point_ledger (
    id            bigserial   PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES balances (user_id),
    delta         bigint      NOT NULL CHECK (delta <> 0),
    reason        text        NOT NULL CHECK (reason IN ('charge', 'payment', 'refund')),
    payment_id    bigint      REFERENCES payments (id),
    balance_after bigint      NOT NULL CHECK (balance_after >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((reason = 'charge') = (payment_id IS NULL))
);
CREATE INDEX point_ledger_user_id ON point_ledger (user_id);

-- payment-svc sends only replies to reservation-svc: the outbox's first migration registers the
-- monolith's data platform and notifier, which no relay of this service serves.
DELETE FROM outbox_destinations WHERE name IN ('data_platform', 'notification');
