-- Applies one batch (or, on a cluster, the part of it for one metric) atomically.
--
-- KEYS: the bucket hashes the batch touches.
-- ARGV, for each key in KEYS order: the number of distinct paths written at that key, then the
--   paths. Then the number of updates U, then U times: op ("i" integer inc, "f" float inc, "s"
--   set, "x" max, "n" min), path index (1-based, counting the paths of all keys in order),
--   value. Then one expire-at per key (unix seconds, "0" for none).
-- Values are integers in canonical decimal or floats that contain '.' or 'e'.
--
-- The script reads the paths with one HMGET per key, computes every update in order on that
-- copy (exact 64-bit integer arithmetic on decimal strings, f64 for floats), and only if all of
-- them succeed writes the changed fields back with one HSET per key. A failing update
-- (overflow, path conflict) returns an error before anything is written.
-- A field "p." marks that path p is a map (so that a later leaf "p" is refused); reads skip it.

local CHUNK = 1000
local ARGV, KEYS = ARGV, KEYS
local tonumber, format, find, sub, unpack = tonumber, string.format, string.find, string.sub, unpack

local function is_float(s)
  return find(s, '[%.eE]') ~= nil
end

local function format_float(x)
  local s = string.format('%.17g', x)
  if not is_float(s) then
    s = s .. '.0'
  end
  return s
end

-- Magnitude comparison of two digit strings without sign or leading zeros.
local function mag_cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local function split(s)
  if string.sub(s, 1, 1) == '-' then return true, string.sub(s, 2) end
  return false, s
end

local function mag_add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry + (i > 0 and string.byte(a, i) - 48 or 0) + (j > 0 and string.byte(b, j) - 48 or 0)
    out[#out + 1] = d % 10
    carry = math.floor(d / 10)
    i, j = i - 1, j - 1
  end
  local s = {}
  for k = #out, 1, -1 do s[#s + 1] = out[k] end
  return table.concat(s)
end

-- a - b for magnitudes with a >= b.
local function mag_sub(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = (string.byte(a, i) - 48) - borrow - (j > 0 and string.byte(b, j) - 48 or 0)
    if d < 0 then d = d + 10; borrow = 1 else borrow = 0 end
    out[#out + 1] = d
    i, j = i - 1, j - 1
  end
  local s = {}
  for k = #out, 1, -1 do s[#s + 1] = out[k] end
  local r = string.gsub(table.concat(s), '^0+', '')
  if r == '' then r = '0' end
  return r
end

local MAX = '9223372036854775807'
local MIN_MAG = '9223372036854775808'

-- Exact sum of two canonical decimal i64 strings, or nil when it leaves the i64 range.
local function int_add(a, b)
  if #a <= 15 and #b <= 15 then
    -- Both below 10^15 in magnitude: the double sum is exact.
    return string.format('%d', tonumber(a) + tonumber(b))
  end
  local na, ma = split(a)
  local nb, mb = split(b)
  local neg, mag
  if na == nb then
    neg, mag = na, mag_add(ma, mb)
  elseif mag_cmp(ma, mb) >= 0 then
    neg, mag = na, mag_sub(ma, mb)
  else
    neg, mag = nb, mag_sub(mb, ma)
  end
  if mag == '0' then return '0' end
  if mag_cmp(mag, neg and MIN_MAG or MAX) > 0 then return nil end
  return (neg and '-' or '') .. mag
end

-- Exact comparison of two canonical decimal integers: -1, 0 or 1.
local function int_cmp(a, b)
  local na, ma = split(a)
  local nb, mb = split(b)
  if na ~= nb then return na and -1 or 1 end
  local c = mag_cmp(ma, mb)
  return na and -c or c
end

local function num_cmp(a, b)
  if not is_float(a) and not is_float(b) then
    return int_cmp(a, b)
  end
  local x, y = tonumber(a), tonumber(b)
  if x < y then return -1 elseif x > y then return 1 else return 0 end
end

local pos = 1
local vals, kinds, changed = {}, {}, {}
-- Per key: the index of its first path, its path count, and where its paths sit in ARGV.
local first, count, argbase = {}, {}, {}
local total = 0
for k = 1, #KEYS do
  local c = tonumber(ARGV[pos])
  pos = pos + 1
  first[k], count[k], argbase[k] = total + 1, c, pos - total - 1
  for a = 0, c - 1, CHUNK do
    local last = math.min(a + CHUNK, c)
    local got = redis.call('HMGET', KEYS[k], unpack(ARGV, pos + a, pos + last - 1))
    local base = total + a
    for j = 1, last - a do
      vals[base + j] = got[j]
    end
  end
  pos = pos + c
  total = total + c
end

-- The key and path of a path index (for errors and new leaves only).
local function locate(fi)
  local k = 1
  while k < #KEYS and fi >= first[k + 1] do k = k + 1 end
  return k, ARGV[argbase[k] + fi]
end

-- Map markers (and any other field read outside the named paths), by key and field name;
-- created only for keys that get a new leaf.
local extra, extra_changed = {}, {}

local function exists(k, f)
  if not extra[k] then extra[k], extra_changed[k] = {}, {} end
  local v = extra[k][f]
  if v == nil then
    v = redis.call('HGET', KEYS[k], f)
    extra[k][f] = v
  end
  return v ~= false
end

local function fail(kind, fi, detail)
  local k, path = locate(fi)
  return redis.error_reply(kind .. ' ' .. k .. '\t' .. path .. '\t' .. detail)
end

local u = tonumber(ARGV[pos])
pos = pos + 1
for _ = 1, u do
  local op, fi, given = ARGV[pos], tonumber(ARGV[pos + 1]), ARGV[pos + 2]
  pos = pos + 3
  local cur = vals[fi]
  if not cur then
    -- A new leaf (rare once a bucket exists): it must not be a map already, nor sit below a
    -- number (a leaf named by this batch or stored); its prefixes get map markers.
    local k, path = locate(fi)
    if exists(k, path .. '.') then
      return fail('STATSCONFLICT', fi, 'is a map in the stored document, not a number')
    end
    local start = 1
    while true do
      local dot = string.find(path, '.', start, true)
      if not dot then break end
      local prefix = string.sub(path, 1, dot - 1)
      local leaf = false
      for j = first[k], first[k] + count[k] - 1 do
        if ARGV[argbase[k] + j] == prefix then leaf = vals[j] ~= false; break end
      end
      if leaf or exists(k, prefix) then
        return fail('STATSCONFLICT', fi, 'goes below a number in the stored document')
      end
      local marker = prefix .. '.'
      if not exists(k, marker) then
        extra[k][marker] = '1'
        extra_changed[k][marker] = true
      end
      start = dot + 1
    end
    vals[fi], kinds[fi], changed[fi] = given, op == 'f', true
  else
    local float = kinds[fi]
    if float == nil then
      float = is_float(cur)
      kinds[fi] = float
    end
    if op == 'i' and not float then
      local r
      if #cur <= 15 and #given <= 15 then
        r = format('%d', tonumber(cur) + tonumber(given))
      else
        r = int_add(cur, given)
        if not r then return fail('STATSOVERFLOW', fi, cur .. ' + ' .. given) end
      end
      vals[fi], changed[fi] = r, true
    elseif op == 'i' or op == 'f' then
      local x = tonumber(cur) + tonumber(given)
      if x ~= x or x == math.huge or x == -math.huge then
        return fail('STATSOVERFLOW', fi, cur .. ' + ' .. given)
      end
      vals[fi], kinds[fi], changed[fi] = format_float(x), true, true
    elseif op == 's' then
      vals[fi], kinds[fi], changed[fi] = given, nil, true
    elseif op == 'x' or op == 'n' then
      local c = num_cmp(given, cur)
      if (op == 'x' and c > 0) or (op == 'n' and c < 0) then
        vals[fi], kinds[fi], changed[fi] = given, nil, true
      end
    else
      return fail('STATSBADOP', fi, op)
    end
  end
end

-- Everything succeeded: write the changed fields, then the expiry.
local args = {}
for k = 1, #KEYS do
  local n, base = 0, argbase[k]
  for j = first[k], first[k] + count[k] - 1 do
    if changed[j] then
      args[n + 1] = ARGV[base + j]
      args[n + 2] = vals[j]
      n = n + 2
    end
  end
  for f in pairs(extra_changed[k] or {}) do
    args[n + 1] = f
    args[n + 2] = '1'
    n = n + 2
  end
  for a = 1, n, 2 * CHUNK do
    redis.call('HSET', KEYS[k], unpack(args, a, math.min(a + 2 * CHUNK - 1, n)))
  end
  local at = ARGV[pos + k - 1]
  if n > 0 and at ~= '0' then
    redis.call('EXPIREAT', KEYS[k], at)
  end
end
return 'OK'
