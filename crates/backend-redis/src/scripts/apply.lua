-- Applies one batch (or, on a cluster, the part of it for one metric) atomically.
--
-- KEYS: the bucket hashes the batch touches.
-- ARGV (counts and indices are decimal, indices 1-based):
--   N, then N distinct paths (the names).
--   S, then S shapes: the number of paths read at a key, then that many name indices; or 0
--     for all N names in order. Keys that are written at the same paths share a shape (every
--     bucket of a tracked event does).
--   For each key in KEYS order: its shape index and its expire-at (unix seconds, "0" for none).
--   W, then W writes in batch order: the number of keys, the key indices, the number of fields,
--     then per field: code, value, where code = 8 * name index + op, and op is 0 integer inc,
--     1 float inc, 2 set, 3 max, 4 min. A write applies every field at every one of its keys,
--     key by key, in the order given.
--   Then the layout: "0" ours, "1" Trifle's (see below).
--   Last: the batch id's lifetime in milliseconds (PX), or "0" for a batch without an id.
--     With an id, the last key of KEYS is the id's key (`<prefix>::b::{tag}::<id>`, in the
--     slot of the bucket keys): if it exists the batch was applied already and the script
--     writes nothing and returns 'DUP'; otherwise it is set (PX) with the writes.
-- Values are integers in canonical decimal or floats that contain '.' or 'e'.
--
-- The script reads the paths with one HMGET per key, computes every update in order on that
-- copy (exact 64-bit integer arithmetic on decimal strings, f64 for floats, comparisons exact
-- across kinds), and only if all of them succeed writes the paths back with one HSET per key.
-- A failing update (overflow, path conflict) returns an error before anything is written.
-- A field "p." marks that path p is a map (so that a later leaf "p" is refused); reads skip it.
-- The fields a new leaf must be checked against (its own marker, its prefixes and their
-- markers) are read with one more HMGET per key that has a new leaf, before any update.
--
-- In the Trifle layout no markers are stored (Trifle's hashes have none): the fields a new
-- leaf is checked against come from HKEYS of the key instead (every stored field, and every
-- prefix of one as a map), so the checks hold at the cost of reading the key's field names
-- once per key with a new leaf; and the float sums are spelled as Ruby's Float#to_s does.
--
-- Every step is linear in the size of the batch: paths and fields are found through tables,
-- never by scanning.
--
-- Cost: inside Redis every table, closure and string a script makes costs about as much as a
-- dozen table lookups (allocation and garbage collection), and tonumber's strtod more than a
-- whole update otherwise; so the hot path keeps the HMGET replies as its working copy, parses
-- the client's small indices by hand, and the helpers that only max/min, big integers, new
-- leaves and errors need are made when first needed.

local CHUNK = 1000
local ARGV, KEYS = ARGV, KEYS
local tonumber, format, find, byte, unpack = tonumber, string.format, string.find, string.byte, unpack
local call = redis.call
local HUGE = math.huge

-- A count or index sent by the client: one or two digits are read without tonumber.
local function small(s)
  local n = #s
  if n == 1 then return byte(s) - 48 end
  if n == 2 then
    local a, b = byte(s, 1, 2)
    return a * 10 + b - 528
  end
  return tonumber(s)
end

local function is_float(s)
  return find(s, '[.eE]') ~= nil
end

local function fail(kind, k, path, detail)
  return redis.error_reply(kind .. ' ' .. k .. '\t' .. path .. '\t' .. detail)
end

-- Exact integer arithmetic and comparisons beyond 2^53, made on first use.
local exact
local function exact_ops()
  if exact then return exact end
  local sub = string.sub

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
  -- Number::cmp_value: the float's integral part is compared as an exact decimal, then the
  -- sign of its fraction breaks a tie.
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

  exact = { int_add = int_add, num_cmp = num_cmp }
  return exact
end

-- A finite double as Ruby's Float#to_s spells it: the shortest digits that read back to x,
-- fixed notation (at least one digit after the point) for decimal exponents from -4 to 15,
-- else d.ddde+XX.
local function ruby_float(x)
  local sub, rep = string.sub, string.rep
  local s
  for p = 0, 16 do
    s = format('%.' .. p .. 'e', x)
    if tonumber(s) == x then break end
  end
  local neg = byte(s, 1) == 45
  if neg then s = sub(s, 2) end
  local e = find(s, 'e', 1, true)
  local digits = string.gsub(sub(s, 1, e - 1), '%.', '')
  digits = string.gsub(digits, '0+$', '')
  if digits == '' then digits = '0' end
  local point, n = tonumber(sub(s, e + 1)) + 1, #digits
  local out
  if point > 0 and point < n then
    out = sub(digits, 1, point) .. '.' .. sub(digits, point + 1)
  elseif point > 0 and point <= 15 then
    out = digits .. rep('0', point - n) .. '.0'
  elseif point <= 0 and point > -4 then
    out = '0.' .. rep('0', -point) .. digits
  else
    local rest = sub(digits, 2)
    if rest == '' then rest = '0' end
    out = sub(digits, 1, 1) .. '.' .. rest .. format('e%+03d', point - 1)
  end
  if neg then out = '-' .. out end
  return out
end

-- The layout and the batch id, checked before anything else.
local trifle = ARGV[#ARGV - 1] == '1'
local id_px = ARGV[#ARGV]
local NKEYS = #KEYS
if id_px ~= '0' then
  if call('EXISTS', KEYS[NKEYS]) == 1 then return 'DUP' end
  NKEYS = NKEYS - 1
end

-- The shapes: per shape its paths (for HMGET and HSET) and each name's position in them.
local n_names = small(ARGV[1])
local pos = n_names + 2
local n_shapes = small(ARGV[pos])
pos = pos + 1
local shape_paths, shape_at = {}, {}
for s = 1, n_shapes do
  local c = small(ARGV[pos])
  local paths, at
  if c == 0 then
    -- Every name, in order.
    paths, at = { unpack(ARGV, 2, 1 + n_names) }, {}
    for j = 1, n_names do at[j] = j end
  else
    paths, at = {}, {}
    for j = 1, c do
      local name = small(ARGV[pos + j])
      paths[j] = ARGV[1 + name]
      at[name] = j
    end
  end
  shape_paths[s], shape_at[s] = paths, at
  pos = pos + c + 1
end

-- Key k's shape index is ARGV[keypos + 2k - 2], its expire-at the argument after it.
local keypos = pos
pos = pos + 2 * NKEYS

-- Read every key's paths: one HMGET per key (chunked for very wide keys). The reply is the
-- working copy: cur[k][j] is the value of the key's path j, false while missing. kshape[k] is
-- the key's shape index.
local cur, kshape = {}, {}
for k = 1, NKEYS do
  local s = small(ARGV[keypos + 2 * k - 2])
  kshape[k] = s
  local paths = shape_paths[s]
  local c = #paths
  local got
  if c <= CHUNK then
    got = call('HMGET', KEYS[k], unpack(paths))
  else
    got = {}
    for a = 0, c - 1, CHUNK do
      local last = a + CHUNK
      if last > c then last = c end
      local part = call('HMGET', KEYS[k], unpack(paths, a + 1, last))
      for j = 1, last - a do got[a + j] = part[j] end
    end
  end
  cur[k] = got
end

-- New leaves (rare once a bucket exists), prepared at the first one, still before any write.
-- Per key with a missing path: the fields its new leaves are checked against (markers,
-- prefixes and their markers), read with one HMGET, as ex[k][field] = value or false; markers
-- this batch creates are set to '1' in ex[k] and listed in marks[k].
local new_leaf, marks
local function prepare_new_leaves()
  local sub = string.sub
  local ex, name_of = {}, {}
  marks = {}
  for i = 1, n_names do name_of[ARGV[1 + i]] = i end
  for k = 1, NKEYS do
    local paths, vals = shape_paths[kshape[k]], cur[k]
    local want, wanted, n = nil, nil, 0
    for j = 1, #paths do
      if not vals[j] then
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
    if want and trifle then
      -- No markers stored: every field, and every prefix of one as a map marker.
      local got = {}
      local fields = call('HKEYS', KEYS[k])
      for f = 1, #fields do
        local field = fields[f]
        got[field] = '1'
        local start = 1
        while true do
          local dot = find(field, '.', start, true)
          if not dot then break end
          got[sub(field, 1, dot)] = '1'
          start = dot + 1
        end
      end
      ex[k], marks[k] = got, {}
    elseif want then
      local got = {}
      for a = 1, n, CHUNK do
        local last = a + CHUNK - 1
        if last > n then last = n end
        local part = call('HMGET', KEYS[k], unpack(want, a, last))
        for j = 1, last - a + 1 do
          got[want[a + j - 1]] = part[j]
        end
      end
      ex[k], marks[k] = got, {}
    end
  end

  -- A new leaf at path of key k: it must not be a map already, nor sit below a number (a
  -- leaf named by this batch at this key, or stored); its prefixes get map markers. Returns
  -- an error reply or nil.
  new_leaf = function(k, path, at, vals)
    local got, mk = ex[k], marks[k]
    if got[path .. '.'] then
      return fail('STATSCONFLICT', k, path, 'is a map in the stored document, not a number')
    end
    local start = 1
    while true do
      local dot = find(path, '.', start, true)
      if not dot then break end
      local prefix = sub(path, 1, dot - 1)
      -- A prefix written by this batch at this key has its current value in vals.
      local name, j, leaf = name_of[prefix], nil, nil
      if name then j = at[name] end
      if j then leaf = vals[j] else leaf = got[prefix] end
      if leaf then
        return fail('STATSCONFLICT', k, path, 'goes below a number in the stored document')
      end
      local marker = prefix .. '.'
      if not got[marker] then
        got[marker] = '1'
        mk[#mk + 1] = marker
      end
      start = dot + 1
    end
    return nil
  end
end

-- The updates, write by write. Each field's op, name, value and (for an increment) number
-- are decoded once per write, not once per key.
local n_writes = small(ARGV[pos])
pos = pos + 1
local f_op, f_name, f_given, f_num = {}, {}, {}, {}
for _ = 1, n_writes do
  local nk = small(ARGV[pos])
  local kpos = pos + 1
  pos = kpos + nk
  local nf = small(ARGV[pos])
  pos = pos + 1
  for f = 1, nf do
    local code, given = small(ARGV[pos]), ARGV[pos + 1]
    local op = code % 8
    f_op[f], f_name[f], f_given[f] = op, (code - op) / 8, given
    -- Integers below 10^15 in magnitude add exactly as doubles; others take the exact path.
    if op == 0 then
      if #given <= 15 then f_num[f] = tonumber(given) else f_num[f] = false end
    elseif op == 1 then
      f_num[f] = tonumber(given)
    end
    pos = pos + 2
  end
  for i = kpos, kpos + nk - 1 do
    local k = small(ARGV[i])
    local vals, at = cur[k], shape_at[kshape[k]]
    for f = 1, nf do
      local op, j = f_op[f], at[f_name[f]]
      local v = vals[j]
      if not v then
        if not new_leaf then prepare_new_leaves() end
        local err = new_leaf(k, ARGV[1 + f_name[f]], at, vals)
        if err then return err end
        vals[j] = f_given[f]
      elseif op <= 1 then
        if op == 0 and not find(v, '[.eE]') then
          local num = f_num[f]
          if num and #v <= 15 then
            -- Both below 10^15 in magnitude: the double sum is exact.
            vals[j] = format('%d', tonumber(v) + num)
          else
            local r = exact_ops().int_add(v, f_given[f])
            if not r then
              return fail('STATSOVERFLOW', k, ARGV[1 + f_name[f]], v .. ' + ' .. f_given[f])
            end
            vals[j] = r
          end
        else
          local x = tonumber(v) + (f_num[f] or tonumber(f_given[f]))
          if x ~= x or x == HUGE or x == -HUGE then
            return fail('STATSOVERFLOW', k, ARGV[1 + f_name[f]], v .. ' + ' .. f_given[f])
          end
          if trifle then
            vals[j] = ruby_float(x)
          else
            -- '%.17g' reads back to the same double; whole numbers below 10^17 in magnitude
            -- get '.0' so that the leaf stays a float.
            local s = format('%.17g', x)
            if x % 1 == 0 and x < 1e17 and x > -1e17 then s = s .. '.0' end
            vals[j] = s
          end
        end
      elseif op == 2 then
        vals[j] = f_given[f]
      elseif op == 3 or op == 4 then
        local c = exact_ops().num_cmp(f_given[f], v)
        if (op == 3 and c > 0) or (op == 4 and c < 0) then
          vals[j] = f_given[f]
        end
      else
        return fail('STATSBADOP', k, ARGV[1 + f_name[f]], tostring(op))
      end
    end
  end
end

-- Everything succeeded: write every path read (each was updated), the new markers, then the
-- expiry.
local args = {}
for k = 1, NKEYS do
  local paths, vals = shape_paths[kshape[k]], cur[k]
  local n = 0
  for j = 1, #paths do
    args[n + 1], args[n + 2] = paths[j], vals[j]
    n = n + 2
  end
  local mk = marks and marks[k]
  if mk and not trifle then
    for m = 1, #mk do
      args[n + 1], args[n + 2] = mk[m], '1'
      n = n + 2
    end
  end
  if n <= 2 * CHUNK then
    call('HSET', KEYS[k], unpack(args, 1, n))
  else
    for a = 1, n, 2 * CHUNK do
      local last = a + 2 * CHUNK - 1
      if last > n then last = n end
      call('HSET', KEYS[k], unpack(args, a, last))
    end
  end
  local at = ARGV[keypos + 2 * k - 1]
  if at ~= '0' then
    call('EXPIREAT', KEYS[k], at)
  end
end
if id_px ~= '0' then
  call('SET', KEYS[NKEYS + 1], '1', 'PX', id_px)
end
return 'OK'
