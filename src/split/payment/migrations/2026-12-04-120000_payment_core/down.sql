DROP TABLE point_ledger;
DROP TABLE voided_reservations;
DROP TABLE payments;
DROP TABLE balances;
