"""Sidekiq's data as Sidekiq writes it: its keys, the read of one snapshot (queues, processes, totals, execution
metrics, Redis's INFO) and the readings it yields. Reads only. Imports: redis/ and below."""
