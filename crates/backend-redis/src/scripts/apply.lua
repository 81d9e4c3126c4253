-- Applies one batch (or, on a cluster, the part of it for one metric) atomically.
--
-- KEYS: the bucket hashes the batch touches.
-- ARGV[1]: the number of updates U; then U times: op ("i" inc, "s" set, "x" max, "n" min),
--   key index (1-based into KEYS), field path, value; then one expire-at (unix seconds, "0" for
--   none) per key.
-- Values are integers in canonical decimal or floats that contain '.' or 'e'.
--
-- The script reads every field it needs with one HMGET per key, computes every update in order
-- on that copy (exact 64-bit integer arithmetic on decimal strings, f64 for floats), and only if
-- all of them succeed writes the changed fields back with one HSET per key. A failing update
-- (overflow, path conflict) returns an error before anything is written.
-- A field "p." marks that path p is a map (so that a later leaf "p" is refused); reads skip it.

local CHUNK = 1000

local function is_float(s)
  return string.find(s, '[%.eE]') ~= nil
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
    return string.format('%.0f', tonumber(a) + tonumber(b))
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

local u = tonumber(ARGV[1])

-- Every field each key needs: the paths, their map markers and their prefixes.
local wanted, wanted_set = {}, {}
for k = 1, #KEYS do wanted[k], wanted_set[k] = {}, {} end
local function want(k, f)
  if not wanted_set[k][f] then
    wanted_set[k][f] = true
    wanted[k][#wanted[k] + 1] = f
  end
end
for i = 0, u - 1 do
  local k, path = tonumber(ARGV[3 + 4 * i]), ARGV[4 + 4 * i]
  want(k, path)
  want(k, path .. '.')
  local start = 1
  while true do
    local dot = string.find(path, '.', start, true)
    if not dot then break end
    want(k, string.sub(path, 1, dot - 1))
    start = dot + 1
  end
end

-- The stored values (false when missing), read in chunks (unpack has a stack limit).
local state = {}
for k = 1, #KEYS do
  local s, fields = {}, wanted[k]
  for c = 1, #fields, CHUNK do
    local part = { unpack(fields, c, math.min(c + CHUNK - 1, #fields)) }
    local got = redis.call('HMGET', KEYS[k], unpack(part))
    for n = 1, #part do s[part[n]] = got[n] end
  end
  state[k] = s
end

local changed, changed_set = {}, {}
for k = 1, #KEYS do changed[k], changed_set[k] = {}, {} end
local function put(k, f, v)
  state[k][f] = v
  if not changed_set[k][f] then
    changed_set[k][f] = true
    changed[k][#changed[k] + 1] = f
  end
end

local function fail(kind, k, path, detail)
  return redis.error_reply(kind .. ' ' .. k .. '\t' .. path .. '\t' .. detail)
end

for i = 0, u - 1 do
  local op, k, path, given = ARGV[2 + 4 * i], tonumber(ARGV[3 + 4 * i]), ARGV[4 + 4 * i], ARGV[5 + 4 * i]
  local s = state[k]
  local cur = s[path]
  if not cur then
    -- A new leaf: it must not be a map already, nor sit below a number.
    if s[path .. '.'] then
      return fail('STATSCONFLICT', k, path, 'is a map in the stored document, not a number')
    end
    local start, prefixes = 1, {}
    while true do
      local dot = string.find(path, '.', start, true)
      if not dot then break end
      local prefix = string.sub(path, 1, dot - 1)
      if s[prefix] then
        return fail('STATSCONFLICT', k, path, 'goes below a number in the stored document')
      end
      prefixes[#prefixes + 1] = prefix
      start = dot + 1
    end
    for _, prefix in ipairs(prefixes) do
      if not s[prefix .. '.'] then put(k, prefix .. '.', '1') end
    end
    put(k, path, given)
  elseif op == 's' then
    put(k, path, given)
  elseif op == 'i' then
    if not is_float(cur) and not is_float(given) then
      local r = int_add(cur, given)
      if not r then return fail('STATSOVERFLOW', k, path, cur .. ' + ' .. given) end
      put(k, path, r)
    else
      local x = tonumber(cur) + tonumber(given)
      if x ~= x or x == math.huge or x == -math.huge then
        return fail('STATSOVERFLOW', k, path, cur .. ' + ' .. given)
      end
      put(k, path, format_float(x))
    end
  elseif op == 'x' then
    if num_cmp(given, cur) > 0 then put(k, path, given) end
  elseif op == 'n' then
    if num_cmp(given, cur) < 0 then put(k, path, given) end
  else
    return fail('STATSBADOP', k, path, op)
  end
end

-- Everything succeeded: write the changed fields, then the expiry.
local ttl_base = 1 + 4 * u
for k = 1, #KEYS do
  local fields = changed[k]
  for c = 1, #fields, CHUNK do
    local args = {}
    for n = c, math.min(c + CHUNK - 1, #fields) do
      args[#args + 1] = fields[n]
      args[#args + 1] = state[k][fields[n]]
    end
    redis.call('HSET', KEYS[k], unpack(args))
  end
  local at = ARGV[ttl_base + k]
  if at and at ~= '0' and #fields > 0 then
    redis.call('EXPIREAT', KEYS[k], at)
  end
end
return 'OK'
