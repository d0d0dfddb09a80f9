-- The queue's size for /metrics, read together and changing nothing: {waiting, active,
-- admitted over the ten whole seconds before now}. KEYS[1] the queue's key prefix.
local prefix = KEYS[1]
local second = tonumber(redis.call('TIME')[1])
local admitted = 0
for s = second - 10, second - 1 do
  admitted = admitted + tonumber(redis.call('GET', prefix .. ':admitted:' .. s) or '0')
end
return {redis.call('ZCARD', prefix .. ':waiting'), redis.call('ZCARD', prefix .. ':active'), admitted}
