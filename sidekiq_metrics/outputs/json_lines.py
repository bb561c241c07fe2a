"""One JSON object per poll on stdout, for log pipelines that parse JSON (Datadog logs, Better Stack, ...).

    {"time": "2026-11-22T21:00:00.123Z", "queues": {"default": {"size": 3, "latency": 12.345}},
     "totals": {"enqueued": 3, ..., "metrics.up": 1}, "counts": {"jobs.processed": 30},
     "process_type": {"worker": {"process.count": 2, ...}}, "job_class": {"ReportJob": {"job.processed": 5, ...}}}
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from sidekiq_metrics.catalogue import UP
from sidekiq_metrics.metrics.samples import SHARD, SHARDS_TOTAL, Measurements

if TYPE_CHECKING:
    from sidekiq_metrics.outputs.recorded import Recorded


def iso_time(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


class JsonOutput:
    def __init__(self, write: Callable[[list[str]], None]) -> None:
        self.write = write

    def emit(self, measurements: Measurements, at: float) -> None:
        records: dict[str | None, dict[str, dict[str, object]]] = {}  # by shard (None: the default one)
        for sample in measurements:
            record = records.get(shard := sample.shard) or records.setdefault(shard, _record())
            value = round(sample.value, 3)
            name, labels = sample.tagged()
            own = [(label, subject) for label, subject in labels if label != SHARD]
            if own:
                (label, subject), *more = own
                group = cast("dict[str, dict[str, object]]", record.setdefault(label, {})).setdefault(subject, {})
                for inner, inner_subject in more:  # a job class's jobs waiting in a queue: under the queue
                    group = cast("dict[str, dict[str, object]]", group.setdefault(inner, {})).setdefault(
                        inner_subject, {})
                group[sample.metric.bare_name] = value
            else:
                cast("dict[str, float]", record["counts" if sample.delta else "totals"])[name] = value
        default = records.pop(None, None) or _record()
        line: dict[str, object] = {"time": iso_time(at), **_queues_first(default)}
        if records:  # other shards' readings, each shaped as the default one's
            line["shards"] = {shard: _queues_first(record) for shard, record in records.items()}
        # ensure_ascii: any queue name, even one that is not UTF-8, stays one valid line
        self.write([json.dumps(line, ensure_ascii=True, separators=(",", ":"))])


def _record() -> dict[str, dict[str, object]]:
    return {"queue": {}, "totals": {}, "counts": {}}  # then by label: {"job_class": {"ReportJob": {...}}}


def _queues_first(record: dict[str, dict[str, object]]) -> dict[str, object]:
    """`queues`, `totals`, `counts`, then the labelled groups in the order first met."""
    return {"queues": record.pop("queue"), **record}


def read_record(text: str) -> tuple[str, Recorded]:
    """A poll's time (ISO 8601, as written) and what it says, from one object this output wrote. Another shard's
    queues are named `<shard>:<queue>`, as autoscaling names them; with shards, the totals and process types are
    the sums over every shard (`all`). Raises ValueError for anything else: no `time`, `queues` or `metrics.up`
    (every poll has it), or a value that is not a finite number."""
    from sidekiq_metrics.outputs.recorded import Recorded  # read back by `autoscale simulate` only

    try:
        record = json.loads(text)
        shards = record.get("shards", {})
        summed = shards.get(SHARDS_TOTAL, record)
        recorded = Recorded(
            up=_finite(record["totals"][UP.name]),  # the poll's own, never a shard's
            totals={name: _finite(value) for name, value in summed.get("totals", {}).items()},
            process_types={kind: {name: _finite(value) for name, value in crew.items()}
                           for kind, crew in summed.get("process_type", {}).items()})
        recorded.shards_up = {name: _finite(part["totals"][UP.name]) for name, part in shards.items()
                              if UP.name in part.get("totals", {})}
        for shard, part in [(None, record), *((name, part) for name, part in shards.items() if name != SHARDS_TOTAL)]:
            for queue, values in part["queues"].items():
                name = queue if shard is None else f"{shard}:{queue}"
                if "size" in values:
                    recorded.sizes[name] = _finite(values["size"])
                if "latency" in values:
                    recorded.waits[name] = _finite(values["latency"])
        at = record["time"]
        if not isinstance(at, str):
            raise TypeError(at)
    except (KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise ValueError(exc) from None
    return at, recorded


def _finite(value: object) -> float:
    """A number this output writes, never negative; NaN, infinities (JSON's NaN, 1e999) and anything else raise
    ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or \
            not 0 <= value < 1e18:
        raise ValueError(value)
    return float(value)
