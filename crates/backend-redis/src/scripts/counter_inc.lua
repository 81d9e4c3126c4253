-- Increments one counter, creating it at default + step when missing.
-- KEYS[1]: the namespace hash. ARGV: field, step, default + step ("" when that overflows).
-- Returns { created (0/1), new value as a string } (strings keep all 64 bits; Lua numbers are
-- doubles). On overflow an error 'STATSOVERFLOW <current>': the stored value, or 'missing'
-- when the counter does not exist (the caller's default is the current value then).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  if ARGV[3] == '' then
    return redis.error_reply('STATSOVERFLOW missing')
  end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return { 1, ARGV[3] }
end
local r = redis.pcall('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if type(r) == 'table' and r.err then
  if string.find(r.err, 'overflow', 1, true) then
    return redis.error_reply('STATSOVERFLOW ' .. redis.call('HGET', KEYS[1], ARGV[1]))
  end
  return r
end
return { 0, redis.call('HGET', KEYS[1], ARGV[1]) }
