-- Remove a monitor completely: state hash, index sets, due entries in every tier.
-- KEYS[1] monitor hash   KEYS[2] set of all ids   KEYS[3] set of accounts   KEYS[4..] every due set
-- ARGV[1] id   ARGV[2] key prefix (for the per-account id set)
-- Returns 1 when the monitor existed, 0 otherwise.
local account = redis.call('HGET', KEYS[1], 'account')
redis.call('SREM', KEYS[2], ARGV[1])
if not account then
  return 0
end
redis.call('DEL', KEYS[1])
local per_account = ARGV[2] .. ':acct:' .. account .. ':mons'
redis.call('SREM', per_account, ARGV[1])
if redis.call('SCARD', per_account) == 0 then
  redis.call('SREM', KEYS[3], account)
end
local member = account .. '|' .. ARGV[1]
for i = 4, #KEYS do
  redis.call('ZREM', KEYS[i], member)
end
return 1
