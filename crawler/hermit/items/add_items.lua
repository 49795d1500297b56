-- Append a worker's items to the crawl's stream, once per write batch.
-- KEYS[1] items STREAM, KEYS[2] the worker's last-landed batch number
-- ARGV[1] batch number, ARGV[2] marker lifetime (s), ARGV[3..] items (JSON)
-- A batch whose reply was lost is sent again with the same number; if it had
-- landed, its items are not appended twice. Returns the number appended.
local batch = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[2]) or '-1')
if batch <= last then return 0 end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'item', ARGV[i])
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', tonumber(ARGV[2]))
return #ARGV - 2
