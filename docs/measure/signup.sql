-- signup.sql: users::create_user, one autocommit INSERT.
-- Measured: the INSERT. The token is unique per iteration (the service uses ct_ + two random
-- UUIDs); three random 19-digit numbers stand in for them.
\set a random(1000000000000000000, 9223372036854775806)
\set b random(1000000000000000000, 9223372036854775806)
\set c random(1000000000000000000, 9223372036854775806)
INSERT INTO users (name, token_hash) VALUES ('bench user', sha256(convert_to('ct_:a:b:c', 'UTF8'))) -- create_user
RETURNING id, name;
