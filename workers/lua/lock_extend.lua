-- Give a held lock a new lifetime, only for the holder of its token.
-- KEYS[1] lock key   ARGV[1] token   ARGV[2] new lifetime, milliseconds
-- Returns 1 when extended, 0 when the lock is held by someone else or has expired.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
