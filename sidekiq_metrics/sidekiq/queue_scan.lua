-- Size and oldest-job timestamps of Sidekiq queues, read inside Redis so that the jobs
-- themselves (which can be megabytes) never cross the network. Reads only.
--
-- KEYS: queue keys (queue:<name>). ARGV[1]: how many payload bytes this call may scan
-- before it stops early (so that no call holds Redis for long); at least one key is done.
-- ARGV[2]: a job longer than this many bytes is named in `large`, as {key's index, bytes}, so
-- that the reader can take it with LINDEX next time instead (scanning it here holds Redis).
-- Returns {lines, done, jobs, large}: `done` keys were processed; `lines` has one line for each:
--   <size> TAB <enqueued_at>                        the usual job: enqueued_at a plain JSON number
--   <size> TAB <kind> TAB <enqueued_at> TAB <created_at>
-- kind: e (empty queue), t (timestamps), x (the oldest job is not a JSON object),
--       w (the key could not be read; the third field is Redis's error),
--       j (the job itself is jobs[<third field>]: a small job off the usual path, handed back
--          whole so that the reader parses it exactly as it parses LINDEX's, with a JSON parser).
-- A timestamp is the raw JSON text of the top-level member (a number, a "string", null,
-- true, false), "?" when it is something else, or empty when the member is absent.
-- Members nested in `args` (ActiveJob keeps its own "enqueued_at" there) never count.
--
-- This runs for every queue, every poll: the usual job takes a few string calls, no more.

local find, match, byte, max = string.find, string.match, string.byte, math.max

local function escaped(s, q) -- whether the '"' at q is escaped by an odd run of backslashes
  local n, i = 0, q - 1
  while i > 0 and string.byte(s, i) == 92 do
    n, i = n + 1, i - 1
  end
  return n % 2 == 1
end

local function string_end(s, q) -- index of the '"' closing the string that opens at q
  local j = q + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if not k then return nil end
    if string.byte(s, k) == 34 then return k end
    j = k + 2
  end
end

-- Whether what follows position k belongs to the top-level object: up to the object's
-- final '}' at `last`, every bracket that closes must have opened after k.
local function top_level(s, k, last)
  local depth, j = 0, k + 1
  while true do
    local c = string.find(s, '[%[%]{}"]', j)
    if not c then return false end
    local b = string.byte(s, c)
    if b == 34 then
      local e = string_end(s, c)
      if not e then return false end
      j = e + 1
    elseif b == 91 or b == 123 then
      depth, j = depth + 1, c + 1
    elseif depth > 0 then
      depth, j = depth - 1, c + 1
    else
      return b == 125 and c == last
    end
  end
end

-- The raw value of the top-level member `name` of the object s, or '' when it has none.
-- The last top-level occurrence wins, as in every JSON parser Sidekiq uses.
local function member(s, name, last)
  local key = '"' .. name .. '"'
  local at, i = {}, 1
  while true do
    local a = string.find(s, key, i, true)
    if not a then break end
    at[#at + 1], i = a, a + #key
  end
  for n = #at, 1, -1 do
    local a = at[n]
    local b = a + #key - 1
    local colon = not escaped(s, a) and string.match(s, '^%s*:()', b + 1)
    if colon and top_level(s, b, last) then
      local v = string.match(s, '^%s*()', colon)
      if string.byte(s, v) == 34 then
        local e = string_end(s, v)
        return e and string.sub(s, v, e) or '?'
      end
      return string.match(s, '^[^,}%s]+', v) or '?'
    end
  end
  return ''
end

-- The line after <size> for a job off the fast path: kind x, or t with both timestamps.
local function slow(job)
  local last = #job
  local b = byte(job, last)
  while b == 32 or b == 9 or b == 10 or b == 13 do
    last = last - 1
    b = byte(job, last)
  end
  if b ~= 125 or not find(job, '^%s*{') then
    return 'x\t\t'
  end
  local enqueued = member(job, 'enqueued_at', last)
  local created = ''
  if enqueued == '' or enqueued == 'null' or enqueued == 'false' then
    created = member(job, 'created_at', last)
  end
  if #enqueued > 1024 or find(enqueued, '[\t\n]') then enqueued = '?' end
  if #created > 1024 or find(created, '[\t\n]') then created = '?' end
  return 't\t' .. enqueued .. '\t' .. created
end

local budget = tonumber(ARGV[1]) or 1048576
local large_job = tonumber(ARGV[2]) or budget
local WHOLE, WHOLE_BUDGET = 16384, 65536 -- a job handed back whole, and all of them in one call
local lines, used, jobs, handed, large = {}, 0, {}, 0, {}
-- '<size> TAB' for each size seen in this call: turning a Lua number into text is a sprintf,
-- and most queues of an app share a few sizes.
local heads = {}
for i, key in ipairs(KEYS) do
  local size = redis.pcall('LLEN', key)
  if type(size) == 'table' then
    lines[i] = '0\tw\t' .. string.gsub(tostring(size.err), '[\t\n]', ' ') .. '\t'
  else
    local job = size > 0 and redis.call('LINDEX', key, '-1') -- as text: a number argument costs a conversion
    if not job then
      lines[i] = size .. '\te\t\t'
    else
      used = used + #job
      if #job > large_job then
        large[#large + 1], large[#large + 2] = i, #job
      end
      -- Fast path: Sidekiq writes compact JSON with enqueued_at last, so a job usually ends
      -- `,"enqueued_at":<number>}`. In a JSON object that can only be its top-level member (the
      -- comma before the quote means the quote opens a key). The number must be plain: digits,
      -- no leading zero, maybe a fraction (1795000000.25 or 1795000000250); all else takes the
      -- long way, which is exact for any JSON. (A job that is not JSON at all may still end
      -- this way; Sidekiq itself cannot parse such a job, and nor can its API.)
      local k = byte(job, 1) == 123 and find(job, ',"enqueued_at":', max(1, #job - 48), true)
      local fast = k and (match(job, '^([1-9]%d*%.%d+)}$', k + 15) or match(job, '^([1-9]%d*)}$', k + 15))
      local head = heads[size]
      if not head then
        head = size .. '\t'
        heads[size] = head
      end
      if fast then
        lines[i] = head .. fast
      elseif #job <= WHOLE and handed + #job <= WHOLE_BUDGET then
        jobs[#jobs + 1], handed = job, handed + #job
        lines[i] = head .. 'j\t' .. #jobs .. '\t'
      else
        lines[i] = head .. slow(job)
      end
    end
  end
  if used >= budget and i < #KEYS then
    return {table.concat(lines, '\n'), i, jobs, large}
  end
end
return {table.concat(lines, '\n'), #KEYS, jobs, large}
