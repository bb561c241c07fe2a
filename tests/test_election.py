"""The election of one active emitter (SIDEKIQ_METRICS_LEASE) as production tries it: standbys that must sleep,
holders paused past their term, cut off from Redis or refused scripts, connections a NAT forgot. Real emitter
processes, each through a fault proxy of its own in front of one real redis-server (issue 32, points 1-4, 17)."""

from __future__ import annotations

import signal
import time

import pytest

from support.candidates import Candidate, processed_reported
from support.fault_proxy import FaultProxy
from support.redis_server import wait_until
from support.sidekiq_data import push

INTERVAL = 1.0
LEASE_KEY = "sidekiq-metrics:lease"


@pytest.fixture
def proxies(redis_server):
    made: list[FaultProxy] = []

    def make(**faults: float) -> FaultProxy:
        proxy = FaultProxy(redis_server.port)
        for name, value in faults.items():
            setattr(proxy, name, value)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def candidates():
    started: list[Candidate] = []

    def start(name: str, url: str, **env: str) -> Candidate:
        candidate = Candidate.emitter(name, **{"REDIS_URL": url, "SIDEKIQ_METRICS_INTERVAL": str(INTERVAL), **env})
        started.append(candidate)
        return candidate

    yield start
    for candidate in started:
        if candidate.proc.poll() is None:
            candidate.proc.send_signal(signal.SIGCONT)
        candidate.stop()
    assert all("Traceback" not in line for c in started for _, _, line in c.lines)


def test_a_standby_asks_for_the_lease_about_twice_an_interval_and_sleeps_between(r, proxies, candidates):
    """Point 1: a standby asked again after 0 s, some 5,000 commands a second to the customer's Redis."""
    push(r, "default")
    a, b = proxies(), proxies()
    first = candidates("web.1", a.url)
    assert wait_until(lambda: first.polls(), 15)
    second = candidates("web.2", b.url)
    assert wait_until(lambda: second.said("polling"), 15)
    time.sleep(INTERVAL)
    since = time.monotonic()
    time.sleep(4 * INTERVAL)
    asked = b.commands_since(since, since + 4 * INTERVAL)
    assert not second.polls()
    assert 4 <= len(asked) <= 4 * 2 + 2, asked  # one ask (one command) every half interval
    assert len(a.commands_since(since, since + 4 * INTERVAL)) < 100  # the holder: a poll and two asks an interval


def test_a_holder_that_takes_the_lease_back_never_reports_another_holders_increase(r, proxies, candidates):
    """Point 2: A paused past its term, B took over and reported 50 jobs, B stopped, A took the lease back and
    reported the same 50 again."""
    push(r, "default")
    r.set("stat:processed", 1000)
    a = candidates("web.1", proxies().url)
    assert wait_until(lambda: len(a.polls()) >= 2, 15)
    b = candidates("web.2", proxies().url)
    assert wait_until(lambda: b.said("polling"), 15)
    a.proc.send_signal(signal.SIGSTOP)
    assert wait_until(lambda: b.polls(), 10)
    r.incrby("stat:processed", 50)
    assert wait_until(lambda: processed_reported(b) == 50, 10)
    a.proc.send_signal(signal.SIGCONT)
    assert wait_until(lambda: a.said("stops polling"), 10)  # its term ran out while it was paused
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(5) == 0
    assert wait_until(lambda: len(a.said("took the lease")) == 2, 10)
    took_back = a.said("took the lease")[1]
    assert wait_until(lambda: len(a.polls(took_back)) >= 3, 10)
    assert processed_reported(a, b) == 50


def test_without_scripts_the_holder_renews_its_lease_and_keeps_it(r, redis_server, candidates):
    """Point 3: refused @scripting, the SET NX fallback never renewed, and the holder changed every 1.5 intervals."""
    push(r, "default")
    r.execute_command("ACL", "SETUSER", "noscript", "on", ">noscript-pass", "~*", "+@all", "-@scripting")
    try:
        url = f"redis://noscript:noscript-pass@127.0.0.1:{redis_server.port}/0"
        a, b = candidates("web.1", url), candidates("web.2", url)
        assert wait_until(lambda: a.polls() or b.polls(), 15)
        time.sleep(6 * INTERVAL)
        assert len(a.said("took the lease")) + len(b.said("took the lease")) == 1
        holder, standby = (a, b) if a.polls() else (b, a)
        assert not standby.polls() and len(holder.polls()) >= 5
        # And a holder that stops gives it up at once, without scripts too.
        holder.proc.send_signal(signal.SIGTERM)
        assert holder.proc.wait(5) == 0
        assert r.get(LEASE_KEY) is None or wait_until(lambda: standby.said("took the lease"), 2 * INTERVAL)
    finally:
        r.execute_command("ACL", "DELUSER", "noscript")


def test_a_holder_cut_off_from_redis_stops_printing_before_another_takes_over(r, proxies, candidates):
    """Point 4: a holder whose connection was cut went on printing `metrics.up=0` every interval beside the new
    holder's `up=1`. It steps down when its term may have ended by its own clock; a standby prints nothing."""
    push(r, "default")
    cut = proxies()
    a = candidates("web.1", cut.url)
    assert wait_until(lambda: len(a.polls()) >= 2, 15)
    b = candidates("web.2", proxies().url)
    assert wait_until(lambda: b.said("polling"), 15)
    cut.mode = "partition"
    cut_at = time.monotonic()
    assert wait_until(lambda: b.said("took the lease"), 10)
    took = b.said("took the lease")[0]
    assert took - cut_at <= 2 * INTERVAL + 1.0  # (the takeover promise, with the processes' own scheduling)
    time.sleep(3 * INTERVAL)
    assert a.polls(took) == []  # nothing from the one cut off once another holds it
    assert a.said("stops polling")
    assert max(a.polls()) < took
    cut.mode = "pass"
    time.sleep(3 * INTERVAL)
    assert a.polls(took) == [] and len(b.polls(took)) >= 4


def test_a_new_holders_first_poll_replaces_a_connection_that_went_stale_while_it_stood_by(r, proxies, candidates):
    """Point 17: the poll's connection, idle while its emitter stood by, was reset by a NAT that forgot it; the
    first poll after taking the lease back failed and said `metrics.up=0` for a healthy Redis."""
    push(r, "default")
    a = candidates("web.1", proxies(idle_forget=2.5 * INTERVAL).url)
    assert wait_until(lambda: len(a.polls()) >= 2, 15)
    r.set(LEASE_KEY, "web.9:1:another", px=int(5 * INTERVAL * 1000))  # another emitter holds it for a while
    assert wait_until(lambda: a.said("lost the lease"), 10)
    assert wait_until(lambda: a.said("took the lease") and len(a.said("took the lease")) == 2, 15)
    took_back = a.said("took the lease")[1]
    assert wait_until(lambda: len(a.polls(took_back)) >= 2, 10)
    assert not [line for at, kind, line in a.lines if at >= took_back and "metrics.up=0" in line]
    assert not [line for at, kind, line in a.lines if at >= took_back and "poll failed" in line]


def test_the_fault_proxy_cuts_both_ways_forgets_quietly_and_counts_commands(redis_server, r, proxies):
    """The stand-in network is checked before it is trusted: a partition delivers no command to Redis, a forgotten
    connection shows nothing until the client sends and then meets a reset, and pipelined commands count one each."""
    import socket

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    proxy = proxies()
    client = redis.Redis(port=proxy.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    client.pipeline(transaction=False).set("a", 1).get("a").get("b").execute()
    assert proxy.commands_since(0)[-3:] == [b"SET", b"GET", b"GET"]
    proxy.mode = "partition"
    with pytest.raises(redis.TimeoutError):
        client.set("cut", 1)
    assert r.get("cut") is None
    proxy.mode = "pass"

    forgetting = proxies(idle_forget=0.3)
    sock = socket.create_connection(("127.0.0.1", forgetting.port))
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert sock.recv(100) == b"+PONG\r\n"
    time.sleep(0.6)
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):  # no FIN, nothing: a client cannot tell before it sends
        sock.recv(100)
    sock.setblocking(True)
    sock.settimeout(5)
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    with pytest.raises(ConnectionResetError):
        sock.recv(100)
    sock.close()


def test_an_emitter_that_stands_by_serves_no_readings_on_its_prometheus_endpoint(r, redis_server, candidates):
    """Found in review of issue 32: an emitter that lost the lease went on serving its last poll on /metrics, as if
    current, beside the new holder's; a scraper saw two emitters' readings and one of them frozen."""
    import urllib.request

    from support.redis_server import free_port

    push(r, "default")
    port = free_port()
    a = candidates("web.1", redis_server.url, SIDEKIQ_METRICS_OUTPUT="prometheus,l2met",
                   SIDEKIQ_METRICS_PROMETHEUS_PORT=str(port))

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()

    assert wait_until(lambda: a.polls(), 15)
    assert "sidekiq_metrics_up 1" in scrape()
    r.set(LEASE_KEY, "web.9:1:another", px=int(60 * INTERVAL * 1000))
    assert wait_until(lambda: a.said("lost the lease"), 10)
    body = scrape()
    assert "sidekiq_" not in body, body
    assert "stands by" in body


@pytest.mark.parametrize("phase", [0.1, 0.6])
def test_a_holder_cut_off_from_redis_says_up_0_before_it_stands_down(r, proxies, candidates, phase):
    """Found in review of issue 32: cut off, the holder's ask blocked half an interval, its poll then timed out after
    its term had ended, and that poll's `up=0` was dropped as stale: `metrics.up` never went below 1, at any phase
    of the interval. A poll's reads are bounded by the term's end, so the `up=0` comes while the term lasts."""
    push(r, "default")
    cut = proxies()
    a = candidates("web.1", cut.url)
    assert wait_until(lambda: len(a.polls()) >= 2, 15)
    last = a.polls()[-1]
    assert wait_until(lambda: a.polls(last + 0.01), 5)
    time.sleep(phase * INTERVAL)
    cut.mode = "partition"
    cut_at = time.monotonic()
    assert wait_until(lambda: a.said("stops polling"), 10)
    stopped = a.said("stops polling")[0]
    downs = [at for at, kind, line in a.lines if kind == "out" and "metrics.up=0" in line and cut_at <= at < stopped]
    assert downs, a.lines[-12:]
    time.sleep(2 * INTERVAL)
    assert a.polls(stopped + 0.3) == []


@pytest.mark.long
def test_at_an_interval_whose_reads_are_capped_a_holder_cut_off_still_says_up_0(r, proxies, candidates):
    """Found in the second review of issue 32: above 20 s, a read's deadline is capped at 10 s. Cut off just after
    a poll, the holder's ask at the next tick waited those 10 s, its term (1.35 intervals) ended meanwhile, and it
    stood down without one `up=0`. A holder's ask leaves half the term's rest for the poll."""
    push(r, "default")
    cut = proxies()
    a = candidates("web.1", cut.url, SIDEKIQ_METRICS_INTERVAL="22")
    assert wait_until(lambda: a.polls(), 15)
    cut.mode = "partition"
    cut_at = time.monotonic()
    assert wait_until(lambda: a.said("stops polling"), 40)
    stopped = a.said("stops polling")[0]
    assert [at for at, kind, line in a.lines if kind == "out" and "metrics.up=0" in line and cut_at <= at < stopped]
    assert stopped - cut_at <= 1.35 * 22 + 1.0  # said when the term ends, not an ask's wait later


def test_a_lease_key_without_a_ttl_is_no_holders_and_is_taken(r, redis_server, candidates):
    """Found in the second review of issue 32: a lease key with no TTL (restored from a backup, set by hand) held
    every emitter off for ever. Ours always carry one: a key without is nobody's lease."""
    push(r, "default")
    r.set(LEASE_KEY, "restored:1:from-a-backup")
    a = candidates("web.1", redis_server.url)
    assert wait_until(lambda: a.polls(), 15)
    assert r.get(LEASE_KEY).startswith(b"web.1:") and r.pttl(LEASE_KEY) > 0


def test_a_holder_cut_off_serves_no_readings_once_its_term_may_have_ended(r, proxies, candidates):
    """Found in review of issue 32: cut off, a holder's Prometheus endpoint served its last readings (`up 1`) for
    seconds after another emitter took over, until its blocked ask for the lease returned."""
    import urllib.request

    from support.redis_server import free_port

    push(r, "default")
    cut, port = proxies(), free_port()
    a = candidates("web.1", cut.url, SIDEKIQ_METRICS_OUTPUT="prometheus,l2met",
                   SIDEKIQ_METRICS_PROMETHEUS_PORT=str(port), SIDEKIQ_METRICS_INTERVAL="4")
    assert wait_until(lambda: a.polls(), 15)
    cut.mode = "partition"
    time.sleep(1.5 * 4)  # past any term that began before the cut (1.35 intervals)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert "sidekiq_" not in body and "stands by" in body, body


@pytest.mark.parametrize("dyno", ["web\udcff.1", "web.1\nsample#sidekiq.default.size=999"])
def test_an_odd_dyno_name_still_holds_the_lease_and_says_so_on_one_line(r, redis_server, candidates, dyno):
    """Found in review of issue 32: a DYNO that is not UTF-8 could never hold the lease (its owner could not be
    sent: "unexpected reply from Redis ... not RESP"), and one with a newline forged a metric line on stderr."""
    push(r, "default")
    a = candidates(dyno, redis_server.url)
    assert wait_until(lambda: a.polls() and a.said("took the lease"), 15)  # (stdout and stderr: two pipes)
    took = [line for _, kind, line in a.lines if kind == "err" and "took the lease" in line]
    assert len(took) == 1 and took[0].startswith("sidekiq-metrics: web")
    assert not [line for _, kind, line in a.lines if kind == "err" and line.startswith("sample#")]
