DROP TABLE point_ledger;
DROP TABLE payments;
DROP TABLE reservations;
DROP TABLE seats;
DROP TABLE schedules;
DROP TABLE concerts;
DROP TABLE users;
