"""Issue 34, points 1, 2 and 5: the retry, dead and schedule sets and the largest queues by job class (and error
class), tallied inside Redis by breakdown.lua, against Sidekiq's own API (6.4, 7.3, 8.1) as the reference."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections import Counter

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidekiq_metrics import catalogue as c
from sidekiq_metrics.config import load_settings
from sidekiq_metrics.metrics.samples import Measurements, Sample
from sidekiq_metrics.outputs import prometheus
from sidekiq_metrics.outputs.json_lines import JsonOutput
from sidekiq_metrics.outputs.l2met import L2metFormat
from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import parse_redis_url
from sidekiq_metrics.sidekiq import breakdown
from sidekiq_metrics.sidekiq.breakdown import SHA, Breakdowns
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from sidekiq_metrics.sidekiq.readings import Breakdown
from sidekiq_metrics.wiring import build_poller
from support.commands import ROOT, cli, parse_l2met
from support.redis_server import RedisServer, monitored

BREAKDOWN_REF = ROOT / "tests" / "support" / "breakdown_ref.rb"
WRAPPER = "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper"

# Several classes, ActiveJob-wrapped ones and a mailer, a job whose display_class is literally `other`; jobs
# that fail through Sidekiq::JobRetry with real error classes into the retry set and, retries exhausted, dead.
JOBS = [
    *[{"class": "HardJob"}] * 3, *[{"class": "ReportJob", "active_job": True}] * 2,
    {"class": "X", "mailer": ["UserMailer", "welcome"]}, {"class": "HardJob", "display_class": "other"},
    {"class": "HardJob", "queue": "low"},
    *[{"class": "HardJob", "in": 600}] * 2, {"class": "ReportJob", "active_job": True, "in": 60},
    *[{"class": "HardJob", "fail": "ArgumentError"}] * 2,
    {"class": "ReportJob", "active_job": True, "fail": "Billing::PaymentDeclined"},
    {"class": "X", "mailer": ["UserMailer", "welcome"], "fail": "ArgumentError"},
    {"class": "HardJob", "fail": "Billing::PaymentDeclined", "dead": True},
    {"class": "ReportJob", "active_job": True, "fail": "ArgumentError", "dead": True},
]
VERSIONS = {"6.4": 1, "7.3": 2, "8.1": 3}  # each writes its own database of one server


@pytest.fixture(scope="module")
def written_server():
    """A server of this module's own, and what each version wrote into it: each Ruby run is made once, when a test
    of this worker first needs it."""
    server = RedisServer().start()
    yield server, {}
    server.cleanup()


@pytest.fixture
def written(reference_sidekiq, written_server):
    """Sidekiq `version` writes JOBS into a database of its own and tallies them with its own API (once)."""
    rubies = {"6.4": ["ruby"], "7.3": reference_sidekiq["7"], "8.1": reference_sidekiq["8"]}
    server, done = written_server

    def run(version: str) -> tuple[str, dict]:
        if version not in done:
            url = f"{server.url.rpartition('/')[0]}/{VERSIONS[version]}"
            out = subprocess.run([*rubies[version], str(BREAKDOWN_REF)], input=json.dumps({"jobs": JOBS}),
                                 env={**os.environ, "REDIS_URL": url}, capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stderr
            reference = json.loads(out.stdout)
            assert reference["version"].startswith(version)
            done[version] = (url, reference)
        return done[version]

    return run


def ours(url: str, **kw: object) -> SidekiqReader:
    return SidekiqReader(Connection(parse_redis_url(url, "url"), timeout=5), breakdowns=Breakdowns(b"", **kw))


def whole_passes(reader: SidekiqReader, polls: int = 50, queue: str = "low",
                 sets: tuple[str, ...] = ("retries", "dead", "scheduled")) -> dict[tuple[str, str], Breakdown]:
    """Polls until every breakdown has a pass that began after the data was written (it is then exact)."""
    first = None
    for _ in range(polls):
        snapshot = reader.read(totals=True)
        first = first or snapshot.read_at - 1e-3
        done = {(b.kind, b.queue): b for b in snapshot.breakdowns if b.started >= first}
        if set(sets) <= {k for k, _ in done} and ("queues", queue) in done:
            return done
    raise AssertionError("no whole pass")


def as_ours(tally: dict[str, object]) -> dict[str, object]:
    """Sidekiq's tally in our names: a real class `other` is reported as `other_`, never in the sum `other`."""
    return {("other_" if k == "other" else k): v for k, v in tally.items()}


@pytest.mark.parametrize("version", VERSIONS)
def test_each_breakdown_equals_sidekiqs_own_api_over_passes_of_many_calls(written, version, monkeypatch):
    """Two jobs a call and one round trip a poll: every pass spans several polls, and is still exact."""
    url, reference = written(version)
    monkeypatch.setattr(breakdown, "ENTRIES", 2)
    monkeypatch.setattr(breakdown, "ROUNDS", 1)
    got = whole_passes(ours(url))
    for kind in ("retries", "dead", "scheduled"):
        assert got[kind, ""].classes == as_ours(reference[kind]["classes"]), kind
    assert got["retries", ""].calls > 1 and got["scheduled", ""].calls > 1
    for kind in ("retries", "dead"):
        assert got[kind, ""].errors == reference[kind]["errors"]
        oldest = as_ours(reference[kind]["oldest"])
        assert got[kind, ""].oldest.keys() == oldest.keys()
        assert all(abs(got[kind, ""].oldest[k] - float(v)) < 0.002 for k, v in oldest.items())  # type: ignore[arg-type]
    for queue, tally in reference["queues"].items():
        assert got["queues", queue].classes == as_ours(tally["classes"])
    assert got["queues", "default"].classes["ReportJob"] == 2  # ActiveJob's class, not its wrapper
    assert got["queues", "default"].classes["UserMailer#welcome"] == 1


def test_the_cap_shared_with_the_job_class_metrics_sums_the_rest_into_other(written):
    url, reference = written("8.1")
    got = whole_passes(ours(url, top=1))
    queue = got["queues", "default"].classes
    assert queue == {"HardJob": 3, "other": 4}  # ReportJob 2, the mailer 1 and `other_` 1 summed
    assert sum(queue.values()) == sum(reference["queues"]["default"]["classes"].values())
    named = whole_passes(ours(url, patterns=("Report*",)))
    assert named["retries", ""].classes == {"ReportJob": 1, "other": 3}
    assert named["retries", ""].oldest["other"] == min(named["retries", ""].oldest.values())


def test_a_run_prints_every_breakdown_under_its_names(written):
    """The real command, every breakdown on: one poll has every whole pass (small sets); names as the catalogue
    says. The queues are off by default."""
    url, _ = written("7.3")
    out = cli("run", "--once", env={"REDIS_URL": url, "SIDEKIQ_METRICS_BREAKDOWNS": "retries,dead,scheduled,queues"})
    assert out.returncode == 0, out.stderr
    got = parse_l2met(out.stdout)
    assert got["sample#sidekiq.job.HardJob.retries"] == "2"
    assert got["sample#sidekiq.job.ReportJob.retries"] == "1"
    assert got["sample#sidekiq.job.UserMailer_welcome.retries"] == "1"  # `#` is no l2met name character
    assert got["sample#sidekiq.error.ArgumentError.retries"] == "3"
    assert got["sample#sidekiq.error.Billing::PaymentDeclined.dead"] == "1"
    assert got["sample#sidekiq.default.job.other_.waiting"] == "1"
    assert got["sample#sidekiq.low.job.HardJob.waiting"] == "1"
    assert got["sample#sidekiq.job.HardJob.scheduled"] == "2"
    assert float(got["sample#sidekiq.job.HardJob.dead.oldest"]) < 120
    for age in ("retries", "dead", "scheduled", "queues"):
        assert float(got[f"sample#sidekiq.{age}.breakdown.age"]) < 30
    default = parse_l2met(cli("run", "--once", env={"REDIS_URL": url}).stdout)
    assert "sample#sidekiq.job.HardJob.retries" in default and not any(".waiting" in k for k in default)


def model_class(job: object) -> str:
    """Sidekiq::JobRecord#display_class, in Python, for the payloads Hypothesis makes; a class that is not a
    non-empty string of at most 256 bytes is ours `unknown`."""
    def name(v: object) -> str:
        ok = isinstance(v, str) and 0 < len(v.encode()) <= 256
        if not ok:
            return "unknown"
        return v + "_" if v.rstrip("_") in ("other", "unknown") else v  # type: ignore[union-attr]

    if not isinstance(job, dict):
        return "unknown"
    if job.get("display_class") not in (None, False):
        return name(job["display_class"])
    if job.get("class") not in (WRAPPER, "Sidekiq::ActiveJob::Wrapper"):
        return name(job.get("class"))
    args = job.get("args")
    first = args[0] if isinstance(args, list) and args else None
    wrapped = job.get("wrapped")
    wrapped = first if wrapped in (None, False) else wrapped
    if wrapped in ("ActionMailer::DeliveryJob", "ActionMailer::MailDeliveryJob"):
        a = first.get("arguments") if isinstance(first, dict) else None
        if not isinstance(a, list) or not a or not isinstance(a[0], str):
            return "unknown"
        if len(a) == 1:
            return name(a[0])
        return name(a[0] + "#" + a[1]) if isinstance(a[1], str) else "unknown"
    return name(wrapped)


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
NAMES = st.one_of(st.sampled_from(["HardJob", "other", "unknown", "other_", "Billing::Invoice", "", WRAPPER,
                                   "ActionMailer::MailDeliveryJob"]), TEXT, st.integers(), st.none(),
                  st.booleans(), st.lists(st.integers(), max_size=2), st.just("E" * 300))
FIELDS = st.fixed_dictionaries({}, optional={
    "class": NAMES, "wrapped": NAMES, "display_class": NAMES, "error_class": NAMES,
    "args": st.lists(st.one_of(NAMES, st.fixed_dictionaries({}, optional={"arguments": st.lists(NAMES, max_size=3)})),
                     max_size=2),
    "failed_at": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(), TEXT)})
PAYLOADS = st.one_of(FIELDS.map(lambda d: json.dumps(d, separators=(",", ":"))),
                     st.sampled_from(["{", "not json", "[1,2]", '"text"', "null", '{"class":"A"', "{}", "[" * 2000]),
                     st.binary(max_size=20))


@settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "150")) // 3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# Unique as Redis sees them: '{' and b'{' are one member of a sorted set.
@given(payloads=st.lists(PAYLOADS, min_size=1, max_size=12,
                         unique_by=lambda p: p.encode() if isinstance(p, str) else p))
def test_any_payload_is_counted_once_under_its_class_or_unknown_never_dropped(r, redis_server, payloads):
    r.delete("retry", "queue:q")
    for n, payload in enumerate(payloads):
        r.zadd("retry", {payload: 1_800_000_000 + n})
    r.lpush("queue:q", *payloads)
    r.sadd("queues", "q")
    got = whole_passes(ours(redis_server.url, top=1000), polls=5, queue="q", sets=("retries",))
    expected: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for payload in payloads:
        try:
            job = json.loads(payload)
        except (ValueError, RecursionError):
            job = None
        expected[model_class(job)] += 1
        error = job.get("error_class") if isinstance(job, dict) else None
        errors["unknown" if not isinstance(error, str) or not error or len(error.encode()) > 256
               else error + "_" if error.rstrip("_") in ("other", "unknown") else error] += 1
    assert got["retries", ""].classes == dict(expected)
    assert got["retries", ""].errors == dict(errors)
    assert got["queues", "q"].classes == dict(expected)


def fill(r: redis.Redis, n: int) -> None:
    r.zadd("retry", {json.dumps({"class": f"J{i % 3}", "jid": str(i)}): 1_800_000_000 + i for i in range(n)})
    r.lpush("queue:q", *[json.dumps({"class": f"J{i % 3}", "jid": str(i)}) for i in range(n)])
    r.sadd("queues", "q")


@pytest.fixture(params=["redis", "valkey"])
def any_server(request):
    server = request.getfixturevalue("redis_server" if request.param == "redis" else "valkey")
    client = server.client()
    client.flushall()
    yield server, client
    client.flushall()


def test_a_pass_over_sets_that_change_counts_each_job_once(any_server, monkeypatch):
    """The scheduler removes entries from the front of a sorted set (the cursor's own entry included) and Sidekiq
    pushes at the head of a list while a pass goes on: each job is counted once, and the pass ends where the list
    ended when it began (those pushed meanwhile are for the next pass)."""
    server, r = any_server
    monkeypatch.setattr(breakdown, "ENTRIES", 10)
    monkeypatch.setattr(breakdown, "ROUNDS", 1)
    fill(r, 60)
    reader = ours(server.url, kinds=frozenset({"retries", "queues"}))
    reader.read(totals=True)
    reader.read(totals=True)  # 20 jobs of each counted (the queue's pass began at the second poll: sizes known)
    r.zremrangebyrank("retry", 0, 19)  # the 20 counted, the cursor's own entry among them
    r.lpush("queue:q", *[json.dumps({"class": "New"})] * 5)  # pushed at the head, where the pass ends
    passes = []
    for _ in range(10):
        passes = [b for b in reader.read(totals=True).breakdowns if b.started > 0]
        if len(passes) == 2:
            break
    by_kind = {b.kind: b for b in passes}
    assert by_kind["retries"].classes == {"J0": 20, "J1": 20, "J2": 20}
    assert by_kind["queues"].classes == {"J0": 20, "J1": 20, "J2": 20}


def test_jobs_workers_take_during_a_pass_make_it_short_by_as_many_and_no_more(r, redis_server, monkeypatch):
    monkeypatch.setattr(breakdown, "ENTRIES", 10)
    monkeypatch.setattr(breakdown, "ROUNDS", 1)
    fill(r, 60)
    reader = ours(redis_server.url, kinds=frozenset({"queues"}))
    reader.read()
    reader.read()  # 10 counted
    r.rpop("queue:q", 3)
    for _ in range(10):
        if got := reader.read().breakdowns:
            break
    assert sum(got[0].classes.values()) == 60 - 3


def test_round_trips_and_calls_per_poll_do_not_grow_with_queues_or_jobs(r, redis_server):
    """Five script calls at most per round trip (one per breakdown), at most ROUNDS round trips, whatever the
    number of queues; 1,500 retries take three calls (ENTRIES a call), all in one poll."""
    fill(r, 3 * breakdown.ENTRIES)
    for i in range(500):
        r.lpush(f"queue:q{i}", json.dumps({"class": "A"}))
        r.sadd("queues", f"q{i}")
    reader = ours(redis_server.url)
    sends: list[list[bytes]] = []
    original = reader.connection.replies

    def counted(commands, **kw):
        sends.append([cmd[1] for cmd in commands if cmd[0] == "EVALSHA" and cmd[1] == SHA])
        return original(commands, **kw)

    reader.connection.replies = counted  # type: ignore[method-assign]
    reader.read(totals=True)
    sends.clear()
    snapshot = reader.read(totals=True)
    assert len(sends) <= breakdown.ROUNDS + 1 and all(len(s) <= 4 for s in sends)
    assert {b.kind for b in snapshot.breakdowns} == {"retries", "queues"}  # the empty sets: none
    retries = next(b for b in snapshot.breakdowns if b.kind == "retries")
    assert retries.calls == 3 and sum(retries.classes.values()) == 3 * breakdown.ENTRIES
    assert len([b for b in snapshot.breakdowns if b.kind == "queues"]) == 20  # the default: the 20 largest


def test_settings_turn_breakdowns_off_and_leave_large_sets_out(r, redis_server):
    fill(r, 30)
    with monitored(redis_server) as seen:
        off = cli("run", "--once", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_BREAKDOWNS": "none"})
    assert off.returncode == 0 and ".breakdown." not in off.stdout and ".retries=" not in off.stdout.replace(
        "sidekiq.retries=", "")
    assert not any(SHA in command for command in seen)
    small = cli("run", "--once", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_BREAKDOWN_MAX_SIZE": "20",
                                      "SIDEKIQ_METRICS_BREAKDOWNS": "retries,dead"})
    assert small.returncode == 0
    assert "job.J0.retries" not in small.stdout and "waiting" not in small.stdout
    assert "warning: the retries set holds more than 20 jobs" in small.stderr
    bad = cli("run", "--once", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_BREAKDOWNS": "retries,nope"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "SIDEKIQ_METRICS_BREAKDOWNS" in bad.stderr


def test_each_shard_has_its_own_breakdown(r, redis_server, own_redis):
    fill(r, 4)
    other = own_redis.client()
    other.zadd("dead", {json.dumps({"class": "Far", "error_class": "E"}): 1})
    env = {"REDIS_URL": redis_server.url, "ORDERS_URL": own_redis.url,
           "SIDEKIQ_METRICS_SHARDS": "default:REDIS_URL,orders:ORDERS_URL"}
    out = build_poller(load_settings(env), io.StringIO(), io.StringIO())
    lines = io.StringIO()
    out.out = lines
    assert out.poll()
    got = parse_l2met(lines.getvalue())
    assert got["sample#sidekiq:orders.job.Far.dead"] == "1" and got["sample#sidekiq:orders.error.E.dead"] == "1"
    assert got["sample#sidekiq.job.J0.retries"] == "2"
    assert not any(k.startswith("sample#sidekiq:all.job.") for k in got)  # no sums over shards


def test_jobs_waiting_by_class_render_with_both_labels_in_every_output():
    sample = Sample(c.JOB_WAITING, 3, (("job_class", "Billing::Invoice"), ("queue", "low priority")))
    m = Measurements(samples=[sample, Sample(c.UP, 1)])
    assert L2metFormat().render(m)[0] == "sample#sidekiq.low_priority.job.Billing::Invoice.waiting=3"
    lines: list[str] = []
    JsonOutput(lines.extend).emit(m, 0.0)
    assert json.loads(lines[0])["job_class"] == {"Billing::Invoice": {"queue": {"low priority": {"job.waiting": 3}}}}
    assert 'sidekiq_job_waiting{job_class="Billing::Invoice",queue="low priority"} 3' in \
        prometheus.render("sidekiq", [sample])


def test_a_set_of_jobs_all_due_at_once_is_passed_whole(r, redis_server, monkeypatch):
    """push_bulk with one `at` gives every job the same score: a pass through more of them than a call takes still
    ends, and counts each once; the entry the last call stopped at is found again when entries before it left."""
    monkeypatch.setattr(breakdown, "ENTRIES", 100)
    monkeypatch.setattr(breakdown, "ROUNDS", 1)
    r.zadd("schedule", {json.dumps({"class": f"J{i % 2}", "jid": str(i)}): 1_800_000_000 for i in range(1200)})
    reader = ours(redis_server.url, kinds=frozenset({"scheduled"}))
    reader.read()
    r.zpopmin("schedule", 30)  # 30 of the 100 counted leave the front: the place is kept
    for _ in range(20):
        if got := reader.read().breakdowns:
            break
    assert got[0].classes == {"J0": 600, "J1": 600} and got[0].calls == 12


def test_the_queues_breakdown_alone_is_printed_by_run_once(written):
    """SIDEKIQ_METRICS_BREAKDOWNS=queues: the first poll knows no queue sizes and has no set to tally, yet takes the
    round trip that starts the queues' round once its reads know them (Heroku Scheduler's `run --once`)."""
    url, _ = written("7.3")
    alone = cli("run", "--once", env={"REDIS_URL": url, "SIDEKIQ_METRICS_BREAKDOWNS": "queues"})
    assert alone.returncode == 0, alone.stderr
    got = parse_l2met(alone.stdout)
    assert got["sample#sidekiq.low.job.HardJob.waiting"] == "1" and got["sample#sidekiq.default.job.HardJob.waiting"]
    assert not any(".retries" in k for k in got if ".job." in k)


@pytest.mark.parametrize("version", VERSIONS)
def test_jobs_too_large_to_decode_are_read_by_pattern_as_sidekiq_writes_them(written, version, monkeypatch):
    """Every job taken as one over breakdown.LARGE (never decoded): class, wrapped class, error class and first
    failure are read from the payloads as each Sidekiq version writes them, and equal its API's tally; only a
    mailer, whose class is in its arguments, is `unknown`."""
    url, reference = written(version)
    monkeypatch.setattr(breakdown, "LARGE", 0)
    got = whole_passes(ours(url))
    for kind in ("retries", "dead", "scheduled"):
        expected = Counter({("unknown" if "#" in k else k): v for k, v in as_ours(reference[kind]["classes"]).items()})
        assert got[kind, ""].classes == dict(expected), kind
    for kind in ("retries", "dead"):
        assert got[kind, ""].errors == reference[kind]["errors"]
        assert all(abs(got[kind, ""].oldest[k] - float(v)) < 0.002  # type: ignore[arg-type]
                   for k, v in as_ours(reference[kind]["oldest"]).items() if "#" not in k)


NOW = 1_800_000_000


def redis_cpu(r: redis.Redis) -> float:
    """Redis's main thread's CPU time (seconds): not the machine's load, unlike SLOWLOG's wall time."""
    info = r.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def script_calls(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def failed_job(i: int, arg_bytes: int) -> str:
    return json.dumps({"class": "ImportJob", "jid": f"{i:024x}", "queue": "default", "args": ["x" * arg_bytes],
                       "error_class": "Net::ReadTimeout", "error_message": "boom", "failed_at": NOW - 60,
                       "retry_count": 1})


def cpu_per_call(r: redis.Redis, reader: SidekiqReader, at: float | None = None) -> tuple[float, int]:
    """Milliseconds of Redis's main thread per breakdown call over one poll (the poll's other reads, a few cheap
    commands, counted in: in our favour), and the calls."""
    calls, cpu = script_calls(r), redis_cpu(r)
    reader.read(totals=True, **({"clock": lambda: at} if at is not None else {}))
    cpu, calls = redis_cpu(r) - cpu, script_calls(r) - calls
    return (cpu * 1000 / calls if calls else cpu * 1000), calls


def test_a_call_copies_at_most_its_budget_and_one_job_however_large_the_jobs(r, redis_server):
    """64 failed jobs of 300 KB: a call fetched 64 whole jobs (19 MB) before it looked at its byte budget, 55 ms
    of Redis CPU a call. Fetched one at a time, a call copies its budget and one job at most (and never decodes
    one over LARGE). Redis CPU, not wall time: the machine's load makes no difference; the margin is about 5x."""
    pipe = r.pipeline()
    for i in range(64):
        pipe.zadd("retry", {failed_job(i, 300_000): NOW + i})
        pipe.lpush("queue:imports", failed_job(i, 300_000))  # a queue of them: by LRANGE, the same
    pipe.sadd("queues", "imports")
    pipe.execute()
    per_call, calls = cpu_per_call(r, ours(redis_server.url, kinds=frozenset({"retries", "queues"})))
    assert calls >= 2 and per_call <= 5.0, f"{per_call:.1f} ms of Redis CPU a breakdown call"


def test_a_job_of_16_mb_is_never_decoded_and_its_set_is_not_passed_again_before_rescan(r, redis_server):
    """One failed job of 16 MB in a small retry set was decoded whole at every poll (47 ms of Redis CPU each 30 s
    for the job's 21 days of retries). It is read by pattern now, but Redis still copies it into the script (68 ms
    measured, docs/performance.md): the set is passed again only after RESCAN, its tally reported meanwhile with
    its age; the polls between cost Redis no more than a small set's."""
    # (not first: the poll reads the first entry's score with ZRANGE 0 0, which sends the whole member)
    r.zadd("retry", {failed_job(0, 100): NOW, failed_job(1, 16_000_000): NOW + 1})
    reader = ours(redis_server.url, kinds=frozenset({"retries"}))
    first = reader.read(totals=True, clock=lambda: NOW).breakdowns
    assert [(b.classes, b.errors) for b in first] == [({"ImportJob": 2}, {"Net::ReadTimeout": 2})]
    for poll in range(1, 4):
        per_call, calls = cpu_per_call(r, reader, NOW + 30 * poll)
        assert calls == 0 and per_call <= 5.0, f"{per_call:.1f} ms of Redis CPU at a poll between passes"
    snapshot = reader.read(totals=True, clock=lambda: NOW + breakdown.RESCAN - 1)
    assert [b.started for b in snapshot.breakdowns] == [NOW]  # age: RESCAN - 1
    calls = script_calls(r)
    assert [b.started for b in reader.read(totals=True, clock=lambda: NOW + breakdown.RESCAN).breakdowns] == \
        [NOW + breakdown.RESCAN] and script_calls(r) > calls


def test_the_work_of_a_call_is_bounded_whatever_the_jobs_shape(r, redis_server):
    """A byte budget sized on jobs of mostly one string let jobs of 2 KB of [product_id, quantity] pairs cost 6-9 ms
    a call, and deep nesting 12.7 ms: cjson's work follows the values it builds. Charged per value as well, a call
    costs about the same whatever the shape; jobs over LARGE, read by pattern (plain finds), too. A ratio to the
    text jobs, so the machine's speed does not decide."""
    def cost(arg: object, jobs: int = 3_000) -> float:
        r.flushall()
        pipe = r.pipeline()
        for i in range(jobs):
            pipe.zadd("retry", {json.dumps({"class": "OrderImportJob", "jid": f"{i:024x}", "args": [arg]},
                                           separators=(",", ":")): NOW + i})
        pipe.execute()
        reader = ours(redis_server.url, kinds=frozenset({"retries"}))
        return min(cpu_per_call(r, reader)[0] for _ in range(3))

    nested: object = 1
    for _ in range(400):
        nested = [nested]
    text, pairs, deep = cost("x" * 1900), cost([[i, 1] for i in range(10, 280)]), cost(nested)
    large = cost("x" * 70_000, jobs=40)  # over LARGE, read by pattern: 4 a call
    assert max(pairs, deep, large) <= 2.5 * text, f"a call: {pairs:.1f} ms of pairs, {deep:.1f} ms of nesting, " \
                                                  f"{large:.1f} ms of 70 KB jobs, {text:.1f} ms of text"


def test_a_pass_ends_at_the_end_its_set_had_while_jobs_are_scheduled_at_a_steady_rate(r, redis_server):
    """20 jobs a second scheduled five minutes ahead: 6,000 of 2 KB in the schedule set, 600 more a poll than a
    poll passes. The pass chased the set's end and never ended: no `.scheduled` at all. It ends at the highest
    score the set had when it began. Time is simulated: each poll, the scheduler's 30 s of work is done by hand."""
    per_poll, size = 600, 6_000

    def job(i: int) -> str:
        return json.dumps({"class": f"Debounce{i % 3}", "jid": f"{i:024x}", "queue": "default",
                           "args": ["x" * 1900], "created_at": NOW})

    pipe = r.pipeline()
    for i in range(size):
        pipe.zadd("schedule", {job(i): NOW + i / 20})
    pipe.execute()
    reader = ours(redis_server.url, kinds=frozenset({"scheduled"}))
    added = size
    for _ in range(40):
        if got := reader.read(totals=True).breakdowns:
            assert 0 < sum(got[0].classes.values()) <= size
            return
        r.zpopmin("schedule", per_poll)  # due: the scheduler moves them to their queue
        pipe = r.pipeline()
        for i in range(added, added + per_poll):  # 30 s of new ones, five minutes ahead
            pipe.zadd("schedule", {job(i): NOW + i / 20})
        pipe.execute()
        added += per_poll
    raise AssertionError(f"no scheduled breakdown in 40 polls (20 minutes) of a set of {r.zcard('schedule')} jobs")


def test_a_set_emptied_during_a_pass_is_left_out_and_a_class_that_left_is_said_once_as_0(r, redis_server,
                                                                                          monkeypatch):
    """"Delete All" in the Web UI after the first of a pass's polls: the next poll found the set empty, ended the
    pass and published what it had counted (`sidekiq.retries=0` with `job.ImportJob.retries=500`). A pass that
    finds its set empty publishes nothing. And a class whose jobs all left is reported once as 0 (a gauge's last
    value would stay on graphs, and an alert on it never clear), then left out."""
    monkeypatch.setattr(breakdown, "ENTRIES", 10)
    monkeypatch.setattr(breakdown, "ROUNDS", 1)
    r.zadd("retry", {failed_job(i, 100): NOW + i for i in range(30)})
    reader = ours(redis_server.url, kinds=frozenset({"retries"}))
    assert reader.read(totals=True).breakdowns == ()  # a pass begun
    r.delete("retry")
    for _ in range(3):
        snapshot = reader.read(totals=True)
        assert snapshot.totals is not None and snapshot.totals.retries == 0 and snapshot.breakdowns == ()
    r.zadd("retry", {failed_job(0, 100): NOW, json.dumps({"class": "Other", "error_class": "E"}): NOW + 1})
    assert [b.classes for b in reader.read(totals=True).breakdowns] == [{"ImportJob": 1, "Other": 1}]
    r.zremrangebyrank("retry", 0, 0)  # ImportJob's jobs all left
    assert [(b.classes, b.errors) for b in reader.read(totals=True).breakdowns] == \
        [({"ImportJob": 0, "Other": 1}, {"Net::ReadTimeout": 0, "E": 1})]
    assert [b.classes for b in reader.read(totals=True).breakdowns] == [{"Other": 1}]
    r.delete("retry")
    assert [b.classes for b in reader.read(totals=True).breakdowns] == [{"Other": 0}]
    assert reader.read(totals=True).breakdowns == ()


def test_no_tally_is_reported_while_redis_refuses_scripts(own_redis):
    """An ACL tightened to -@scripting (or a failover to a provider without scripts): the last tally was printed at
    every poll for as long as the refusal lasted. There is none while scripts are refused, and it is said once."""
    r = own_redis.client()
    r.zadd("retry", {failed_job(0, 100): NOW})
    said: list[str] = []
    reader = SidekiqReader(Connection(parse_redis_url(own_redis.url, "url"), timeout=5), log=said.append,
                           breakdowns=Breakdowns(b"", frozenset({"retries"})))
    assert [b.classes for b in reader.read(totals=True).breakdowns] == [{"ImportJob": 1}]
    r.acl_setuser("default", enabled=True, nopass=True, commands=["+@all", "-@scripting"], keys=["*"],
                  channels=["*"])
    for _ in range(3):
        snapshot = reader.read(totals=True)
        assert snapshot.totals is not None and snapshot.totals.retries == 1 and snapshot.breakdowns == ()
    assert sum("no breakdown by job class" in line for line in said) == 1


def test_no_two_queue_and_class_pairs_share_an_l2met_name():
    """`sidekiq.<queue>.job.<class>.waiting`: class `c` in queue `a.job.b` and class `b.job.c` in queue `a` both
    made `sidekiq.a.job.b.job.c.waiting`, and the backend kept one of the two. Each such pair's class part now
    ends with a digest of the pair; a name without a clash is unchanged."""
    samples = [Sample(c.JOB_WAITING, n, (("job_class", job), ("queue", queue)))
               for n, (queue, job) in enumerate([("a.job.b", "c"), ("a", "b.job.c"), ("a", "d")])]
    names = [token.partition("=")[0] for line in L2metFormat().render(Measurements(samples=samples))
             for token in line.split(" ")]
    assert len(set(names)) == 3 and "sample#sidekiq.a.job.d.waiting" in names, names
