-- Restores the earlier shape. Deliveries deleted on acknowledgement are not recreated: an
-- event with `sent_at` set simply has no delivery rows, which the earlier relay also reads
-- as nothing left to send.
CREATE OR REPLACE FUNCTION outbox_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_deliveries (outbox_id, destination, aggregate_type, aggregate_id)
    SELECT NEW.id, d.name, NEW.aggregate_type, NEW.aggregate_id FROM outbox_destinations d;
    RETURN NEW;
END;
$$;
DROP TRIGGER outbox_expect_deliveries ON outbox;
DROP FUNCTION outbox_expect_deliveries();

ALTER TABLE outbox RESET (fillfactor);
DROP INDEX outbox_created_at;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
ALTER TABLE outbox DROP COLUMN pending_deliveries;

ALTER TABLE outbox_deliveries SET (fillfactor = 80);
DROP INDEX outbox_deliveries_by_aggregate;
CREATE INDEX outbox_deliveries_unsent_by_aggregate
    ON outbox_deliveries (destination, aggregate_type, aggregate_id, outbox_id) WHERE status <> 'sent';
ALTER TABLE outbox_deliveries DROP CONSTRAINT outbox_deliveries_status_check;
ALTER TABLE outbox_deliveries
    ADD CONSTRAINT outbox_deliveries_status_check CHECK (status IN ('pending', 'sent', 'dead'));
ALTER TABLE outbox_deliveries ADD COLUMN sent_at timestamptz;
ALTER TABLE outbox_deliveries ADD CHECK ((status = 'sent') = (sent_at IS NOT NULL));
