-- Ends a user's turn or place (a confirmed payment, or the user leaving) and gives the slot to
-- the next in line: ARGV[4] the user id, ARGV[5] the token. Returns {tally, ended}, ended 1 when
-- the token was this user's live token.
local user, token = ARGV[4], ARGV[5]
if redis.call('HGET', owner_key, token) ~= user then
  return {tally(), 0}
end
forget(token)
settle()
return {tally(), 1}
