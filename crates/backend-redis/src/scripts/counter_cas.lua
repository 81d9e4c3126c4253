-- Compare-and-swap of one counter; a missing counter counts as 0.
-- KEYS[1]: the namespace hash. ARGV: field, expected, new (canonical decimal integers).
-- Returns { swapped (0/1), created (0/1), value as a string }.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  if ARGV[2] == '0' then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    return { 1, 1, ARGV[3] }
  end
  return { 0, 0, '0' }
end
if cur == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return { 1, 0, ARGV[3] }
end
return { 0, 0, cur }
