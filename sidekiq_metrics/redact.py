"""Keeping secrets (the Redis password, the OTLP headers' values, the Heroku API token) out of every line we print.
A Redis user name is no secret (Redis Cloud's is `default`): masking it would cut that word out of our lines.

Two rules, learnt the hard way:
- Scrub first, cut after. A message cut to length before scrubbing can end inside a secret,
  and the part before the cut no longer matches the whole secret.
- Servers cut too: Redis echoes a refused command's arguments, shortened ("ERR unknown
  command 'AUTH', with args beginning with: '<the first 128 characters>'"). So every run of
  text that is a prefix of a secret, MIN_PREFIX characters or longer, is masked as well.
  (Over-masking a word that happens to start like the password is the safe mistake; shorter
  runs would mask ordinary words: a password "reader-pass" would turn "reading" into "***ing".)
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"
MIN_PREFIX = 8  # shorter runs are too common in ordinary text to mask, and give little away
ERROR_LIMIT = 300


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        if len(secret) <= MIN_PREFIX:
            continue
        head = secret[:MIN_PREFIX]
        start = text.find(head)
        while start >= 0:
            end = start + MIN_PREFIX
            while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
                end += 1
            text = text[:start] + MASK + text[end:]
            start = text.find(head, start + len(MASK))
    return text


def describe_error(exc: BaseException, secrets: Iterable[str] = (), limit: int = ERROR_LIMIT) -> str:
    """One short line for an error, with every credential scrubbed out before it is cut to `limit`."""
    text = redact(" ".join(str(exc).split()) or type(exc).__name__, secrets)
    return text if len(text) <= limit else text[:limit] + "..."
