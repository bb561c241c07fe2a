"""A recorded poll, as a printing output's own reader reads it back (`autoscale simulate`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Recorded:
    """What one recorded poll of a printing output says, read back by that output's own reader (`autoscale
    simulate`): names after the prefix, as the json output spells them."""

    sizes: dict[str, float] = field(default_factory=dict)  # by queue
    waits: dict[str, float] = field(default_factory=dict)  # latencies, by queue
    totals: dict[str, float] = field(default_factory=dict)  # `processed`, `busy`, ...
    process_types: dict[str, dict[str, float]] = field(default_factory=dict)  # {"worker": {"process.busy": 3}}
    # The poll's own metrics.up (1 only when every read it needed, of every shard, succeeded); None: not recorded.
    up: float | None = None
    # With shards, each shard's own metrics.up, by its name: a shard with none was not in the recording at all.
    shards_up: dict[str, float] = field(default_factory=dict)
