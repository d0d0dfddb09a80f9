-- The transactional outbox. The payment transaction inserts one `outbox` row; a trigger fans it
-- out into one `outbox_deliveries` row per registered destination (each with its own retry
-- state), inside the payment's transaction, so an event exists exactly when its payment
-- committed. Relays are woken by a NOTIFY the writer sends right after its commit (see
-- `outbox::wake_relays`), not from here: a NOTIFY inside the payment would hold PostgreSQL's
-- global notify lock through the payment's WAL flush and serialise every payment's commit.

CREATE TABLE outbox (
    id             bigserial   PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    aggregate_type text        NOT NULL,
    aggregate_id   bigint      NOT NULL,
    event_type     text        NOT NULL,
    payload        jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    -- W3C traceparent of the request that wrote the event, forwarded with every delivery.
    trace_context  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- NULL until every destination has acknowledged the event.
    sent_at        timestamptz
);
-- Retention deletes by sent_at; unsent rows never enter this index.
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- Where events go. Relays register the destinations they are configured with.
CREATE TABLE outbox_destinations (
    name       text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO outbox_destinations (name) VALUES ('data_platform'), ('notification');

CREATE TABLE outbox_deliveries (
    outbox_id        bigint      NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    destination      text        NOT NULL REFERENCES outbox_destinations (name),
    -- Copied from the event so per-aggregate ordering needs no join.
    aggregate_type   text        NOT NULL,
    aggregate_id     bigint      NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    -- A claim is a lease: who holds it, a fencing token, and when it lapses.
    lease_owner      text,
    lease_token      uuid,
    lease_expires_at timestamptz,
    sent_at          timestamptz,
    PRIMARY KEY (outbox_id, destination),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
) WITH (fillfactor = 80);
-- fillfactor leaves room on each page, so taking a lease (no indexed column changes) can be a
-- HOT update that touches no index.
-- The claim walks pending rows oldest first and stops at its LIMIT; sent rows (millions of
-- them before retention deletes them) are not in this index at all.
CREATE INDEX outbox_deliveries_due
    ON outbox_deliveries (destination, outbox_id) WHERE status = 'pending';
-- "Is an earlier event of this aggregate still unsent?" (per-aggregate ordering).
CREATE INDEX outbox_deliveries_unsent_by_aggregate
    ON outbox_deliveries (destination, aggregate_type, aggregate_id, outbox_id) WHERE status <> 'sent';

CREATE FUNCTION outbox_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_deliveries (outbox_id, destination, aggregate_type, aggregate_id)
    SELECT NEW.id, d.name, NEW.aggregate_type, NEW.aggregate_id FROM outbox_destinations d;
    RETURN NEW;
END;
$$;
CREATE TRIGGER outbox_fan_out AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_fan_out();
