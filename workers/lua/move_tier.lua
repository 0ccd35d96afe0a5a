-- Move a monitor to another urgency tier.
--   more urgent: due at once (score = min(current score, now)) in the new tier's set;
--   less urgent: keeps its current score (the next natural due time), in the new tier's set;
--   same tier:   nothing.
-- KEYS[1] monitor hash   KEYS[2..] every due set, in urgency order (most urgent first)
-- ARGV[1] id   ARGV[2] new tier position (1-based among the due sets)   ARGV[3] new tier name
-- ARGV[4] now   ARGV[5..] tier names in the same order as the due sets
-- Returns 1 when moved, 0 when already in that tier, -1 when there is no such monitor.
local account = redis.call('HGET', KEYS[1], 'account')
if not account then
  return -1
end
local current_name = redis.call('HGET', KEYS[1], 'tier')
local new_pos = tonumber(ARGV[2])
local member = account .. '|' .. ARGV[1]

-- the tier the due entry is really in (normally the stored tier)
local current_pos = nil
local score = nil
for i = 1, #KEYS - 1 do
  if ARGV[4 + i] == current_name then
    current_pos = i
  end
end
if current_pos then
  score = redis.call('ZSCORE', KEYS[1 + current_pos], member)
end
if not score then
  for i = 1, #KEYS - 1 do
    score = redis.call('ZSCORE', KEYS[1 + i], member)
    if score then
      current_pos = i
      break
    end
  end
end

if current_pos == new_pos and score then
  if current_name ~= ARGV[3] then
    redis.call('HSET', KEYS[1], 'tier', ARGV[3])
  end
  return 0
end

local new_score
if not score then
  new_score = ARGV[4]  -- no due entry at all (should not happen): due now
elseif current_pos == nil or new_pos < current_pos then
  if tonumber(score) < tonumber(ARGV[4]) then
    new_score = score
  else
    new_score = ARGV[4]
  end
else
  new_score = score
end
if current_pos and score then
  redis.call('ZREM', KEYS[1 + current_pos], member)
end
redis.call('ZADD', KEYS[1 + new_pos], new_score, member)
redis.call('HSET', KEYS[1], 'tier', ARGV[3])
return 1
