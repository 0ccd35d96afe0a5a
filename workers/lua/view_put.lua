-- Newer-wins writes into a stream view hash: KEYS[1] rows, KEYS[2] stamps (same fields).
-- ARGV: triples (field, stamp, row); an empty row deletes the field. A write whose stamp is older
-- than the stamp already held is refused (a late push never undoes a newer state).
-- Returns the number of fields written.
local written = 0
for i = 1, #ARGV, 3 do
  local field, stamp, row = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local held = tonumber(redis.call('HGET', KEYS[2], field) or '-1')
  if stamp >= held then
    if row == '' then
      redis.call('HDEL', KEYS[1], field)
    else
      redis.call('HSET', KEYS[1], field, row)
    end
    redis.call('HSET', KEYS[2], field, stamp)
    written = written + 1
  end
end
return written
