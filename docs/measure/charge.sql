-- charge.sql: points::charge_points, which runs credit_points: one autocommit statement.
-- A random user of the 1,000. Measured: the statement.
\set uid random(1, :users)
WITH credited AS ( -- credit_points
    UPDATE users SET balance = balance + 1000 WHERE id = :uid RETURNING id, balance)
INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after)
SELECT id, 1000, 'charge', NULL, balance FROM credited
RETURNING balance_after AS balance;
