-- A destination may take only some event types: a service whose outbox carries both commands
-- for another service and events for a data platform routes each to its receiver. NULL means
-- every event, as before; the fan-out and the count of deliveries owed apply the same filter.
ALTER TABLE outbox_destinations ADD COLUMN event_types text[]
    CHECK (event_types IS NULL OR cardinality(event_types) > 0);

CREATE OR REPLACE FUNCTION outbox_expect_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.pending_deliveries := (
        SELECT count(*) FROM outbox_destinations d
        WHERE d.event_types IS NULL OR NEW.event_type = ANY (d.event_types));
    IF NEW.pending_deliveries = 0 THEN
        NEW.sent_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION outbox_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    fanned integer;
BEGIN
    INSERT INTO outbox_deliveries (outbox_id, destination, aggregate_type, aggregate_id)
    SELECT NEW.id, d.name, NEW.aggregate_type, NEW.aggregate_id FROM outbox_destinations d
    WHERE d.event_types IS NULL OR NEW.event_type = ANY (d.event_types);
    GET DIAGNOSTICS fanned = ROW_COUNT;
    IF fanned <> NEW.pending_deliveries THEN
        UPDATE outbox
        SET pending_deliveries = fanned, sent_at = CASE WHEN fanned = 0 THEN now() END
        WHERE id = NEW.id;
    END IF;
    RETURN NEW;
END;
$$;
