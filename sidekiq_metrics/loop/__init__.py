"""The loop, given its parts: the poll of one or several shards, the steady schedule and shutdown, the election.
Its own settings section (settings.py) is read by config.py. Imports: autoscale/ and below; never config."""
