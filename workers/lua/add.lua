-- Create a monitor: state hash, index sets and its due entry, all or nothing.
-- KEYS[1] monitor hash   KEYS[2] set of all ids   KEYS[3] set of accounts
-- KEYS[4] ids of this account   KEYS[5] due set of the tier
-- ARGV: id, account, state_json, version, tier, due_at, member
-- Returns 1 when created, 0 when the monitor already exists (nothing changed).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'version', ARGV[4], 'account', ARGV[2], 'tier', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[7])
return 1
