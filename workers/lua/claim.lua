-- The dispatcher's claim: take what is due, let an active account's soon-due monitors ride along,
-- re-score everything taken. Atomic, so concurrent dispatchers never claim one due time twice.
--
-- KEYS[1..T]  due sets, most urgent tier first (member "<account>|<monitor id>", score = due time)
-- ARGV[1] now   ARGV[2] lookahead (s)   ARGV[3] cap (most members claimed)
-- ARGV[4..3+T] check interval of each tier (s), same order as KEYS
--
-- 1. due: members with score <= now, at most `cap` read from each tier; when more than `cap` are
--    due in all, the most overdue `cap` are taken (ties: the more urgent tier first).
-- 2. active accounts: the accounts owning a claimed due member.
-- 3. ride-alongs: members with now < score <= now + lookahead, in any tier, of an active account,
--    soonest first, while the cap has room. Members of other accounts are read but not touched.
-- 4. re-score every claimed member from its previous score: old + interval; when that is still
--    <= now (more than one interval behind), now + interval instead.
--
-- Cost: O(log N) per tier plus the members it reads: those due (<= cap per tier) and those due
-- within the lookahead; nothing else in the sets is read. The per-tier lists come sorted from
-- Redis and are merged (no sort), and the re-scores are one ZADD per tier and chunk.
--
-- Returns one string (one reply item is far cheaper for the client to parse than four per member):
-- a line per claimed member, due members first (most overdue first), then ride-alongs (soonest
-- first); each line is "<member>\t<tier position, 1-based>\t<previous score>\t<1 due | 0 ride-along>".
-- Members never contain a newline (the registry refuses control characters in ids and accounts).
local now = tonumber(ARGV[1])
local lookahead = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local ntiers = #KEYS
local intervals = {}
for t = 1, ntiers do
  intervals[t] = tonumber(ARGV[3 + t])
end

local function account_of(member)
  local bar = string.find(member, '|', 1, true)
  if bar then
    return string.sub(member, 1, bar - 1)
  end
  return member
end

-- Merge per-tier lists (each {members}, {score strings}, sorted by score) into `out` (one line per
-- member) and `taken_members`, at most `limit` entries; each taken member's new score is appended
-- to zadd[tier] as score, member pairs. Returns how many were taken.
local out = {}
local taken_members = {}
local zadd = {}
for t = 1, ntiers do
  zadd[t] = {}
end

local function merge(members, scores, limit, flag)
  local pos, head = {}, {}
  for t = 1, ntiers do
    pos[t] = 1
    head[t] = scores[t][1] and tonumber(scores[t][1]) or nil
  end
  local taken = 0
  while taken < limit do
    local best = nil
    for t = 1, ntiers do
      if head[t] and (best == nil or head[t] < head[best]) then
        best = t
      end
    end
    if best == nil then
      break
    end
    local i = pos[best]
    local old = head[best]
    local member = members[best][i]
    local next_due = old + intervals[best]
    if next_due <= now then
      next_due = now + intervals[best]
    end
    local z = zadd[best]
    z[#z + 1] = string.format('%.17g', next_due)
    z[#z + 1] = member
    out[#out + 1] = member .. '\t' .. best .. '\t' .. scores[best][i] .. '\t' .. flag
    taken_members[#taken_members + 1] = member
    taken = taken + 1
    pos[best] = i + 1
    local s = scores[best][i + 1]
    head[best] = s and tonumber(s) or nil
  end
  return taken
end

-- split a WITHSCORES reply into members and scores, keeping only members `keep` accepts
local function split(reply, keep)
  local members, scores = {}, {}
  for i = 1, #reply, 2 do
    if keep == nil or keep(reply[i]) then
      members[#members + 1] = reply[i]
      scores[#scores + 1] = reply[i + 1]
    end
  end
  return members, scores
end

-- 1. due members
local due_members, due_scores = {}, {}
for t = 1, ntiers do
  local r = redis.call('ZRANGEBYSCORE', KEYS[t], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, cap)
  due_members[t], due_scores[t] = split(r, nil)
end
local ndue = merge(due_members, due_scores, cap, 1)

-- 2. active accounts (from the due members taken)
local active = {}
for i = 1, ndue do
  active[account_of(taken_members[i])] = true
end

-- 3. ride-alongs
local room = cap - ndue
if ndue > 0 and room > 0 and lookahead > 0 then
  local lo = '(' .. ARGV[1]
  local hi = string.format('%.17g', now + lookahead)
  local function is_active(member)
    return active[account_of(member)] == true
  end
  local ride_members, ride_scores = {}, {}
  for t = 1, ntiers do
    local r = redis.call('ZRANGEBYSCORE', KEYS[t], lo, hi, 'WITHSCORES')
    ride_members[t], ride_scores[t] = split(r, is_active)
  end
  merge(ride_members, ride_scores, room, 0)
end

-- 4. re-score, one ZADD per tier and chunk of pairs
local CHUNK = 2000 -- arguments per ZADD (well under Lua's unpack limit)
for t = 1, ntiers do
  local z = zadd[t]
  for first = 1, #z, CHUNK do
    local last = math.min(first + CHUNK - 1, #z)
    redis.call('ZADD', KEYS[t], unpack(z, first, last))
  end
end
return table.concat(out, '\n')
