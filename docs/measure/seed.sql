-- seed.sql: the data every script runs on. Apply after migrations/*/up.sql.
-- 1 concert, 4,000 schedules x 50 seats = 200,000 seats, 1,000 users with 10^9 points each.
-- The first two lines let concert-api and outbox-relay (which run pending migrations at start)
-- use this database too.
CREATE TABLE __diesel_schema_migrations (version varchar(50) PRIMARY KEY, run_on timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP);
INSERT INTO __diesel_schema_migrations (version) VALUES ('20261125120000'), ('20261125120100');
INSERT INTO concerts (title) VALUES ('Measure');
INSERT INTO schedules (concert_id, starts_at, seat_count, price)
  SELECT 1, now() + make_interval(days => g), 50, 1000 FROM generate_series(1, 4000) g;
INSERT INTO seats (schedule_id, seat_no, price)
  SELECT s.id, n, s.price FROM schedules s, generate_series(1, 50) n;
INSERT INTO users (name, token_hash, balance)
  SELECT 'user' || g, sha256(convert_to('tok' || g, 'UTF8')), 1000000000 FROM generate_series(1, 1000) g;
INSERT INTO point_ledger (user_id, delta, reason, balance_after)
  SELECT id, 1000000000, 'charge', 1000000000 FROM users;
-- The only helper: each nextval is a seat id no earlier iteration has used.
CREATE SEQUENCE bench_seat;
VACUUM ANALYZE;
