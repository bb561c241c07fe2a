"""Reading Sidekiq's state from Redis: one Snapshot per poll, in one round trip (two when the sets changed).

Which keys (keys.py) and how: the sets, the totals, each queue, each process.

The sets and totals are read with everything the sets listed at the last poll (see SidekiqReader);
one more round trip happens only when jobs of hundreds of kilobytes make a script call stop early.
Only read commands are sent, and a read-only Lua script. (The autoscaler's lock, a write, has a
connection of its own: autoscale/scaler.py.) What a read produces is in readings.py.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import cast

from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.parsing import parse_bool, parse_queue_list, quote, text, whole_number
from sidekiq_metrics.redis.resp import Command, Connection, RedisError, Reply, ReplyError, TooLarge, refuses_scripts
from sidekiq_metrics.setting import Setting
from sidekiq_metrics.sidekiq import breakdown, queue_scan, redis_health, running
from sidekiq_metrics.sidekiq.breakdown import Breakdowns
from sidekiq_metrics.sidekiq.job_metrics import MAX_CATCH_UP, JobMetricsReader
from sidekiq_metrics.sidekiq.keys import PROCESS_FIELDS, SidekiqKeys, decode
from sidekiq_metrics.sidekiq.readings import (
    JobMinutes,
    ProcessReading,
    QueueReading,
    RedisHealth,
    Running,
    Snapshot,
    Totals,
)

MAX_CLASSES = 1000  # SIDEKIQ_METRICS_JOB_CLASSES_TOP at most
DEFAULT_TOP = 20  # ... and its default


def parse_class_patterns(raw: str, label: str) -> tuple[str, ...]:
    patterns = tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    if not patterns:
        raise ConfigError(label, "must list job classes separated by commas, e.g. ReportJob,Billing::*")
    return patterns


def parse_top(raw: str, label: str) -> int:
    if whole_number(raw) is not None and 0 < int(raw) <= MAX_CLASSES:
        return int(raw)
    raise ConfigError(label, f"must be a whole number from 1 to {MAX_CLASSES}, got {quote(raw)}")


# The reader's section: what it reads and how it finds it.
READER_SETTINGS = (
    Setting("queues", ("SIDEKIQ_METRICS_QUEUES",), None,
            "comma-separated queues to report (spaces around names ignored); a listed queue that does not "
            "exist reports size 0 and latency 0", parse_queue_list, flag="--queues", shown="every queue"),
    Setting("namespace", ("SIDEKIQ_METRICS_NAMESPACE",), None,
            "the redis-namespace of a Sidekiq <= 6 app: `myapp` reads `myapp:queues`, `myapp:queue:default`",
            text, flag="--namespace"),  # any text, as in Sidekiq
    Setting("stats", ("SIDEKIQ_METRICS_STATS",), True,
            "whole-Sidekiq totals (enqueued, busy, processed, ...) and the longest-running job beside the "
            "per-queue metrics", parse_bool,
            flag="--stats"),
    Setting("job_metrics", ("SIDEKIQ_METRICS_JOB_METRICS",), True,
            "per job class: runs, failures and run times, from Sidekiq's own execution metrics (Sidekiq 7+)",
            parse_bool, flag="--job-metrics"),
    Setting("job_classes", ("SIDEKIQ_METRICS_JOB_CLASSES",), None,
            "comma-separated job classes to report one by one, `*` matching any text (`Billing::*`); the "
            "others are summed as `other`", parse_class_patterns, flag="--job-classes",
            shown="the top ones by run time"),
    Setting("job_classes_top", ("SIDEKIQ_METRICS_JOB_CLASSES_TOP",), DEFAULT_TOP,
            "at most this many classes one by one: those with the most run time in the last hour (for the "
            "longest-running job: those running longest)", parse_top, flag="--job-classes-top"),
)


SCRIPT_RECHECK = 600.0  # seconds after a refusal before the script is offered again (an ACL may change)


class _Named:
    """Commands of a pipeline under names, so that their replies are found by name, never by a position that
    moves when a read is added."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self._at: dict[str, tuple[int, int]] = {}  # name -> (first, end) in commands

    def add(self, name: str, *commands: Command) -> None:
        self._at[name] = (len(self.commands), len(self.commands) + len(commands))
        self.commands += commands

    def __contains__(self, name: str) -> bool:
        return name in self._at

    def replies(self, answers: Sequence[Reply], name: str) -> list[Reply]:
        if name not in self._at:
            return []
        first, end = self._at[name]
        return list(answers[first:end])

    def reply(self, answers: Sequence[Reply], name: str) -> Reply:
        return answers[self._at[name][0]]


_TOTALS = ("processed", "failed", "schedule", "retry", "dead", "processes")  # counted: GET, ZCARD, SCARD


@dataclass(frozen=True)
class _Plan:
    """What the second part of a poll reads: derived from the two sets, reused while they stay the same."""

    members: list[list[bytes]]  # the sets it was made from, each sorted
    listed: list[list[bytes]]  # the same sets as Redis listed them, to recognise them unsorted next time
    scripts: bool
    queues: tuple[str, ...] | None  # the queues asked for
    totals: bool
    reported: list[str]
    keys: list[bytes]  # of the reported queues
    counted: frozenset[str] | None  # the reported queues that are in Sidekiq's set (Stats#enqueued); None: all
    unreported: list[str]  # queues only counted into `enqueued`
    identities: list[str]  # the processes
    work: list[bytes]  # their work hashes (`:work`, `:workers`), read after their heartbeat hashes
    work_calls: int  # the commands that read them: script calls, or one HGETALL each; then SMEMBERS paused
    commands: list[Command]
    scanned: list[int]  # indexes into `reported` of the queues our script reads, in its calls' order
    whole: list[int]  # ...and of those read with LLEN + LINDEX (all without the script; else large jobs)
    large: frozenset[bytes]  # the keys known to hold a large oldest job when the plan was made

    @property
    def queue_calls(self) -> int:
        return len(self.commands) - len(self.unreported) - len(self.identities) - self.work_calls - 1  # paused


class SidekiqReader:
    """Reads Snapshots over one Connection.

    The oldest job of each queue is examined inside Redis by a read-only Lua script
    (queue_scan.lua) that sends back only its timestamps, so a poll costs the same
    bytes whatever the size of the jobs. Where Redis refuses scripts (an ACL without
    EVALSHA, a provider that disables them) it reads each oldest job whole with
    LINDEX instead, and says so once through `log`.

    Round trips: the first poll reads the two sets (`queues`, `processes`), then what
    they list. Later polls send both parts at once, betting that the sets have not
    changed since (the usual case): one round trip, and Redis works on the queues
    while we read the sets. A set Redis lists as it did last poll is not sorted
    again. When the sets did change, the bet's replies are dropped and what the new
    sets list is read in a second round trip. The bet is this class's alone: the
    connection is only handed a pipeline.
    """

    def __init__(self, connection: Connection, *, namespace: str | None = None,
                 log: Callable[[str], None] = lambda message: None, scripts: bool = True,
                 jobs: JobMetricsReader | None = None, health: bool = True,
                 breakdowns: Breakdowns | None = None) -> None:
        self.connection = connection
        self.breakdowns = breakdowns  # None: no set or queue is tallied by class
        self.health = health  # with the totals, Redis's own health (INFO): redis_health.py
        self.jobs = jobs  # None: Sidekiq's execution metrics are not read
        self.keys = SidekiqKeys.under(namespace)
        self.log = log
        self.scripts = scripts
        self._recheck_at: float | None = None  # when to offer the script again, after a refusal
        self._refused = False  # the refusal has been said
        self._large: dict[bytes, int] = {}  # queue key -> its oldest job's length, while over queue_scan.LARGE_JOB
        self.recheck_after = SCRIPT_RECHECK
        self._plan: _Plan | None = None
        self._sizes: Sequence[QueueReading] = ()  # the reported queues at the last poll, for their sizes

    def read(self, queues: Sequence[str] | None = None, *, totals: bool = False,
             clock: Callable[[], float] = time.time) -> Snapshot:
        """The reported queues (`queues`, else every queue in Sidekiq's set) and, with `totals`, Sidekiq::Stats.

        A problem with one queue (a key of the wrong type, a job that is not JSON) is
        recorded on that queue's reading and never stops the others. Redis being
        unreachable, or refusing to list the queues, raises RedisError. The whole read,
        connecting included, is done within the connection's timeout.
        """
        with self.connection.within(self.connection.timeout):
            return self._read(queues, totals, clock)

    def _read(self, queues: Sequence[str] | None, totals: bool, clock: Callable[[], float]) -> Snapshot:
        keys = self.keys
        listing = queues is None or totals
        sets = ([keys.queues] if listing else []) + ([keys.processes] if totals else [])
        head = _Named()
        if self._recheck_at is not None and time.monotonic() >= self._recheck_at:
            self.scripts, self._recheck_at = True, None  # refused a while ago: ask again
        scripts = self.scripts
        if scripts:  # every poll: cheap for a cached script, and a restarted Redis never answers NOSCRIPT
            loads: list[Command] = [["SCRIPT", "LOAD", queue_scan.SCRIPT]]
            if totals:  # the processes' work is read with the totals
                loads.append(["SCRIPT", "LOAD", running.SCRIPT])
            head.add("script", *loads)
        tallies = self.breakdowns.commands(clock(), self._sizes) if self.breakdowns and scripts else []
        # The queues alone make no call at a first poll (no sizes known yet), but one after its reads: load it too.
        tallying = bool(tallies) or bool(self.breakdowns and scripts and "queues" in self.breakdowns.kinds)
        if tallying:
            head.add("breakdown script", ["SCRIPT", "LOAD", breakdown.SCRIPT])
        if tallies:
            head.add("breakdown", *(command for _, command in tallies))
        if totals and self.health:  # optional: a refusal leaves these readings out, never the poll
            head.add("health", *redis_health.COMMANDS)
        if totals:
            head.add("counted", ["GET", keys.processed], ["GET", keys.failed], ["ZCARD", keys.schedule],
                     ["ZCARD", keys.retry], ["ZCARD", keys.dead], ["SCARD", keys.processes])
            # The earliest due time of each set: by rank, so Redis 5 answers too, and never a scan.
            head.add("schedule due", ["ZRANGE", keys.schedule, 0, 0, "WITHSCORES"])
            head.add("retry due", ["ZRANGE", keys.retry, 0, 0, "WITHSCORES"])
            head.add("last death", ["ZRANGE", keys.dead, -1, -1, "WITHSCORES"])  # newest: scored when it died
        skipped = self.jobs.skipped if self.jobs else 0
        due = self.jobs.due(clock()) if self.jobs else []
        if self.jobs and self.jobs.skipped > skipped:
            self.log(f"job-class metrics: {self.jobs.skipped - skipped} minute(s) were not read, as Redis could "
                     f"not be read for longer than {MAX_CATCH_UP} minutes; reading the latest ones")
        if self.jobs and due and (job_commands := self.jobs.commands(due)):
            head.add("job minutes", *job_commands)
        asked = tuple(queues) if queues is not None else None
        bet = self._plan
        if bet and (bet.queues, bet.totals, bet.scripts, bet.large) != (asked, totals, scripts, frozenset(self._large)):
            bet = None
        smembers: list[Command] = [["SMEMBERS", key] for key in sets]
        head.add("sets", *smembers)
        # The bet: the plan's reads go in the same pipeline as the sets, so a poll whose sets did not change
        # (the usual case) takes one round trip. An oldest job read with LINDEX is kept only if small.
        commands = head.commands + bet.commands if bet else head.commands
        replies = self.connection.replies(commands, max_bulk=queue_scan.LARGE_JOB)
        answers = list(itertools.islice(replies, len(head.commands)))
        loaded = next((r for r in head.replies(answers, "script") if isinstance(r, ReplyError)), None)
        if scripts and loaded is not None:
            if not refuses_scripts(loaded):  # not now (e.g. LOADING): fail this poll, offer the script next time
                _drain(replies)
                raise loaded
            self._refuse_scripts(loaded)
        elif scripts and self._refused:
            self._refused = False
            self.log("Redis runs our read-only Lua script again; reading only the stamps of each oldest job")
        problems: list[str] = []
        unread: list[str] = []  # the needed reads Redis refused: the poll is then not a whole reading
        listed = self._read_sets(head.replies(answers, "sets"), sets, problems, unread)
        # Sorted (as Sidekiq::Queue.all sorts queues) only when Redis lists a set otherwise than last time.
        members = [bet.members[i] if bet and names == bet.listed[i] else sorted(names)
                   for i, names in enumerate(listed)]
        if bet and bet.scripts == self.scripts and bet.members == members:  # the bet held
            plan = self._plan = bet if bet.listed == listed else replace(bet, listed=listed)
        else:
            _drain(replies)
            plan = self._plan = self._make_plan(queues, members, listed, listing, totals)
            replies = self.connection.replies(plan.commands, max_bulk=queue_scan.LARGE_JOB)
        readings, rest = self._queues(plan, replies, unread, problems)
        paused = self._paused(rest.pop(), problems)
        self._sizes = readings
        late: list[str] = []  # the breakdowns' problems, after the needed reads' own
        if tallying and self.scripts:
            self._tally([kind for kind, _ in tallies], head.replies(answers, "breakdown") if tallies else [], late,
                        clock)
        jobs = self._jobs(self.jobs, due, head.replies(answers, "job minutes"), problems) \
            if self.jobs and "job minutes" in head else None
        now = clock()
        tallied = self.breakdowns.current(plan.reported) if self.breakdowns and self.scripts else ()
        late += self.breakdowns.notes() if self.breakdowns else []
        if not totals:
            return Snapshot(readings, now, problems=(*problems, *late), jobs=jobs, unread=tuple(unread),
                            paused=paused, breakdowns=tallied)
        health = redis_health.parse(head.replies(answers, "health")) if "health" in head else None
        unreported = rest[:len(plan.unreported)]
        for name, reply in zip(plan.unreported, unreported, strict=True):
            if isinstance(reply, ReplyError):
                key = keys.queue(name)
                if _wrong_type(reply):  # holds no job: counts 0
                    problems.append(_not_a_list(name))
                else:
                    unread.append(decode(key))
                    problems.append(_unreadable(key, reply))
        counted = plan.counted
        sizes: list[int | None] = [r.size for r in readings if counted is None or r.name in counted]
        known = [size for size in sizes if size is not None]
        # Stats#enqueued, unknown (never a smaller sum) when the queue set or any of its queues could not be read.
        enqueued = None if len(known) < len(sizes) or decode(keys.queues) in unread or \
            any(isinstance(n, ReplyError) and not _wrong_type(n) for n in unreported) else \
            sum(known) + sum(map(_int, unreported))
        hashes = rest[len(plan.unreported):len(plan.unreported) + len(plan.identities)]
        work = self._running(plan, rest[len(plan.unreported) + len(plan.identities):], problems)
        for identity, reply in zip(plan.identities, hashes, strict=True):
            if isinstance(reply, ReplyError):
                unread.append(decode(keys.process(identity)))
                problems.append(_unreadable(keys.process(identity), reply))
        # The processes are unknown, not none, when their set or any of their hashes could not be read.
        live = None if decode(keys.processes) in unread or \
            any(isinstance(reply, ReplyError) for reply in hashes) else \
            tuple(p for p in map(_process, plan.identities, hashes) if p is not None)
        read = dict(zip(_TOTALS, head.replies(answers, "counted"), strict=True))
        problems += [_unreadable(getattr(keys, name), a) for name, a in read.items() if isinstance(a, ReplyError)]
        count = {name: None if isinstance(a, ReplyError) else _int(a) for name, a in read.items()}
        problems += late
        return Snapshot(readings, now, Totals(
            processed=count["processed"], failed=count["failed"], scheduled=count["schedule"],
            retries=count["retry"], dead=count["dead"], processes=count["processes"], enqueued=enqueued, live=live,
            scheduled_due=_first_score(head.reply(answers, "schedule due")),
            retry_due=_first_score(head.reply(answers, "retry due")),
            last_death=_first_score(head.reply(answers, "last death"))), tuple(problems), jobs, tuple(unread),
            health=health if isinstance(health, RedisHealth) else None,
            health_refused=health.code if isinstance(health, ReplyError) else None, running=work, paused=paused,
            breakdowns=tallied)

    def _paused(self, reply: Reply, problems: list[str]) -> frozenset[str] | None:
        """The queues Sidekiq Pro holds paused; None, with a problem, when Redis refused the set (not a needed read:
        the queues are read whole, only whether they are paused is unknown)."""
        if isinstance(reply, ReplyError):
            problems.append(_unreadable(self.keys.paused, reply))
            return None
        return frozenset(decode(m) for m in reply if isinstance(m, bytes)) if isinstance(reply, list) else frozenset()

    def _running(self, plan: _Plan, replies: list[Reply], problems: list[str]) -> Running | None:
        """What the processes run, from the replies to their work hashes' reads (and, for records a script call
        handed back, one more round trip). None, with a problem, when Redis refused any of those hashes: the
        longest-running job is then unknown, never a shorter one."""
        records: list[running.WorkRecord] = []
        errors: list[str | None] = []
        too_large = 0  # records longer than running.OUTSIDE: never read
        if plan.scripts:
            deferred: dict[bytes, list[running.Deferred]] = {}
            for n, reply in enumerate(replies):
                if isinstance(reply, ReplyError):  # the call itself refused: every key of it is unknown
                    errors.append(str(reply)[:120])
                    continue
                keys = plan.work[n * running.BATCH:(n + 1) * running.BATCH]
                found, said, handed_back = running.from_script(len(keys), reply)
                records += [r for each in found for r in each]
                errors += said
                for d in handed_back:
                    deferred.setdefault(keys[d.key], []).append(d)
                    too_large += d.whole
            if deferred:
                errors += self._later(deferred, records)
        else:
            for reply in replies:
                found_one, error, large = running.from_hgetall(reply)
                records += found_one
                errors.append(error)
                too_large += large
        if refused := next((e for e in errors if e is not None), None):
            problems.append(f"Sidekiq's work hashes (what each process runs): Redis could not read them "
                            f"({refused.split()[0] if refused.split() else refused}); the longest-running job is "
                            "left out until it can")
            return None
        patterns, top = (self.jobs.patterns, self.jobs.top) if self.jobs else (None, DEFAULT_TOP)
        longest = running.longest(records, patterns, top)
        if too_large:
            problems.append(f"{too_large} running job(s) have a work record over {running.OUTSIDE >> 20} MiB (large "
                            "arguments): not read, as reading it would hold Redis for over a millisecond each poll; "
                            "they are left out of the longest-running job")
        if longest.unreadable:
            problems.append(f"{longest.unreadable} running job(s) have a work record with no start time Sidekiq "
                            "writes (`run_at`): they are left out of the longest-running job")
        return longest

    def _later(self, deferred: dict[bytes, list[running.Deferred]], records: list[running.WorkRecord]) -> list[
            str | None]:
        """The records script calls handed back past their budget, read by more script calls in one more round trip
        (those over running.OUTSIDE are not read). Their errors; one handed back again (it grew in between) is
        unreadable this poll."""
        commands = [c for key, each in deferred.items() for c in running.later(key, each)]
        errors: list[str | None] = []
        for reply in self.connection.replies(commands, max_bulk=running.OUTSIDE) if commands else ():
            if isinstance(reply, ReplyError):
                errors.append(str(reply)[:120])
                continue
            found, said, again = running.from_script(1, reply)
            records += found[0] + [running.UNREADABLE] * len(again)
            errors += said
        return errors

    def _tally(self, kinds: list[str], replies: list[Reply], problems: list[str], clock: Callable[[], float]) -> None:
        """The breakdowns' calls of the poll's pipeline, then more calls for the passes that go on (and the queues',
        when this poll is the first to know their sizes), at most breakdown.ROUNDS round trips in all. A call Redis
        refused is said, and its pass tried again next poll."""
        tallies = cast("Breakdowns", self.breakdowns)
        first = set(kinds)
        for round_trip in range(1, breakdown.ROUNDS + 1):
            going_on = {kind for kind, reply in zip(kinds, replies, strict=True) if self._took(kind, reply, problems,
                                                                                               clock)}
            if round_trip == breakdown.ROUNDS:
                break
            more = tallies.commands(clock(), self._sizes, going_on=True)
            kinds = [kind for kind, _ in more if kind in going_on or (kind == "queues" and kind not in first)]
            first.add("queues")
            if not kinds:
                break
            replies = self.connection.pipeline([command for kind, command in more if kind in kinds])

    def _took(self, kind: str, reply: Reply, problems: list[str], clock: Callable[[], float]) -> bool:
        """A call's reply taken into its pass: True when the pass goes on."""
        if isinstance(reply, ReplyError):
            problems.append(f"the {kind} breakdown: Redis could not run its script ({str(reply)[:100]}); it is "
                            "tried again next poll")
            return False
        tallies = cast("Breakdowns", self.breakdowns)
        try:
            return tallies.take(kind, reply, clock())
        except RedisError as exc:  # not our script's answer: this pass starts again, the poll goes on
            tallies.passes.pop(kind, None)
            if kind == "queues":
                tallies.queue_order.clear()
            problems.append(f"the {kind} breakdown: {exc}; it starts again next poll")
            return False

    def _jobs(self, jobs: JobMetricsReader, minutes: list[int], replies: list[Reply],
              problems: list[str]) -> JobMinutes | None:
        """The minutes' counts, and the histograms of the classes reported, in one more round trip. None when Redis
        refused a minute's hash: its counts are unknown, never a smaller sum; the minutes are read again later."""
        refused = next((r for r in replies if isinstance(r, ReplyError)), None)
        if refused is not None:
            problems.append(f"Sidekiq's execution metrics: Redis could not read them ({refused.code}); the job-class "
                            "metrics are left out until it can")
            return None
        counts = jobs.counts(replies)
        classes = jobs.chosen(counts)
        histograms = self.connection.pipeline(jobs.histogram_commands(minutes, classes)) if classes else []
        return jobs.readings(minutes, counts, classes, histograms)

    @staticmethod
    def _read_sets(replies: list[Reply], keys: list[bytes], problems: list[str],
                   unread: list[str]) -> list[list[bytes]]:
        """Each set's members as Redis lists them. A set Redis will not give (another type, no permission)
        has no members this poll, a problem, and makes the poll incomplete: what it lists is unknown."""
        listed: list[list[bytes]] = []
        for key, reply in zip(keys, replies, strict=True):
            if isinstance(reply, ReplyError):
                problems.append(_unreadable(key, reply))
                unread.append(decode(key))
            listed.append([m for m in reply if isinstance(m, bytes)] if isinstance(reply, list) else [])
        return listed

    def _make_plan(self, queues: Sequence[str] | None, members: list[list[bytes]], listed: list[list[bytes]],
                   listing: bool, totals: bool) -> _Plan:
        keys_of = self.keys
        queue_members = members[0] if listing else []  # by bytes, as Sidekiq::Queue.all sorts them
        process_members = members[-1] if totals else []
        known = [decode(m) for m in queue_members]
        if queues is None:
            reported, keys = known, [keys_of.queue(m) for m in queue_members]
        else:
            reported, keys = list(queues), [keys_of.queue(name) for name in queues]
        wanted = set(reported)
        unreported = [q for q in known if q not in wanted] if totals else []
        commands: list[Command] = []
        large = frozenset(self._large)
        if self.scripts:
            scanned = [i for i, key in enumerate(keys) if key not in large]
            whole = [i for i, key in enumerate(keys) if key in large]
        else:
            scanned, whole = [], list(range(len(keys)))
        for start in range(0, len(scanned), queue_scan.BATCH):
            commands.append(queue_scan.call([keys[i] for i in scanned[start:start + queue_scan.BATCH]]))
        for i in whole:
            commands += [["LLEN", keys[i]], ["LINDEX", keys[i], -1]]
        commands += [["LLEN", keys_of.queue(name)] for name in unreported]
        commands += [["HMGET", keys_of.process(identity), *PROCESS_FIELDS] for identity in process_members]
        work = [key for identity in process_members for key in keys_of.work(decode(identity))]
        if self.scripts:
            work_commands = [running.call(work[n:n + running.BATCH]) for n in range(0, len(work), running.BATCH)]
        else:
            work_commands = [["HGETALL", key] for key in work]
        commands += work_commands
        # Sidekiq Pro's paused queues, last: a set as small as the queues paused, absent (empty) without Pro.
        commands.append(["SMEMBERS", keys_of.paused])
        asked = tuple(queues) if queues is not None else None
        counted = None if queues is None else frozenset(known).intersection(reported)
        return _Plan(members, listed, self.scripts, asked, totals, reported, keys, counted, unreported,
                     [decode(i) for i in process_members], work, len(work_commands), commands, scanned, whole, large)

    def _queues(self, plan: _Plan, replies: Iterator[Reply], unread: list[str],
                problems: list[str]) -> tuple[tuple[QueueReading, ...], list[Reply]]:
        """The queue readings, and the replies after them (unreported sizes, processes). A queue whose LLEN or
        oldest job Redis refused is added to `unread`. A queue key that is not a list (WRONGTYPE: Redis's answer,
        not a refusal) holds no job Sidekiq could run: it is left out, with a line in `problems`, and the poll
        stays whole."""
        names = plan.reported
        readings: list[QueueReading | None] = [None] * len(names)
        # The replies not read yet, when a script call that stopped early needs a round trip of its own: read
        # first, or that round trip's replies would be taken for them.
        stash: list[Reply] = []
        try:
            script_calls = -(-len(plan.scanned) // queue_scan.BATCH)
            for i, reading in zip(plan.scanned, self._scanned(plan, itertools.islice(replies, script_calls),
                                                              lambda: stash.extend(replies)), strict=True):
                readings[i] = reading
        except RedisError:
            _drain(replies)
            raise
        replies = itertools.chain(stash, replies)
        plain = list(itertools.islice(replies, plan.queue_calls - script_calls))
        for j, i in enumerate(plan.whole):
            oldest = plain[2 * j + 1]
            if isinstance(oldest, TooLarge):
                self._large[plan.keys[i]] = oldest.size
            else:
                self._large.pop(plan.keys[i], None)  # consumed: back to the script next time
            errors = [e for e in (plain[2 * j], oldest) if isinstance(e, ReplyError)]
            if errors and all(map(_wrong_type, errors)):
                readings[i] = None
                problems.append(_not_a_list(names[i]))
            else:
                readings[i] = _queue(names[i], plain[2 * j], oldest)
                if errors:
                    unread.append(decode(plan.keys[i]))
        for i in plan.scanned:  # the script sizes a queue unless Redis refused the key (its size is then None)
            if (scanned := readings[i]) is not None and scanned.size is None:
                if (scanned.problem or "").startswith("WRONGTYPE "):  # the script's pcall gives Redis's error text
                    readings[i] = None
                    problems.append(_not_a_list(names[i]))
                else:
                    unread.append(decode(plan.keys[i]))
        return tuple(r for r in readings if r is not None), list(replies)

    def _note_large(self, names: list[str], keys: list[bytes], first: int, large: list[int]) -> None:
        """The queues whose oldest job the script found over queue_scan.LARGE_JOB (`large`: 1-based index in the call,
        length, ...): read with LINDEX from the next poll on, and said once each."""
        for n in range(0, len(large), 2):
            i, length = first + large[n] - 1, large[n + 1]
            if keys[i] not in self._large:
                mb = length / 1e6
                self.log(f"queue {ascii(names[i])[:80]}: its oldest job is {mb:.1f} MB; reading it with LINDEX "
                         f"from now on ({mb:.1f} MB over the network a poll) rather than inside Redis, which "
                         f"would hold Redis about {mb * queue_scan.MS_PER_MB:.0f} ms a poll")
            self._large[keys[i]] = length

    def _refuse_scripts(self, error: ReplyError) -> None:
        self.scripts = False
        self._plan = None
        self._recheck_at = time.monotonic() + self.recheck_after
        if self.breakdowns:  # no tally without the script: the last one kept would be reported for ever
            self.breakdowns.reset()
        if not self._refused:  # said once, not at every re-check
            self._refused = True
            self.log(f"Redis refuses our read-only Lua script ({str(error)[:100]}); reading each queue's "
                     "oldest job whole with LINDEX instead" +
                     ("; no breakdown by job class until it runs it again" if self.breakdowns else ""))

    def _scanned(self, plan: _Plan, replies: Iterable[Reply], rest: Callable[[], None]) -> tuple[QueueReading, ...]:
        """Readings from the script's batches, each parsed as it arrives while Redis works on the next.
        A batch that stopped early (big jobs) is finished one key per call, all in one more round trip, once `rest`
        has read the pipeline's other replies."""
        names = [plan.reported[i] for i in plan.scanned]
        keys = [plan.keys[i] for i in plan.scanned]
        readings: list[QueueReading] = []
        pending: list[int] = []  # indexes (into names) of the queues still to scan
        error: ReplyError | None = None
        for i, reply in enumerate(replies):  # read every reply, even after an error: the stream stays in step
            if error or isinstance(reply, ReplyError):
                error = error or reply if isinstance(reply, ReplyError) else error
                continue
            text, done, whole, large = queue_scan.unpack(reply)
            first = i * queue_scan.BATCH
            queue_scan.parse_reply(readings, names[first:first + done], text, whole)
            self._note_large(names, keys, first, large)
            pending += range(first + done, min(first + queue_scan.BATCH, len(names)))
        if not pending and not error:
            return tuple(readings)
        rest()
        more = self.connection.pipeline([queue_scan.call([keys[i]]) for i in pending])
        error = error or next((r for r in more if isinstance(r, ReplyError)), None)
        if error:
            self._plan = None
            if refuses_scripts(error):
                self._refuse_scripts(error)
            raise RedisError(f"Redis could not run the queue scan script ({str(error)[:100]}); the next poll "
                             "reads the queues again")
        late: dict[int, QueueReading] = {}
        for i, reply in zip(pending, more, strict=True):
            text, _, whole, large = queue_scan.unpack(reply)
            line: list[QueueReading] = []
            queue_scan.parse_reply(line, [names[i]], text, whole)
            self._note_large(names, keys, i, large)
            late[i] = line[0]
        done_early = iter(readings)
        return tuple(late[i] if i in late else next(done_early) for i in range(len(names)))


def _drain(replies: Iterator[Reply]) -> None:
    """Read and drop what is left of a pipeline's replies, so the next one starts in step."""
    for _ in replies:
        pass


def _queue(name: str, size: object, oldest: object) -> QueueReading:
    """A reading from plain LLEN and LINDEX replies (when scripts are refused)."""
    if isinstance(size, Exception):
        return QueueReading(name, None, None, _short(size))
    if isinstance(oldest, Exception):
        return QueueReading(name, _int(size), None, _short(oldest))
    if oldest is None:
        return QueueReading(name, _int(size), None)
    if isinstance(oldest, TooLarge):
        stamp = queue_scan.usual_end(oldest)
        if stamp is None:
            return QueueReading(name, _int(size), None, f"the oldest job is {oldest.size / 1e6:.1f} MB and does "
                                "not end as Sidekiq writes jobs: its latency is not read (only its ends were kept)")
        return QueueReading(name, _int(size), stamp)
    if isinstance(oldest, bytes):
        return queue_scan.job_reading(name, _int(size), oldest)
    return QueueReading(name, _int(size), None, "LINDEX did not answer with a job")


def _process(identity: str, reply: object) -> ProcessReading | None:
    """A process from HMGET of PROCESS_FIELDS; None when its heartbeat hash has expired."""
    if not isinstance(reply, list) or len(reply) != len(PROCESS_FIELDS):  # an error: no permission, another type
        return None
    busy, concurrency, info, rss, rtt, quiet = (v if isinstance(v, bytes) else None for v in reply)
    if info is None:
        return None  # expired (nil): Sidekiq's ProcessSet skips these too
    try:
        data = json.loads(info)
    except (ValueError, RecursionError):
        data = None
    details = data if isinstance(data, dict) else {}
    hostname, version = details.get("hostname"), details.get("version")
    return ProcessReading(identity, _int(busy), _concurrency(concurrency, details),
                          hostname if isinstance(hostname, str) else None, _count(rss), _count(rtt), quiet == b"true",
                          version[:20] if isinstance(version, str) else None)


def _count(field: bytes | None) -> int | None:
    """A non-negative count written by Sidekiq, or None (absent, or not a plain count)."""
    return int(field) if field is not None and field.isdigit() and len(field) <= 18 else None


def _first_score(reply: object) -> float | None:
    """The score of a one-member ZRANGE ... WITHSCORES (epoch seconds: the earliest due time for 0 0, the newest
    death for the dead set's -1 -1), None when empty."""
    if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
        try:
            score = float(reply[1])
        except ValueError:
            return None
        return score if math.isfinite(score) else None
    return None


def _concurrency(field: bytes | None, data: dict[str, object]) -> int | None:
    """Where each Sidekiq version keeps it: a hash field (8.1.2+), info.concurrency (<= 8.1.1,
    the total over all capsules in 7.x), or the sum over info.capsules (8.0.9+)."""
    count = _count(field)  # more digits than 18: no real count, and int() may refuse
    if count is not None:
        return count
    value = data.get("concurrency")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    capsules = data.get("capsules")
    if isinstance(capsules, dict):
        values = [c.get("concurrency") for c in capsules.values() if isinstance(c, dict)]
        counts = [c for c in values if isinstance(c, int) and not isinstance(c, bool) and c >= 0]
        if counts:
            return sum(counts)
    return None


def _int(value: object) -> int:
    """Ruby's `.to_i` on a Redis reply, for counters: nil, junk or an error count as 0."""
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        digits = value.strip()
        sign = -1 if digits[:1] == b"-" else 1
        digits = digits.lstrip(b"+-")
        n = len(digits) - len(digits.lstrip(b"0123456789"))
        return sign * int(digits[:n]) if n and n <= 30 else 0
    return 0


def _wrong_type(error: ReplyError) -> bool:
    return error.code == "WRONGTYPE"


def _not_a_list(queue: str) -> str:
    """The line for a queue whose key holds something other than a list: no job Sidekiq could run is there. The
    name as other queue warnings give it (ascii: a name may hold a newline, and a warning is one line)."""
    return f"queue {ascii(queue)[:80]}: its key is not a list (WRONGTYPE), so it holds no job Sidekiq could run; " \
           "another program writes that key: that queue is left out, the others are counted"


def _unreadable(key: bytes, error: ReplyError) -> str:
    """One line for a key whose value is unknown this poll, saying what to do about it."""
    name = key.decode("utf-8", "replace")
    if error.code == "NOPERM":
        return f"{name}: Redis refused to read it (NOPERM); give the user read access to that key, until then " \
               "it is left out"
    if error.code == "WRONGTYPE":
        return f"{name}: it is not what Sidekiq keeps there (WRONGTYPE): another program writes that key; left out"
    return f"{name}: Redis could not read it ({error.code}); left out"


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:120]
