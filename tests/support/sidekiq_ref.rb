# Real Sidekiq (Debian's ruby-sidekiq) as the tests' fixture writer and reference.
#
#   ruby sidekiq_ref.rb < commands.json   (REDIS_URL, optional SIDEKIQ_NAMESPACE)
#
# Reads a JSON array of commands and prints one JSON object with the results:
#   {"push": {"queue": "q", "class": "X", "args": [...], "retry": 0}}  Sidekiq::Client.push
#   {"push_active_job": {"queue": "q"}}                            a payload shaped like ActiveJob's
#   {"schedule": {"queue": "q", "in": 60}}                         Sidekiq::Client.push with "at" (-30: overdue)
#   {"sleep": 0.2}
#   {"queues": true}   => "queues": {"name": [size, latency], ...} via Sidekiq::Queue.all
#   {"stats": true}    => "stats": {...} via Sidekiq::Stats and Sidekiq::ProcessSet
require "json"
require "sidekiq"
require "sidekiq/api"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

namespace = ENV["SIDEKIQ_NAMESPACE"]
redis_opts = { url: ENV.fetch("REDIS_URL") }
redis_opts[:namespace] = namespace if namespace && !namespace.empty?
Sidekiq.configure_client { |config| config.redis = redis_opts }
Sidekiq.logger.level = Logger::WARN

out = {}
JSON.parse($stdin.read).each do |cmd|
  if (job = cmd["push"])
    # The class goes by name, so its sidekiq_options are not seen here: pass "retry" along as needed.
    Sidekiq::Client.push({ "queue" => job["queue"], "class" => job.fetch("class", "FixtureJob"),
                           "args" => job.fetch("args", []) }.merge(job.slice("retry")))
  elsif (job = cmd["push_active_job"])
    # The shape ActiveJob's Sidekiq adapter pushes: its own ISO-8601 "enqueued_at" inside args.
    Sidekiq::Client.push("queue" => job["queue"], "class" => "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
                         "wrapped" => "FixtureActiveJob",
                         "args" => [{ "job_class" => "FixtureActiveJob", "job_id" => "x", "queue_name" => job["queue"],
                                      "arguments" => [1], "enqueued_at" => Time.now.utc.iso8601(6) }])
  elsif (job = cmd["schedule"])
    Sidekiq::Client.push("queue" => job["queue"], "class" => "FixtureJob", "args" => [],
                         "at" => Time.now.to_f + job["in"])
  elsif cmd["sleep"]
    sleep cmd["sleep"]
  elsif cmd["queues"]
    out["queues"] = Sidekiq::Queue.all.to_h { |q| [q.name, [q.size, q.latency]] }
  elsif cmd["stats"]
    s = Sidekiq::Stats.new
    procs = Sidekiq::ProcessSet.new.to_a
    out["stats"] = {
      "processed" => s.processed, "failed" => s.failed, "scheduled" => s.scheduled_size,
      "retries" => s.retry_size, "dead" => s.dead_size, "processes" => s.processes_size,
      "busy" => s.workers_size, "enqueued" => s.enqueued,
      "live_processes" => procs.size, "concurrency" => procs.sum { |p| p["concurrency"].to_i },
      "live_busy" => procs.sum { |p| p["busy"].to_i },
      "live" => procs.map { |p| %w[hostname busy concurrency rss rtt_us quiet].to_h { |k| [k, p[k]] } },
    }
  else
    raise "unknown command #{cmd.inspect}"
  end
end
puts JSON.generate(out)
