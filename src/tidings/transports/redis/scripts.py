"""The Lua scripts that make each tidings operation one atomic step on the server.

Every script touches the keys of one topic only (one hash tag, so one Cluster slot) and reads
the time from the server (``TIME``), so clients' clocks never matter.

- ``PUBLISH``: for each message, the producer-id check (``GET`` of the dedup key) and ``XADD``
  with ``SET NX PX`` of the dedup key in the same step; a duplicate returns the original's
  place. Trims by count (``MAXLEN``) or refuses when full (``overflow='reject'``), and by age.
- ``CLAIM``: the lease expiry. Pending entries idle for a lease or more (``XPENDING IDLE``),
  except those held for longer (the hold set), are ``XCLAIM``\\ ed by the calling member (the
  delivery count goes up); returns them with their counts and early-delivery skips.
- ``SETTLE``: ack / extend / nack / defer / release of entries the calling member still owns
  (checked with ``XPENDING``); returns the ids it no longer owns (their lease is lost).
  Extend and nack move the entry's idle time (``XCLAIM ... IDLE JUSTID``, no new delivery) so
  that it is claimable again exactly after ``seconds``; beyond one lease the hold set keeps
  it from being claimed before then.
- ``DEAD_LETTER``: ``XADD`` of the copy to the dead-letter stream and ``XACK`` of the original
  in one step (if the caller still owns it).
- ``MEMBERSHIP`` and ``ORDERED_READ``: an ordered group's heartbeats, and the fenced read of a
  partition by its owner (see :mod:`.ordered`).
"""

from __future__ import annotations

NOW = """
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
"""

# KEYS: meta, then n stream keys, then n dedup keys
# ARGV: n, window_ms, maxlen (0: none), reject_when_full (0/1), max_age_ms (0: none),
#       then per message: partition, dedup (0/1), message id, nfields, field, value, ...
PUBLISH = (
    NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOTOPIC') end
local n = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local maxlen = tonumber(ARGV[3])
local reject = ARGV[4] == '1'
local max_age = tonumber(ARGV[5])
local out = {}
local i = 6
local trimmed = {}
for m = 1, n do
  local stream = KEYS[1 + m]
  local dkey = KEYS[1 + n + m]
  local partition = ARGV[i]
  local dedup = ARGV[i + 1] == '1'
  local mid = ARGV[i + 2]
  local nf = tonumber(ARGV[i + 3])
  local args = {'XADD', stream}
  if maxlen > 0 and not reject then
    args[#args + 1] = 'MAXLEN'
    args[#args + 1] = maxlen
  end
  args[#args + 1] = '0-*'
  for f = 1, nf do args[#args + 1] = ARGV[i + 3 + f] end
  args[#args + 1] = 'ts'
  args[#args + 1] = now
  i = i + 4 + nf
  local seen = false
  if dedup then seen = redis.call('GET', dkey) end
  if seen then
    out[m] = {1, seen}
  else
    if reject and maxlen > 0 and redis.call('XLEN', stream) >= maxlen then
      return redis.error_reply('FULL ' .. partition)
    end
    if max_age > 0 and not trimmed[stream] then
      trimmed[stream] = true
      local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
      local keep = nil
      for _, e in ipairs(old) do
        local f = e[2]
        local ts = 0
        for j = 1, #f, 2 do if f[j] == 'ts' then ts = tonumber(f[j + 1]) end end
        if ts >= now - max_age then keep = e[1] break end
      end
      if keep then redis.call('XTRIM', stream, 'MINID', keep)
      elseif #old > 0 then
        local last = old[#old][1]
        redis.call('XTRIM', stream, 'MINID', '0-' .. (tonumber(string.match(last, '-(%d+)$')) + 1))
      end
    end
    local id = redis.call(unpack(args))
    local place = partition .. ' ' .. id .. ' ' .. mid
    if dedup then redis.call('SET', dkey, place, 'PX', window, 'NX') end
    out[m] = {0, place}
  end
end
return out
"""
)

# KEYS: stream, hold, skips
# ARGV: group, consumer, lease_ms, count
CLAIM = (
    NOW
    + """
local count = tonumber(ARGV[4])
local held = redis.call('ZCARD', KEYS[2])
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', count + held)
local ids = {}
local counts = {}
for _, e in ipairs(pending) do
  local due = redis.call('ZSCORE', KEYS[2], e[1])
  if (not due) or tonumber(due) <= now then
    ids[#ids + 1] = e[1]
    counts[e[1]] = e[4] + 1
    if #ids >= count then break end
  end
end
if #ids == 0 then return {} end
redis.call('ZREM', KEYS[2], unpack(ids))
local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], unpack(ids))
local out = {}
for _, e in ipairs(claimed) do
  local skips = tonumber(redis.call('HGET', KEYS[3], e[1]) or '0')
  out[#out + 1] = {e[1], e[2], counts[e[1]], skips}
end
return out
"""
)

# KEYS: stream, hold, skips, errors
# ARGV: group, consumer, op (ack|extend|nack|defer|release), lease_ms, ms, error, ids...
SETTLE = (
    NOW
    + """
local group, me, op = ARGV[1], ARGV[2], ARGV[3]
local lease, ms, err = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local lost = {}
local mine = {}
for i = 7, #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if #p == 1 and p[1][2] == me then mine[#mine + 1] = id else lost[#lost + 1] = id end
end
if #mine == 0 then return lost end
if op == 'ack' then
  redis.call('XACK', KEYS[1], group, unpack(mine))
  redis.call('ZREM', KEYS[2], unpack(mine))
  redis.call('HDEL', KEYS[3], unpack(mine))
  redis.call('HDEL', KEYS[4], unpack(mine))
  return lost
end
if op == 'release' then ms = 0 end
local idle = 0
if ms <= lease then idle = lease - ms end
local claim = {'XCLAIM', KEYS[1], group, me, 0}
for _, id in ipairs(mine) do claim[#claim + 1] = id end
claim[#claim + 1] = 'IDLE'
claim[#claim + 1] = idle
claim[#claim + 1] = 'JUSTID'
redis.call(unpack(claim))
for _, id in ipairs(mine) do
  if ms > lease then redis.call('ZADD', KEYS[2], now + ms, id)
  else redis.call('ZREM', KEYS[2], id) end
  if op == 'defer' then redis.call('HINCRBY', KEYS[3], id, 1) end
  if op == 'nack' and err ~= '' then redis.call('HSET', KEYS[4], id, err) end
end
return lost
"""
)

# KEYS: source stream, dead-letter meta, dead-letter stream, hold, skips, errors
# ARGV: group, consumer, entry id, nfields, field, value, ...
DEAD_LETTER = (
    NOW
    + """
local group, me, id = ARGV[1], ARGV[2], ARGV[3]
local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
if #p ~= 1 or p[1][2] ~= me then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('NOTOPIC') end
local args = {'XADD', KEYS[3], '0-*'}
local nf = tonumber(ARGV[4])
for f = 1, nf do args[#args + 1] = ARGV[4 + f] end
args[#args + 1] = 'ts'
args[#args + 1] = now
redis.call(unpack(args))
redis.call('XACK', KEYS[1], group, id)
redis.call('ZREM', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
redis.call('HDEL', KEYS[6], id)
return 1
"""
)

# KEYS: members hash; ARGV: member, left (0/1), session_timeout_ms
# Returns the number of live members (the caller's heartbeat included unless it left).
HEARTBEAT = (
    NOW
    + """
if ARGV[2] == '1' then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], now) end
local live = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if now - tonumber(all[i + 1]) < tonumber(ARGV[3]) then live = live + 1
  elseif now - tonumber(all[i + 1]) > 10 * tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return live
"""
)

# KEYS: members hash; ARGV: session_timeout_ms -> live members
MEMBERS = (
    NOW
    + """
local live = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if now - tonumber(all[i + 1]) < tonumber(ARGV[1]) then live = live + 1 end
end
return live
"""
)

# KEYS: members hash, stuck hash; ARGV: session_timeout_ms -> {member, stall JSON, ...} of
# the live stuck members (the rows of members gone silent are deleted)
STUCK = (
    NOW
    + """
local out = {}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local beat = redis.call('HGET', KEYS[1], all[i])
  if beat and now - tonumber(beat) < tonumber(ARGV[1]) then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[2], all[i])
  end
end
return out
"""
)

# Ordered groups. KEYS: members hash; ARGV: member -> {now, member, time, member, time, ...}
# (the caller's heartbeat written first; the caller judges who is live with the shared rule)
MEMBERSHIP = (
    NOW
    + """
redis.call('HSET', KEYS[1], ARGV[1], now)
local out = {now}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do out[#out + 1] = all[i] end
return out
"""
)

# KEYS: stream, hold, skips; ARGV: group, consumer, lease_ms, window, credit
# One partition of an ordered group, as its owner: nothing while another member holds a
# message of it whose lease runs (the fence); else the expired ones first (XCLAIM, in stream
# order), then new ones (XREADGROUP) while the partition's in-flight window has room.
# Returns {id, fields, count, skips} rows in stream order.
ORDERED_READ = (
    NOW
    + """
local group, me = ARGV[1], ARGV[2]
local lease, window, credit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local pending = redis.call('XPENDING', KEYS[1], group, '-', '+', window + 1000)
local expired = {}
local counts = {}
for _, e in ipairs(pending) do
  local due = redis.call('ZSCORE', KEYS[2], e[1])
  local runs = tonumber(e[3]) < lease or (due and tonumber(due) > now)
  if runs then
    if e[2] ~= me then return {} end
  else
    expired[#expired + 1] = e[1]
    counts[e[1]] = e[4] + 1
  end
end
local out = {}
local taken = {}
for i = 1, math.min(#expired, credit) do taken[#taken + 1] = expired[i] end
if #taken > 0 then
  redis.call('ZREM', KEYS[2], unpack(taken))
  local claimed = redis.call('XCLAIM', KEYS[1], group, me, 0, unpack(taken))
  for _, e in ipairs(claimed) do
    local skips = tonumber(redis.call('HGET', KEYS[3], e[1]) or '0')
    out[#out + 1] = {e[1], e[2], counts[e[1]], skips}
  end
end
local room = math.min(window - #pending, credit - #taken)
if room > 0 then
  local read = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', room, 'STREAMS', KEYS[1], '>')
  if read then
    for _, e in ipairs(read[1][2]) do out[#out + 1] = {e[1], e[2], 1, 0} end
  end
end
return out
"""
)

# KEYS: stream, members hash; ARGV: group, consumer, session_timeout_ms
# Consumers of the group with nothing pending that are the caller (leaving) or no live member
# (left, or silent for a session timeout; the others claimed what they had).
PRUNE = (
    NOW
    + """
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
local gone = 0
for _, c in ipairs(consumers) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  local name = info['name']
  if tonumber(info['pending']) == 0 then
    local beat = redis.call('HGET', KEYS[2], name)
    if name == ARGV[2] or (not beat) or now - tonumber(beat) > tonumber(ARGV[3]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
      gone = gone + 1
    end
  end
end
return gone
"""
)
