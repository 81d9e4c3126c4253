-- Applies one batch (or, on a cluster, the part of it for one metric) atomically.
--
-- KEYS: the bucket hashes the batch touches.
-- ARGV[1]: the number of updates U; then U times: op ("i" inc, "s" set, "x" max, "n" min),
--   key index (1-based into KEYS), field path, value; then one expire-at (unix seconds, "0" for
--   none) per key.
-- Values are integers in canonical decimal or floats that contain '.' or 'e'.
--
-- Every update checks before it writes and remembers the field's original value; the first
-- failing update restores every remembered field, so a failing call leaves nothing written.
-- Scripts run atomically, so the restore is exact.
-- A field "p." marks that path p is a map (so that a later leaf "p" is refused).

local saved = {}
local seen = {}

local function remember(key, field)
  local id = key .. '\0' .. field
  if not seen[id] then
    seen[id] = true
    saved[#saved + 1] = { key, field, redis.call('HGET', key, field) }
  end
end

local function rollback()
  for i = #saved, 1, -1 do
    local e = saved[i]
    if e[3] then
      redis.call('HSET', e[1], e[2], e[3])
    else
      redis.call('HDEL', e[1], e[2])
    end
  end
end

local function fail(kind, ki, path, detail)
  rollback()
  return redis.error_reply(kind .. ' ' .. ki .. '\t' .. path .. '\t' .. detail)
end

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

-- Exact comparison of two canonical decimal integers: -1, 0 or 1.
local function int_cmp(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then
    return na and -1 or 1
  end
  local sign = na and -1 or 1
  if #a ~= #b then
    return (#a < #b and -1 or 1) * sign
  end
  if a == b then
    return 0
  end
  return (a < b and -1 or 1) * sign
end

local function num_cmp(a, b)
  if not is_float(a) and not is_float(b) then
    return int_cmp(a, b)
  end
  local x, y = tonumber(a), tonumber(b)
  if x < y then return -1 elseif x > y then return 1 else return 0 end
end

local u = tonumber(ARGV[1])
local ttl_base = 1 + 4 * u
for i = 0, u - 1 do
  local op, ki, path, given = ARGV[2 + 4 * i], ARGV[3 + 4 * i], ARGV[4 + 4 * i], ARGV[5 + 4 * i]
  local key = KEYS[tonumber(ki)]
  local cur = redis.call('HGET', key, path)
  if not cur then
    -- A new leaf: it must not be a map already, nor sit below a number.
    if redis.call('HEXISTS', key, path .. '.') == 1 then
      return fail('STATSCONFLICT', ki, path, 'is a map in the stored document, not a number')
    end
    local start = 1
    while true do
      local dot = string.find(path, '.', start, true)
      if not dot then break end
      local prefix = string.sub(path, 1, dot - 1)
      if redis.call('HEXISTS', key, prefix) == 1 then
        return fail('STATSCONFLICT', ki, path, 'goes below a number in the stored document')
      end
      local marker = prefix .. '.'
      remember(key, marker)
      redis.call('HSET', key, marker, '1')
      start = dot + 1
    end
  end
  remember(key, path)
  if op == 's' or not cur then
    redis.call('HSET', key, path, given)
  elseif op == 'i' then
    if not is_float(cur) and not is_float(given) then
      local r = redis.pcall('HINCRBY', key, path, given)
      if type(r) == 'table' and r.err then
        return fail('STATSOVERFLOW', ki, path, cur .. ' + ' .. given)
      end
    else
      local x = tonumber(cur) + tonumber(given)
      if x ~= x or x == math.huge or x == -math.huge then
        return fail('STATSOVERFLOW', ki, path, cur .. ' + ' .. given)
      end
      redis.call('HSET', key, path, format_float(x))
    end
  elseif op == 'x' then
    if num_cmp(given, cur) > 0 then
      redis.call('HSET', key, path, given)
    end
  elseif op == 'n' then
    if num_cmp(given, cur) < 0 then
      redis.call('HSET', key, path, given)
    end
  else
    return fail('STATSBADOP', ki, path, op)
  end
end
for k = 1, #KEYS do
  local at = ARGV[ttl_base + k]
  if at and at ~= '0' then
    redis.call('EXPIREAT', KEYS[k], at)
  end
end
return 'OK'
