# Real Sidekiq 7.3 / 8.1 pushing to several Redis shards, and its own API as the reference for each shard.
#
#   ruby shards_ref.rb < input.json     (run with the reference Sidekiq's load path: conftest.reference_sidekiq)
#
# Input: {"shards": {"default": url, "orders": url, ...}, "push": [{"shard": "orders", "queue": "q", "count": 2,
#         "class": "X"}, ...]}. The first shard is Sidekiq's default pool; the others are pushed to with
# Sidekiq::Client.via(pool), as an app that shards does. Output: for each shard, what Sidekiq's API says inside
# `via` (so it reads that shard): {"orders": {"queues": {"q": [size, latency]}, "enqueued": n, "processes": n}}.
require "json"
require "sidekiq"
require "sidekiq/api"

input = JSON.parse($stdin.read)
names = input.fetch("shards").keys
default_url = input["shards"][names.first]
Sidekiq.configure_client { |config| config.redis = { url: default_url } }
Sidekiq.logger.level = Logger::WARN
pools = names.to_h do |name|
  pool = name == names.first ? Sidekiq.default_configuration.redis_pool :
                               Sidekiq::RedisConnection.create(url: input["shards"][name], size: 1)
  [name, pool]
end

def on(pool, &block)
  Sidekiq::Client.via(pool, &block)
end

input.fetch("push", []).each do |push|
  on(pools.fetch(push.fetch("shard"))) do
    push.fetch("count", 1).times do
      Sidekiq::Client.push("queue" => push.fetch("queue"), "class" => push.fetch("class", "FixtureJob"), "args" => [])
    end
  end
end
sleep input.fetch("sleep", 0)

out = pools.to_h do |name, pool|
  seen = on(pool) do
    stats = Sidekiq::Stats.new
    { "queues" => Sidekiq::Queue.all.to_h { |q| [q.name, [q.size, q.latency]] }, "enqueued" => stats.enqueued,
      "processes" => Sidekiq::ProcessSet.new.size, "concurrency" => Sidekiq::ProcessSet.new.total_concurrency }
  end
  [name, seen]
end
puts JSON.generate(out)
