-- Compare-and-set of monitor states, in order: each writes state and version+1 only when the
-- stored version equals the expected one.
-- KEYS[i] monitor hash of item i;  ARGV[2i-1] state_json, ARGV[2i] expected version.
-- Returns one code per item: 1 saved, 0 stale (stored version differs), -1 no such monitor.
local out = {}
for i = 1, #KEYS do
  local stored = redis.call('HGET', KEYS[i], 'version')
  if not stored then
    out[i] = -1
  elseif stored ~= ARGV[2 * i] then
    out[i] = 0
  else
    redis.call('HSET', KEYS[i], 'state', ARGV[2 * i - 1], 'version', tostring(tonumber(stored) + 1))
    out[i] = 1
  end
end
return out
