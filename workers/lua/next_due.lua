-- Where and when a monitor is next due.
-- KEYS[1] monitor hash   KEYS[2..] every due set, in tier order
-- ARGV[1] id
-- Returns {tier position (1-based), due_at as the stored score string}, or nil when the monitor is
-- unknown or has no due entry.
local account = redis.call('HGET', KEYS[1], 'account')
if not account then
  return nil
end
local member = account .. '|' .. ARGV[1]
for i = 2, #KEYS do
  local score = redis.call('ZSCORE', KEYS[i], member)
  if score then
    return {i - 1, score}
  end
end
return nil
