"""Latency rules for every timestamp shape Sidekiq and its neighbours write (pure functions)."""

import json

import pytest

from sidekiq_metrics.sidekiq.job_payload import MS_CUTOFF, BadPayload, Stamp, epoch_seconds, latency, stamp_from_payload

NOW = 1_795_000_000.25


@pytest.mark.parametrize("value, seconds", [
    (1_794_999_990.5, 1_794_999_990.5),        # Sidekiq <= 7: float seconds
    (1_794_999_990_500, 1_794_999_990.5),      # Sidekiq 8: integer milliseconds
    (1_794_999_990, 1_794_999_990.0),          # integer seconds from a third-party client
    (MS_CUTOFF, MS_CUTOFF / 1000),             # the first integer read as milliseconds
    (MS_CUTOFF - 1, float(MS_CUTOFF - 1)),     # the last one read as seconds
    ("1794999990.5", 1_794_999_990.5),         # numeric strings (Sidekiq Pro's Lua scheduler)
    ("1794999990500", 1_794_999_990.5),
    (0, 0.0),
])
def test_epoch_seconds_reads_each_unit(value, seconds):
    assert epoch_seconds(value) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("value", [True, False, None, [], {}, "soon", "1.2.3", "", float("nan"), float("inf"),
                                   -1, -1.5, "-5", "1446506041.608039.0000455", "9" * 30])
def test_epoch_seconds_refuses_what_is_not_a_time(value):
    assert epoch_seconds(value) is None


def test_latency_of_float_and_millisecond_stamps():
    assert latency(Stamp(NOW - 12.5), NOW) == pytest.approx(12.5)
    assert latency(Stamp(int((NOW - 7) * 1000)), NOW) == pytest.approx(7, abs=0.001)


def test_empty_queue_and_missing_timestamps_are_zero():
    assert latency(None, NOW) == 0.0
    assert latency(Stamp(), NOW) == 0.0
    assert latency(Stamp(False, None), NOW) == 0.0


def test_created_at_stands_in_for_a_missing_enqueued_at_as_in_sidekiq_8_1():
    assert latency(Stamp(None, NOW - 30.0), NOW) == pytest.approx(30)
    assert latency(Stamp(False, NOW - 30.0), NOW) == pytest.approx(30)  # Ruby: false || created_at
    # ...but only when missing: an enqueued_at of 0 is a (silly) time, truthy in Ruby.
    assert latency(Stamp(0, NOW - 30.0), NOW) == pytest.approx(NOW)


def test_future_timestamps_report_zero_never_negative():
    assert latency(Stamp(NOW + 5.0), NOW) == 0.0
    assert latency(Stamp(int((NOW + 5) * 1000)), NOW) == 0.0
    assert latency(Stamp(2**63 - 1), NOW) == 0.0  # the largest a 64-bit clock can write: far future


def test_integers_beyond_any_clock_are_unusable_not_an_overflow():
    """10**310 used to raise OverflowError in the middle of a poll; 10**40 read as "the future". No clock
    writes either: the latency is unknown (left out, with a warning), as for any unusable stamp."""
    for value in (2**63, 10**40, 10**310):
        assert latency(Stamp(value), NOW) is None
        assert latency(Stamp(None, value), NOW) is None


def test_unusable_timestamp_is_unknown_not_zero():
    assert latency(Stamp("yesterday"), NOW) is None
    assert latency(Stamp([1]), NOW) is None
    assert latency(Stamp(float("nan")), NOW) is None


def test_only_the_top_level_enqueued_at_counts():
    payload = json.dumps({
        "class": "Sidekiq::ActiveJob::Wrapper", "wrapped": "MyJob",
        "args": [{"job_class": "MyJob", "enqueued_at": "2020-01-01T00:00:00Z", "arguments": [{"enqueued_at": 1}]}],
        "created_at": NOW - 60.0, "enqueued_at": int((NOW - 9) * 1000),
    }).encode()
    assert latency(stamp_from_payload(payload), NOW) == pytest.approx(9, abs=0.001)


def test_json_number_type_decides_the_unit_as_in_ruby():
    # Ruby's JSON.parse and Python's json.loads agree: a decimal point makes a Float.
    assert isinstance(stamp_from_payload(b'{"enqueued_at": 1794999990.0}').enqueued_at, float)
    assert isinstance(stamp_from_payload(b'{"enqueued_at": 1794999990000}').enqueued_at, int)


@pytest.mark.parametrize("payload", [b"not json", b'{"enqueued_at": 1446506041.608039.0000455}', b"[1, 2]",
                                     b'"job"', b"\xff\xfe", b"[" * 100_000, b"1" * 5000])
def test_bad_payloads_raise_one_named_error(payload):
    with pytest.raises(BadPayload):
        stamp_from_payload(payload)


def test_what_rubys_json_parse_refuses_is_no_json_here_either():
    """Sidekiq reads jobs with Ruby's JSON.parse, which refuses NaN, Infinity, a byte-order mark and anything
    after the object (Python's json takes the first three): such a job is unreadable to Sidekiq's API too."""
    for payload in (b'{"enqueued_at": NaN}', b'{"enqueued_at": -Infinity}', b'\xef\xbb\xbf{"enqueued_at": 1.5}',
                    b'{"enqueued_at": 1.5} x', b'\x00{\x00}'):
        with pytest.raises(BadPayload):
            stamp_from_payload(payload)
    # ...and what it takes, this does: escapes in keys, white space around the object.
    assert stamp_from_payload(b' {"enqueued\\u005fat": 1.5}\n').enqueued_at == 1.5
