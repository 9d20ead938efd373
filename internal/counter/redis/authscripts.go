package redis

import (
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/levyhq/levy/internal/authorize/limit"
	"github.com/levyhq/levy/internal/counter"
)

// The authorize scripts mirror package limit (see its "Mirroring in Lua" notes). Every number
// they compute stays an integer below 2^53 in magnitude, so Lua's doubles are exact: values
// written by these scripts are within limit's ranges; values read are clamped into them before
// any arithmetic (a double that rounded a huge stored value still clamps to the same bound);
// sums of stored int64 strings (token meters, wallet balances, which other scripts write and
// may be anywhere in int64) are added in two base-10^9 parts and clamped exactly. Integer
// division is floor-then-correct. Numbers are written back with string.format('%d'), and a
// reservation record with cmsgpack (integers below 2^53 round-trip exactly).
//
// Only the allow/deny outcome and the new state come from Lua: the script returns the state it
// decided on, and Go runs limit.Decide on it for the reason, the retry wait and the quotas, so
// those figures are limit's by construction (and Go checks that both agree on the outcome).

// luaCore holds the constants and helpers every authorize path needs; luaDecide and luaAdjust
// those of the decision and of settlement. A script defines only what it uses: each local
// function is a closure created on every run.
var luaCore = `
local MAXV = ` + strconv.FormatInt(limit.MaxValue, 10) + `
local MAXT = ` + strconv.FormatInt(limit.MaxTime, 10) + `
local HORIZON = ` + strconv.FormatInt(limit.HorizonWindows, 10) + `
local DEBTCAP = ` + strconv.FormatInt(limit.DebtCapWindows, 10) + `

local function num(v) return tonumber(v) or 0 end
local function clamp(x, lo, hi)
  if x < lo then return lo end
  if x > hi then return hi end
  return x
end
local function str(x) return string.format('%d', x) end

-- floor(a / b), exact for integers a, b with |a| + |b| < 2^53 and b >= 1.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end

-- The clock: ARGV's milliseconds, or the server's when the caller gave none.
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- limit's debt: max(TAT - now, 0) in scaled units; beyond the horizon reads as empty.
local function debt(at, fr, now, window, lim)
  if at < now then return 0 end
  local dt = at - now
  if dt > HORIZON * window then return 0 end
  local d = dt * lim + clamp(fr, 0, lim - 1)
  if d > HORIZON * window * lim then return 0 end
  return d
end
local function fromDebt(d, now, lim)
  local q = idiv(d, lim)
  return now + q, d - q * lim
end

-- A reservation record: MessagePack (cmsgpack) of tokens, nanos, expiresAt, window, tpm,
-- correlation ID, task ID. An unreadable one is released with nothing held but its slot.
local function unpackRes(rec)
  local ok, tok, nan, exp, win, tpm, corr, task = pcall(cmsgpack.unpack, rec)
  if not ok or type(tok) ~= 'number' or type(nan) ~= 'number' or type(exp) ~= 'number' or
      type(win) ~= 'number' or type(tpm) ~= 'number' or type(corr) ~= 'string' or type(task) ~= 'string' then
    return {tok = 0, nan = 0, exp = 0, win = 0, tpm = 0, corr = '', task = ''}
  end
  return {tok = tok, nan = nan, exp = exp, win = win, tpm = tpm, corr = corr, task = task}
end

-- limit.Release on st.rtok, st.rnan, st.infl.
local function release(st, tok, nan)
  st.rtok = math.max(clamp(st.rtok, 0, MAXV) - clamp(tok, 0, MAXV), 0)
  st.rnan = math.max(clamp(st.rnan, 0, MAXV) - clamp(nan, 0, MAXV), 0)
  st.infl = math.max(clamp(st.infl, 0, MAXV) - 1, 0)
end
-- Forget reservation id (record r): its record, expiry and correlation index entry.
local function dropRes(resKey, expKey, corrKey, id, r)
  redis.call('HDEL', resKey, id)
  redis.call('ZREM', expKey, id)
  if r.corr ~= '' and redis.call('HGET', corrKey, r.corr) == id then
    redis.call('HDEL', corrKey, r.corr)
  end
end
`

var luaDecide = `
local E9 = 1000000000
-- Exact sums of decimal int64 strings: acc = {hi, lo}, value = hi * 1e9 + lo.
local function addDec(acc, s)
  if not s then return end
  local neg = string.byte(s, 1) == 45 -- '-'
  local digits = neg and string.sub(s, 2) or s
  local n = #digits
  local lo = tonumber(string.sub(digits, math.max(n - 8, 1))) or 0
  local hi = 0
  if n > 9 then hi = tonumber(string.sub(digits, 1, n - 9)) or 0 end
  if neg then acc[1], acc[2] = acc[1] - hi, acc[2] - lo else acc[1], acc[2] = acc[1] + hi, acc[2] + lo end
end
-- The exact sum clamped into [lo, hi] (both within +-MAXV).
local function decClamp(acc, lo, hi)
  local c = idiv(acc[2], E9)
  local h, l = acc[1] + c, acc[2] - c * E9 -- 0 <= l < 1e9
  if h > 9007199 or (h == 9007199 and l > 254740991) then return clamp(MAXV, lo, hi) end
  if h < -9007200 or (h == -9007200 and l < 745259009) then return clamp(-MAXV, lo, hi) end
  return clamp(h * E9 + l, lo, hi)
end
-- limit.GCRA's outcome from the debt: allowed, and the new TAT when allowed.
local function gcra(d, now, window, lim, cost)
  if cost > lim then return false end
  if d + math.max(cost, 1) * window <= window * lim then
    return true, fromDebt(d + cost * window, now, lim)
  end
  return false
end
local function cap(used, reserved, lim, cost)
  used, reserved, cost = math.max(used, 0), math.max(reserved, 0), math.max(cost, 0)
  if used >= lim then return false end
  local head = lim - used
  if reserved >= head then return false end
  return cost <= head - reserved
end
local function wallet(balance, reserved, estimate)
  reserved, estimate = math.max(reserved, 0), math.max(estimate, 0)
  if balance <= reserved then return false end
  return balance - reserved >= math.max(estimate, 1)
end
`

var luaAdjust = `
-- limit.GCRAAdjust for delta ~= 0 with valid parameters.
local function adjust(at, fr, now, window, lim, delta)
  local d = debt(at, fr, now, window, lim)
  local nd
  if delta > 0 then
    local x = math.min(delta, DEBTCAP * lim)
    nd = math.max(d, math.min(d + x * window, DEBTCAP * window * lim))
  else
    local x = math.min(-delta, HORIZON * lim)
    nd = math.max(d - x * window, 0)
  end
  return fromDebt(nd, now, lim)
end
`

// authorizeScript is one Authorize.
//
//	KEYS[1] auth hash, KEYS[2] reservations hash, KEYS[3] reservation expiry zset,
//	KEYS[4] correlation index hash, KEYS[5] tier, KEYS[6] period hash, KEYS[7] wallet hash,
//	KEYS[8] wallet expiry hash, KEYS[9] the task breaker (KEYS[1] again when there is no task)
//	ARGV[1] now ms ("" for the server's), ARGV[2] reservation ID, ARGV[3] correlation ID,
//	ARGV[4] task ID ("" for none), ARGV[5] estimated tokens, ARGV[6] estimated nanos,
//	ARGV[7] TTL ms, ARGV[8] n, the number of token meters, then n period hash fields, then m,
//	the number of limit rows, then m rows of 8: tier, window, requests, tokens, monthly
//	tokens, monthly nanos, max concurrent, wallet-limited ("1" or "0")
//
// It returns {1} when the reservation ID is already open (nothing changed), else {0, tier,
// allowed, released, now, hasWallet, then the state decided on: RPM at, frac, TPM at, frac,
// used tokens, reserved tokens, used nanos, reserved nanos, in flight, balance, breaker until,
// task breaker until}, normalised as counter.DecisionState does.
var authorizeScript = goredis.NewScript(luaCore + luaDecide + `
local id, corr = ARGV[2], ARGV[3]
local now = clock(ARGV[1])

-- The expired reservations (oldest first), read together with the duplicate check: one HMGET
-- of the reservations hash answers both. Nothing is written before the duplicate check.
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', str(now), 'LIMIT', 0, ` + strconv.Itoa(counter.MaxExpiredPerCall) + `)
local recs
if #expired == 0 then
  recs = {redis.call('HGET', KEYS[2], id)}
else
  recs = redis.call('HMGET', KEYS[2], id, unpack(expired))
end
if recs[1] then return {1} end

local f = redis.call('HMGET', KEYS[1], 'rpm', 'rpmf', 'tpm', 'tpmf', 'rtok', 'rnan', 'infl', 'brk')
local st = {rtok = num(f[5]), rnan = num(f[6]), infl = num(f[7])}

-- Release the expired reservations: one HDEL, one ZREM, and for the correlation index one
-- HMGET and one HDEL of the entries that still point at a released reservation.
local released = 0
if #expired > 0 then
  local gone, corrs, owners = {}, {}, {}
  for i, rid in ipairs(expired) do
    local rec = recs[i + 1]
    if rec then
      local r = unpackRes(rec)
      release(st, r.tok, r.nan)
      gone[#gone + 1] = rid
      if r.corr ~= '' then corrs[#corrs + 1] = r.corr; owners[#owners + 1] = rid end
      released = released + 1
    end
  end
  redis.call('ZREM', KEYS[3], unpack(expired))
  if #gone > 0 then redis.call('HDEL', KEYS[2], unpack(gone)) end
  if #corrs > 0 then
    local cur = redis.call('HMGET', KEYS[4], unpack(corrs))
    local drop = {}
    for i = 1, #corrs do
      if cur[i] == owners[i] then drop[#drop + 1] = corrs[i] end
    end
    if #drop > 0 then redis.call('HDEL', KEYS[4], unpack(drop)) end
  end
end

-- The limits row of the customer's tier, else the row "".
local tier = redis.call('GET', KEYS[5]) or ''
local nMeters = tonumber(ARGV[8])
local a = 9 + nMeters
local nRows = tonumber(ARGV[a])
local row, def
for i = 0, nRows - 1 do
  local b = a + 1 + 8 * i
  if tier ~= '' and ARGV[b] == tier then row = b end
  if ARGV[b] == '' then def = b end
end
row = row or def
local win, rpmL, tpmL, mtok, mspend, maxc, wl = 0, 0, 0, 0, 0, 0, false
if row then
  win, rpmL, tpmL = tonumber(ARGV[row + 1]), tonumber(ARGV[row + 2]), tonumber(ARGV[row + 3])
  mtok, mspend, maxc = tonumber(ARGV[row + 4]), tonumber(ARGV[row + 5]), tonumber(ARGV[row + 6])
  wl = ARGV[row + 7] == '1'
end

-- Used tokens and nanos from the period; the balance from the unexpired grants, read only
-- for a wallet-limited row (hasWallet and the balance are false and 0 otherwise).
local usedTok, usedNan = 0, 0
local pf = {'spend'}
for i = 1, nMeters do pf[#pf + 1] = ARGV[8 + i] end
local pv = redis.call('HMGET', KEYS[6], unpack(pf))
local acc = {0, 0}
addDec(acc, pv[1])
usedNan = decClamp(acc, -MAXV, MAXV)
acc = {0, 0}
for i = 2, #pv do addDec(acc, pv[i]) end
usedTok = decClamp(acc, 0, MAXV)
local hasWallet, bal = false, 0
local grants = {}
if wl then
  grants = redis.call('HGETALL', KEYS[7])
  hasWallet = #grants > 0
end
if hasWallet then
  local exps = {}
  local ev = redis.call('HGETALL', KEYS[8])
  for i = 1, #ev, 2 do exps[ev[i]] = tonumber(ev[i + 1]) end
  acc = {0, 0}
  for i = 1, #grants, 2 do
    local e = exps[grants[i]]
    if not e or now < e then addDec(acc, grants[i + 1]) end
  end
  bal = decClamp(acc, -MAXV, MAXV)
end

-- The state as limit.Decide reads it (counter.DecisionState).
local rtok, rnan, infl = clamp(st.rtok, 0, MAXV), clamp(st.rnan, 0, MAXV), clamp(st.infl, 0, MAXV)
local brk = clamp(num(f[8]), 0, MAXT)
local tbrk = 0
if ARGV[4] ~= '' then tbrk = clamp(num(redis.call('GET', KEYS[9])), 0, MAXT) end
local rpmAt, rpmFr, rpmD = 0, 0, 0
if rpmL > 0 then
  rpmD = debt(num(f[1]), num(f[2]), now, win, rpmL)
  if rpmD > 0 then rpmAt, rpmFr = num(f[1]), clamp(num(f[2]), 0, rpmL - 1) end
end
local tpmAt, tpmFr, tpmD = 0, 0, 0
if tpmL > 0 then
  tpmD = debt(num(f[3]), num(f[4]), now, win, tpmL)
  if tpmD > 0 then tpmAt, tpmFr = num(f[3]), clamp(num(f[4]), 0, tpmL - 1) end
end

-- The decision (limit.Decide's checks; the reason and waits are computed in Go).
local estTok, estNan = tonumber(ARGV[5]), tonumber(ARGV[6])
local ok = brk <= now and tbrk <= now
if ok and mspend > 0 then ok = cap(usedNan, rnan, mspend, estNan) end
if ok and mtok > 0 then ok = cap(usedTok, rtok, mtok, estTok) end
if ok and hasWallet then ok = wallet(bal, rnan, estNan) end
local nRpmAt, nRpmFr, nTpmAt, nTpmFr
if ok and tpmL > 0 then ok, nTpmAt, nTpmFr = gcra(tpmD, now, win, tpmL, estTok) end
if ok and rpmL > 0 then ok, nRpmAt, nRpmFr = gcra(rpmD, now, win, rpmL, 1) end
if ok and maxc > 0 then ok = infl < maxc end

if ok then
  local fields = {'rtok', str(math.min(rtok + estTok, MAXV)), 'rnan', str(math.min(rnan + estNan, MAXV)),
    'infl', str(math.min(infl + 1, MAXV))}
  if rpmL > 0 then
    fields[#fields + 1] = 'rpm'; fields[#fields + 1] = str(nRpmAt)
    fields[#fields + 1] = 'rpmf'; fields[#fields + 1] = str(nRpmFr)
  end
  if tpmL > 0 then
    fields[#fields + 1] = 'tpm'; fields[#fields + 1] = str(nTpmAt)
    fields[#fields + 1] = 'tpmf'; fields[#fields + 1] = str(nTpmFr)
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  local exp = now + tonumber(ARGV[7])
  redis.call('HSET', KEYS[2], id, cmsgpack.pack(estTok, estNan, exp, win, tpmL, corr, ARGV[4]))
  redis.call('ZADD', KEYS[3], str(exp), id)
  if corr ~= '' then redis.call('HSET', KEYS[4], corr, id) end
elseif released > 0 then
  redis.call('HSET', KEYS[1], 'rtok', str(rtok), 'rnan', str(rnan), 'infl', str(infl))
end

return {0, tier, ok and 1 or 0, released, now, hasWallet and 1 or 0,
  rpmAt, rpmFr, tpmAt, tpmFr, usedTok, rtok, usedNan, rnan, infl, bal, brk, tbrk}
`)

// releaseScript is one Release.
//
//	KEYS[1] auth hash, KEYS[2] reservations hash, KEYS[3] reservation expiry zset,
//	KEYS[4] correlation index hash
//	ARGV[1] reservation ID
//
// It returns 1 when it released the reservation and 0 when none was open.
var releaseScript = goredis.NewScript(luaCore + `
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return 0 end
local r = unpackRes(rec)
local f = redis.call('HMGET', KEYS[1], 'rtok', 'rnan', 'infl')
local st = {rtok = num(f[1]), rnan = num(f[2]), infl = num(f[3])}
release(st, r.tok, r.nan)
redis.call('HSET', KEYS[1], 'rtok', str(st.rtok), 'rnan', str(st.rnan), 'infl', str(st.infl))
dropRes(KEYS[2], KEYS[3], KEYS[4], ARGV[1], r)
return 1
`)

// settleLua is the settlement part of the Apply script (scripts.go), run after the event's
// increments succeeded: limit.Settle for a store whose usage, spend and wallet the event
// itself counts, i.e. limit.Release and then limit.GCRAAdjust of the TPM bucket.
//
//	KEYS[7] auth hash, KEYS[8] reservations hash, KEYS[9] reservation expiry zset,
//	KEYS[10] correlation index hash
//	ARGV[8] correlation ID, ARGV[9] actual tokens, ARGV[10] now ms ("" for the server's)
//
// It sets settled to 1 when a reservation was open under the correlation ID. The helpers are
// defined only on that path, so an event without a reservation pays nothing for them.
var settleLua = `
local settled = 0
if ARGV[8] ~= '' then
  local rid = redis.call('HGET', KEYS[10], ARGV[8])
  if rid then
` + luaCore + luaAdjust + `
    local rec = redis.call('HGET', KEYS[8], rid)
    if rec then
      local r = unpackRes(rec)
      local f = redis.call('HMGET', KEYS[7], 'rtok', 'rnan', 'infl', 'tpm', 'tpmf')
      local st = {rtok = num(f[1]), rnan = num(f[2]), infl = num(f[3])}
      release(st, r.tok, r.nan)
      local fields = {'rtok', str(st.rtok), 'rnan', str(st.rnan), 'infl', str(st.infl)}
      if r.tpm > 0 then
        local delta = clamp(num(ARGV[9]), 0, MAXV) - clamp(r.tok, 0, MAXV)
        if delta ~= 0 then
          local at, fr = adjust(num(f[4]), num(f[5]), clock(ARGV[10]), r.win, r.tpm, delta)
          fields[#fields + 1] = 'tpm'; fields[#fields + 1] = str(at)
          fields[#fields + 1] = 'tpmf'; fields[#fields + 1] = str(fr)
        end
      end
      redis.call('HSET', KEYS[7], unpack(fields))
      dropRes(KEYS[8], KEYS[9], KEYS[10], rid, r)
      settled = 1
    else
      redis.call('HDEL', KEYS[10], ARGV[8])
    end
  end
end
`

// limitsScript reads everything Limits needs in one step, changing nothing; Go does the
// arithmetic.
//
//	KEYS[1] auth hash, KEYS[2] reservations hash, KEYS[3] tier, KEYS[4] period hash,
//	KEYS[5] wallet hash, KEYS[6] wallet expiry hash, KEYS[7] the task breaker (KEYS[1] again
//	when there is no task)
//	ARGV[1] now ms ("" for the server's), ARGV[2] task ID ("" for none), ARGV[3] "1" to read
//	the wallet, then the period hash fields of the token meters
//
// It returns {now, tier, {auth fields}, {spend, meter values...}, {grant, nanos, ...},
// {grant, expiry, ...}, task breaker, {reservation ID, tokens, nanos, expiresAt, correlation
// ID, task ID, ...}}.
var limitsScript = goredis.NewScript(luaCore + `
local pf = {'spend'}
for i = 4, #ARGV do pf[#pf + 1] = ARGV[i] end
local tb = ''
if ARGV[2] ~= '' then tb = redis.call('GET', KEYS[7]) or '' end
local w, we = {}, {}
if ARGV[3] == '1' then
  w = redis.call('HGETALL', KEYS[5])
  we = redis.call('HGETALL', KEYS[6])
end
local res = {}
local recs = redis.call('HGETALL', KEYS[2])
for i = 1, #recs, 2 do
  local r = unpackRes(recs[i + 1])
  res[#res + 1] = recs[i]
  res[#res + 1] = r.tok
  res[#res + 1] = r.nan
  res[#res + 1] = r.exp
  res[#res + 1] = r.corr
  res[#res + 1] = r.task
end
return {
  clock(ARGV[1]),
  redis.call('GET', KEYS[3]) or '',
  redis.call('HMGET', KEYS[1], 'rpm', 'rpmf', 'tpm', 'tpmf', 'rtok', 'rnan', 'infl', 'brk'),
  redis.call('HMGET', KEYS[4], unpack(pf)),
  w, we, tb, res,
}
`)

// tripScript opens a breaker, extending and never shortening an open one.
//
//	KEYS[1] auth hash (scope customer) or the task breaker key (scope task)
//	ARGV[1] "c" or "t", ARGV[2] until ms, ARGV[3] the task key's PEXPIREAT (ms)
var tripScript = goredis.NewScript(`
local untilMs = tonumber(ARGV[2])
if ARGV[1] == 'c' then
  if (tonumber(redis.call('HGET', KEYS[1], 'brk')) or 0) < untilMs then redis.call('HSET', KEYS[1], 'brk', ARGV[2]) end
  return 1
end
if (tonumber(redis.call('GET', KEYS[1])) or 0) < untilMs then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
return 1
`)

// resetScript closes a breaker and returns 1 when it was open by the server's clock.
//
//	KEYS[1] auth hash (scope customer) or the task breaker key (scope task)
//	ARGV[1] "c" or "t"
var resetScript = goredis.NewScript(luaCore + `
local old
if ARGV[1] == 'c' then
  old = num(redis.call('HGET', KEYS[1], 'brk'))
  redis.call('HDEL', KEYS[1], 'brk')
else
  old = num(redis.call('GET', KEYS[1]))
  redis.call('DEL', KEYS[1])
end
if old > clock('') then return 1 end
return 0
`)
