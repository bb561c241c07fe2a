-- Jobs of Sidekiq sorted sets (retry, dead, schedule) or queues (lists), tallied by class
-- inside Redis, so that no job crosses the network: only class names and counts come back.
-- Reads only. Each call does bounded work and says where it stopped; the caller keeps that
-- cursor and passes it back at its next call. The work is counted as bytes copied plus a weight
-- for each JSON value decoded (cjson's time follows the values it builds, not the bytes), and
-- entries are fetched one at a time: a call copies at most its budget and one more job.
--
-- KEYS: one sorted set, or queue keys (lists) in the order a pass takes them.
-- ARGV[1]: 'z' (sorted sets) or 'l' (lists)
-- ARGV[2]: work this call may do before it stops (at least one entry is done)
-- ARGV[3]: entries this call may take before it stops
-- ARGV[4]: a key larger than this many entries is skipped (its tally is not taken)
-- ARGV[5]: '1' to tally error classes and the oldest first failure too (retry, dead)
-- ARGV[6], ARGV[7], ARGV[8]: the cursor in KEYS[1], as the previous call returned it ('' to start)
--     sorted set: the score of the last entry done (as Redis wrote it), '<done>:<ties>' (how many
--     entries of that score were done, of how many it had), and the highest score when the pass
--     began: the pass ends there, so a set that grows at its end as fast as it is read still ends
--     list: entries done, counted from the tail (Sidekiq pushes at the head, works the tail), and
--     the length when the pass began: the pass ends there
-- ARGV[9]: a job longer than this many bytes (or whose decoding would cost more work) is never
--     decoded: its class, wrapped class, error class and failure time are read by pattern from
--     WINDOW bytes at its head and at its tail (`class` before `args`, or right after them, as Sidekiq writes it,
--     and a failure's fields last: error_message, at most 10,000 characters, then error_class)
-- Returns one part for each key it reached, in order; only the last can be unfinished:
--   {done, cursor1, cursor2, cursor3, entries, classes, errors, largest}
--   done: 1 the key was passed to the end it had, 0 not yet (cursor: where to go on), 2 skipped
--         (larger than ARGV[4]), 3 not of the expected type (WRONGTYPE), 4 empty or gone
--   classes: flat {name, count, oldest first failure or '', ...}; errors: flat {name, count, ...}
--   largest: the bytes of the longest job this call copied
-- A class is Sidekiq's display_class (Sidekiq::JobRecord#display_class); a job whose class
-- cannot be read (not JSON, no class, not a string) counts under '' (the caller's "unknown").

local decode, null = cjson.decode, cjson.null
local find, sub, match = string.find, string.sub, string.match
local WRAPPERS = {['ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper'] = true, ['Sidekiq::ActiveJob::Wrapper'] = true}
local MAILERS = {['ActionMailer::DeliveryJob'] = true, ['ActionMailer::MailDeliveryJob'] = true}
local LONGEST = 256 -- a longer name is counted under '': the reply's size never follows the jobs'
local PER_VALUE = 32 -- the work of decoding one JSON value, in bytes' worth (benchmarks/bench_breakdown.py)
local STARTS = {',', '[', '{'} -- every JSON value but the outermost follows one of these
-- A list's LRANGE walks its nodes from the nearer end to the place, one hop per node of about NODE bytes
-- (list-max-listpack-size -2: 8 KB) and about a byte's worth of work each: at 50,000 jobs of 2 KB from either
-- end, 30 µs a fetch. Charged, a call deep in a long queue takes fewer jobs, and its time stays bounded.
local NODE = 8192
local WINDOW = 65536

local kind, work_budget, entry_budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_size, failures, large = tonumber(ARGV[4]), ARGV[5] == '1', tonumber(ARGV[9])

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

-- A field of a job too large to decode, as Sidekiq writes it (`"key":value`; spaces after the colon too): a string
-- without escapes, or a number, of the key, the first in `text` (the head: the job's own fields come before its
-- arguments) or the last (the tail: a failure's fields are written last). A key in quotes followed by a colon
-- is a key wherever it is (in a JSON string its quotes would be escaped), but one of the arguments' hashes
-- could hold the same key: taking the first in the head and the last in the tail makes that the job's own for
-- Sidekiq's order. Plain finds: a pattern would be tried at each byte of the 64 KB windows (4 ms a call).
local STRING, NUMBER = '^%s*"([^"\\]*)"', '^%s*(%-?[%d.eE+]+)'
local function field(text, key, last, value)
  local needle, at, found = '"' .. key .. '":', 1, nil
  while true do
    local _, e = find(text, needle, at, true)
    if not e then return found end
    found = match(text, value, e + 1)
    if not last then return found end
    at = e + 1
  end
end

-- The job's own field in the head: one before its `args` (a hash in the arguments may hold a `class` key).
local function own(head, args_at, key)
  local _, e = find(head, '"' .. key .. '":', 1, true)
  if not e or (args_at and e > args_at) then return nil end
  return match(head, STRING, e + 1)
end

-- Sidekiq writes two orders: Client.push puts `class` before `args`; Setter (every perform_async, and
-- ActiveJob's adapter) merges `"args"` and then `"class"` after the options. Then the class follows the closing
-- `]` of `args`: the last `],"class":` of the job is it (a nested one, inside `args`, comes before; one inside a
-- string cannot be, its quotes would be escaped).
local function class_after_args(tail)
  local needle, at, found = '],"class":', 1, nil
  while true do
    local _, e = find(tail, needle, at, true)
    if not e then return found end
    found = match(tail, STRING, e + 1)
    at = e + 1
  end
end

local function read_large(payload)
  local head, tail = sub(payload, 1, WINDOW), sub(payload, -WINDOW)
  local args_at = find(head, '"args":', 1, true)
  local job = {class = own(head, args_at, 'class') or class_after_args(tail),
               wrapped = own(head, args_at, 'wrapped'), display_class = own(head, args_at, 'display_class')}
  if failures then
    job.error_class = field(tail, 'error_class', true, STRING)
    job.failed_at = tonumber(field(tail, 'failed_at', true, NUMBER) or '')
  end
  if WRAPPERS[job.class] and not job.wrapped then return nil end -- its class is in `args`: not read
  return job
end

-- The JSON values of a payload (more, where its strings hold these characters), counted up to `most`: plain
-- finds, at memchr's speed where there are few, as in a job of long strings (a pattern class would test each byte).
local function values(payload, most)
  local n = 0
  for _, c in ipairs(STARTS) do
    local at = 1
    while true do
      local s = find(payload, c, at, true)
      if not s then break end
      n = n + 1
      if n > most then return n end
      at = s + 1
    end
  end
  return n
end

local used, taken, largest, copied = 0, 0, 0, 0
local function spent() return used >= work_budget or taken >= entry_budget end

-- The tally of one key: counts by class and by error class, the oldest first failure by class.
local function new_tally() return {classes = {}, errors = {}, oldest = {}, entries = 0} end

local function count(tally, payload)
  local size = #payload
  taken, largest, copied = taken + 1, math.max(largest, size), copied + size
  tally.entries = tally.entries + 1
  local job
  if size > large then
    used = used + size
    job = read_large(payload)
  else
    local work = size + PER_VALUE * values(payload, (large - size) / PER_VALUE)
    used = used + work
    if work > large then
      job = read_large(payload)
    else
      local ok, decoded = pcall(decode, payload)
      job = ok and decoded or nil
    end
  end
  local class = display_class(job)
  tally.classes[class] = (tally.classes[class] or 0) + 1
  if failures then
    local error_class = name_of(type(job) == 'table' and job['error_class'] or nil)
    tally.errors[error_class] = (tally.errors[error_class] or 0) + 1
    local at = failed_at(job)
    if at and (tally.oldest[class] == nil or at < tally.oldest[class]) then tally.oldest[class] = at end
  end
end

local function part(done, c1, c2, c3, tally)
  local classes, errors = {}, {}
  for name, n in pairs(tally.classes) do
    local at = tally.oldest[name]
    classes[#classes + 1], classes[#classes + 2] = name, n
    classes[#classes + 1] = at and string.format('%.3f', at) or ''
  end
  for name, n in pairs(tally.errors) do
    errors[#errors + 1], errors[#errors + 2] = name, n
  end
  return {done, c1, c2, c3, tally.entries, classes, errors, largest}
end

-- The place after the entry the last call stopped at, from (its score, '<done>:<ties>'): `done` entries of
-- that score were counted, of `ties` it had then. Entries of a lower score that left since (the scheduler
-- takes due entries from the front) move nothing, as the place is found by score; those of the same score
-- leave in their order, the counted first, so `ties` less what is left of them were counted ones. No part
-- of a job is ever kept: the place is two counts and a score.
local function place(key, score, mark)
  local done, ties = match(mark, '^(%d+):(%d+)$')
  if not done then return 0 end
  local left = tonumber(ties) - redis.call('ZCOUNT', key, score, score)
  return redis.call('ZCOUNT', key, '-inf', '(' .. score) + math.max(0, tonumber(done) - math.max(0, left))
end

local function sorted_set(key, score, mark, last)
  local size = redis.pcall('ZCARD', key)
  if type(size) == 'table' then return {part(3, '', '', '', new_tally())} end
  if size == 0 then return {part(4, '', '', '', new_tally())} end
  if size > max_size then return {part(2, '', '', '', new_tally())} end
  if last == '' then last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2] end
  local last_score = tonumber(last)
  local rank = score ~= '' and place(key, score, mark) or 0
  local tally = new_tally()
  while true do
    local entry = redis.call('ZRANGE', key, rank, rank, 'WITHSCORES')
    if #entry == 0 or tonumber(entry[2]) > last_score then break end -- the end the set had when the pass began
    count(tally, entry[1])
    rank = rank + 1
    if spent() then
      local at = entry[2]
      if redis.call('ZCOUNT', key, '-inf', last) <= rank then break end -- that was the last one
      local before = redis.call('ZCOUNT', key, '-inf', '(' .. at)
      local ties = redis.call('ZCOUNT', key, at, at)
      return {part(0, at, (rank - before) .. ':' .. ties, last, tally)}
    end
  end
  return {part(1, '', '', '', tally)}
end

-- Lists from the tail: a job Sidekiq pushes (at the head) moves nothing; each job a worker takes from
-- the tail moves the rest one place, so the pass skips one entry not yet seen for each job taken. A pass
-- ends at the length the list had when it began (or at its end, if shorter now).
local function lists(keys, done_before, length_before)
  local parts = {}
  for k, key in ipairs(keys) do
    local size = redis.pcall('LLEN', key)
    local start, length = 0, size
    if k == 1 and tonumber(done_before) then
      start, length = tonumber(done_before), tonumber(length_before) or size
    end
    local tally = new_tally()
    if type(size) == 'table' then
      parts[#parts + 1] = part(3, '', '', '', tally)
    elseif size == 0 then
      parts[#parts + 1] = part(4, '', '', '', tally)
    elseif size > max_size then
      parts[#parts + 1] = part(2, '', '', '', tally)
    else
      local stop = math.min(size, length)
      while start < stop and not spent() do
        local entry = redis.call('LRANGE', key, -(start + 1), -(start + 1))
        if #entry == 0 then break end -- shorter than LLEN said: workers took the rest
        count(tally, entry[1])
        used = used + math.floor(math.min(start, size - start) * (copied / taken) / NODE)
        start = start + 1
      end
      if start < stop and spent() then
        parts[#parts + 1] = part(0, tostring(start), tostring(length), '', tally)
        return parts
      end
      parts[#parts + 1] = part(1, '', '', '', tally)
    end
    if spent() then return parts end
  end
  return parts
end

if kind == 'z' then return sorted_set(KEYS[1], ARGV[6] or '', ARGV[7] or '', ARGV[8] or '') end
return lists(KEYS, ARGV[6], ARGV[7])
