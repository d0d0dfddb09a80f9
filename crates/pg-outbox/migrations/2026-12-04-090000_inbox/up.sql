-- The consumer half of the pattern: the events a consumer has acted on. A consumer records an
-- event's id here in the same transaction as its own effect, so a message delivered twice
-- (at-least-once delivery does that) changes nothing the second time.
CREATE TABLE inbox (
    -- Who consumed it: several consumers of one database each keep their own record.
    consumer    text        NOT NULL CHECK (char_length(consumer) BETWEEN 1 AND 200),
    event_id    uuid        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
-- Forgetting old ids (`inbox::forget_received_before`) walks this instead of the whole table.
CREATE INDEX inbox_received_at ON inbox (received_at);
