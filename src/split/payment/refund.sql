-- Binds: $1 payment id.
--
-- Marks a completed payment refunded, credits its amount back and writes the refund's ledger
-- row, in one statement; returns the balance it left.
WITH refunded AS (
    UPDATE payments SET status = 'refunded', refunded_at = now()
    WHERE id = $1 AND status = 'completed'
    RETURNING id, user_id, amount),
credited AS (
    UPDATE balances b SET balance = b.balance + r.amount, updated_at = now()
    FROM refunded r WHERE b.user_id = r.user_id
    RETURNING b.user_id, b.balance, r.amount, r.id)
INSERT INTO point_ledger (user_id, delta, reason, payment_id, balance_after)
SELECT user_id, amount, 'refund', id, balance FROM credited
RETURNING balance_after AS balance
