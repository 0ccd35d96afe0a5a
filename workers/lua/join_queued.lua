-- Monitors of a tier check join the account's queued stream-triggered check, if one is queued.
-- KEYS[1] the queued flag, KEYS[2] the pending set; ARGV the monitor ids.
-- Atomic: while the flag stands the check has not taken its set yet (take clears both at once),
-- so ids added here are checked by it. Returns 1 when added, 0 (nothing added) when none is queued.
if redis.call('exists', KEYS[1]) == 0 then
  return 0
end
redis.call('sadd', KEYS[2], unpack(ARGV))
return 1
