# Real Sidekiq (Debian's 6.4, or 7.3 / 8.1 from ../shared/reference-sidekiq) writes jobs into the queues and the
# schedule, retry and dead sets, then tallies them with its own API: the reference for our breakdowns.
#
#   ruby [-I ...] breakdown_ref.rb < jobs.json     (REDIS_URL)
#
# jobs.json: {"jobs": [job, ...]}; a job: {"class": "X", "queue": "q", "active_job": true (ActiveJob's wrapper,
# with "wrapped" as its adapter writes it), "mailer": ["Mailer", "method"] (ActionMailer's delivery job),
# "in": seconds (scheduled), "fail": "ArgumentError" (raised through Sidekiq::JobRetry, the path a server takes:
# into the retry set), "dead": true (retries exhausted: into the dead set)}.
# Prints {"version", "retries": {"classes", "errors", "oldest"}, "dead": {...}, "scheduled": {"classes"},
#         "queues": {"q": {"classes"}}}.
require "json"
require "sidekiq"
require "sidekiq/api"
require "sidekiq/job_retry"
require "sidekiq/capsule" unless Sidekiq::VERSION.start_with?("6") # its default capsule runs the retry path
Redis.silence_deprecations = true if defined?(Redis) && Redis.respond_to?(:silence_deprecations=)

Sidekiq.configure_client { |config| config.redis = { url: ENV.fetch("REDIS_URL") } }
Sidekiq.logger.level = Logger::ERROR

module Billing
  class PaymentDeclined < StandardError; end
end

# The job class a failing job runs as (its retries_exhausted block and options are looked up on it).
class FailingJob
  include(defined?(Sidekiq::Job) ? Sidekiq::Job : Sidekiq::Worker)
end

WRAPPER = "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper"
retrier = if Sidekiq::VERSION.start_with?("6")
            Sidekiq::JobRetry.new
          elsif Sidekiq::VERSION.start_with?("7")
            Sidekiq::JobRetry.new(Sidekiq.default_configuration.default_capsule)
          else
            Sidekiq::JobRetry.new(Sidekiq.default_configuration)
          end

def item_for(job)
  queue = job.fetch("queue", "default")
  if job["mailer"]
    { "class" => WRAPPER, "wrapped" => "ActionMailer::MailDeliveryJob", "queue" => queue,
      "args" => [{ "job_class" => "ActionMailer::MailDeliveryJob", "job_id" => "m", "queue_name" => queue,
                   "arguments" => [*job["mailer"], "deliver_now", { "args" => [] }] }] }
  elsif job["active_job"]
    { "class" => WRAPPER, "wrapped" => job["class"], "queue" => queue,
      "args" => [{ "job_class" => job["class"], "job_id" => "x", "queue_name" => queue, "arguments" => [1],
                   "enqueued_at" => Time.now.utc.iso8601(6) }] }
  else
    { "class" => job["class"], "queue" => queue, "args" => [1, "two"] }
  end
end

JSON.parse($stdin.read)["jobs"].each do |job|
  item = item_for(job)
  item["display_class"] = job["display_class"] if job["display_class"] # shown as such by the Web UI and the API
  if job["in"]
    Sidekiq::Client.push(item.merge("at" => Time.now.to_f + job["in"]))
  elsif job["fail"]
    # As a server runs a job that raises: pushed, taken off its queue, then the real retry path.
    item = item.merge("retry" => job["dead"] ? 0 : 5)
    jid = Sidekiq::Client.push(item)
    jobstr = Sidekiq.redis { |c| c.lpop("queue:#{item["queue"]}") } # the newest: the one just pushed
    raise "job #{jid} not found" unless jobstr&.include?(jid)
    error = job["fail"].split("::").inject(Object) { |m, name| m.const_get(name) }
    begin
      retrier.local(FailingJob.new, jobstr, item["queue"]) { raise error, "boom" }
    rescue Sidekiq::JobRetry::Handled
      nil
    end
  else
    Sidekiq::Client.push(item)
  end
end

def tally(records, failures)
  out = { "classes" => records.map(&:display_class).tally }
  if failures
    out["errors"] = records.map { |r| r["error_class"] }.tally
    out["oldest"] = records.group_by(&:display_class).transform_values do |rs|
      rs.map { |r| r["failed_at"] }.min.then { |t| t > 1e11 ? t / 1000.0 : t }
    end
  end
  out
end

puts JSON.generate(
  "version" => Sidekiq::VERSION,
  "retries" => tally(Sidekiq::RetrySet.new.to_a, true),
  "dead" => tally(Sidekiq::DeadSet.new.to_a, true),
  "scheduled" => tally(Sidekiq::ScheduledSet.new.to_a, false),
  "queues" => Sidekiq::Queue.all.to_h { |q| [q.name, tally(q.to_a, false)] }
)
