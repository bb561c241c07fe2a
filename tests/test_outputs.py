"""Every output checked by a real consumer of its format on loopback, from one and the same poll."""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.commands import cli, parse_l2met, read_lines_until, spawn
from support.redis_server import free_port
from support.sidekiq_data import push, seed

DOGSTATSD = re.compile(r"(?P<name>[A-Za-z0-9_.]+):(?P<value>[0-9.]+)\|(?P<type>g|c)(\|#(?P<tags>[^|]+))?")


def seed_queues(r) -> None:
    seed(r, {"default": (12.5, 2), "low priority": (3.0, 1), "mailers": (0.0, 0)})
    r.set("stat:processed", 42)


@pytest.fixture
def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def receive(sock: socket.socket) -> list[bytes]:
    grams = []
    try:
        while True:
            grams.append(sock.recv(65536))
            sock.settimeout(0.3)
    except TimeoutError:
        return grams


def test_all_outputs_at_once_agree_with_the_l2met_lines(r, redis_server, udp):
    seed_queues(r)
    env = {"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "l2met,json,statsd,cloudwatch",
           "DD_AGENT_HOST": "127.0.0.1", "DD_DOGSTATSD_PORT": str(udp.getsockname()[1])}
    result = cli("run", "--once", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    l2met = parse_l2met("\n".join(line for line in lines if not line.startswith("{")))
    records = [json.loads(line) for line in lines if line.startswith("{")]

    # json: one object for the poll
    poll = next(rec for rec in records if "queues" in rec)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", poll["time"])
    assert poll["queues"]["default"]["size"] == 2 and poll["queues"]["low priority"]["size"] == 1
    assert poll["queues"]["default"]["latency"] == float(l2met["sample#sidekiq.default.latency"])
    assert poll["totals"]["processed"] == 42 and poll["totals"]["metrics.up"] == 1 and poll["counts"] == {}

    # cloudwatch: Embedded Metric Format, one record per queue and one for the totals
    emf = [rec for rec in records if "_aws" in rec]
    assert len(emf) == 4
    for rec in emf:
        meta = rec["_aws"]
        assert isinstance(meta["Timestamp"], int) and abs(meta["Timestamp"] / 1000 - time.time()) < 60
        (directive,) = meta["CloudWatchMetrics"]
        assert directive["Namespace"] == "Sidekiq" and len(directive["Metrics"]) <= 100
        for dimension_set in directive["Dimensions"]:
            assert all(isinstance(rec[d], str) for d in dimension_set)
        for metric in directive["Metrics"]:
            assert isinstance(rec[metric["Name"]], (int, float)) and metric["Unit"] in ("Count", "Seconds", "None",
                                                                                       "Megabytes", "Count/Second")
    by_queue = {rec["Queue"]: rec for rec in emf if "Queue" in rec}
    assert by_queue["low priority"]["QueueSize"] == 1
    assert by_queue["default"]["QueueLatency"] == float(l2met["sample#sidekiq.default.latency"])
    totals = next(rec for rec in emf if "Queue" not in rec)
    assert totals["Processed"] == 42 and totals["MetricsUp"] == 1

    # statsd: DogStatsD datagrams, each under the safe UDP size
    grams = receive(udp)
    assert grams and all(len(g) <= 1432 for g in grams)
    metrics = {}
    for gram in grams:
        for line in gram.decode().split("\n"):
            m = DOGSTATSD.fullmatch(line)
            assert m, line
            metrics[(m["name"], m["tags"])] = (float(m["value"]), m["type"])
    assert metrics[("sidekiq.queue.size", "queue:low_priority")] == (1, "g")
    assert metrics[("sidekiq.queue.latency", "queue:default")][0] == float(l2met["sample#sidekiq.default.latency"])
    assert metrics[("sidekiq.processed", None)] == (42, "g")
    assert metrics[("sidekiq.metrics.up", None)] == (1, "g")


def test_statsd_batches_many_queues_and_never_waits_for_a_missing_agent(r, redis_server, udp):
    for i in range(500):
        r.sadd("queues", f"queue_{i:03d}")
    nobody = free_port()  # no agent listens there
    start = time.monotonic()
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "statsd",
                                       "DD_DOGSTATSD_PORT": str(nobody)})
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert time.monotonic() - start < 5
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "statsd",
                                       "DD_DOGSTATSD_PORT": str(udp.getsockname()[1])})
    grams = receive(udp)
    lines = [line for g in grams for line in g.decode().split("\n")]
    assert len(grams) > 1 and all(len(g) <= 1432 for g in grams)
    assert sum(1 for line in lines if line.startswith("sidekiq.queue.size:0|g|#queue:queue_")) == 500


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def test_prometheus_endpoint_serves_the_last_poll_and_never_reads_redis_itself(own_redis):
    seed_queues(own_redis.client())
    own_redis.client().sadd("queues", 'we"ird\\name\n')
    port = free_port()
    proc = spawn("run", env={"REDIS_URL": own_redis.url, "SIDEKIQ_METRICS_OUTPUT": "prometheus,l2met",
                             "SIDEKIQ_METRICS_PROMETHEUS_HOST": "127.0.0.1",
                             "SIDEKIQ_METRICS_PROMETHEUS_PORT": str(port), "SIDEKIQ_METRICS_INTERVAL": "0.2"})
    try:
        assert read_lines_until(proc, r"metrics\.up=1", 5)
        families = {f.name: f for f in text_string_to_metric_families(scrape(port))}
        sizes = {s.labels["queue"]: s.value for s in families["sidekiq_queue_size"].samples}
        assert sizes == {"default": 2, "low priority": 1, "mailers": 0, 'we"ird\\name\n': 0}
        latency = {s.labels["queue"]: s.value for s in families["sidekiq_queue_latency_seconds"].samples}
        assert 12.5 <= latency["default"] < 15
        assert families["sidekiq_processed"].type == "counter"
        assert families["sidekiq_processed"].samples[0].value == 42
        assert families["sidekiq_metrics_up"].samples[0].value == 1
        own_redis.stop()  # a scrape never reads Redis: it still answers, with what the last poll found
        assert read_lines_until(proc, r"metrics\.up=0", 5)
        families = {f.name: f for f in text_string_to_metric_families(scrape(port))}
        assert families["sidekiq_metrics_up"].samples[0].value == 0
    finally:
        proc.terminate()
        proc.wait(5)


def test_a_taken_prometheus_port_turns_that_output_off_and_the_l2met_lines_go_on(r, redis_server):
    """The app's own exporter may hold 9394 too: the l2met lines must not go down with Prometheus."""
    push(r, "default")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_PROMETHEUS_HOST": "127.0.0.1",
               "SIDEKIQ_METRICS_PROMETHEUS_PORT": str(port)}
        both = cli("run", "--once", env={**env, "SIDEKIQ_METRICS_OUTPUT": "l2met,prometheus"})
        alone = cli("run", "--once", env={**env, "SIDEKIQ_METRICS_OUTPUT": "prometheus"})
    assert both.returncode == 0
    assert "sample#sidekiq.default.size=0" in both.stdout
    assert both.stderr == (f"sidekiq-metrics: prometheus output off: cannot listen on 127.0.0.1:{port} (Address "
                           "already in use); set SIDEKIQ_METRICS_PROMETHEUS_PORT to a free port; the other outputs "
                           "go on\n")
    # With no output left there is nothing to run for: exit 1, and the hook's supervisor tries again later.
    assert alone.returncode == 1
    assert alone.stderr == (f"sidekiq-metrics: cannot start: prometheus output off: cannot listen on "
                            f"127.0.0.1:{port} (Address already in use); set SIDEKIQ_METRICS_PROMETHEUS_PORT to a "
                            "free port\n")


@pytest.mark.parametrize("env, message", [
    ({"SIDEKIQ_METRICS_OUTPUT": "l2met,graphite"}, "SIDEKIQ_METRICS_OUTPUT must list outputs from l2met, json"),
    ({"SIDEKIQ_METRICS_PROMETHEUS_PORT": "99999"}, "SIDEKIQ_METRICS_PROMETHEUS_PORT must be a port number"),
    ({"DD_DOGSTATSD_PORT": "udp"}, "DD_DOGSTATSD_PORT must be a port number"),
    ({"DD_AGENT_HOST": "a b"}, "DD_AGENT_HOST must be a host name"),
    ({"SIDEKIQ_METRICS_CLOUDWATCH_NAMESPACE": "x" * 300}, "SIDEKIQ_METRICS_CLOUDWATCH_NAMESPACE must be 1 to 255"),
])
def test_output_settings_refuse_bad_values(env, message):
    result = cli("run", "--once", env=env)
    assert result.returncode == 2 and result.stderr.startswith(f"sidekiq-metrics: {message}")


def test_prometheus_labels_autoscaling_by_process_type_and_exports_the_ceiling():
    """Issue 35: the process type was in the name (`sidekiq_autoscale_urgent_worker_current`) while docs/outputs.md
    called types labels, and the maximum was not exported, so "at its ceiling" could not be written from the data."""
    from sidekiq_metrics.catalogue import AUTOSCALE_CURRENT, AUTOSCALE_DESIRED, AUTOSCALE_MAX
    from sidekiq_metrics.metrics.samples import Measurements, Sample
    from sidekiq_metrics.outputs.l2met import L2metFormat
    from sidekiq_metrics.outputs.prometheus import render

    samples = [Sample.of(AUTOSCALE_CURRENT, 2, "urgent-worker"), Sample.of(AUTOSCALE_DESIRED, 3, "urgent-worker"),
               Sample.of(AUTOSCALE_MAX, 4, "urgent-worker")]
    families = {f.name: f for f in text_string_to_metric_families(render("sidekiq", samples))}
    for suffix, value in (("current", 2), ("desired", 3), ("max", 4)):
        [sample] = families[f"sidekiq_autoscale_{suffix}"].samples
        assert sample.labels == {"process_type": "urgent-worker"} and sample.value == value
    assert "sample#sidekiq.autoscale.urgent-worker.max=4" in " ".join(L2metFormat().render(Measurements(
        samples=samples)))  # l2met keeps the type in the name


def test_prometheus_keeps_a_job_class_run_time_until_a_new_minute_replaces_it():
    """Issue 35: run times came only in the poll that read a new minute, so most scrapes saw none of them."""
    from sidekiq_metrics.catalogue import JOB_RUNTIME_MEAN, JOB_RUNTIME_P95
    from sidekiq_metrics.metrics.samples import SERIES_IDLE, Measurements, Sample
    from sidekiq_metrics.outputs.prometheus import PrometheusOutput

    output = PrometheusOutput("sidekiq", "127.0.0.1", 0)
    try:
        output.emit(Measurements(samples=[Sample.of(JOB_RUNTIME_MEAN, 0.5, "HardJob"),
                                          Sample.of(JOB_RUNTIME_P95, 1.0, "HardJob")]), 1000.0)
        output.emit(Measurements(samples=[]), 1030.0)  # no new minute in this poll
        body = output.body.decode()
        assert 'sidekiq_job_runtime_mean_seconds{job_class="HardJob"} 0.5' in body
        assert 'sidekiq_job_runtime_p95_seconds{job_class="HardJob"} 1.0' in body
        output.emit(Measurements(samples=[Sample.of(JOB_RUNTIME_MEAN, 0.25, "HardJob")]), 1060.0)
        assert 'sidekiq_job_runtime_mean_seconds{job_class="HardJob"} 0.25' in output.body.decode()
        output.emit(Measurements(samples=[]), 1000.0 + SERIES_IDLE)  # an hour without runs: forgotten
        assert "p95" not in output.body.decode() and "0.25" in output.body.decode()
        output.stand_by()
        output.emit(Measurements(samples=[]), 1061.0)
        assert "job_runtime" not in output.body.decode()
    finally:
        output.server.shutdown()
        output.server.server_close()


@pytest.fixture
def prometheus_emitter(r, redis_server):
    push(r, "default")
    port = free_port()
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "prometheus,l2met",
                             "SIDEKIQ_METRICS_PROMETHEUS_HOST": "127.0.0.1",
                             "SIDEKIQ_METRICS_PROMETHEUS_PORT": str(port), "SIDEKIQ_METRICS_INTERVAL": "0.5"})
    assert read_lines_until(proc, r"metrics\.up=1", 10)
    yield proc, port
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=5)


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_prometheus_endpoint_survives_rude_and_idle_clients_without_tracebacks_or_threads(prometheus_emitter):
    proc, port = prometheus_emitter
    for _ in range(10):  # clients that reset their connection in the middle of a request
        rude = socket.create_connection(("127.0.0.1", port))
        rude.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rude.close()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]  # they never send a thing
    time.sleep(0.3)
    assert threads_of(proc.pid) <= 16  # not one per idle client
    for conn in idle:
        conn.close()
    time.sleep(0.2)
    assert "sidekiq_metrics_up 1" in scrape(port)  # still answering
    held = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    held.settimeout(10)
    assert held.recv(1) == b""  # the server closed a silent client
    assert time.monotonic() - started < 4
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=5)
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr


def test_a_scrape_is_served_while_idle_connections_hold_every_slot(prometheus_emitter):
    """Issue 25.19: 300 idle connections held the 8 slots, and a real scrape got RemoteDisconnected. With every
    slot taken, the longest-idle connection is closed and the scrape served: 10 in a row answer 200."""
    proc, port = prometheus_emitter
    idle = [socket.socket() for _ in range(300)]
    for conn in idle:  # all at once, as a flood would: not one by one, each waiting out the last's handshake
        conn.setblocking(False)
        conn.connect_ex(("127.0.0.1", port))
    try:
        time.sleep(1.0)
        for _ in range(10):
            assert "sidekiq_metrics_up 1" in scrape(port)
        assert threads_of(proc.pid) <= 16
    finally:
        for conn in idle:
            conn.close()


def test_prometheus_endpoint_answers_its_path_only_and_head(prometheus_emitter):
    _, port = prometheus_emitter
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/admin", timeout=5)
    assert missing.value.code == 404
    head = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method="HEAD")
    with urllib.request.urlopen(head, timeout=5) as response:
        assert response.status == 200 and int(response.headers["Content-Length"]) > 0
        assert response.read() == b""


def test_prefixes_valid_in_l2met_are_mapped_to_valid_prometheus_and_dogstatsd_names(r, redis_server, udp):
    push(r, "default")
    port = free_port()
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "prometheus,statsd,l2met",
                             "SIDEKIQ_METRICS_PREFIX": "9my:app", "SIDEKIQ_METRICS_PROMETHEUS_HOST": "127.0.0.1",
                             "SIDEKIQ_METRICS_PROMETHEUS_PORT": str(port),
                             "DD_DOGSTATSD_PORT": str(udp.getsockname()[1])})
    try:
        assert read_lines_until(proc, r"metrics\.up=1", 10)
        families = {f.name: f for f in text_string_to_metric_families(scrape(port))}  # the reference parser
        assert families["_9my:app_queue_size"].samples[0].labels == {"queue": "default"}
        lines = [line for g in receive(udp) for line in g.decode().split("\n")]
        assert lines and all(DOGSTATSD.fullmatch(line) for line in lines), lines[:3]
        assert any(line.startswith("9my_app.queue.size:0|g|#queue:default") for line in lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=5)


def test_an_address_this_host_cannot_listen_on_is_one_line_naming_the_host_setting(r, redis_server):
    push(r, "default")
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "l2met,prometheus",
                                       "SIDEKIQ_METRICS_PROMETHEUS_HOST": "192.0.2.1"})  # TEST-NET: not ours
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "sample#sidekiq.default.size=0" in result.stdout
    assert "prometheus output off: cannot listen on 192.0.2.1:9394" in result.stderr
    assert "set SIDEKIQ_METRICS_PROMETHEUS_HOST to an address of this dyno" in result.stderr


def test_a_labelled_metric_is_a_tag_label_or_dimension_where_the_output_has_them_and_a_name_part_in_l2met():
    """process.<type>.count for `worker`: l2met names it, the tag-based outputs tag it, as they tag queues."""
    import json as json_module

    from sidekiq_metrics.catalogue import AUTOSCALE_CURRENT, ERRORS, PROCESS_COUNT
    from sidekiq_metrics.metrics.samples import Counts, Measurements, Sample
    from sidekiq_metrics.outputs.cloudwatch import CloudWatchOutput
    from sidekiq_metrics.outputs.json_lines import JsonOutput
    from sidekiq_metrics.outputs.l2met import L2metFormat
    from sidekiq_metrics.outputs.prometheus import counters, render
    from sidekiq_metrics.outputs.statsd import StatsdOutput

    samples = [Sample.of(PROCESS_COUNT, 2, "worker"), Sample.of(PROCESS_COUNT, 1, "urgent worker"),
               Sample.of(AUTOSCALE_CURRENT, 3, "worker")]
    measurements = Measurements(samples=samples)
    assert L2metFormat().render(measurements) == [  # any text is mapped to a valid name, as queue names are
        "sample#sidekiq.process.worker.count=2 sample#sidekiq.process.urgent_worker.count=1 "
        "sample#sidekiq.autoscale.worker.current=3"]
    body = render("sidekiq", samples)
    assert 'sidekiq_process_count{process_type="worker"} 2\n' in body
    assert 'sidekiq_process_count{process_type="urgent worker"} 1\n' in body
    assert 'sidekiq_autoscale_current{process_type="worker"} 3\n' in body  # a label too (issue 35)
    assert StatsdOutput("sidekiq", "127.0.0.1", 9).lines(samples)[:2] == [
        "sidekiq.process.count:2|g|#process_type:worker", "sidekiq.process.count:1|g|#process_type:urgent_worker"]
    written: list[str] = []
    JsonOutput(written.extend).emit(measurements, 0)
    assert json_module.loads(written[0])["process_type"] == {"worker": {"process.count": 2, "autoscale.current": 3},
                                                              "urgent worker": {"process.count": 1}}
    written.clear()
    CloudWatchOutput("Sidekiq", written.extend).emit(measurements, 0)
    worker = next(r for r in map(json_module.loads, written) if r.get("ProcessType") == "worker")
    assert worker["ProcessCount"] == 2 and worker["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["ProcessType"]]
    counts = Counts(0.0)
    counts.update([Sample(ERRORS, 1)], 1.0)
    assert [(n.metric, n.total) for n in counts.update([Sample(ERRORS, 1)], 2.0)] == [(ERRORS, 2)]  # summed
    assert "# TYPE sidekiq_metrics_errors_total counter\nsidekiq_metrics_errors_total 2\n" in render(
        "sidekiq", counters(counts.update([], 3.0)))


def test_prometheus_job_class_counters_that_stopped_growing_are_dropped():
    """Issue 25.11, as the otlp output: one counter per job-class name ever seen was served for ever."""
    from sidekiq_metrics.catalogue import JOB_PROCESSED
    from sidekiq_metrics.metrics.samples import Counts, Sample

    counts = Counts(0.0)
    for minute in range(6 * 60):
        served = counts.update([Sample.of(JOB_PROCESSED, 1, f"Job{minute}_{n}") for n in range(20)], 60.0 * minute)
    assert len(served) <= 20 * 61 + 5 and len(counts.counts) <= 20 * 61 + 5
