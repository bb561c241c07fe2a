"""Heroku dyno names as $DYNO spells them (Sidekiq's process hostname on Heroku), on both generations.

    Cedar   web.1  worker.3             <type>.<n>; one-off dynos run.1234
    Fir     web-12a34b56d-e78f9         <type>-<hash>-<5 characters>, as Kubernetes names a deployment's pods;
            worker-23z34x56y-w78k9      a type may hold hyphens itself (my-worker-...); one-off dynos run-...

Only Cedar numbers its dynos, and only there can a scale-down be told to stop the highest-numbered
(stopped_dynos.py).
"""

from __future__ import annotations

import re

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
