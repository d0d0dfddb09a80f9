CREATE OR REPLACE FUNCTION outbox_expect_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.pending_deliveries := (SELECT count(*) FROM outbox_destinations);
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
    SELECT NEW.id, d.name, NEW.aggregate_type, NEW.aggregate_id FROM outbox_destinations d;
    GET DIAGNOSTICS fanned = ROW_COUNT;
    IF fanned <> NEW.pending_deliveries THEN
        UPDATE outbox
        SET pending_deliveries = fanned, sent_at = CASE WHEN fanned = 0 THEN now() END
        WHERE id = NEW.id;
    END IF;
    RETURN NEW;
END;
$$;

ALTER TABLE outbox_destinations DROP COLUMN event_types;
