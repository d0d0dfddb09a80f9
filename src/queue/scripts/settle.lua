-- The start of every queue script but `counts`: names the keys, reads Redis's clock and settles
-- the queue (ends lapsed turns and unpolled places, then admits first come first served), so
-- whatever the script then reads or writes sees the queue as it is at `now`. Redis runs a script
-- alone, so no other client ever sees the active set over the limit or a free slot unfilled.
--
-- KEYS[1]  the queue's key prefix; the script names its keys from it, so the queue runs on one
--          Redis server (5 or newer: the script reads Redis's clock), not a cluster
-- ARGV[1]  QUEUE_ACTIVE_LIMIT
-- ARGV[2]  QUEUE_ACTIVE_TTL_SECONDS, in milliseconds
-- ARGV[3]  QUEUE_TOKEN_TTL_SECONDS, in milliseconds
local prefix = KEYS[1]
local line_key = prefix .. ':line'       -- every live token, by arrival number
local waiting_key = prefix .. ':waiting' -- the tokens still waiting, by arrival number
local active_key = prefix .. ':active'   -- the admitted tokens, by the millisecond their turn ends
local polled_key = prefix .. ':polled'   -- the waiting tokens, by the millisecond they lose their place
local owner_key = prefix .. ':owner'     -- token -> user id
local token_key = prefix .. ':token'     -- user id -> token
local limit = tonumber(ARGV[1])
local active_ttl = tonumber(ARGV[2])
local waiting_ttl = tonumber(ARGV[3])
-- How long an ended token is still answered as `expired` rather than unknown.
local gone_ttl = 86400000
-- Tokens ended per script at most, so one script never stalls Redis after a long quiet spell;
-- the next one (at most a quarter second later) ends the rest.
local batch = 1000

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local admitted, ended_turns, lost_places = 0, 0, 0

local function forget(token)
  local user = redis.call('HGET', owner_key, token)
  redis.call('ZREM', line_key, token)
  redis.call('ZREM', waiting_key, token)
  redis.call('ZREM', active_key, token)
  redis.call('ZREM', polled_key, token)
  redis.call('HDEL', owner_key, token)
  if user then
    if redis.call('HGET', token_key, user) == token then
      redis.call('HDEL', token_key, user)
    end
    redis.call('SET', prefix .. ':gone:' .. token, user, 'PX', gone_ttl)
  end
end

local function admit(token)
  redis.call('ZREM', waiting_key, token)
  redis.call('ZREM', polled_key, token)
  redis.call('ZADD', active_key, now + active_ttl, token)
  admitted = admitted + 1
end

local function settle()
  for _, token in ipairs(redis.call('ZRANGEBYSCORE', active_key, '-inf', now, 'LIMIT', 0, batch)) do
    forget(token)
    ended_turns = ended_turns + 1
  end
  for _, token in ipairs(redis.call('ZRANGEBYSCORE', polled_key, '-inf', now, 'LIMIT', 0, batch)) do
    forget(token)
    lost_places = lost_places + 1
  end
  -- Fill the free slots from the front of the line. A place that lapsed beyond this script's
  -- batch is ended here rather than admitted.
  local free = limit - redis.call('ZCARD', active_key)
  local looked = 0
  while free > 0 and looked < batch do
    local first = redis.call('ZRANGE', waiting_key, 0, 0)[1]
    if not first then
      break
    end
    looked = looked + 1
    local deadline = tonumber(redis.call('ZSCORE', polled_key, first) or '0')
    if deadline <= now then
      forget(first)
      lost_places = lost_places + 1
    else
      admit(first)
      free = free - 1
    end
  end
end

-- What the script did, for the caller's metrics; the per-second admission count is shared by
-- every API process.
local function tally()
  if admitted > 0 then
    local second = prefix .. ':admitted:' .. math.floor(now / 1000)
    redis.call('INCRBY', second, admitted)
    redis.call('EXPIRE', second, 120)
  end
  return {admitted, ended_turns, lost_places}
end

-- A live token's state: {status, position, active_until}; position counts from the front of
-- the line, active users included.
local function describe(token)
  local rank = redis.call('ZRANK', line_key, token)
  local active_until = redis.call('ZSCORE', active_key, token)
  if active_until then
    return {'active', rank + 1, tonumber(active_until)}
  end
  return {'waiting', rank + 1, 0}
end

settle()
