# Real Sidekiq 7.3 or 8.1 (../shared/reference-sidekiq) writing and reading its own execution metrics.
#
#   $SK7_RUBY $SK7_I metrics_ref.rb < commands.json      (REDIS_URL)
#
# Reads a JSON array of commands and prints one JSON object:
#   {"track": {"class": "C", "ms": [12, 300], "failures": 1, "at": 1795381200}}
#       Sidekiq::Metrics::ExecutionTracker runs each job with the given duration (its clock is fed the
#       durations, so nothing sleeps), then `failures` failing runs, and flushes at Time.at(at): the keys,
#       fields and histograms are exactly what a server would write in that minute.
#   {"query": {"now": 1795381260, "minutes": 3}}
#       => "query": {"C": {"p": .., "f": .., "ms": .., "avg_ms": .., "hist": [26 counts, summed]}} from
#          Sidekiq::Metrics::Query#top_jobs and #for_job over the `minutes` minutes before `now`
#   {"version": true} => "version": Sidekiq::VERSION
require "json"
require "sidekiq"
require "sidekiq/api"
require "sidekiq/component"
require "sidekiq/job_retry"
require "sidekiq/metrics/tracking"
require "sidekiq/metrics/query"

Sidekiq.configure_client { |config| config.redis = { url: ENV.fetch("REDIS_URL") } }
Sidekiq.logger.level = Logger::WARN
config = Sidekiq.respond_to?(:default_configuration) ? Sidekiq.default_configuration : Sidekiq

# The tracker times each run with Process.clock_gettime(..., :millisecond): fed the durations instead.
module FedClock
  def clock_gettime(*args)
    args[1] == :millisecond && $ticks && !$ticks.empty? ? $ticks.shift : super
  end
end
Process.singleton_class.prepend(FedClock)

out = {}
JSON.parse($stdin.read).each do |cmd|
  if (job = cmd["track"])
    tracker = Sidekiq::Metrics::ExecutionTracker.new(config)
    $ticks = []
    job.fetch("ms", []).each_with_index { |ms, i| $ticks << i * 1_000_000 << i * 1_000_000 + ms }
    job.fetch("failures", 0).times { $ticks << 0 << 0 }
    job.fetch("ms", []).size.times { tracker.track("default", job["class"]) {} }
    job.fetch("failures", 0).times do
      tracker.track("default", job["class"]) { raise "fails on purpose" }
    rescue RuntimeError
      nil
    end
    $ticks = nil
    tracker.flush(Time.at(job["at"]).utc)
  elsif (query = cmd["query"])
    now = Time.at(query["now"]).utc
    top = Sidekiq::Metrics::Query.new(now: now).top_jobs(minutes: query["minutes"])
    out["query"] = top.job_results.to_h do |klass, result|
      detail = Sidekiq::Metrics::Query.new(now: now).for_job(klass, minutes: query["minutes"]).job_results[klass]
      hist = detail.hist.values.map(&:reverse).transpose.map(&:sum)
      [klass, { "p" => result.totals["p"], "f" => result.totals["f"], "ms" => result.totals["ms"],
                "avg_ms" => result.total_avg("ms"), "hist" => hist }]
    end
  elsif cmd["version"]
    out["version"] = Sidekiq::VERSION
  else
    raise "unknown command #{cmd.inspect}"
  end
end
puts JSON.generate(out)
