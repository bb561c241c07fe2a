"""The otlp output against a real OTLP/HTTP receiver on loopback (tests/support/otlp_receiver.py), which
decodes every request with the official opentelemetry-proto messages; each data point is compared with
the l2met lines the same poll printed."""

from __future__ import annotations

import gzip
import os
import resource
import signal
import socket
import subprocess
import time

import pytest

from sidekiq_metrics.catalogue import JOB_PROCESSED, UP
from sidekiq_metrics.config import load_settings
from sidekiq_metrics.heroku.platform_api import ApiError, PlatformApi
from sidekiq_metrics.metrics.samples import Measurements, Sample
from sidekiq_metrics.outputs.otlp import OtlpOutput, Sums
from support.commands import cli, parse_l2met, read_lines_until, spawn
from support.otlp_receiver import OtlpReceiver, Received, Reply
from support.redis_server import free_port
from support.sidekiq_data import seed
from support.trickle_server import TrickleServer

SECRET = "s3cr3t-otlp-key/x"  # percent-encoded in the variable: "%2F"


@pytest.fixture
def receiver():
    server = OtlpReceiver()
    yield server
    server.close()


def otlp_env(url: str, receiver_url: str, **env: str) -> dict[str, str]:
    return {"REDIS_URL": url, "SIDEKIQ_METRICS_OUTPUT": "l2met,otlp", "SIDEKIQ_METRICS_INTERVAL": "0.4",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url, "OTEL_EXPORTER_OTLP_HEADERS":
            f"x-api-key={SECRET.replace('/', '%2F')},x-team=sidekiq", **env}


def polls_of(stdout: str) -> list[dict[str, str]]:
    """The l2met measurements of each poll: a poll ends with its metrics.up line."""
    polls, current = [], []
    for line in stdout.splitlines():
        current.append(line)
        if "metrics.up=" in line:
            polls.append(parse_l2met("\n".join(current)))
            current = []
    return polls


def points(received: Received) -> dict[tuple[str, tuple[tuple[str, str], ...]], object]:
    """Every data point by (metric name, attributes)."""
    out = {}
    for name, metric in received.metrics().items():
        data = getattr(metric, metric.WhichOneof("data"))
        for point in data.data_points:
            attributes = tuple((kv.key, kv.value.string_value) for kv in point.attributes)
            out[(name, attributes)] = point
    return out


def value(point) -> float:
    return point.as_int if point.HasField("as_int") else point.as_double


def run_and_collect(env: dict[str, str], receiver: OtlpReceiver, exports: int) -> tuple[list[Received], str, str]:
    proc = spawn("run", env=env)
    try:
        received = receiver.wait_for(exports, 15)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    return received, out, err


@pytest.mark.parametrize("protocol, compression", [("http/protobuf", "none"), ("http/json", "gzip")])
def test_every_data_point_is_what_the_l2met_lines_of_its_poll_say(r, redis_server, receiver, protocol, compression):
    seed(r, {"default": (12.5, 2), "low priority": (3.0, 1), "mailers": (0.0, 0)})
    r.set("stat:processed", 40)
    r.zadd("retry", {"job": 1})
    env = otlp_env(redis_server.url, receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                   OTEL_EXPORTER_OTLP_COMPRESSION=compression, HEROKU_APP_NAME="shop", DYNO="web.1",
                   HEROKU_APP_ID="2daa2797-e42b-4624-9322-ec3f968df4da", HEROKU_RELEASE_VERSION="v42",
                   HEROKU_SLUG_COMMIT="e6134959", OTEL_RESOURCE_ATTRIBUTES="deployment.environment=prod%2Cus")
    received, out, err = run_and_collect(env, receiver, 3)
    assert receiver.refused == [] and len(received) >= 3
    polls = polls_of(out)
    assert SECRET not in out + err and "s3cr3t" not in out + err
    first_seen = None
    for export, l2met in zip(received[:3], polls, strict=False):
        assert export.path == "/v1/metrics"
        assert export.headers["content-type"] == ("application/json" if protocol == "http/json"
                                                  else "application/x-protobuf")
        assert export.headers.get("content-encoding") == ("gzip" if compression == "gzip" else None)
        if compression == "gzip":
            gzip.decompress(export.body)
        assert export.headers["x-api-key"] == SECRET and export.headers["x-team"] == "sidekiq"
        assert export.resource() == {
            "service.name": "shop", "service.instance.id": "web.1", "cloud.provider": "heroku",
            "heroku.app.id": "2daa2797-e42b-4624-9322-ec3f968df4da", "service.version": "v42",
            "heroku.release.commit": "e6134959", "deployment.environment": "prod,us"}
        got = points(export)
        for queue, name in (("default", "default"), ("low priority", "low_priority"), ("mailers", "mailers")):
            assert value(got[("sidekiq.queue.size", (("queue", queue),))]) == int(l2met[f"sample#sidekiq.{name}.size"])
            latency = got[("sidekiq.queue.latency", (("queue", queue),))]
            assert f"{value(latency):.3f}" == l2met[f"sample#sidekiq.{name}.latency"]
        for total in ("enqueued", "scheduled", "retries", "dead", "processes", "busy", "max_latency"):
            assert f"{value(got[(f'sidekiq.{total}', ())]):.3f}" == f"{float(l2met[f'sample#sidekiq.{total}']):.3f}"
        assert value(got[("sidekiq.metrics.up", ())]) == 1
        processed = got[("sidekiq.jobs.processed", ())]
        assert value(processed) == int(l2met["sample#sidekiq.processed"]) == 40
        # The OTel data model's form for a total whose start is unknown: the first point starts at its own time,
        # and the later ones where it did (issue 25.6)
        first_seen = first_seen or processed.time_unix_nano
        assert processed.start_time_unix_nano == first_seen <= processed.time_unix_nano
    metrics = received[0].metrics()
    assert metrics["sidekiq.queue.latency"].unit == "s" and metrics["sidekiq.queue.size"].unit == "{job}"
    assert metrics["sidekiq.queue.size"].WhichOneof("data") == "gauge"
    jobs = metrics["sidekiq.jobs.processed"]
    assert jobs.WhichOneof("data") == "sum" and jobs.sum.is_monotonic and jobs.sum.aggregation_temporality == 2
    assert "sidekiq.processed" not in metrics  # the total is sent once, as the Sum


def test_sums_across_a_counter_reset_cumulative_and_delta(r, redis_server):
    """Sidekiq::Stats#reset between polls: cumulative moves its start time; delta sends nothing for that
    poll, as the l2met count# lines do; both agree with l2met everywhere else."""
    from sidekiq_metrics import catalogue as c
    from sidekiq_metrics.config import load_settings
    from sidekiq_metrics.metrics.samples import Measurements, Sample
    from sidekiq_metrics.outputs.otlp import Sums

    def run(temporality: str) -> list[list]:
        sums = Sums(temporality, 1000.0)
        totals = [100, 130, 130, 20, 50]
        return [sums.points([Sample(c.PROCESSED, t)], 1000.0 + 10 * (i + 1)) for i, t in enumerate(totals)]

    cumulative = [[(p.value, p.start) for p in poll if p.metric is c.PROCESSED] for poll in run("cumulative")]
    # Its first point starts at its own time (the data model's unknown start, issue 25.6), the later ones there.
    assert cumulative == [[(100, 1010.0)], [(130, 1010.0)], [(130, 1010.0)], [(20, 1030.0)], [(50, 1030.0)]]
    delta = [[(p.value, p.start) for p in poll if p.metric is c.PROCESSED] for poll in run("delta")]
    assert delta == [[], [(30, 1010.0)], [(0, 1020.0)], [], [(30, 1040.0)]]
    assert load_settings({"SIDEKIQ_METRICS_OUTPUT": "otlp"}).otlp.temporality == "cumulative"
    errors = Sums("cumulative", 5.0)
    assert [[(p.value, p.start) for p in errors.points(s, t) if p.metric is c.ERRORS]
            for s, t in [([], 10.0), ([Sample(c.ERRORS, 1)], 20.0), ([], 30.0)]] == \
        [[(0, 5.0)], [(1, 5.0)], [(1, 5.0)]]
    assert Measurements  # (imported for the reader of this test: what emit() receives)


def test_delta_temporality_end_to_end_matches_the_count_lines(r, redis_server, receiver):
    seed(r, {"default": (1.0, 1)})
    r.set("stat:processed", 5)
    env = otlp_env(redis_server.url, receiver.url, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="Delta")
    proc = spawn("run", env=env)
    try:
        receiver.wait_for(2, 10)
        r.incrby("stat:processed", 7)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                value(p) == 7 for rec in receiver.requests for (n, _), p in points(rec).items()
                if n == "sidekiq.jobs.processed"):
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=5)
    finally:
        proc.kill()
    received = receiver.requests
    polls = polls_of(out)
    for export, l2met in zip(received, polls, strict=False):
        jobs = points(export).get(("sidekiq.jobs.processed", ()))
        counted = l2met.get("count#sidekiq.jobs.processed")
        assert (value(jobs) if jobs else None) == (int(counted) if counted else None)
        if jobs:
            assert export.metrics()["sidekiq.jobs.processed"].sum.aggregation_temporality == 1  # DELTA
    assert any(l2met.get("count#sidekiq.jobs.processed") == "7" for l2met in polls)


def test_exports_use_the_metrics_endpoint_as_it_is_and_the_base_endpoint_with_v1_metrics(r, redis_server, receiver):
    seed(r, {"default": (1.0, 1)})
    for variable, given, path in [("OTEL_EXPORTER_OTLP_ENDPOINT", "/base/", "/base/v1/metrics"),
                                  ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "/custom/path", "/custom/path"),
                                  ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "", "/")]:
        receiver.requests.clear()
        env = otlp_env(redis_server.url, "http://ignored.invalid", **{variable: receiver.url + given})
        result = cli("run", "--once", env=env)
        assert result.returncode == 0, result.stderr
        assert [q.path for q in receiver.wait_for(1, 5)] == [path]


def test_only_when_chosen_is_any_of_it_imported(r, redis_server):
    seed(r, {"default": (1.0, 1)})
    code = ("import sys, runpy; sys.argv = ['sidekiq-metrics', 'run', '--once']\n"
            "try:\n    runpy.run_module('sidekiq_metrics', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print([m for m in sys.modules if m.startswith(('google', 'opentelemetry', 'http.client'))])")
    from support.commands import cli_env, console_script
    python = str(__import__("pathlib").Path(console_script()).parent / "python")
    out = subprocess.run([python, "-c", code], env=cli_env(REDIS_URL=redis_server.url,
                         OTEL_EXPORTER_OTLP_PROTOCOL="grpc"), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"  # and an app's own grpc setting is not our business


def wait_for_lines(proc, count: int, timeout: float) -> list[tuple[float, str]]:
    lines: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout
    while len([line for _, line in lines if "metrics.up=" in line]) < count and time.monotonic() < deadline:
        lines += read_lines_until(proc, r"metrics\.up=", max(0.1, deadline - time.monotonic()))
    return lines


def test_a_receiver_that_never_answers_delays_no_poll_and_sigterm_still_ends_it(r, redis_server, receiver):
    seed(r, {"default": (1.0, 1)})
    receiver.hang.set()
    proc = spawn("run", env=otlp_env(redis_server.url, receiver.url, SIDEKIQ_METRICS_INTERVAL="0.3",
                                     OTEL_EXPORTER_OTLP_TIMEOUT="60000"))
    try:
        lines = wait_for_lines(proc, 8, 10)
        ups = [t for t, line in lines if "metrics.up=1" in line]
        assert len(ups) >= 8, "polls stopped while an export hung"
        gaps = [b - a for a, b in zip(ups, ups[1:], strict=False)]
        assert max(gaps) < 0.9, gaps
        assert len(receiver.requests) == 1  # the one export under way, still waiting for its answer
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - sent < 1.0
    finally:
        receiver.hang.clear()
        proc.kill()


def test_429_with_and_without_retry_after_503_and_400(r, redis_server, receiver):
    """One poll's export tried again through 429 (Retry-After: 2), 503 and 429 (backoff), then dropped at a 400.
    Polls every 3 s, so that the few kept polls do not push it out meanwhile."""
    seed(r, {"default": (1.0, 1)})
    receiver.replies = [Reply(429, {"Retry-After": "2"}), Reply(503), Reply(429), Reply(400)]
    proc = spawn("run", env=otlp_env(redis_server.url, receiver.url, SIDEKIQ_METRICS_INTERVAL="3"))
    try:
        received = receiver.wait_for(5, 30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert len(received) >= 5
    gaps = [b.at - a.at for a, b in zip(received, received[1:], strict=False)]
    assert 1.9 <= gaps[0] <= 3.0, gaps  # Retry-After: 2 honoured, not cut short by the poll meanwhile
    # Then 503 and 429 without Retry-After: exponential backoff with jitter, 1-2 s, then 2-4 s.
    assert 0.9 <= gaps[1] <= 2.5 and 1.9 <= gaps[2] <= 4.5, gaps
    assert received[0].body == received[1].body == received[2].body == received[3].body
    assert received[4].body != received[3].body  # the 400: dropped, never sent again
    assert err.count("otlp: cannot export") == 1 and "429 Too Many Requests" in err
    assert "refused an export (400 Bad Request)" in err
    assert SECRET not in err


def test_a_partial_success_is_one_line(r, redis_server, receiver):
    seed(r, {"default": (1.0, 1)})
    receiver.replies = [Reply(200, partial=(3, f"bad points; your key is {SECRET}"))] * 4
    received, _, err = run_and_collect(otlp_env(redis_server.url, receiver.url), receiver, 5)
    assert err.count("rejected 3 data point(s)") == 1, err
    assert SECRET not in err and "bad points" in err


def test_connection_refused_then_the_backend_comes_back(r, redis_server):
    seed(r, {"default": (1.0, 1)})
    port = free_port()
    env = otlp_env(redis_server.url, f"http://127.0.0.1:{port}", SIDEKIQ_METRICS_INTERVAL="0.2")
    proc = spawn("run", env=env)
    try:
        lines = wait_for_lines(proc, 15, 10)
        assert len([line for _, line in lines if "metrics.up=1" in line]) >= 15  # polls go on
        back = OtlpReceiver(port=port)  # the backend comes back, on the same port
        received = back.wait_for(2, 30)
        assert received
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
        back.close()
    finally:
        proc.kill()
    assert err.count("otlp: cannot export to http://127.0.0.1") == 1, err
    assert "Connection refused" in err
    assert "otlp: exporting to http://127.0.0.1" in err and "poll(s) were dropped meanwhile" in err
    dropped = points(received[-1])[("sidekiq.metrics.otlp.dropped", ())]
    assert value(dropped) > 0


def test_memory_stays_bounded_over_a_long_outage(r, redis_server):
    seed(r, {f"q{i}": (1.0, 1) for i in range(300)})
    env = otlp_env(redis_server.url, f"http://127.0.0.1:{free_port()}", SIDEKIQ_METRICS_INTERVAL="0.02")
    proc = spawn("run", env=env)
    try:
        def rss() -> int:
            with open(f"/proc/{proc.pid}/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
        wait_for_lines(proc, 50, 20)
        before = rss()
        wait_for_lines(proc, 600, 60)
        after = rss()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert after - before < 2048, (before, after)  # KB: 600 polls of 300 queues, none of them exported
    assert resource  # (the test reads /proc, as the benchmark does)


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory):
    certs = tmp_path_factory.mktemp("otlp-certs")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(certs / "key.pem"),
                    "-out", str(certs / "cert.pem")], check=True, capture_output=True)
    return str(certs / "cert.pem"), str(certs / "key.pem")


def test_tls_with_a_private_ca_and_refused_without_it(r, redis_server, tls_certificate):
    seed(r, {"default": (1.0, 1)})
    receiver = OtlpReceiver(tls_certificate)
    try:
        refused = cli("run", "--once", env=otlp_env(redis_server.url, receiver.url))
        assert refused.returncode == 0  # Redis was read; the export is what failed
        assert "certificate was refused" in refused.stderr and "https://localhost" in refused.stderr
        assert SECRET not in refused.stderr and "x-api-key" not in refused.stderr
        assert receiver.requests == []
        trusted = cli("run", "--once", env=otlp_env(redis_server.url, receiver.url,
                                                    OTEL_EXPORTER_OTLP_CERTIFICATE=tls_certificate[0]))
        assert trusted.returncode == 0, trusted.stderr
        assert len(receiver.wait_for(1, 5)) == 1 and "otlp" not in trusted.stderr
    finally:
        receiver.close()


@pytest.mark.parametrize("variable, raw, says", [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "is grpc, which this emitter does not speak"),
    ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "thrift", "must be http/protobuf or http/json"),
    ("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key {SECRET}", "entry 1 is not"),
    ("OTEL_EXPORTER_OTLP_HEADERS", f"bad name={SECRET}", "header name that HTTP does not allow"),
    ("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={SECRET}%0D%0AX: y", "line break"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", f"https://user:{SECRET[:-2]}@otlp.example.com", "must not hold credentials"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", f"ftp://{SECRET}", "http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://[{SECRET}", "could not be parsed"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "must be one of gzip, none"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5", "whole number of milliseconds"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "1e3", "whole number of milliseconds"),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "readable PEM file"),
    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/hostname", "must be set together"),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes", "cumulative, delta or lowmemory"),
    ("OTEL_RESOURCE_ATTRIBUTES", f"={SECRET}", "entry 1 is not"),
])
def test_bad_otlp_settings_exit_2_with_one_line_and_no_secret(variable, raw, says):
    result = cli("run", "--once", env={"SIDEKIQ_METRICS_OUTPUT": "otlp", variable: raw})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert variable in result.stderr
    assert SECRET not in result.stderr and "s3cr3t" not in result.stderr and "Traceback" not in result.stderr


def test_doctor_shows_the_otlp_set_up_and_one_real_export(r, redis_server, receiver):
    seed(r, {"default": (1.0, 1)})
    result = cli("doctor", env={**otlp_env(redis_server.url, receiver.url + "/secret-path"), "DYNO": "web.1"})
    assert "otlp endpoint = http://127.0.0.1" in result.stdout and "secret-path" not in result.stdout
    assert "headers: x-api-key, x-team (values not shown)" in result.stdout
    assert "protocol http/protobuf, compression none, temporality cumulative" in result.stdout
    assert "an export was accepted (200" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert len(receiver.requests) == 1
    receiver.replies = [Reply(401)]
    refused = cli("doctor", env=otlp_env(redis_server.url, receiver.url))
    assert "FAIL  otlp: the export was refused (401 Unauthorized)" in refused.stdout
    assert refused.returncode == 1


def test_a_count_no_int64_holds_neither_stops_the_exports_nor_is_sent(r, redis_server, receiver):
    seed(r, {"default": (1.0, 1)})
    r.set("stat:processed", "9" * 30)  # hand-written: Sidekiq never counts that far
    received, _, err = run_and_collect(otlp_env(redis_server.url, receiver.url), receiver, 3)
    assert len(received) >= 3 and "Traceback" not in err
    assert ("sidekiq.jobs.processed", ()) not in points(received[-1])
    assert ("sidekiq.queue.size", (("queue", "default"),)) in points(received[-1])


def test_any_readings_encode_to_messages_that_decode_to_the_same_values():
    """Hypothesis: queue names of any text (lone surrogates too, as undecodable names arrive), values of
    any size and sign, both encodings: every export encodes, and decodes to what was measured."""
    from google.protobuf import json_format
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from sidekiq_metrics import catalogue as c
    from sidekiq_metrics.config import load_settings
    from sidekiq_metrics.metrics.samples import Measurements, QueueSeries, Sample
    from sidekiq_metrics.outputs.otlp import Encoder, Sums

    numbers = st.one_of(st.integers(min_value=-(1 << 70), max_value=1 << 70),
                        st.floats(allow_nan=False, allow_infinity=False))

    @settings(max_examples=150, deadline=None, derandomize=bool(os.environ.get("CI")))
    @given(queues=st.lists(st.text(st.characters(codec=None), max_size=40), max_size=8, unique=True),
           values=st.lists(numbers, min_size=8, max_size=8), processed=numbers,
           protocol=st.sampled_from(["http/protobuf", "http/json"]), gzip_on=st.booleans())
    def check(queues, values, processed, protocol, gzip_on):
        config = load_settings({"SIDEKIQ_METRICS_OUTPUT": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                                "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip" if gzip_on else "none"}).otlp
        encoder = Encoder("sidekiq", config, "cumulative")
        sizes = values[:len(queues)]
        measurements = Measurements([QueueSeries(c.QUEUE_SIZE, queues, sizes)],
                                    [Sample(c.ENQUEUED, values[-1]), Sample(c.PROCESSED, processed)])
        sums = Sums("cumulative", 1.0).points(measurements.samples, 2.0)
        body = encoder.encode(encoder.request(measurements, 2.0, sums))
        body = gzip.decompress(body) if gzip_on else body
        message = ExportMetricsServiceRequest()
        json_format.Parse(body, message) if protocol == "http/json" else message.ParseFromString(body)
        decoded = points(Received(0.0, "/", {}, body, message))
        for queue, size in zip(queues, sizes, strict=True):
            name = queue.encode("utf-8", "backslashreplace").decode("utf-8")
            assert value(decoded[("sidekiq.queue.size", (("queue", name),))]) == pytest.approx(size)
        assert value(decoded[("sidekiq.enqueued", ())]) == pytest.approx(values[-1])
        assert (("sidekiq.jobs.processed", ()) in decoded) == (-(1 << 63) <= int(processed) < 1 << 63)

    check()


def test_a_certificate_file_that_is_not_a_pem_certificate_is_a_bad_setting_not_a_traceback():
    for env, named in [({"OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/hostname"}, "OTEL_EXPORTER_OTLP_CERTIFICATE"),
                       ({"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/etc/hostname",
                         "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/etc/hostname"}, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")]:
        result = cli("run", "--once", env={"SIDEKIQ_METRICS_OUTPUT": "l2met,otlp",
                                           "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com", **env})
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and named in result.stderr and "PEM" in result.stderr


@pytest.mark.parametrize("retry_after", ["²", "nan", "inf", "1e999", "-5", "Wed, 99 Foo 2026 99:99:99 GMT"])
def test_no_retry_after_a_collector_sends_ends_the_sender(r, redis_server, receiver, retry_after):
    """Issue 25.7: `Retry-After: ²` (a digit to str.isdigit, not to float) killed the sender thread with one
    traceback: no export and no line ever after, while everything else looked healthy."""
    seed(r, {"default": (1.0, 1)})
    receiver.replies = [Reply(503, {"Retry-After": retry_after})]
    received, _, err = run_and_collect(otlp_env(redis_server.url, receiver.url, SIDEKIQ_METRICS_INTERVAL="0.3"),
                                       receiver, 3)
    assert len(received) >= 3, err
    assert "Traceback" not in err and "exporting to" in err


def test_retry_after_zero_is_not_a_hot_loop(r, redis_server, receiver):
    """Issue 25.9: `Retry-After: 0` made 15,188 requests in 10 s. The backoff has a floor of a second."""
    seed(r, {"default": (1.0, 1)})
    receiver.replies = [Reply(429, {"Retry-After": "0"})] * 1000
    proc = spawn("run", env=otlp_env(redis_server.url, receiver.url, SIDEKIQ_METRICS_INTERVAL="0.5"))
    try:
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert 1 <= len(receiver.requests) <= 4, len(receiver.requests)


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc%E2%82%AC", "only Latin-1 characters"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otlp..example.com:4318", "empty or over-long part"),
])
def test_otlp_settings_that_would_kill_the_sender_are_refused_at_start(redis_server, variable, value, says):
    """Issue 25.7: a header value outside Latin-1 (UnicodeEncodeError) or a host with an empty label (IDNA's
    UnicodeError) killed the sender thread, and `doctor` with a traceback. Now exit 2 and one line."""
    env = {"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "otlp", variable: value}
    result = cli("run", "--once", env=env)
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "abc" not in result.stderr
    doctor = cli("doctor", env=env)  # its own contract: a FAIL line naming the setting, exit 1
    assert doctor.returncode == 1 and "Traceback" not in doctor.stdout + doctor.stderr
    assert [line for line in doctor.stdout.splitlines() if line.startswith("FAIL") and says in line]


def test_a_collector_that_closes_idle_connections_costs_no_line_and_no_export(r, redis_server):
    """Issue 25.8: a collector closing kept-alive connections after an idle while (Node: 5 s) made every export
    log "cannot export ... (Broken pipe); retrying" and then "exporting again"."""
    seed(r, {"default": (1.0, 1)})
    receiver = OtlpReceiver(idle_timeout=0.3)
    try:
        # The stand-in first: a kept-alive connection left idle is closed by it, as Node's server closes it.
        with socket.create_connection(("127.0.0.1", receiver.server.server_port), timeout=5) as probe:
            probe.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                          b"Content-Length: 0\r\n\r\n")
            assert probe.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(0.6)
            assert probe.recv(1) == b""  # closed while idle
        received, _, err = run_and_collect(otlp_env(redis_server.url, receiver.url, SIDEKIQ_METRICS_INTERVAL="0.6"),
                                           receiver, 5)
    finally:
        receiver.close()
    assert len(received) >= 5
    assert "cannot export" not in err and "exporting to" not in err, err


def test_the_trickle_stand_in_answers_within_any_per_read_timeout_but_not_within_the_whole():
    """The stand-in first: each byte comes well within a read's timeout, the answer as a whole much later."""
    server = TrickleServer(every=0.05)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=0.2) as probe:  # 0.2 s a read
            probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            started, got = time.monotonic(), b""
            while len(got) < 12:
                got += probe.recv(12 - len(got))  # never times out
        assert got == b"HTTP/1.1 200" and time.monotonic() - started > 0.4
    finally:
        server.close()


def test_a_collector_that_trickles_its_answer_is_given_up_at_the_timeout(r, redis_server):
    """Issue 25.10: the timeout applied per read: a collector sending a byte every 0.5 s held the sender for ever
    (1 request in 30 polls, no line). OTEL_EXPORTER_OTLP_TIMEOUT is for the whole exchange."""
    seed(r, {"default": (1.0, 1)})
    server = TrickleServer(every=0.5)
    try:
        env = otlp_env(redis_server.url, server.url, SIDEKIQ_METRICS_INTERVAL="0.5", OTEL_EXPORTER_OTLP_TIMEOUT="1000")
        proc = spawn("run", env=env)
        try:
            time.sleep(4.5)  # a try given up after 1 s, the backoff (1-2 s), the next try
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=5)
        finally:
            proc.kill()
    finally:
        server.close()
    assert "cannot export to http://127.0.0.1" in err and "(timed out)" in err, err
    assert server.requests >= 2


def test_a_platform_api_that_trickles_its_answer_is_given_up_at_the_timeout():
    """Issue 25.10: the Platform API client did the same: one GET in 40 s, no scaling and no line."""
    server = TrickleServer(every=0.5)
    try:
        api = PlatformApi(server.url, "token", "shop", timeout=1.0)
        started = time.monotonic()
        with pytest.raises(ApiError, match="no answer from the Heroku API within 1s"):
            api.quantity("worker")
        assert time.monotonic() - started < 3
    finally:
        server.close()


def test_sidekiqs_totals_never_read_as_new_after_a_restart(r, redis_server, receiver):
    """Issue 25.6: stat:processed went out as a cumulative Sum starting at the emitter's start, which the OTel data
    model reads as a reset from zero: every deploy counted Sidekiq's whole lifetime total as new. Decoded from two
    runs' requests: each run's first point starts at its own time (no increase yet), the later ones there."""
    seed(r, {"default": (1.0, 1)})
    r.set("stat:processed", 1_000_000)
    for run in range(2):
        received, _, _ = run_and_collect(otlp_env(redis_server.url, receiver.url), receiver, 2 + 2 * run)
        first, second = (points(export)[("sidekiq.jobs.processed", ())] for export in received[2 * run:2 * run + 2])
        assert first.start_time_unix_nano == first.time_unix_nano and first.as_int == 1_000_000 + 7 * run
        assert second.start_time_unix_nano == first.time_unix_nano < second.time_unix_nano
        r.incrby("stat:processed", 7)
    failed_polls = points(received[-1])[("sidekiq.metrics.errors", ())]
    assert failed_polls.start_time_unix_nano < failed_polls.time_unix_nano  # our own count: from our start, at 0


def test_a_short_header_value_that_is_no_secret_never_masks_our_own_lines(r, redis_server, receiver):
    """Issue 25.15: with `X-Scope-OrgID=1` among the headers, every `1` of our lines was masked
    (`polling redis://***27.0.0.***:7***0***/0 every ***s`). Credentials stay scrubbed, short or long."""
    seed(r, {"default": (1.0, 1)})
    env = otlp_env(redis_server.url, receiver.url, SIDEKIQ_METRICS_INTERVAL="1",
                   OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={SECRET.replace('/', '%2F')},X-Scope-OrgID=1,"
                                              "Authorization=zq9")
    receiver.replies = [Reply(400, partial=(1, f"key {SECRET}, auth zq9, org 1"))]
    _, _, err = run_and_collect(env, receiver, 2)
    assert f"polling redis://127.0.0.1:{redis_server.port}/0 every 1s" in err, err
    assert SECRET not in err and "zq9" not in err and "refused an export" in err


def test_job_class_counts_that_stopped_growing_are_no_longer_sent():
    """Issue 25.11: every job-class series ever seen was sent at every poll, for ever: after a day of 20 new class
    names a minute, 57,601 points an export. A count that has not grown for an hour is forgotten."""
    sums = Sums("cumulative", 0.0)
    sizes = []
    for minute in range(24 * 60):
        at = 60.0 * minute
        samples = [Sample.of(JOB_PROCESSED, 3, f"Job{minute}_{n}") for n in range(20)]
        sizes.append(len(sums.points(samples, at)))
    assert max(sizes) <= 20 * 61 + 10  # the classes of the last hour, and our own counts
    assert len(sums.counts.counts) <= 20 * 61 + 10 and len(sums.counts.grown) <= 20 * 61 + 10
    # A class back after an hour away starts again from 0 at the previous poll: a counter restart, never a spike.
    point = next(p for p in sums.points([Sample.of(JOB_PROCESSED, 5, "Job0_0")], 60.0 * 24 * 60)
                 if p.labels == (("job_class", "Job0_0"),))
    assert point.value == 5 and point.start == 60.0 * (24 * 60 - 1)


def test_a_backend_whose_partial_success_messages_vary_is_said_once_and_not_remembered_for_ever(receiver):
    """Issue 25.11: partial-success messages were remembered for ever when the backend's text varied (20,000
    exports left 20,000 entries), and each was a new line."""
    said: list[str] = []
    settings = load_settings({"REDIS_URL": "redis://127.0.0.1:1/0", "SIDEKIQ_METRICS_OUTPUT": "otlp",
                              "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    receiver.replies = [Reply(200, partial=(1, f"point {n} rejected (request id {n * 7919})")) for n in range(60)]
    output = OtlpOutput(settings.prefix, settings.otlp, said.append)
    for _ in range(60):
        output.emit(Measurements(samples=[Sample(UP, 1)]), time.time())
        assert output.flush(5)
    assert len(receiver.requests) == 60
    assert len([line for line in said if "rejected 1 data point" in line]) == 1, said
    assert len(output.sender._said) <= 2
