"""Faults and abuse: real redis-server processes stopped, paused, slowed, killed; hostile data; bad input."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from support.commands import cli, cli_env, console_script, parse_l2met, read_lines_until, spawn
from support.fault_proxy import FaultProxy
from support.redis_server import RedisServer, free_port, wait_until
from support.sidekiq_data import job, push

L2MET_TOKEN = re.compile(r"(source=[A-Za-z0-9._:-]+|(sample|measure|count)#[A-Za-z0-9._:-]+=[0-9]+(\.[0-9]+)?)")


def assert_l2met_clean(stdout: str) -> None:
    """Every line: only well-formed measurements, at most 1,024 bytes; no metric twice."""
    for line in stdout.splitlines():
        assert len(line.encode()) <= 1024, len(line.encode())
        for token in line.split(" "):
            assert L2MET_TOKEN.fullmatch(token), token[:120]
    parse_l2met(stdout)


def test_hostile_queue_names_and_jobs_never_break_a_poll_or_a_line(r, redis_server):
    names = ["new\nline", "eq=ual", "hash#tag", "sp ace", "x" * 10_000, "tab\tbed", "", "\u00e9\u00e8", "日本"]
    for name in names:
        r.sadd("queues", name)
        r.lpush(f"queue:{name}", json.dumps({"enqueued_at": time.time()}))
    r.sadd("queues", b"\xff\xfe\xfd")
    r.lpush(b"queue:\xff\xfe\xfd", b"\xff not json at all")
    stamps = [float("nan"), 1e308, -1e308, "soon", [1], None, {"a": 1}, 10**30, -5, True]
    for i, stamp in enumerate(stamps):
        r.sadd("queues", f"stamp{i}")
        r.lpush(f"queue:stamp{i}", json.dumps({"enqueued_at": stamp, "created_at": stamp}))
    push(r, "million")
    for _ in range(10):
        r.lpush("queue:million", *[json.dumps({"enqueued_at": time.time()})] * 100_000)
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url})
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert_l2met_clean(result.stdout)
    measured = parse_l2met(result.stdout)
    assert measured["sample#sidekiq.million.size"] == "1000000"
    assert len(result.stderr.splitlines()) == 1 and len(result.stderr) < 1000  # one warning line, bounded


def test_a_queues_set_of_100000_names(r, redis_server):
    pipe = r.pipeline(transaction=False)
    for i in range(100_000):
        pipe.sadd("queues", f"q{i:06d}")
    pipe.execute()
    r.lpush("queue:q000007", json.dumps({"enqueued_at": time.time() - 5}))
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url}, timeout=60)
    assert result.returncode == 0, result.stderr
    measured = parse_l2met(result.stdout)
    assert measured["sample#sidekiq.enqueued"] == "1"
    assert sum(1 for k in measured if k.endswith(".size")) == 100_000
    assert all(len(line.encode()) <= 1024 for line in result.stdout.splitlines())


@pytest.mark.parametrize("variable", ["SIDEKIQ_METRICS_INTERVAL", "SIDEKIQ_METRICS_TYPE", "SIDEKIQ_METRICS_PREFIX",
                                      "SIDEKIQ_METRICS_SOURCE", "SIDEKIQ_METRICS_TLS_VERIFY", "SIDEKIQ_METRICS_STATS",
                                      "SIDEKIQ_METRICS_REDIS_URL", "REDIS_URL", "REDIS_PROVIDER"])
@pytest.mark.parametrize("value", ["-1", "9" * 5000, "abc\u00e9\u6f22", "$(rm -rf /);`id`", "1; DROP TABLE", "\n\t"])
def test_every_setting_refuses_bad_values_with_one_line_and_status_2(variable, value):
    if value == "\n\t" or (variable, value) in {("SIDEKIQ_METRICS_PREFIX", "-1"), ("SIDEKIQ_METRICS_SOURCE", "-1")}:
        return  # blank is documented as unset (see the next test); "-1" is a fine prefix or source
    result = cli("run", "--once", env={variable: value})
    assert result.returncode == 2, (variable, value, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sidekiq-metrics: ") and len(lines[0]) < 300
    assert "Traceback" not in result.stderr


def test_blank_settings_take_their_documented_defaults(r, redis_server):
    env = {"REDIS_URL": redis_server.url, **{v: " \t" for v in (
        "SIDEKIQ_METRICS_INTERVAL", "SIDEKIQ_METRICS_TYPE", "SIDEKIQ_METRICS_PREFIX", "SIDEKIQ_METRICS_SOURCE",
        "SIDEKIQ_METRICS_QUEUES", "SIDEKIQ_METRICS_NAMESPACE", "SIDEKIQ_METRICS_STATS", "SIDEKIQ_METRICS_TLS_VERIFY")}}
    result = cli("run", "--once", env=env)
    assert result.returncode == 0 and result.stdout.endswith("sample#sidekiq.metrics.up=1\n")


def test_at_most_one_connection_attempt_per_interval_when_redis_drops_every_connection():
    """A listener that accepts and closes at once: no retry storm, one line per failed poll."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted = []

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(time.monotonic())
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    proc = spawn("run", env={"REDIS_URL": url, "SIDEKIQ_METRICS_INTERVAL": "0.2"})
    time.sleep(2.1)
    proc.terminate()
    proc.wait(5)
    listener.close()
    err = proc.stderr.read().splitlines()
    assert 8 <= len(accepted) <= 12, len(accepted)  # 2.1 s at one attempt per 0.2 s
    failures = [line for line in err if "poll failed" in line]
    assert len(failures) == len(accepted)


def test_slow_redis_debug_sleep_polls_end_within_their_interval():
    server = RedisServer("--enable-debug-command", "yes").start()
    try:
        push(server.client(), "default")
        proc = spawn("run", env={"REDIS_URL": server.url, "SIDEKIQ_METRICS_INTERVAL": "0.4"})
        assert read_lines_until(proc, r"metrics\.up=1", 5)
        blocker = threading.Thread(target=lambda: server.client().execute_command("DEBUG", "SLEEP", "1.5"))
        blocker.start()
        lines = read_lines_until(proc, r"metrics\.up=1", 5)
        blocker.join()
        proc.terminate()
        proc.wait(5)
    finally:
        server.cleanup()
    ups = [line for _, line in lines if "metrics.up" in line]
    assert "sample#sidekiq.metrics.up=0 count#sidekiq.metrics.errors=1" in ups  # a hung poll was cut short
    beats = [t for t, line in lines if "metrics.up" in line]
    assert all(b - a < 0.4 * 1.5 for a, b in zip(beats, beats[1:], strict=False))  # one line per tick, still


def test_connections_killed_mid_run_are_survived(r, redis_server):
    push(r, "default")
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "0.05"})
    try:
        assert read_lines_until(proc, r"metrics\.up=1", 5)
        for _ in range(20):
            r.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            time.sleep(0.03)
        assert read_lines_until(proc, r"metrics\.up=1", 5)[-1][1].endswith("metrics.up=1")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(5)
    assert "Traceback" not in proc.stderr.read()


def test_a_closed_stdout_ends_it_quietly(r, redis_server):
    push(r, "default")
    reader_end, writer_end = os.pipe()
    proc = subprocess.Popen([console_script(), "run"], stdout=writer_end, stderr=subprocess.PIPE, text=True,
                            env=cli_env(REDIS_URL=redis_server.url, SIDEKIQ_METRICS_INTERVAL="0.05"))
    os.close(writer_end)
    os.read(reader_end, 100)
    os.close(reader_end)  # the log reader went away
    assert proc.wait(5) == 0
    err = proc.stderr.read()
    assert "Traceback" not in err and "BrokenPipe" not in err


def fds(pid: int) -> int:
    """The process's open descriptors, the median of a few looks: a poll may be reconnecting at any one moment
    (a socket more, or none), while a leak raises every look."""
    looks = []
    for _ in range(9):
        looks.append(len(os.listdir(f"/proc/{pid}/fd")))
        time.sleep(0.005)
    return sorted(looks)[len(looks) // 2]


def rss_kb(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0])


def test_soak_10000_polls_with_redis_restarts_keeps_memory_and_descriptors_flat(own_redis):
    push(own_redis.client(), "default")
    proc = subprocess.Popen([console_script(), "run"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=cli_env(REDIS_URL=own_redis.url, SIDEKIQ_METRICS_INTERVAL="0.0005"))
    polls, checkpoints, restarts = 0, {}, 0
    try:
        for line in proc.stdout:
            if b"metrics.up" not in line:
                continue
            polls += 1
            if polls in (2_000, 10_000):
                checkpoints[polls] = (rss_kb(proc.pid), fds(proc.pid))
            if polls % 2_500 == 0 and restarts < 3:  # Redis restarted three times during the run
                own_redis.stop()
                time.sleep(0.2)
                own_redis.start().client().sadd("queues", "default")
                restarts += 1
            if polls >= 10_000:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
    (rss_a, fd_a), (rss_b, fd_b) = checkpoints[2_000], checkpoints[10_000]
    assert restarts == 3
    assert rss_b - rss_a < 1024, (rss_a, rss_b)
    assert fd_b == fd_a, (fd_a, fd_b)


def test_monitor_sees_only_reads_through_faults(own_redis):
    server = own_redis
    push(server.client(), "default", job(time.time()))
    seen: list[str] = []
    done = threading.Event()

    def watch():
        try:
            with server.client().monitor() as m:
                for event in m.listen():
                    seen.append(event["command"])
                    if done.is_set():
                        return
        except redis.ConnectionError:  # the CLIENT KILL below ends this monitor too; a new one follows
            return

    port_before = server.port
    threading.Thread(target=watch, daemon=True).start()
    time.sleep(0.2)
    proc = spawn("run", env={"REDIS_URL": server.url, "SIDEKIQ_METRICS_INTERVAL": "0.05"})
    try:
        read_lines_until(proc, r"metrics\.up=1", 5)
        server.client().execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # our monitor too
        threading.Thread(target=watch, daemon=True).start()
        time.sleep(0.3)
        server.client().execute_command("SCRIPT", "FLUSH")
        time.sleep(0.3)
        read_lines_until(proc, r"metrics\.up=1", 5)
    finally:
        done.set()
        server.client().ping()
        proc.terminate()
        proc.wait(5)
    assert server.port == port_before
    ours = [c for c in seen if not c.startswith(("CLIENT", "SCRIPT FLUSH", "PING", "HELLO", "MONITOR"))]
    verbs = {c.split(" ", 1)[0].upper() for c in ours}
    assert verbs and verbs <= {"SMEMBERS", "GET", "ZCARD", "ZRANGE", "SCARD", "HMGET", "SCRIPT", "EVALSHA", "LLEN",
                               "LINDEX", "INFO", "HGETALL", "LRANGE", "ZCOUNT", "ZRANGEBYSCORE"}  # HGETALL: a minute of
    # Sidekiq's execution metrics, when one completes during the test; the last three: breakdown.lua
    assert all(c.upper().startswith("SCRIPT LOAD") for c in ours if c.upper().startswith("SCRIPT"))
    # the scripts Redis ran inside EVALSHA, as MONITOR shows them: reads only
    assert "EVALSHA" in verbs


def test_the_password_appears_in_no_output_whatever_fails(own_redis):
    secret, user = "Sup3r-S3cret-pw", "sidekiq_reader"
    urls = [f"redis://{user}:{secret}@127.0.0.1:{free_port()}/0",  # nothing listens
            f"rediss://{user}:{secret}@127.0.0.1:{own_redis.port}/0",  # TLS to a plain server
            f"redis://{user}:{secret}@127.0.0.1:{own_redis.port}/0",  # no such user
            f"redis://{user}:{secret}@127.0.0.1:{own_redis.port}/99999",  # no such database
            f"redis://{user}:{secret}@127.0.0.1:notaport/0", f"http://{user}:{secret}@x"]
    for url in urls:
        result = cli("run", "--once", env={"REDIS_URL": url, "SIDEKIQ_METRICS_INTERVAL": "2"})
        assert result.returncode in (1, 2), url
        assert secret not in result.stdout + result.stderr and user not in result.stdout + result.stderr, url
        assert "Traceback" not in result.stderr


def test_a_read_only_replica_serves_every_read_including_the_script(own_redis):
    primary = own_redis
    push(primary.client(), "default", job(time.time() - 2.0))
    replica = RedisServer("--replicaof", "127.0.0.1", str(primary.port)).start()
    try:
        deadline = time.monotonic() + 10
        while replica.client().llen("queue:default") != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        result = cli("run", "--once", env={"REDIS_URL": replica.url})
    finally:
        replica.cleanup()
    assert result.returncode == 0 and result.stderr == "", result.stderr  # no READONLY, no fallback notice
    measured = parse_l2met(result.stdout)
    assert measured["sample#sidekiq.default.size"] == "1" and float(measured["sample#sidekiq.default.latency"]) >= 2


def test_a_redis_over_its_memory_limit_still_answers_every_read(r, redis_server):
    push(r, "default", job(time.time()))
    r.config_set("maxmemory", 1)  # every write would now be refused with OOM; reads are not
    try:
        result = cli("run", "--once", env={"REDIS_URL": redis_server.url})
    finally:
        r.config_set("maxmemory", 0)
    assert result.returncode == 0 and result.stderr == ""
    assert parse_l2met(result.stdout)["sample#sidekiq.default.size"] == "1"


def test_every_poll_succeeds_when_redis_closes_idle_connections_between_polls():
    """`heroku redis:timeout` (or a provider's default) shorter than the interval: Redis closes our idle
    connection between two polls. The next poll must open a new one and succeed, every time."""
    server = RedisServer("--timeout", "1", "--hz", "100").start()
    try:
        push(server.client(), "default")
        proc = spawn("run", env={"REDIS_URL": server.url, "SIDEKIQ_METRICS_INTERVAL": "1.6"})
        try:
            lines = read_lines_until(proc, r"(?!)", 0)  # a pattern that never matches: collect every line
            deadline = time.monotonic() + 7.5
            while time.monotonic() < deadline and sum("metrics.up=" in text for _, text in lines) < 4:
                time.sleep(0.1)
            clients = server.client().info("stats")["total_connections_received"]
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=5)
        heartbeats = [text.split("metrics.up=")[1][:1] for _, text in lines if "metrics.up=" in text]
        assert len(heartbeats) >= 4 and set(heartbeats) == {"1"}, (heartbeats, stderr)
        assert "poll failed" not in stderr
        assert clients >= 4  # Redis did close them: each poll needed a new connection
    finally:
        server.stop()


def test_the_connection_to_redis_has_tcp_keepalive(r, redis_server):
    """A connection a middlebox dropped silently is noticed, as well-kept clients arrange."""
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "30"})
    try:
        assert read_lines_until(proc, r"metrics\.up=1", 10)
        sockets = subprocess.run(["ss", "--tcp", "--numeric", "--options", "--processes", "state", "established",
                                  f"( dport = :{redis_server.port} )"], capture_output=True, text=True).stdout
        ours = [line for line in sockets.splitlines() if f"pid={proc.pid}," in line]
        assert len(ours) == 1, sockets
        assert "timer:(keepalive," in ours[0], ours[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=5)


@pytest.mark.parametrize("path", ["script", "LINDEX"])
@pytest.mark.parametrize("stamp", ["1" + "0" * 310, "9" * 5000, "1" + "0" * 310 + ".5", "-" + "9" * 5000])
def test_a_poisoned_timestamp_is_one_warning_and_everything_else_is_reported(r, redis_server, stamp, path):
    """One job whose enqueued_at no float can hold must not crash the poll (it crash-looped under the hook),
    read by our script or, where scripts are refused, whole with LINDEX."""
    r.sadd("queues", "poisoned", "healthy")
    r.lpush("queue:poisoned", '{"class":"HardJob","enqueued_at":' + stamp + "}")
    r.lpush("queue:healthy", json.dumps({"enqueued_at": time.time() - 3}))
    url = redis_server.url
    if path == "LINDEX":
        r.execute_command("ACL", "SETUSER", "reader", "on", ">reader-pass", "~*", "+@read", "+@connection",
                          "-@scripting")
        url = f"redis://reader:reader-pass@127.0.0.1:{redis_server.port}/0"
    try:
        result = cli("run", "--once", env={"REDIS_URL": url})
    finally:
        if path == "LINDEX":
            r.execute_command("ACL", "DELUSER", "reader")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    measured = parse_l2met(result.stdout)
    assert measured["sample#sidekiq.poisoned.size"] == "1"
    assert "sample#sidekiq.poisoned.latency" not in measured  # unknown, so left out
    assert 3 <= float(measured["sample#sidekiq.healthy.latency"]) < 10
    assert measured["sample#sidekiq.metrics.up"] == "1"
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "poisoned" in warnings[0], result.stderr


def test_a_process_hash_with_a_number_of_thousands_of_digits_is_left_out_not_a_crash(r, redis_server):
    push(r, "default")
    r.sadd("processes", "web.1:1:abc", "worker.1:2:def")
    r.hset("web.1:1:abc", mapping={"busy": "1", "concurrency": "9" * 5000,
                                   "info": json.dumps({"hostname": "web.1", "concurrency": 5})})
    r.hset("worker.1:2:def", mapping={"busy": "2", "concurrency": "5",
                                      "info": json.dumps({"hostname": "worker.1", "concurrency": 5})})
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    measured = parse_l2met(result.stdout)
    assert measured["sample#sidekiq.default.size"] == "0"
    assert measured["sample#sidekiq.busy"] == "3"
    assert measured["sample#sidekiq.metrics.up"] == "1"


def test_a_server_that_echoes_a_refused_login_never_shows_the_password():
    """A Redis (or proxy) that does not know AUTH echoes its arguments, cut to 128 characters: exact-match
    masking let the password through, whole in `doctor` and as a prefix in `run`."""
    password = "Zq8-" + "".join(chr(ord("a") + (i * 7) % 26) for i in range(196))
    server = RedisServer("--rename-command", "AUTH", "").start()
    try:
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        run = cli("run", "--once", env={"REDIS_URL": url})
        doctor = cli("doctor", env={"REDIS_URL": url})
    finally:
        server.stop()
    assert run.returncode == 1 and doctor.returncode == 1
    for result in (run, doctor):
        output = result.stdout + result.stderr
        assert "refused the login (ERR): check the user name and password in the Redis URL" in output, output
        assert password[:8] not in output and password[60:70] not in output


@pytest.fixture
def silent_dns(tmp_path):
    """A name server that takes every query and never answers, as resolv.conf of a mount namespace of the
    emitter's own: the command prefix that runs a program there."""
    # Port 53 of an address of the loopback range that no other test holds (two xdist workers may run the tests
    # that use it at once).
    for _ in range(100):
        address = f"127.77.{random.randrange(256)}.{random.randrange(1, 255)}"
        udp, tcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()
        try:
            udp.bind((address, 53))
            tcp.bind((address, 53))
            break
        except OSError:
            udp.close()
            tcp.close()
    tcp.listen()
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {address}\noptions timeout:5 attempts:2\n")  # glibc's defaults: 10 s a lookup
    prefix = ["unshare", "--mount", "bash", "-c", f'mount --bind "{conf}" /etc/resolv.conf && exec "$@"', "dns"]
    # The stand-in first: a plain lookup there must hang, as against a real silent name server.
    probe = subprocess.Popen([*prefix, "python3", "-c", "import socket; socket.getaddrinfo('x.silent-dns.test', 1)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            probe.wait(2)
    finally:
        probe.kill()
        probe.wait()
    yield prefix
    udp.close()
    tcp.close()


def run_behind(prefix: list[str], env: dict[str, str], seconds: float) -> tuple[list[tuple[float, str]], str, float]:
    """`run` for `seconds`, then SIGTERM: its timed stdout lines, its stderr, and how long SIGTERM took."""
    proc = subprocess.Popen([*prefix, console_script(), "run"], env=cli_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = read_lines_until(proc, r"(?!)", 0)  # never matches: collects every line
    time.sleep(seconds)
    asked = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    return lines, stderr, time.monotonic() - asked


def test_a_silent_name_server_for_the_redis_host_neither_stalls_the_loop_nor_sigterm(silent_dns):
    env = {"REDIS_URL": "redis://redis.silent-dns.test:6379/0", "SIDEKIQ_METRICS_INTERVAL": "1"}
    lines, stderr, stop_took = run_behind(silent_dns, env, 4.6)
    beats = [at for at, text in lines if "metrics.up=0" in text]
    assert len(beats) >= 4, (lines, stderr)  # one a second, though each lookup hangs for 10 s
    assert max(b - a for a, b in zip(beats, beats[1:], strict=False)) < 1.7
    assert "no answer from the name server for redis.silent-dns.test within 0.5s" in stderr
    assert stop_took < 1.0


def test_a_silent_name_server_for_the_statsd_agent_costs_the_poll_nothing(silent_dns, r, redis_server):
    for i in range(2000):  # some 60 datagrams a poll: a lookup per datagram stopped the loop outright
        r.sadd("queues", f"queue{i:04d}")
    env = {"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "1", "SIDEKIQ_METRICS_OUTPUT": "l2met,statsd",
           "DD_AGENT_HOST": "agent.silent-dns.test"}
    lines, stderr, stop_took = run_behind(silent_dns, env, 4.6)
    beats = [at for at, text in lines if "metrics.up=1" in text]
    assert len(beats) >= 4, stderr
    assert max(b - a for a, b in zip(beats, beats[1:], strict=False)) < 1.7
    assert stop_took < 1.0
    assert "Traceback" not in stderr


@pytest.fixture
def proxy(redis_server):
    p = FaultProxy(redis_server.port)
    yield p
    p.close()


def heartbeats(lines: list[tuple[float, str]]) -> list[tuple[float, str]]:
    return [(at, text.split("metrics.up=")[1][:1]) for at, text in lines if "metrics.up=" in text]


def test_a_reply_trickled_a_byte_at_a_time_fails_the_poll_on_time(r, proxy):
    """The deadline holds for a whole reply, not per socket read: one byte every 50 ms would stretch a poll
    of a few hundred bytes to many seconds."""
    r.sadd("queues", *[f"queue{i}" for i in range(20)])
    proxy.mode = "trickle"
    lines, stderr, stop_took = run_behind([], {"REDIS_URL": proxy.url, "SIDEKIQ_METRICS_INTERVAL": "1"}, 4.6)
    beats = heartbeats(lines)
    assert len(beats) >= 4 and {up for _, up in beats} == {"0"}, (beats, stderr)
    assert max(b - a for (a, _), (b, _) in zip(beats, beats[1:], strict=False)) < 1.7
    assert "no reply from Redis at 127.0.0.1:" in stderr and "within 0.5s" in stderr
    assert stop_took < 1.0


@pytest.mark.parametrize("fault", ["reset", "stall"])
def test_a_connection_reset_or_stalled_mid_reply_fails_that_poll_and_the_next_ones_recover(r, proxy, fault):
    push(r, "default")
    proc = spawn("run", env={"REDIS_URL": proxy.url, "SIDEKIQ_METRICS_INTERVAL": "0.5"})
    try:
        lines = read_lines_until(proc, r"(?!)", 0)
        assert wait_until(lambda: any(up == "1" for _, up in heartbeats(lines)), 5)
        proxy.mode = fault
        assert wait_until(lambda: any(up == "0" for _, up in heartbeats(lines)), 5), lines
        proxy.mode = "pass"
        failed_at = max(at for at, up in heartbeats(lines) if up == "0")
        assert wait_until(lambda: any(up == "1" and at > failed_at for at, up in heartbeats(lines)), 5), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=5)
    assert "Traceback" not in stderr
    assert proc.returncode == 0


def test_a_middlebox_that_closes_idle_connections_costs_no_poll(r, proxy):
    push(r, "default")
    proxy.idle_close = 0.5  # shorter than the interval: every connection is closed between two polls
    lines, stderr, _ = run_behind([], {"REDIS_URL": proxy.url, "SIDEKIQ_METRICS_INTERVAL": "1"}, 4.6)
    beats = heartbeats(lines)
    assert len(beats) >= 4 and {up for _, up in beats} == {"1"}, (beats, stderr)
    assert proxy.accepted >= 4



def test_stdout_on_a_full_disk_is_one_line_and_status_74(r, redis_server):
    with open("/dev/full", "w") as full:
        result = subprocess.run([console_script(), "run", "--once"], env=cli_env(REDIS_URL=redis_server.url),
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=30)
    assert result.returncode == 74
    assert result.stderr == "sidekiq-metrics: cannot write the metrics to stdout: No space left on device\n"


def test_a_closed_stdout_is_a_quiet_stop(r, redis_server):
    result = subprocess.run(["bash", "-c", f'exec "{console_script()}" run --once >&-'],
                            env=cli_env(REDIS_URL=redis_server.url), capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr) == (0, "")


def test_a_closed_stderr_never_stops_the_metrics():
    """Nothing can be said, and a crash would be silent too: the heartbeats on stdout show it lives on."""
    proc = subprocess.Popen(["bash", "-c", f'exec "{console_script()}" run 2>&-'], stdout=subprocess.PIPE,
                            text=True, env=cli_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                                                   SIDEKIQ_METRICS_INTERVAL="0.2"))
    try:
        lines = read_lines_until(proc, r"(?!)", 0)
        # Five heartbeats, however slowly a busy machine runs them (it once took longer than 1.5 s).
        assert wait_until(lambda: sum("metrics.up=0" in text for _, text in lines) >= 5, 30), lines
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
    assert proc.returncode == 0


def test_watch_in_an_ascii_terminal_shows_any_queue_name(r, redis_server):
    r.sadd("queues", "日本", "default")
    proc = subprocess.Popen([console_script(), "watch", "--every", "0.3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="ascii",
                            env=cli_env(REDIS_URL=redis_server.url, PYTHONIOENCODING="ascii"))
    time.sleep(1.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "\\u65e5\\u672c" in out and "default" in out
