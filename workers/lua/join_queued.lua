-- Monitors of a tier check join the account's queued stream-triggered check, if one was queued
-- lately. KEYS[1] the queued flag, KEYS[2] the pending set; ARGV[1] the least time to live (ms) the
-- flag may have left (it is set with a fixed one, so this bounds how long ago it was queued; an
-- older flag may be one whose message was lost), ARGV[2..] the monitor ids.
-- Atomic: while the flag stands the check has not taken its set yet (take clears both at once),
-- so ids added here are checked by it. Returns 1 when added, 0 (nothing added) otherwise.
if redis.call('pttl', KEYS[1]) < tonumber(ARGV[1]) then
  return 0
end
redis.call('sadd', KEYS[2], unpack(ARGV, 2))
return 1
