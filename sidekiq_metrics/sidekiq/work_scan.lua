-- What Sidekiq's processes run now, read inside Redis from their `<identity>:work` hashes
-- (`<identity>:workers` up to 6.4.1), so that the jobs' arguments never cross the network.
-- Reads only.
--
-- KEYS: those hashes. Each value is Sidekiq's JSON record {queue, payload, run_at}, its
-- payload the job as a JSON string (a JSON object is read too).
-- ARGV[1]: a record longer than this many bytes is not parsed: its queue and run_at are
--   taken from where Sidekiq writes them (`{"queue":"<q>",` ... `"run_at":<n>}`), its class
--   is unknown. ARGV[2]: a record longer than this is not read here at all (copying it into
--   the script would hold Redis): its field is handed back for the reader to take whole.
-- ARGV[3]: how many record bytes one call may read; past it, the other fields are handed
--   back to be read by a later call (the first record of a call is always read).
-- ARGV[4...] (with one key only): read only these fields of it, as a later call does.
-- Returns a flat array, four strings for each running job, `key` being the key's index (1-based):
--   key, queue, class, run_at    queue and class as Sidekiq's API shows them ('' when unreadable;
--                                the class is Sidekiq's `display_class`), run_at as a number's
--                                text ('' when the record holds no number there);
--   key, '!', error, ''          a key Redis would not read (its error's text);
--   key, '>', field, length      a record longer than ARGV[2]: to read whole, outside the script;
--   key, '+', field, length      a record past this call's budget: for a later call.
-- Lengths come from HSTRLEN, so a record is copied into the script only when it is read.

local limit, largest, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local full = budget
local WRAPPERS = {['ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper'] = true,
                  ['Sidekiq::ActiveJob::Wrapper'] = true}
local MAILERS = {['ActionMailer::DeliveryJob'] = true, ['ActionMailer::MailDeliveryJob'] = true}
local null = cjson.null

local function text(v)
  if type(v) == 'string' then return v end
  return ''
end

local function truthy(v) -- Ruby's: nil (JSON null, or absent) and false are not
  return v ~= nil and v ~= false and v ~= null
end

local function number(v) -- %.17g gives the double back exactly; the reader tells seconds from ms
  if type(v) == 'number' then return string.format('%.17g', v) end
  return ''
end

-- Sidekiq::JobRecord#display_class: ActiveJob's wrapped class, a mailer as Mailer#method.
local function display_class(job)
  if type(job) ~= 'table' then return '' end
  if truthy(job['display_class']) then return text(job['display_class']) end
  local klass = job['class']
  if type(klass) ~= 'string' or not WRAPPERS[klass] then return text(klass) end
  local args = job['args']
  local first = type(args) == 'table' and args[1] or nil
  local wrapped = job['wrapped']
  local shown = truthy(wrapped) and wrapped or first
  if type(shown) == 'string' and MAILERS[shown] then
    local mail = type(first) == 'table' and first['arguments'] or nil
    if type(mail) == 'table' and type(mail[1]) == 'string' and type(mail[2]) == 'string' then
      return mail[1] .. '#' .. mail[2]
    end
    return ''
  end
  return text(shown)
end

local function usual(record) -- a record not parsed: only the ends Sidekiq writes
  local queue = string.match(record, '^{"queue":"([^"\\]*)"') or ''
  local at = string.match(string.sub(record, -48), '"run_at":([-+%d%.eE]+)}$')
  at = at and tonumber(at)
  return queue, '', at and number(at) or ''
end

local function read(record)
  if #record > limit then return usual(record) end
  local parsed, work = pcall(cjson.decode, record)
  if not (parsed and type(work) == 'table') then return '', '', '' end
  local job = work['payload']
  if type(job) == 'string' then
    local good, decoded = pcall(cjson.decode, job)
    job = good and decoded or nil
  end
  return text(work['queue']), display_class(job), number(work['run_at'])
end

local out = {}
local function add(a, b, c, d)
  out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = a, b, c, d
end

for i, key in ipairs(KEYS) do
  local ok, fields = true, nil
  if #ARGV > 3 then
    fields = {unpack(ARGV, 4)}
  else
    ok, fields = pcall(redis.call, 'HKEYS', key)
  end
  if not ok then
    add(tostring(i), '!', tostring(fields.err or fields), '')
  else
    for _, field in ipairs(fields) do
      local known, length = pcall(redis.call, 'HSTRLEN', key, field)
      if not known then -- a later call's key, replaced since by another type
        add(tostring(i), '!', tostring(length.err or length), '')
        break
      elseif length > largest then
        add(tostring(i), '>', field, tostring(length))
      elseif length > budget and budget < full then
        add(tostring(i), '+', field, tostring(length))
      elseif length > 0 then -- 0: the job ended since the fields were listed
        budget = budget - length
        local record = redis.call('HGET', key, field)
        if record then
          local queue, class, at = read(record)
          add(tostring(i), queue, class, at)
        end
      end
    end
  end
end
return out
