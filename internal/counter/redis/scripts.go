package redis

import goredis "github.com/redis/go-redis/v9"

// The scripts work on decimal strings and let Redis do the integer arithmetic: Lua numbers are
// doubles, exact only to 2^53, so no counter value of the ledger's (spend, usage, balances,
// watermarks) ever passes through a Lua number. The only numbers Lua computes with are the
// authorize state's (authscripts.go), which stay inside package limit's exact range.

// applyScript is one Apply.
//
//	KEYS[1] watermark, KEYS[2] lifetime spend, KEYS[3] period hash, KEYS[4] period index set,
//	KEYS[5] wallet hash, KEYS[6] tier, KEYS[7] auth hash, KEYS[8] reservations hash,
//	KEYS[9] reservation expiry zset, KEYS[10] correlation index hash
//	ARGV[1] seq, ARGV[2] spend nanos, ARGV[3] events, ARGV[4] period PEXPIREAT (ms),
//	ARGV[5] period index member, ARGV[6] tier ("" leaves it), ARGV[7] n, the number of usage
//	pairs, ARGV[8] correlation ID ("" for none), ARGV[9] the event's tokens, ARGV[10] the
//	settlement's now ms ("" for the server's), then n pairs of usage field, quantity, then to
//	the end pairs of grant ID, balance delta (the burn, negated)
//
// It returns {0, watermark, 0} when seq is at or below the watermark, {1, seq, settled} when
// applied (settled is 1 when the correlation ID named an open reservation, which the applied
// event settles: see settleLua), and {2, kind, field} when an increment would overflow int64
// (kind "life" with field "", "period" with the hash field, or "wallet" with the grant ID), in
// which case every write it made is undone before it returns (a script runs alone, so nobody
// sees the intermediate state) and nothing is settled.
// Watermarks are non-negative integers without leading zeros, so comparing length then bytes
// compares values.
var applyScript = goredis.NewScript(`
local function ge(a, b) -- byte-wise, not strcoll: a >= b for canonical non-negative integers
  if #a ~= #b then return #a > #b end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return true
end

local seq = ARGV[1]
local wm = redis.call('GET', KEYS[1])
if wm and ge(wm, seq) then
  return {0, wm, 0}
end

-- Every increment of the event, in order: {key, hash field ('' for a string key), delta, kind}.
local incs = {
  {KEYS[2], '', ARGV[2], 'life'},
  {KEYS[3], 'spend', ARGV[2], 'period'},
  {KEYS[3], 'events', ARGV[3], 'period'},
}
local a = 11
for _ = 1, tonumber(ARGV[7]) do
  incs[#incs + 1] = {KEYS[3], ARGV[a], ARGV[a + 1], 'period'}
  a = a + 2
end
for i = a, #ARGV, 2 do
  incs[#incs + 1] = {KEYS[5], ARGV[i], ARGV[i + 1], 'wallet'}
end

-- Apply them one by one, remembering each old value; the first failure undoes those done.
local undo = {}
local function restore(u)
  local key, field, old = u[1], u[2], u[3]
  if field == '' then
    if old then redis.call('SET', key, old) else redis.call('DEL', key) end
  else
    if old then redis.call('HSET', key, field, old) else redis.call('HDEL', key, field) end
  end
end
for _, inc in ipairs(incs) do
  local key, field, delta = inc[1], inc[2], inc[3]
  local old, r
  if field == '' then
    old = redis.call('GET', key)
    r = redis.pcall('INCRBY', key, delta)
  else
    old = redis.call('HGET', key, field)
    r = redis.pcall('HINCRBY', key, field, delta)
  end
  if type(r) == 'table' and r.err then
    for j = #undo, 1, -1 do restore(undo[j]) end
    if string.find(r.err, 'overflow', 1, true) then return {2, inc[4], field} end
    return redis.error_reply(r.err)
  end
  undo[#undo + 1] = {key, field, old}
end

redis.call('PEXPIREAT', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
if ARGV[6] ~= '' then redis.call('SET', KEYS[6], ARGV[6]) end
redis.call('SET', KEYS[1], seq)
` + settleLua + `
return {1, seq, settled}
`)

// snapshotScript reads a customer's counters in one step.
//
//	KEYS[1] watermark, KEYS[2] lifetime spend, KEYS[3] period hash, KEYS[4] tier,
//	KEYS[5] wallet hash, KEYS[6] wallet expiry hash
//
// It returns {watermark|nil, lifetime|nil, {field, value, ...}, tier|nil, {grant, nanos, ...},
// {grant, expiry ms, ...}}.
var snapshotScript = goredis.NewScript(`
return {
  redis.call('GET', KEYS[1]),
  redis.call('GET', KEYS[2]),
  redis.call('HGETALL', KEYS[3]),
  redis.call('GET', KEYS[4]),
  redis.call('HGETALL', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
}
`)

// grantScript adds one grant, once.
//
//	KEYS[1] wallet hash, KEYS[2] wallet expiry hash, KEYS[3] granted set
//	ARGV[1] grant ID, ARGV[2] nanos (> 0), ARGV[3] expiry (Unix ms, "" for never)
//
// It returns 0 when the grant was already granted (nothing changed), 1 when it added the
// amount, and 2 when the balance would overflow int64 (nothing changed: the marker is removed
// again and HINCRBY writes nothing when it fails).
var grantScript = goredis.NewScript(`
local id = ARGV[1]
if redis.call('SADD', KEYS[3], id) == 0 then
  return 0
end
local r = redis.pcall('HINCRBY', KEYS[1], id, ARGV[2])
if type(r) == 'table' and r.err then
  redis.call('SREM', KEYS[3], id)
  if string.find(r.err, 'overflow', 1, true) then return 2 end
  return redis.error_reply(r.err)
end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], id)
else
  redis.call('HSET', KEYS[2], id, ARGV[3])
end
return 1
`)

// rebuildScript replaces a customer's counters.
//
//	KEYS[1] watermark, KEYS[2] lifetime spend, KEYS[3] period index set, KEYS[4] tier,
//	KEYS[5] wallet hash, KEYS[6] wallet expiry hash, KEYS[7] granted set,
//	KEYS[8 .. 7+nOld] the period keys the caller read from the index, then the new period keys
//	ARGV[1] watermark, ARGV[2] lifetime, ARGV[3] tier ("" for none), ARGV[4] nGrants,
//	ARGV[5] nOld, ARGV[6] nNew, then per grant: ID, nanos, expiry (Unix ms, "" for never),
//	then the nOld index members the caller read, then per new period: member, PEXPIREAT (ms),
//	field count n, n pairs of field, value
//
// Every key a script touches must be declared (Redis Cluster), so the caller reads the index
// first; if the index changed since (a concurrent Apply opened a period) the script changes
// nothing and returns 0, and the caller retries. It returns 1 when done.
var rebuildScript = goredis.NewScript(`
local nGrants, nOld, nNew = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local grantsAt = 7
local oldAt = grantsAt + 3 * nGrants
local newAt = oldAt + nOld

-- Check the index is still what the caller read.
local cur = redis.call('SMEMBERS', KEYS[3])
if #cur ~= nOld then return 0 end
local want = {}
for i = 0, nOld - 1 do want[ARGV[oldAt + i]] = true end
for _, m in ipairs(cur) do
  if not want[m] then return 0 end
end

-- Periods: drop every old one, write the new ones.
for i = 1, nOld do redis.call('DEL', KEYS[7 + i]) end
redis.call('DEL', KEYS[3])
local a = newAt
for i = 1, nNew do
  local key = KEYS[7 + nOld + i]
  local member, expireAt, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  redis.call('DEL', key)
  if n > 0 then
    local kv = {}
    for j = 0, 2 * n - 1 do kv[#kv + 1] = ARGV[a + j] end
    redis.call('HSET', key, unpack(kv))
    redis.call('PEXPIREAT', key, expireAt)
    redis.call('SADD', KEYS[3], member)
  end
  a = a + 2 * n
end

-- The wallet, wholesale: every grant named is granted.
redis.call('DEL', KEYS[5], KEYS[6], KEYS[7])
for i = 0, nGrants - 1 do
  local g = grantsAt + 3 * i
  local id, nanos, expiry = ARGV[g], ARGV[g + 1], ARGV[g + 2]
  redis.call('HSET', KEYS[5], id, nanos)
  if expiry ~= '' then redis.call('HSET', KEYS[6], id, expiry) end
  redis.call('SADD', KEYS[7], id)
end

if ARGV[3] == '' then redis.call('DEL', KEYS[4]) else redis.call('SET', KEYS[4], ARGV[3]) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)
