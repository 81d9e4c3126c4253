-- Applies one batch (or, on a cluster, the part of it for one metric) atomically.
--
-- KEYS: the bucket hashes the batch touches.
-- ARGV (counts and indices are decimal, indices 1-based):
--   N, then N distinct paths (the names).
--   S, then S shapes: the number of paths read at a key, then that many name indices. Keys that
--     are written at the same paths share a shape (every bucket of a tracked event does).
--   For each key in KEYS order: its shape index and its expire-at (unix seconds, "0" for none).
--   W, then W writes in batch order: the number of keys, the key indices, the number of fields,
--     then per field: code, value, where code = 8 * name index + op, and op is 0 integer inc,
--     1 float inc, 2 set, 3 max, 4 min. A write applies every field at every one of its keys,
--     key by key, in the order given.
-- Values are integers in canonical decimal or floats that contain '.' or 'e'.
--
-- The script reads the paths with one HMGET per key, computes every update in order on that
-- copy (exact 64-bit integer arithmetic on decimal strings, f64 for floats, comparisons exact
-- across kinds), and only if all of them succeed writes the changed fields back with one HSET
-- per key. A failing update (overflow, path conflict) returns an error before anything is
-- written.
-- A field "p." marks that path p is a map (so that a later leaf "p" is refused); reads skip it.
-- The fields a new leaf must be checked against (its own marker, its prefixes and their
-- markers) are read with one more HMGET per key that has a new leaf, before any update.
--
-- Every step is linear in the size of the batch: paths and fields are found through tables,
-- never by scanning.

local CHUNK = 1000
local ARGV, KEYS = ARGV, KEYS
local tonumber, format, find, sub, byte, unpack = tonumber, string.format, string.find, string.sub, string.byte, unpack
local call = redis.call

local HUGE = math.huge

-- Plain finds: much cheaper than a pattern.
local function is_float(s)
  return find(s, '.', 1, true) ~= nil or find(s, 'e', 1, true) ~= nil
    or find(s, 'E', 1, true) ~= nil
end

-- A count or index sent by the client: one or two digits without tonumber (whose strtod
-- costs far more than the rest of an update).
local function small(s)
  local n = #s
  if n == 1 then return byte(s) - 48 end
  if n == 2 then
    local a, b = byte(s, 1, 2)
    return a * 10 + b - 528
  end
  return tonumber(s)
end

-- '%.17g' reads back to the same double; it has no '.' nor exponent exactly for whole numbers
-- below 10^17 in magnitude, which get '.0' so that the leaf stays a float.
local function format_float(x)
  local s = format('%.17g', x)
  if x % 1 == 0 and x < 1e17 and x > -1e17 then
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
  if byte(s, 1) == 45 then return true, sub(s, 2) end
  return false, s
end

local function mag_add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry + (i > 0 and byte(a, i) - 48 or 0) + (j > 0 and byte(b, j) - 48 or 0)
    out[#out + 1] = d % 10
    carry = (d - d % 10) / 10
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
    local d = (byte(a, i) - 48) - borrow - (j > 0 and byte(b, j) - 48 or 0)
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
-- 2^63 as a double (exact): every float at or above it exceeds every i64.
local TWO_63 = 9223372036854775808

-- Exact sum of two canonical decimal i64 strings, or nil when it leaves the i64 range.
local function int_add(a, b)
  if #a <= 15 and #b <= 15 then
    -- Both below 10^15 in magnitude: the double sum is exact.
    return format('%d', tonumber(a) + tonumber(b))
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
  if #a <= 15 and #b <= 15 then
    -- Both below 10^15 in magnitude: exact as doubles.
    local x, y = tonumber(a), tonumber(b)
    if x < y then return -1 elseif x > y then return 1 else return 0 end
  end
  local na, ma = split(a)
  local nb, mb = split(b)
  if na ~= nb then return na and -1 or 1 end
  local c = mag_cmp(ma, mb)
  return na and -c or c
end

-- Exact comparison of a canonical decimal integer with a finite double, as the core's
-- Number::cmp_value: the float's integral part is compared as an exact decimal, then the sign
-- of its fraction breaks a tie.
local function int_float_cmp(i, y)
  if #i <= 15 then
    -- |i| < 10^15 < 2^53: exact as a double, and double comparison is exact.
    local x = tonumber(i)
    if x < y then return -1 elseif x > y then return 1 else return 0 end
  end
  if y >= TWO_63 then return -1 end
  if y < -TWO_63 then return 1 end
  local whole
  if y >= 0 then whole = math.floor(y) else whole = math.ceil(y) end
  -- |whole| <= 2^63: '%.0f' prints an integral double exactly.
  local w = format('%.0f', whole)
  if w == '-0' then w = '0' end
  local c = int_cmp(i, w)
  if c ~= 0 then return c end
  local frac = y - whole
  if frac > 0 then return -1 elseif frac < 0 then return 1 else return 0 end
end

-- Exact comparison of two stored numbers, as the core's Number::cmp_value (floats in total
-- order: -0.0 below 0.0).
local function num_cmp(a, b)
  local fa, fb = is_float(a), is_float(b)
  if not fa and not fb then return int_cmp(a, b) end
  if fa and fb then
    local x, y = tonumber(a), tonumber(b)
    if x < y then return -1 elseif x > y then return 1 end
    if x == 0 then
      -- 0.0 and -0.0: the sign decides, as in f64::total_cmp.
      local sx, sy = 1 / x, 1 / y
      if sx < sy then return -1 elseif sx > sy then return 1 end
    end
    return 0
  end
  if fb then return int_float_cmp(a, tonumber(b)) end
  return -int_float_cmp(b, tonumber(a))
end

-- The names, and the shapes as lists of paths with each name's position.
local pos = 1
local names = {}
local n_names = small(ARGV[pos])
for i = 1, n_names do names[i] = ARGV[pos + i] end
pos = pos + n_names + 1
local shape_paths, shape_pos = {}, {}
local n_shapes = small(ARGV[pos])
pos = pos + 1
for s = 1, n_shapes do
  local c = small(ARGV[pos])
  local paths, at = {}, {}
  for j = 1, c do
    local name = small(ARGV[pos + j])
    paths[j], at[name] = names[name], j
  end
  shape_paths[s], shape_pos[s] = paths, at
  pos = pos + c + 1
end

-- Read every key's paths: one HMGET per key. The value of path j of key k is vals[base[k] + j].
local vals, kinds, changed = {}, {}, {}
local shape, base, expire = {}, {}, {}
local total = 0
local fresh = false
for k = 1, #KEYS do
  local s = small(ARGV[pos])
  expire[k] = ARGV[pos + 1]
  pos = pos + 2
  local paths = shape_paths[s]
  local c = #paths
  shape[k], base[k] = s, total
  for a = 0, c - 1, CHUNK do
    local last = a + CHUNK
    if last > c then last = c end
    local got = call('HMGET', KEYS[k], unpack(paths, a + 1, last))
    local b = total + a
    for j = 1, last - a do
      local v = got[j]
      vals[b + j] = v
      if not v then fresh = true end
    end
  end
  total = total + c
end

local function fail(kind, k, path, detail)
  return redis.error_reply(kind .. ' ' .. k .. '\t' .. path .. '\t' .. detail)
end

-- Fields read outside the named paths (markers and prefixes of new leaves), per key and name:
-- the stored value or false; markers this batch creates are set to '1' and listed in marks.
local extra, marks, name_of = {}, {}, {}
if fresh then
  for i = 1, n_names do name_of[names[i]] = i end
  -- Per key with a missing path: the fields its new leaves are checked against, fetched with
  -- one HMGET.
  for k = 1, #KEYS do
    local paths, b = shape_paths[shape[k]], base[k]
    local want, wanted, n = nil, nil, 0
    for j = 1, #paths do
      if not vals[b + j] then
        if not want then want, wanted = {}, {} end
        local path = paths[j]
        local marker = path .. '.'
        if not wanted[marker] then wanted[marker] = true; n = n + 1; want[n] = marker end
        local start = 1
        while true do
          local dot = find(path, '.', start, true)
          if not dot then break end
          local prefix = sub(path, 1, dot - 1)
          if not wanted[prefix] then wanted[prefix] = true; n = n + 1; want[n] = prefix end
          local pmarker = prefix .. '.'
          if not wanted[pmarker] then wanted[pmarker] = true; n = n + 1; want[n] = pmarker end
          start = dot + 1
        end
      end
    end
    if want then
      local ex = {}
      for a = 1, n, CHUNK do
        local last = a + CHUNK - 1
        if last > n then last = n end
        local got = call('HMGET', KEYS[k], unpack(want, a, last))
        for j = 1, last - a + 1 do
          ex[want[a + j - 1]] = got[j]
        end
      end
      extra[k], marks[k] = ex, {}
    end
  end
end

-- A new leaf (rare once a bucket exists) at path of key k: it must not be a map already, nor
-- sit below a number (a leaf named by this batch or stored); its prefixes get map markers.
-- Returns an error reply or nil.
local function new_leaf(k, path)
  local ex, mk = extra[k], marks[k]
  if ex[path .. '.'] then
    return fail('STATSCONFLICT', k, path, 'is a map in the stored document, not a number')
  end
  local b, at = base[k], shape_pos[shape[k]]
  local start = 1
  while true do
    local dot = find(path, '.', start, true)
    if not dot then break end
    local prefix = sub(path, 1, dot - 1)
    -- A prefix written by this batch at this key has its current value in vals.
    local name, j, leaf = name_of[prefix], nil, nil
    if name then j = at[name] end
    if j then leaf = vals[b + j] else leaf = ex[prefix] end
    if leaf then
      return fail('STATSCONFLICT', k, path, 'goes below a number in the stored document')
    end
    local marker = prefix .. '.'
    if not ex[marker] then
      ex[marker] = '1'
      mk[#mk + 1] = marker
    end
    start = dot + 1
  end
  return nil
end

-- The updates, write by write; each field's code and value are read once per write.
local n_writes = small(ARGV[pos])
pos = pos + 1
-- Per field of the current write: name, op, value as sent, its length, and (for increments)
-- its number.
local f_name, f_op, f_given, f_len, f_num = {}, {}, {}, {}, {}
for _ = 1, n_writes do
  local nk = small(ARGV[pos])
  local kpos = pos + 1
  pos = kpos + nk
  local nf = small(ARGV[pos])
  pos = pos + 1
  for f = 1, nf do
    local code = small(ARGV[pos])
    local op = code % 8
    local given = ARGV[pos + 1]
    f_name[f], f_op[f], f_given[f], f_len[f] = (code - op) / 8, op, given, #given
    if op <= 1 then f_num[f] = tonumber(given) end
    pos = pos + 2
  end
  for i = kpos, kpos + nk - 1 do
    local k = small(ARGV[i])
    local b, at = base[k], shape_pos[shape[k]]
    for f = 1, nf do
      local fi = b + at[f_name[f]]
      local op, given = f_op[f], f_given[f]
      local cur = vals[fi]
      if not cur then
        local err = new_leaf(k, names[f_name[f]])
        if err then return err end
        -- The kind is known for an increment; a set, max or min may bring either kind.
        if op <= 1 then kinds[fi] = op == 1 else kinds[fi] = nil end
        vals[fi], changed[fi] = given, true
      elseif op <= 1 then
        local float = kinds[fi]
        if float == nil then
          float = is_float(cur)
          kinds[fi] = float
        end
        if op == 0 and not float then
          local r
          if #cur <= 15 and f_len[f] <= 15 then
            r = format('%d', tonumber(cur) + f_num[f])
          else
            r = int_add(cur, given)
            if not r then
              return fail('STATSOVERFLOW', k, names[f_name[f]], cur .. ' + ' .. given)
            end
          end
          vals[fi], changed[fi] = r, true
        else
          local x = tonumber(cur) + f_num[f]
          if x ~= x or x == HUGE or x == -HUGE then
            return fail('STATSOVERFLOW', k, names[f_name[f]], cur .. ' + ' .. given)
          end
          vals[fi], kinds[fi], changed[fi] = format_float(x), true, true
        end
      elseif op == 2 then
        vals[fi], kinds[fi], changed[fi] = given, nil, true
      elseif op == 3 or op == 4 then
        local c = num_cmp(given, cur)
        if (op == 3 and c > 0) or (op == 4 and c < 0) then
          vals[fi], kinds[fi], changed[fi] = given, nil, true
        end
      else
        return fail('STATSBADOP', k, names[f_name[f]], tostring(op))
      end
    end
  end
end

-- Everything succeeded: write the changed fields, then the expiry.
local args = {}
for k = 1, #KEYS do
  local paths, b, n = shape_paths[shape[k]], base[k], 0
  for j = 1, #paths do
    if changed[b + j] then
      args[n + 1] = paths[j]
      args[n + 2] = vals[b + j]
      n = n + 2
    end
  end
  local mk = marks[k]
  if mk then
    for m = 1, #mk do
      args[n + 1] = mk[m]
      args[n + 2] = '1'
      n = n + 2
    end
  end
  for a = 1, n, 2 * CHUNK do
    local last = a + 2 * CHUNK - 1
    if last > n then last = n end
    call('HSET', KEYS[k], unpack(args, a, last))
  end
  local at = expire[k]
  if n > 0 and at ~= '0' then
    call('EXPIREAT', KEYS[k], at)
  end
end
return 'OK'
