"""Secrets in what we print: scrubbed before anything is cut, prefixes too (servers cut what they echo)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidekiq_metrics.redact import MIN_PREFIX, describe_error, redact

secrets = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=MIN_PREFIX + 1,
                  max_size=200)
text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=400)


def leaked_prefix(output: str, secret: str) -> str | None:
    for n in range(len(secret), MIN_PREFIX - 1, -1):
        if secret[:n] in output:
            return secret[:n]
    return None


@given(secret=secrets, before=text, after=text, cut=st.integers(min_value=0, max_value=200),
       limit=st.integers(min_value=1, max_value=600))
def test_no_prefix_of_a_secret_survives_a_servers_cut_or_ours(secret, before, after, cut, limit):
    # The server echoed the secret cut short (cut=0: whole), and we cut the whole message to `limit`.
    echoed = secret[:cut] if cut else secret
    message = f"ERR unknown command 'AUTH', with args beginning with: '{before}{echoed}{after}'"
    out = describe_error(RuntimeError(message), [secret], limit=limit)
    assert leaked_prefix(out, secret) is None or leaked_prefix(before + after, secret) is not None
    assert len(out) <= limit + 3


def test_a_secret_straddling_the_cut_leaves_no_part_behind():
    token = "tok-3f9a2c0d11"
    message = "a" * 295 + token + " the rest"
    out = describe_error(RuntimeError(message), [token], limit=300)
    assert out == "a" * 295 + "*** the rest"[:5] + "..."
    assert "tok-3f9a" not in out and "tok-" not in out


def test_ordinary_text_is_left_alone():
    assert redact("Redis refuses our read-only Lua script; reading each queue", ["reader-pass"]) == \
        "Redis refuses our read-only Lua script; reading each queue"
    assert redact("lost the connection to Redis at 10.0.0.1:6379", ["hunter2-long"]) == \
        "lost the connection to Redis at 10.0.0.1:6379"
    assert redact("user=metrics pass=pw", ["metrics", "pw"]) == "user=*** pass=***"


def test_a_log_line_with_a_line_break_in_a_name_stays_one_line():
    """Found in review of issue 32: a key name, queue name or DYNO holding a line break started a line of its own
    on stderr, which a log reader could take for a metric (`sample#...`)."""
    import io

    from sidekiq_metrics.loop.poll import line_logger

    err = io.StringIO()
    line_logger(err, ("s3cr3t",))("queue:x\nsample#sidekiq.default.size=999\r\u2028 s3cr3t")
    assert err.getvalue().count("\n") == 1 and err.getvalue().endswith("\n")
    assert "s3cr3t" not in err.getvalue() and "\r" not in err.getvalue() and "\u2028" not in err.getvalue()
    assert err.getvalue().startswith("sidekiq-metrics: queue:x\\nsample#")
