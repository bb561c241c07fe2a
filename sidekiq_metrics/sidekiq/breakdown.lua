-- Jobs of Sidekiq sorted sets (retry, dead, schedule) or queues (lists), tallied by class
-- inside Redis, so that no job crosses the network: only class names and counts come back.
-- Reads only. Each call does bounded work (a byte and an entry budget) and says where it
-- stopped; the caller keeps that cursor and passes it back at its next call.
--
-- KEYS: one sorted set, or queue keys (lists) in the order a pass takes them.
-- ARGV[1]: 'z' (sorted sets) or 'l' (lists)
-- ARGV[2]: payload bytes this call may decode before it stops (at least one entry is done)
-- ARGV[3]: entries this call may decode before it stops
-- ARGV[4]: a key larger than this many entries is skipped (its tally is not taken)
-- ARGV[5]: '1' to tally error classes and the oldest first failure too (retry, dead)
-- ARGV[6], ARGV[7]: the cursor in KEYS[1], as the previous call returned it ('' to start)
--     sorted set: the score of the last entry done (as Redis wrote it) and '<done>:<ties>': how many
--     entries of that score were done, of how many it had
--     list: entries done, counted from the tail (Sidekiq pushes at the head, works the tail)
-- Returns one part for each key it reached, in order; only the last can be unfinished:
--   {done, cursor1, cursor2, entries, classes, errors}
--   done: 1 the key was passed to its end, 0 not yet (cursor: where to go on), 2 skipped
--         (larger than ARGV[4]), 3 not of the expected type (WRONGTYPE)
--   classes: flat {name, count, oldest first failure or '', ...}; errors: flat {name, count, ...}
-- A class is Sidekiq's display_class (Sidekiq::JobRecord#display_class); a job whose class
-- cannot be read (not JSON, no class, not a string) counts under '' (the caller's "unknown").

local decode, null = cjson.decode, cjson.null
local WRAPPERS = {['ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper'] = true, ['Sidekiq::ActiveJob::Wrapper'] = true}
local MAILERS = {['ActionMailer::DeliveryJob'] = true, ['ActionMailer::MailDeliveryJob'] = true}
local LONGEST = 256 -- a longer name is counted under '': the reply's size never follows the jobs'
local CHUNK = 64 -- entries fetched at a time

local kind, byte_budget, entry_budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_size, failures = tonumber(ARGV[4]), ARGV[5] == '1'

local function given(v) -- Ruby's truthiness of a JSON value
  return v ~= nil and v ~= null and v ~= false
end

local function name_of(v)
  if type(v) == 'string' and #v > 0 and #v <= LONGEST then return v end
  return ''
end

local function display_class(job)
  if type(job) ~= 'table' then return '' end
  local shown = job['display_class']
  if given(shown) then return name_of(shown) end
  local class = job['class']
  if not WRAPPERS[class] then return name_of(class) end
  local args = job['args']
  local first = type(args) == 'table' and args[1] or nil
  local wrapped = job['wrapped']
  if not given(wrapped) then wrapped = first end
  if MAILERS[wrapped] then -- MailerClass#mailer_method: args[0]["arguments"][0..1].join("#")
    local a = type(first) == 'table' and first['arguments']
    if type(a) ~= 'table' or type(a[1]) ~= 'string' then return '' end
    if a[2] == nil then return name_of(a[1]) end
    if type(a[2]) ~= 'string' then return '' end
    return name_of(a[1] .. '#' .. a[2])
  end
  return name_of(wrapped)
end

local function failed_at(job) -- seconds (Sidekiq 8 writes milliseconds)
  local t = type(job) == 'table' and job['failed_at']
  if type(t) ~= 'number' or t ~= t or t <= 0 or t == math.huge then return nil end
  if t > 1e11 then t = t / 1000 end
  return t
end

local used, decoded = 0, 0
local function spent() return used >= byte_budget or decoded >= entry_budget end

-- The tally of one key: counts by class and by error class, the oldest first failure by class.
local function new_tally() return {classes = {}, errors = {}, oldest = {}, entries = 0} end

local function count(tally, payload)
  used, decoded = used + #payload, decoded + 1
  tally.entries = tally.entries + 1
  local ok, job = pcall(decode, payload)
  if not ok then job = nil end
  local class = display_class(job)
  tally.classes[class] = (tally.classes[class] or 0) + 1
  if failures then
    local error_class = name_of(type(job) == 'table' and job['error_class'] or nil)
    tally.errors[error_class] = (tally.errors[error_class] or 0) + 1
    local at = failed_at(job)
    if at and (tally.oldest[class] == nil or at < tally.oldest[class]) then tally.oldest[class] = at end
  end
end

local function part(done, c1, c2, tally)
  local classes, errors = {}, {}
  for name, n in pairs(tally.classes) do
    local at = tally.oldest[name]
    classes[#classes + 1], classes[#classes + 2] = name, n
    classes[#classes + 1] = at and string.format('%.3f', at) or ''
  end
  for name, n in pairs(tally.errors) do
    errors[#errors + 1], errors[#errors + 2] = name, n
  end
  return {done, c1, c2, tally.entries, classes, errors}
end

-- The place after the entry the last call stopped at, from (its score, '<done>:<ties>'): `done` entries of
-- that score were counted, of `ties` it had then. Entries of a lower score that left since (the scheduler
-- takes due entries from the front) move nothing, as the place is found by score; those of the same score
-- leave in their order, the counted first, so `ties` less what is left of them were counted ones. No part
-- of a job is ever kept: the place is two counts and a score.
local function place(key, score, mark)
  local done, ties = string.match(mark, '^(%d+):(%d+)$')
  if not done then return 0 end
  local left = tonumber(ties) - redis.call('ZCOUNT', key, score, score)
  return redis.call('ZCOUNT', key, '-inf', '(' .. score) + math.max(0, tonumber(done) - math.max(0, left))
end

local function sorted_set(key, score, mark)
  local size = redis.pcall('ZCARD', key)
  if type(size) == 'table' then return {part(3, '', '', new_tally())} end
  if size > max_size then return {part(2, '', '', new_tally())} end
  local rank = score ~= '' and place(key, score, mark) or 0
  local tally, size_now = new_tally(), size
  while rank < size_now do
    local n = math.min(CHUNK, entry_budget - decoded)
    local page = redis.call('ZRANGE', key, rank, rank + n - 1, 'WITHSCORES')
    if #page == 0 then break end
    for i = 1, #page, 2 do
      count(tally, page[i])
      rank = rank + 1
      if spent() then
        if rank >= size_now then break end
        local before = redis.call('ZCOUNT', key, '-inf', '(' .. page[i + 1])
        local ties = redis.call('ZCOUNT', key, page[i + 1], page[i + 1])
        return {part(0, page[i + 1], (rank - before) .. ':' .. ties, tally)}
      end
    end
    if spent() then break end
  end
  return {part(1, '', '', tally)}
end

-- Lists from the tail: a job Sidekiq pushes (at the head) moves nothing; each job a worker takes from
-- the tail moves the rest one place, so the pass skips one entry not yet seen for each job taken.
local function lists(keys, done_before)
  local parts = {}
  for k, key in ipairs(keys) do
    local size = redis.pcall('LLEN', key)
    local start = k == 1 and (tonumber(done_before) or 0) or 0
    local tally = new_tally()
    if type(size) == 'table' then
      parts[#parts + 1] = part(3, '', '', tally)
    elseif size > max_size then
      parts[#parts + 1] = part(2, '', '', tally)
    else
      while start < size and not spent() do
        local n = math.min(CHUNK, entry_budget - decoded, size - start)
        local page = redis.call('LRANGE', key, -(start + n), -(start + 1))
        if #page == 0 then break end -- shorter than LLEN said: workers took the rest
        for i = #page, 1, -1 do
          count(tally, page[i])
          start = start + 1
          if spent() then break end
        end
      end
      if start < size and spent() then
        parts[#parts + 1] = part(0, tostring(start), '', tally)
        return parts
      end
      parts[#parts + 1] = part(1, '', '', tally)
    end
    if spent() then return parts end
  end
  return parts
end

if kind == 'z' then return sorted_set(KEYS[1], ARGV[6] or '', ARGV[7] or '') end
return lists(KEYS, ARGV[6])
