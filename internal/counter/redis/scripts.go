package redis

import goredis "github.com/redis/go-redis/v9"

// The scripts work on decimal strings and let Redis do the integer arithmetic: Lua numbers are
// doubles, exact only to 2^53, so no counter value ever passes through a Lua number.

// applyScript is one Apply.
//
//	KEYS[1] watermark, KEYS[2] lifetime spend, KEYS[3] period hash, KEYS[4] period index set
//	ARGV[1] seq, ARGV[2] spend nanos, ARGV[3] events, ARGV[4] period PEXPIREAT (ms),
//	ARGV[5] period index member, ARGV[6..] pairs of usage field, quantity
//
// It returns {0, watermark} when seq is at or below the watermark, {1, seq} when applied, and
// {2, what} when an increment would overflow int64, in which case every write it made is undone
// before it returns (a script runs alone, so nobody sees the intermediate state). Watermarks are
// non-negative integers without leading zeros, so comparing length then bytes compares values.
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
  return {0, wm}
end
local fields = {'spend', 'events'}
local deltas = {ARGV[2], ARGV[3]}
for i = 6, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  deltas[#deltas + 1] = ARGV[i + 1]
end
local oldLife = redis.call('GET', KEYS[2])
local old = redis.call('HMGET', KEYS[3], unpack(fields))
local function failed(r) return type(r) == 'table' and r.err end
local r = redis.pcall('INCRBY', KEYS[2], ARGV[2])
local bad, what = failed(r), 'lifetime spend'
local done = 0
if not bad then
  for i = 1, #fields do
    r = redis.pcall('HINCRBY', KEYS[3], fields[i], deltas[i])
    if failed(r) then bad, what = r.err, fields[i]; break end
    done = i
  end
end
if bad then
  if oldLife then redis.call('SET', KEYS[2], oldLife) else redis.call('DEL', KEYS[2]) end
  for i = 1, done do
    if old[i] then redis.call('HSET', KEYS[3], fields[i], old[i]) else redis.call('HDEL', KEYS[3], fields[i]) end
  end
  if string.find(bad, 'overflow', 1, true) then return {2, what} end
  return redis.error_reply(bad)
end
redis.call('PEXPIREAT', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
redis.call('SET', KEYS[1], seq)
return {1, seq}
`)

// snapshotScript reads KEYS[1] watermark, KEYS[2] lifetime spend and KEYS[3] period hash in one
// step and returns {watermark|nil, lifetime|nil, {field, value, ...}}.
var snapshotScript = goredis.NewScript(`
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('HGETALL', KEYS[3])}
`)

// rebuildScript replaces a customer's counters.
//
//	KEYS[1] watermark, KEYS[2] lifetime spend, KEYS[3] period index set,
//	KEYS[4 .. 3+nOld] the period keys the caller read from the index, then the new period keys
//	ARGV[1] watermark, ARGV[2] lifetime, ARGV[3] nOld, ARGV[4] nNew, ARGV[5 .. 4+nOld] the index
//	members the caller read, then per new period: member, PEXPIREAT (ms), field count n, n pairs
//
// Every key a script touches must be declared (Redis Cluster), so the caller reads the index
// first; if the index changed since (a concurrent Apply opened a period) the script changes
// nothing and returns 0, and the caller retries. It returns 1 when done.
var rebuildScript = goredis.NewScript(`
local nOld, nNew = tonumber(ARGV[3]), tonumber(ARGV[4])
local cur = redis.call('SMEMBERS', KEYS[3])
if #cur ~= nOld then return 0 end
local want = {}
for i = 1, nOld do want[ARGV[4 + i]] = true end
for _, m in ipairs(cur) do
  if not want[m] then return 0 end
end
for i = 1, nOld do redis.call('DEL', KEYS[3 + i]) end
redis.call('DEL', KEYS[3])
local a = 5 + nOld
for i = 1, nNew do
  local key = KEYS[3 + nOld + i]
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
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)
