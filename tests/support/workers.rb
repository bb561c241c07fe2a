# Jobs for a real Sidekiq server in the tests: `sidekiq -r tests/support/workers.rb -q work -c 4`.
require "sidekiq"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

class SlowJob # keeps a worker busy
  include Sidekiq::Worker
  def perform(seconds)
    sleep seconds
  end
end

class QuickJob
  include Sidekiq::Worker
  def perform; end
end

class FailingJob # ends up in the retry set, due in an hour (so it is not retried during a test)
  include Sidekiq::Worker
  sidekiq_options retry: 5
  sidekiq_retry_in { 3600 }
  def perform
    raise "this job fails on purpose"
  end
end

class DoomedJob # no retries: straight to the dead set
  include Sidekiq::Worker
  sidekiq_options retry: 0
  def perform
    raise "this job dies on purpose"
  end
end
