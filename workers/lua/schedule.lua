-- Put a monitor's due entry in one tier at a given time (out of every other tier); record the tier.
-- KEYS[1] monitor hash   KEYS[2..] every due set, in tier order
-- ARGV[1] id   ARGV[2] account   ARGV[3] target tier position (1-based among the due sets)
-- ARGV[4] tier name   ARGV[5] due_at
-- Returns 1 when scheduled, 0 when there is no such monitor, -1 when it belongs to another account.
local account = redis.call('HGET', KEYS[1], 'account')
if not account then
  return 0
end
if account ~= ARGV[2] then
  return -1
end
local member = account .. '|' .. ARGV[1]
local target = tonumber(ARGV[3]) + 1
for i = 2, #KEYS do
  if i ~= target then
    redis.call('ZREM', KEYS[i], member)
  end
end
redis.call('ZADD', KEYS[target], ARGV[5], member)
redis.call('HSET', KEYS[1], 'tier', ARGV[4])
return 1
