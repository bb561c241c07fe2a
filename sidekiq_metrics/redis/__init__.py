"""Redis, as a guest on a production dyno talks to it: our RESP client, the target a URL names, the connection,
the resolver, the lease and which server a shard reached. Knows nothing of Sidekiq. Imports: heroku/ and below."""
