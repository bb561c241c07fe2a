-- What Sidekiq's processes run now, read inside Redis from their `<identity>:work` hashes
-- (`<identity>:workers` up to 6.4.1), so that the jobs' arguments never cross the network.
-- Reads only.
--
-- KEYS: those hashes. Each value is Sidekiq's JSON record {queue, payload, run_at}, its
-- payload the job as a JSON string (a JSON object is read too).
-- ARGV[1]: a record longer than this many bytes is not parsed: its queue and run_at are
--   taken from where Sidekiq writes them (`{"queue":"<q>",` ... `"run_at":<n>}`), its class
--   is unknown. ARGV[2]: how many record bytes one call may parse; past it, every record is
--   read that way too. Either bound keeps a call's hold on Redis short whatever the jobs weigh.
-- Returns a flat array, four strings for each running job, `key` being the key's index (1-based):
--   key, queue, class, run_at    queue and class as Sidekiq's API shows them ('' when unreadable;
--                                the class is Sidekiq's `display_class`), run_at as a number's
--                                text ('' when the record holds no number there);
--   key, '!', error, ''          a key Redis would not read (its error's text).

local limit, budget = tonumber(ARGV[1]), tonumber(ARGV[2])
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

local out = {}
for i, key in ipairs(KEYS) do
  local ok, fields = pcall(redis.call, 'HGETALL', key)
  if not ok then
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = tostring(i), '!', tostring(fields.err or fields), ''
  else
    for n = 2, #fields, 2 do
      local record = fields[n]
      local queue, class, at
      if #record > limit or #record > budget then
        queue, class, at = usual(record)
      else
        budget = budget - #record
        local parsed, work = pcall(cjson.decode, record)
        if parsed and type(work) == 'table' then
          local job = work['payload']
          if type(job) == 'string' then
            local good, decoded = pcall(cjson.decode, job)
            job = good and decoded or nil
          end
          queue, class, at = text(work['queue']), display_class(job), number(work['run_at'])
        else
          queue, class, at = '', '', ''
        end
      end
      out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = tostring(i), queue, class, at
    end
  end
end
return out
