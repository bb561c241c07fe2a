"""Heroku dyno names on Cedar and Fir, and the process type each belongs to (sidekiq_metrics/heroku/dynos.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidekiq_metrics.autoscale.stopped_dynos import StopWatch
from sidekiq_metrics.heroku.dynos import dyno_number, is_fir, process_type
from sidekiq_metrics.sidekiq.readings import ProcessReading, Totals

LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
cedar_types = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
# Fir's process types: lowercase a-z0-9 and -, 1 to 63 characters (heroku/buildpacks-procfile), no leading -.
fir_types = st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True)
hashes = st.text(LOWER, min_size=5, max_size=10)
suffixes = st.text(LOWER, min_size=5, max_size=5)


def test_the_names_heroku_documents():
    assert [process_type(n) for n in ("web.1", "worker.3", "run.1234", "web-12a34b56d-e78f9",
                                      "worker-23z34x56y-w78k9", "my-worker-23z34x56y-w78k9", "run-7k2m9x")] == \
        ["web", "worker", "run", "web", "worker", "my-worker", "run"]
    assert [process_type(n) for n in ("", "a-laptop", "worker", "worker.", "ip-10-0-1-23.ec2.internal")] == [None] * 5
    assert dyno_number("worker", "worker.3") == 3 and dyno_number("worker", "worker-23z34x56y-w78k9") is None


@given(kind=cedar_types, number=st.integers(0, 10**9))
def test_every_cedar_name_is_its_type(kind, number):
    name = f"{kind}.{number}"
    assert process_type(name) == kind and not is_fir(name)
    assert dyno_number(kind, name) == (number if number < 100_000 else None)


@given(kind=fir_types, digest=hashes, suffix=suffixes)
def test_every_fir_name_is_its_type_and_has_no_number(kind, digest, suffix):
    name = f"{kind}-{digest}-{suffix}"
    assert process_type(name) == kind and is_fir(name)
    assert dyno_number(kind, name) is None


@given(name=st.text(max_size=80))
def test_any_hostname_is_a_type_or_none_never_an_error(name):
    kind = process_type(name)
    assert kind is None or (kind and name.startswith(kind))


def test_processes_on_fir_dynos_are_grouped_by_type():
    live = tuple(ProcessReading(f"{h}:1:x", busy, 10, h) for h, busy in (
        ("worker-23z34x56y-w78k9", 2), ("worker-23z34x56y-q2w3e", 1), ("web-12a34b56d-e78f9", 0), ("laptop", 1)))
    totals = Totals(0, 0, 0, 0, 0, 4, 0, live)
    assert {k: sum(p.busy for p in g) for k, g in totals.by_process_type().items()} == {"worker": 3, "web": 0,
                                                                                        "other": 1}


def test_learning_which_dynos_stop_says_once_on_fir_that_it_does_not_apply_and_never_misfires():
    """Issue 26.4: learning which dynos Heroku stops needs numbered dynos; on Fir it says so once and keeps
    protecting every dyno of the type."""
    watch = StopWatch(evidence=2)
    fir = ["worker-23z34x56y-w78k9", "worker-23z34x56y-q2w3e", "worker-23z34x56y-a1s2d"]
    said = [watch.scaled_down("worker", t, fir, 3, 2) for t in (0.0, 10.0)]
    assert said[0].startswith("autoscale: learning which dynos Heroku stops does not apply on Fir") and \
        said[1] is None
    assert watch.look("worker", 5.0, fir[:2]) is None and watch.look("worker", 400.0, fir[:1]) is None
    assert not watch.known and not watch.contradicted
    assert watch.stops("worker", fir[0], 1)  # every dyno of the type stays protected
