-- A token's state for its owner: ARGV[4] the user id, ARGV[5] the token, ARGV[6] '1' when the
-- call counts as a poll that keeps a waiting place. Returns {tally, status, position,
-- active_until}, status `unknown` for a token that is not this user's (or never was anyone's).
local user, token, poll = ARGV[4], ARGV[5], ARGV[6] == '1'
local owner = redis.call('HGET', owner_key, token)
if owner then
  if owner ~= user then
    return {tally(), 'unknown', 0, 0}
  end
  if poll and redis.call('ZSCORE', polled_key, token) then
    redis.call('ZADD', polled_key, 'XX', now + waiting_ttl, token)
  end
  local state = describe(token)
  return {tally(), state[1], state[2], state[3]}
end
if redis.call('GET', prefix .. ':gone:' .. token) == user then
  return {tally(), 'expired', 0, 0}
end
return {tally(), 'unknown', 0, 0}
