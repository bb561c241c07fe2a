"""Heroku dyno names as $DYNO spells them (Sidekiq's process hostname on Heroku), on both generations.

    Cedar   web.1  worker.3             <type>.<n>; one-off dynos run.1234
    Fir     web-12a34b56d-e78f9         <type>-<hash>-<5 characters>, as Kubernetes names a deployment's pods;
            worker-23z34x56y-w78k9      a type may hold hyphens itself (my-worker-...); one-off dynos run-...

Only Cedar numbers its dynos, and only there can a scale-down be told to stop the highest-numbered
(stopped_dynos.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from sidekiq_metrics.parsing import VARIABLE_NAME

PROCESS_TYPE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as a Procfile names them (Fir's: lowercase and -)
_CEDAR = re.compile(r"(?P<type>[A-Za-z0-9_-]{1,64})\.(?P<number>[0-9]+)")
_FIR = re.compile(r"(?P<type>[a-z0-9][a-z0-9-]{0,62})-[a-z0-9]{5,10}-[a-z0-9]{5}")
_FIR_ONE_OFF = re.compile(r"run-[a-z0-9-]{1,64}")


def process_type(dyno: str) -> str | None:
    """The Heroku process type of a dyno name (`worker` for `worker.3` and `worker-23z34x56y-w78k9`); None for a
    name that is no dyno's."""
    if cedar := _CEDAR.fullmatch(dyno):
        return cedar["type"]
    if fir := _FIR.fullmatch(dyno):
        return fir["type"]
    return "run" if _FIR_ONE_OFF.fullmatch(dyno) else None


def dyno_number(kind: str, dyno: str) -> int | None:
    """3 for `worker.3` of type `worker`; None for anything else, Fir's names among them (never numbered)."""
    cedar = _CEDAR.fullmatch(dyno)
    return int(cedar["number"]) if cedar and cedar["type"] == kind and len(cedar["number"]) < 6 else None


def is_fir(dyno: str) -> bool:
    return _FIR.fullmatch(dyno) is not None


def elected_by_type(env: Mapping[str, str]) -> bool:
    """SIDEKIQ_METRICS_DYNO names a process type (`web`) and this is one of its dynos (`web.3`): the hook starts
    an emitter here that polls only while it holds the Redis lease. (The hook's glob `<type>.[0-9]*`.)"""
    dyno, wanted = env.get("DYNO", ""), env.get("SIDEKIQ_METRICS_DYNO") or "web.1"
    first = dyno[len(wanted) + 1:][:1]
    return dyno.startswith(wanted + ".") and first != "" and first in "0123456789"


DISABLED, OTHER_DYNO, NO_REDIS = "disabled", "other dyno", "no redis"  # the kinds of NoEmitter


class NoEmitter(NamedTuple):
    """A reason why the hook starts no emitter on a dyno: its kind (what to do about it) and the line to say."""

    kind: str
    text: str


def why_no_emitter(env: Mapping[str, str]) -> list[NoEmitter]:
    """Every reason why the dyno hook (profile.d/sidekiq-metrics.sh) starts no emitter on the dyno `env`
    describes; none when it starts one. The one statement of that rule in Python, which `doctor` reports
    and a test holds equal to the hook's own, case by case. Blank values count as unset, as everywhere
    here; SIDEKIQ_METRICS_DYNO is matched exactly, as the hook matches it."""
    reasons = []
    if env.get("SIDEKIQ_METRICS_DISABLE", "").strip():
        reasons.append(NoEmitter(DISABLED, "SIDEKIQ_METRICS_DISABLE is set: the hook starts nothing on any dyno"))
    dyno, wanted = env.get("DYNO", ""), env.get("SIDEKIQ_METRICS_DYNO") or "web.1"
    if dyno != wanted and not elected_by_type(env):
        reasons.append(NoEmitter(OTHER_DYNO, f"this dyno ({dyno or 'DYNO unset'}) does not run the emitter; {wanted} "
                                             "does (SIDEKIQ_METRICS_DYNO)"))
    provider = env.get("REDIS_PROVIDER", "").strip()
    named = provider and (not VARIABLE_NAME.fullmatch(provider) or env.get(provider, "").strip())
    # With shards, they are the Redis configuration (the emitter says what is wrong with them, if anything).
    configured = ("SIDEKIQ_METRICS_SHARDS", "SIDEKIQ_METRICS_REDIS_URL", "REDIS_URL")
    if not (any(env.get(name, "").strip() for name in configured) or named):
        reasons.append(NoEmitter(NO_REDIS, "no Redis URL is configured: the hook starts the emitter only with one"))
    return reasons
