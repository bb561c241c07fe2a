"""Directories made once for a whole test run and shared by the xdist workers."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A directory `make` fills once for the whole run: the xdist workers share it (their base temp's parent is
    common), the first one makes it under a lock while the others wait, instead of each unpacking its own copy.
    Without xdist the run's own base temp holds it (its parent is common to every run, and a slug built from an
    earlier run's code must not be taken for this one's)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    target, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            target.mkdir(exist_ok=True)
            make(target)
            done.touch()
    return target
