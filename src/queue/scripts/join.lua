-- Joins the line: ARGV[4] the user id, ARGV[5] a fresh token, used only if the user has no
-- live one. A user joins once: asking again refreshes and answers the token they have.
-- Returns {tally, token, status, position, active_until}.
local user = ARGV[4]
local token = redis.call('HGET', token_key, user)
if token and redis.call('ZSCORE', polled_key, token) then
  redis.call('ZADD', polled_key, 'XX', now + waiting_ttl, token)
end
if not token then
  token = ARGV[5]
  local arrival = redis.call('INCR', prefix .. ':arrivals')
  redis.call('ZADD', line_key, arrival, token)
  redis.call('HSET', owner_key, token, user)
  redis.call('HSET', token_key, user, token)
  redis.call('ZADD', waiting_key, arrival, token)
  redis.call('ZADD', polled_key, now + waiting_ttl, token)
  -- Settled above: a free slot now means nobody waits ahead.
  if redis.call('ZCARD', active_key) < limit then
    admit(token)
  end
end
local state = describe(token)
return {tally(), token, state[1], state[2], state[3]}
