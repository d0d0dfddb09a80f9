DROP TRIGGER outbox_fan_out ON outbox;
DROP FUNCTION outbox_fan_out();
DROP TABLE outbox_deliveries;
DROP TABLE outbox_destinations;
DROP TABLE outbox;
