"""`sidekiq-metrics autoscale simulate` on recordings, against the live autoscaler fed the same readings."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidekiq_metrics import catalogue as c
from sidekiq_metrics.autoscale.scaler import Autoscaler, readings
from sidekiq_metrics.config import load_settings
from sidekiq_metrics.metrics.samples import Measurements, QueueSeries, Sample, heartbeat
from sidekiq_metrics.outputs.json_lines import JsonOutput
from sidekiq_metrics.outputs.l2met import L2metFormat
from sidekiq_metrics.tools.simulate import RecordingError, polls
from sidekiq_metrics.wiring import scaling_lock
from support.commands import Polling, cli, spawn
from support.fake_platform_api import FakePlatformApi
from support.redis_server import free_port
from support.sidekiq_data import seed

START = 1795420800.0  # 2026-11-23T08:00:00Z
EXAMPLES = settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "150")), deadline=None,
                    derandomize=bool(os.environ.get("CI")))
RULE = {"SIDEKIQ_METRICS_AUTOSCALE": "worker", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": "5",
        "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_LATENCY": "30", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_DOWN_LATENCY": "5",
        "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_POLLS": "2", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_COOLDOWN": "120",
        "SIDEKIQ_METRICS_AUTOSCALE_WORKER_DOWN_COOLDOWN": "600", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": "default"}


def latency_at(minute: float) -> float:
    """A burst: quiet for 5 minutes, 10 minutes of latency climbing to 200 s, then quiet again."""
    return 0.5 if minute < 5 or minute >= 15 else 20 * (minute - 5)


def recording() -> list[dict]:
    """Two hours of polls 30 s apart. While the burst lasts, 10 threads are busy and finish 2 jobs a second."""
    def busy(n: int) -> int:
        return 10 if latency_at(n / 2) >= 5 else 0

    return [{"time": datetime.fromtimestamp(START + 30 * n, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
             "queues": {"default": {"size": int(latency_at(n / 2) * 10), "latency": latency_at(n / 2)},
                        "mailers": {"size": 0, "latency": 0.0}},
             "totals": {"processed": 500 + 60 * sum(busy(i) > 0 for i in range(n)), "busy": busy(n),
                        "metrics.up": 1},
             "counts": {}, "process_type": {"worker": {"process.count": 1, "process.busy": busy(n),
                                                       "process.concurrency": 10}}} for n in range(120)]


def simulated(path, *args: str, env: dict[str, str] = RULE) -> list[str]:
    result = cli("autoscale", "simulate", str(path), *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize(("rule", "quantities"), [
    (RULE, [2, 3, 4, 5, 4, 3, 2, 1]),
    # CATCH_UP: over the last 120 s 2 jobs/s done and the backlog growing by 3.3/s, so 5.3/s arriving and 2/s a
    # dyno; at 7.5 minutes (backlog 500): (500 + 5.3 × 120) / (120 + 30) / 2 = 3.8 dynos: 4 at once.
    ({**RULE, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_CATCH_UP": "120"}, [4, 5, 4, 3, 2, 1]),
])
def test_simulate_decides_what_the_live_autoscaler_decides_fed_the_same_readings(tmp_path, r, redis_server, rule,
                                                                                 quantities):
    path = tmp_path / "polls.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in recording()) + "\n")
    lines = simulated(path, env=rule)
    decisions = [line for line in lines if " scale type=" in line]
    assert [int(line.split(" to=")[1].split()[0]) for line in decisions] == quantities
    # The second poll in a row above 30 s: 7.5 minutes in, at 50 s.
    assert decisions[0].startswith(f"2026-11-23T08:07:30Z scale type=worker from=1 to={quantities[0]} "
                                   "latency=50.000")
    assert lines[-1].startswith("worker: ") and f"{len(quantities)} change(s), ending at 1 dyno(s)" in lines[-1]
    # The live autoscaler: the same readings, its clocks given the recording's times, a real loopback API.
    assert live_patches(path, rule, r, redis_server, start=1) == quantities


def live_patches(path, rule: dict[str, str], r, redis_server, start: int) -> list[int]:
    """The live autoscaler fed a recording's polls, its clocks given the recording's times, scaling through a real
    loopback API: the quantities it set. A poll that was not whole is handed over as the poll loop hands it: None."""
    api = FakePlatformApi(formation={"worker": start})
    try:
        settings = load_settings({**rule, "REDIS_URL": redis_server.url, "HEROKU_API_TOKEN": api.token,
                                  "HEROKU_APP_NAME": api.app, "SIDEKIQ_METRICS_HEROKU_API_URL": api.url})
        now = [START]
        live = Autoscaler(settings.autoscale, scaling_lock(settings, "test"), lambda message: None,
                          clock=lambda: now[0], wall=lambda: now[0])
        with path.open() as recorded:
            for poll in polls(recorded):
                now[0] = poll.at
                r.delete("sidekiq-metrics:autoscale:lock:worker")  # (one emitter: the lock never holds it off)
                live.step(readings(settings.autoscale.rules, poll.series, poll.workers) if poll.up else None)
        return api.patches()
    finally:
        api.close()


def test_l2met_lines_from_heroku_logs_give_the_same_decisions(tmp_path):
    json_path, log_path = tmp_path / "polls.jsonl", tmp_path / "heroku.log"
    json_path.write_text("\n".join(json.dumps(record) for record in recording()) + "\n")
    with log_path.open("w") as log:
        for record in recording():
            stamp = record["time"].replace(".000Z", ".123456+00:00")
            default, totals = record["queues"]["default"], record["totals"]
            worker = record["process_type"]["worker"]
            log.write(f"{stamp} app[web.1]: sample#sidekiq.default.size={default['size']} "
                      "sample#sidekiq.mailers.size=0 sample#rack.latency=1.2.3\n"  # not ours: not read
                      f"{stamp} app[web.1]: sample#sidekiq.default.latency={default['latency']:.3f} "
                      f"sample#sidekiq.mailers.latency=0.000\n"
                      f"{stamp} heroku[router]: at=info method=GET path=/ status=200\n"
                      f"{stamp} app[web.1]: sample#sidekiq.process.worker.count=1 sample#sidekiq.process.worker.busy="
                      f"{worker['process.busy']} sample#sidekiq.process.worker.concurrency=10\n"
                      f"{stamp} app[web.1]: sample#sidekiq.enqueued=0 sample#sidekiq.busy={totals['busy']} "
                      f"sample#sidekiq.processed={totals['processed']} sample#sidekiq.metrics.up=1\n")
    assert simulated(log_path) == simulated(json_path)
    sized = {**RULE, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_CATCH_UP": "120"}
    assert simulated(log_path, env=sized) == simulated(json_path, env=sized) != simulated(json_path)


def test_a_recording_made_by_the_emitter_itself(tmp_path, r, redis_server):
    seed(r, {"default": (45.0, 3)})
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "json",
                             "SIDEKIQ_METRICS_INTERVAL": "0.2"})
    time.sleep(1.5)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    path = tmp_path / "recorded.jsonl"
    path.write_text(out)
    lines = simulated(path, "--start", "worker=1")
    assert "scale type=worker from=1 to=2 latency=4" in lines[0]  # two polls above 30 s: up by one


@pytest.mark.parametrize("env, args, says", [
    ({}, (), "SIDEKIQ_METRICS_AUTOSCALE must list the process types to simulate"),
    (RULE, ("--start", "worker=many"), "--start must be TYPE=N"),
    ({**RULE, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": "lots"}, (), "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX must be"),
])
def test_bad_settings_exit_2_with_one_line(tmp_path, env, args, says):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    result = cli("autoscale", "simulate", str(path), *args, env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and says in result.stderr, result.stderr


def test_an_unreadable_recording_exit_2_with_one_line(tmp_path):
    path = tmp_path / "junk.log"
    path.write_text("hello\n")
    result = cli("autoscale", "simulate", str(path), env=RULE)
    assert result.returncode == 2 and "line 1 is neither a JSON object" in result.stderr
    missing = cli("autoscale", "simulate", str(tmp_path / "nope"), env=RULE)
    assert missing.returncode == 2 and "No such file" in missing.stderr and missing.stderr.count("\n") == 1


def heroku_log(records: list[dict], dyno: str = "web.1", prefix: str = "sidekiq") -> list[str]:
    """What `heroku logs` shows of the emitter's polls: l2met lines with their time and dyno."""
    lines = []
    for record in records:
        stamp = record["time"].replace(".000Z", ".123456+00:00")
        default, totals = record["queues"]["default"], record["totals"]
        lines.append(f"{stamp} app[{dyno}]: sample#{prefix}.default.size={default['size']} "
                     f"sample#{prefix}.default.latency={default['latency']:.3f} sample#{prefix}.busy={totals['busy']} "
                     f"sample#{prefix}.metrics.up=1\n")
    return lines


def test_lines_of_other_dynos_that_look_like_ours_are_not_read(tmp_path):
    """Issue 25.16: a `heroku logs` file holds every dyno's lines; another dyno's that looked like ours were read
    as the emitter's, and the simulation scaled 1 -> 5 where the clean recording gives fewer changes."""
    clean, mixed = tmp_path / "clean.log", tmp_path / "mixed.log"
    ours = heroku_log(recording())
    clean.write_text("".join(ours))
    intruder = [f"{line.split()[0]} app[worker.1]: sample#sidekiq.default.latency=99999\n" for line in ours]
    mixed.write_text("".join(line for pair in zip(ours, intruder, strict=True) for line in pair))
    assert simulated(mixed) == simulated(clean)
    # Two dynos that both carry the heartbeat (a second metrics buildpack, SIDEKIQ_METRICS_DYNO=clock.1 beside
    # web.1): refused with one line naming them, unless --dyno chooses.
    both = tmp_path / "both.log"
    both.write_text("".join(ours) + "".join(heroku_log(recording(), dyno="clock.1")))
    result = cli("autoscale", "simulate", str(both), env=RULE)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "lines from 2 dynos carry sidekiq.metrics.up (clock.1, web.1): choose the emitter's with --dyno" \
        in result.stderr
    assert simulated(both, "--dyno", "web.1") == simulated(clean)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "-1", '"3"', "true", "null", "[]"])
def test_a_json_recording_with_a_number_that_is_none_is_one_line_exit_2(tmp_path, value):
    """Issue 25.17: NaN or 1e999 sizes in a json recording gave a traceback and exit 1; issue 32.20: -1, a string,
    a bool, null or a list, no value an emitter writes, are refused as well, naming the line."""
    records = [json.dumps(record) for record in recording()[:3]]
    records[1] = records[1].replace('"size": 0', f'"size": {value}', 1)
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(records) + "\n")
    result = cli("autoscale", "simulate", str(path), env=RULE)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "line 2 is not an object" in result.stderr
    assert "line 2 is not an object of the json output" in result.stderr


def test_recordings_out_of_time_order_are_refused(tmp_path):
    """Issue 25.17: two recordings concatenated out of order gave `worker: -111 dyno-minutes`."""
    records = recording()
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records[60:] + records[:60]))
    result = cli("autoscale", "simulate", str(path), env=RULE)
    assert result.returncode == 2 and "line 61 is earlier than the poll before it" in result.stderr
    assert "dyno-minutes" not in result.stdout


def test_a_dotted_prefix_reads_the_queue_names_whole(tmp_path):
    """Issue 25.17: a dotted SIDEKIQ_METRICS_PREFIX (which the settings allow) misparsed the queue names: with
    _QUEUES=default, 0 changes where the default prefix gives them."""
    plain, dotted = tmp_path / "plain.log", tmp_path / "dotted.log"
    plain.write_text("".join(heroku_log(recording())))
    dotted.write_text("".join(heroku_log(recording(), prefix="shop.sidekiq")))
    expected = simulated(plain)
    assert " scale type=" in expected[0]
    assert simulated(dotted, env={**RULE, "SIDEKIQ_METRICS_PREFIX": "shop.sidekiq"}) == expected


def recorded_run(env: dict[str, str], output: str, polls_wanted: int = 8) -> list[str]:
    """A real emitter's polls as a recording of `output`, each poll stamped 30 s after the one before (the
    default interval), the l2met lines as `heroku logs` shows them."""
    run = Polling({**env, "SIDEKIQ_METRICS_OUTPUT": output, "SIDEKIQ_METRICS_INTERVAL": "0.2"})
    try:
        run.wait(polls_wanted)
    finally:
        lines, _ = run.stop()
    recorded, n = [], 0
    for line in lines:
        stamp = datetime.fromtimestamp(START + 30 * n, timezone.utc)
        if output == "json":
            record = json.loads(line)
            record["time"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            recorded.append(json.dumps(record) + "\n")
            n += 1
        else:
            recorded.append(f"{stamp.isoformat()} app[web.1]: {line}\n")
            n += "#sidekiq.metrics.up=" in line
    return recorded


@pytest.mark.parametrize("output", ["json", "l2met"])
@pytest.mark.parametrize("fault", ["redis down", "a shard down"])
def test_failed_polls_in_a_recording_hold_the_formation_still_as_the_live_autoscaler_does(tmp_path, r, redis_server,
                                                                                           fault, output):
    """Issue 32.14: polls that said metrics.up=0 (Redis down; one shard of two down) were read as empty queues,
    and simulate scaled down where the live autoscaler holds still (rule 1: no reading, no action)."""
    seed(r, {"default": (0.5, 2)})
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    env = {"REDIS_URL": nobody} if fault == "redis down" else \
        {"REDIS_URL": redis_server.url, "HEROKU_REDIS_COBALT_URL": nobody,
         "SIDEKIQ_METRICS_SHARDS": "default:REDIS_URL,orders:HEROKU_REDIS_COBALT_URL"}
    lines = recorded_run(env, output)
    assert all("metrics.up" in line for line in lines if "#sidekiq.metrics.up=" in line or '"time"' in line)
    path = tmp_path / f"failed.{output}"
    path.write_text("".join(lines))
    rule = {**RULE, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_DOWN_COOLDOWN": "60",
            "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": "default" if fault == "redis down" else "default,orders:urgent"}
    decided = simulated(path, "--start", "worker=3", env=rule)
    assert not [line for line in decided if " scale type=" in line], decided
    assert decided[-1].endswith("0 change(s), ending at 3 dyno(s)"), decided
    # Once Redis answers again, the same settings do scale down: the recording is read, not ignored.
    seed(r, {"default": (0.5, 2)})
    healthy = tmp_path / f"healthy.{output}"
    healthy.write_text("".join(recorded_run({"REDIS_URL": redis_server.url}, output)))
    plain = {**rule, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": "default"}
    assert "scale type=worker from=3 to=2" in simulated(healthy, "--start", "worker=3", env=plain)[0]


ODD_VALUES = ["NaN", "nan", "Infinity", "inf", "1e999", "1e5", "-1", "1" + "0" * 400, "1.2.3", "12abc", "",
              "\u0661\u0662", "0x10", "1_000"]


@pytest.mark.parametrize("value", ODD_VALUES)
def test_an_l2met_recording_with_a_number_no_emitter_writes_is_one_line_exit_2(tmp_path, value):
    """Issue 32.20: docs/autoscaling.md says a recorded NaN or 1e999 is refused with its line (exit 2); in a
    `heroku logs` recording it was accepted silently (NaN left out, 1e999 read as 1), exit 0."""
    lines = heroku_log(recording()[:3])
    lines[1] = re.sub(r"default\.latency=\S+", f"default.latency={value}", lines[1])
    path = tmp_path / "odd.log"
    path.write_text("".join(lines))
    result = cli("autoscale", "simulate", str(path), env=RULE)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result
    assert "line 2: " in result.stderr and "sidekiq.default.latency=" in result.stderr
    assert "is not a number the emitter writes" in result.stderr and result.stdout == ""


def test_a_json_object_without_metrics_up_is_not_a_poll_of_the_emitter(tmp_path):
    """Every poll says whether it was whole; one that does not say cannot be taken for a reading."""
    records = recording()[:3]
    del records[2]["totals"]["metrics.up"]
    path = tmp_path / "no-heartbeat.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    result = cli("autoscale", "simulate", str(path), env=RULE)
    assert result.returncode == 2 and "line 3 is not an object of the json output" in result.stderr


# Property tests over both recording parsers: what the emitter's own outputs write is read back as it was; any
# value no emitter writes is refused with its line; no text at all makes them raise anything but RecordingError.
queue_names = st.from_regex(r"[a-z][a-z0-9_]{0,12}(\.[a-z0-9_]{1,5})?", fullmatch=True)
readings_of_a_poll = st.fixed_dictionaries({
    "queues": st.dictionaries(queue_names, st.tuples(st.integers(0, 10**15), st.floats(0, 1e9)), max_size=6),
    "processed": st.integers(0, 10**15), "busy": st.integers(0, 10**6), "up": st.booleans()})


def emitted(poll: dict, at: float) -> tuple[list[str], str]:
    """One poll as the l2met output prints it (with `heroku logs`' time and dyno) and as the json output does."""
    names = list(poll["queues"])
    measurements = Measurements(
        [QueueSeries(c.QUEUE_SIZE, names, [size for size, _ in poll["queues"].values()]),
         QueueSeries(c.QUEUE_LATENCY, names, [wait for _, wait in poll["queues"].values()])],
        [Sample(c.PROCESSED, poll["processed"]), Sample(c.BUSY, poll["busy"]), *heartbeat(poll["up"])])
    stamp = datetime.fromtimestamp(at, timezone.utc).isoformat()
    l2met = [f"{stamp} app[web.1]: {line}\n" for line in L2metFormat().render(measurements)]
    written: list[str] = []
    JsonOutput(written.extend).emit(measurements, at)
    return l2met, written[0] + "\n"


@EXAMPLES
@given(st.lists(readings_of_a_poll, min_size=1, max_size=4))
def test_what_the_outputs_write_is_read_back_as_it_was(recorded):
    l2met, json_lines = [], []
    for n, poll in enumerate(recorded):
        text, line = emitted(poll, START + 30 * n)
        l2met += text
        json_lines.append(line)
    for read in (list(polls(l2met)), list(polls(json_lines))):
        assert len(read) == len(recorded)
        for poll, back in zip(recorded, read, strict=True):
            sizes, waits = (dict(zip(s.queues, s.values, strict=True)) for s in back.series)
            assert sizes == {q: size for q, (size, _) in poll["queues"].items()}
            assert waits == {q: float(f"{wait:.3f}") for q, (_, wait) in poll["queues"].items()}
            assert back.up is poll["up"] and back.workers.processed == poll["processed"]


no_emitter_writes = st.one_of(st.sampled_from(ODD_VALUES), st.text(st.characters(
    blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")), max_size=12)).filter(
    lambda v: not re.fullmatch(r"[0-9]+(\.[0-9]+)?", v) or float(v) >= 1e18)


@EXAMPLES
@given(readings_of_a_poll, st.data())
def test_a_value_no_emitter_writes_is_refused_with_its_line_in_either_format(poll, data):
    l2met, json_line = emitted(poll, START)
    measured = [(n, m.start("value"), m.end("value")) for n, line in enumerate(l2met)
                for m in re.finditer(r"#sidekiq\.\S+=(?P<value>\S+)", line)]
    n, start, end = data.draw(st.sampled_from(measured))
    odd = data.draw(no_emitter_writes)
    l2met[n] = l2met[n][:start] + odd + l2met[n][end:]
    with pytest.raises(RecordingError, match=f"^line {n + 1}: "):
        list(polls(l2met))
    record = json.loads(json_line)
    group, name = data.draw(st.sampled_from(
        [("totals", name) for name in record["totals"]] +
        [("queues", (queue, column)) for queue in record["queues"] for column in ("size", "latency")]))
    odd_json = data.draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1", "-0.5", '"3"', "true",
                                          "null", "{}", "1e18"]))
    if group == "totals":
        record["totals"][name] = "ODD"
    else:
        record["queues"][name[0]][name[1]] = "ODD"
    text = json.dumps(record).replace('"ODD"', odd_json)
    with pytest.raises(RecordingError, match="^line 2 is not an object of the json output"):
        list(polls([json_line, text]))


@EXAMPLES
@given(st.lists(st.one_of(st.text(max_size=80), st.builds(
    lambda at, body: f"{at} app[web.1]: {body}", st.sampled_from(["2026-11-23T08:00:00Z", "2026-13-99T00:00:00Z"]),
    st.text(max_size=80)), st.builds(lambda body: "{" + body, st.text(max_size=80))), max_size=6))
def test_any_text_is_a_recording_or_one_refusal_never_a_crash(lines):
    try:
        list(polls(lines))
    except RecordingError as exc:
        assert str(exc).startswith("line") and "\n" not in str(exc)


def test_an_outage_in_the_middle_of_a_recording_restarts_the_counts_as_it_does_live(tmp_path, r, redis_server):
    """Attack on 32.14: latency low for 8 minutes, 3 failed polls, then low again. Live, a failed poll resets the
    time latency has been low, so the scale-down comes DOWN_COOLDOWN after the outage, not 10 minutes after the start;
    simulate, fed the same recording, must decide the same (and in a json recording as in an l2met one)."""
    records = []
    for n, record in enumerate(recording()[:60]):
        record["queues"]["default"] = {"size": 0, "latency": 0.5}
        if 16 <= n < 19:  # 08:08:00 to 08:09:00: Redis down, as the emitter prints it
            record.update(queues={}, totals={"metrics.up": 0}, counts={"metrics.errors": 1}, process_type={})
        records.append(record)
    path = tmp_path / "outage.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    rule = {**RULE, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MIN": "1"}
    decided = [line for line in simulated(path, "--start", "worker=3", env=rule) if " scale type=" in line]
    # low from 08:09:30 on: down at 08:19:30, and again a cool-down later
    assert [line.split(" reason")[0].split(" latency")[0] for line in decided] == [
        "2026-11-23T08:19:30Z scale type=worker from=3 to=2", "2026-11-23T08:29:30Z scale type=worker from=2 to=1"]
    assert live_patches(path, rule, r, redis_server, start=3) == [2, 1]


def test_a_json_recording_without_the_totals_still_says_whether_each_poll_was_whole(tmp_path, r, redis_server):
    """SIDEKIQ_METRICS_STATS=false leaves the totals out but never metrics.up: such a recording is read."""
    seed(r, {"default": (45.0, 3)})
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "json",
                                       "SIDEKIQ_METRICS_STATS": "false"})
    (poll,) = polls(result.stdout.splitlines())
    assert poll.up and dict(zip(poll.series[0].queues, poll.series[0].values, strict=True)) == {"default": 3}


@pytest.mark.parametrize("output", ["json", "l2met"])
def test_a_recording_without_a_configured_shard_holds_still_and_says_so(tmp_path, r, redis_server, output):
    """Found in review of issue 32: simulating shards over a recording that has no readings of one of them (made
    before the shard was added) read that shard's queues as empty and scaled down, without a word. A poll without a
    shard's own heartbeat is no reading of it: rule 1 holds the type still, and one line says why."""
    seed(r, {"default": (0.5, 2)})
    path = tmp_path / f"before-the-shard.{output}"
    path.write_text("".join(recorded_run({"REDIS_URL": redis_server.url}, output)))
    env = {**RULE, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_DOWN_COOLDOWN": "60",
           "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": "default,orders:urgent", "REDIS_URL": redis_server.url,
           "HEROKU_REDIS_COBALT_URL": f"redis://127.0.0.1:{free_port()}/0",
           "SIDEKIQ_METRICS_SHARDS": "default:REDIS_URL,orders:HEROKU_REDIS_COBALT_URL"}
    result = cli("autoscale", "simulate", str(path), "--start", "worker=3", env=env)
    assert result.returncode == 0, result.stderr
    assert " scale type=" not in result.stdout and "0 change(s), ending at 3 dyno(s)" in result.stdout, result.stdout
    assert result.stderr.count("\n") == 1 and "no heartbeat of the shard orders" in result.stderr, result.stderr
