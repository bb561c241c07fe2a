from sidekiq_metrics.cli import main

main()
