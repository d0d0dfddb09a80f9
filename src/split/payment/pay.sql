-- Binds: $1 user id, $2 amount, $3 reservation id, $4 payment key.
--
-- Debits the amount if the balance covers it, then writes the payment and its ledger row; each
-- step runs only if the one before produced a row, so nothing is written when the balance is
-- short (and no row comes back).
WITH debited AS (
    UPDATE balances SET balance = balance - $2, updated_at = now()
    WHERE user_id = $1 AND balance >= $2
    RETURNING user_id, balance),
paid AS (
    INSERT INTO payments (reservation_id, user_id, amount, balance_after, payment_key)
    SELECT $3, user_id, $2, balance, $4 FROM debited
    RETURNING id, user_id, amount, balance_after, status),
ledger AS (
    INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after)
    SELECT user_id, -amount, 'payment', id, balance_after FROM paid)
SELECT id, amount, balance_after, status FROM paid
