"""Which dynos a scale-down stops, learned by watching our own scale-downs.

Heroku's documentation does not say. HireFire's maintainer reports the highest-numbered: worker.5 and
worker.4 when 5 go to 3 (hirefire-resource-ruby#64). A wait for running jobs is only as good as this
fact: waiting on the wrong dynos protects nothing. So until the emitter has seen it, a scale-down waits
for jobs at risk on every dyno of the type (jobs_at_risk.py), as if any might stop.

The emitter can see it. On Heroku, Sidekiq names its process after the dyno (`hostname` is `$DYNO`), and
a process that shuts down leaves Sidekiq's process set. After each of our scale-downs from n to m, the
dynos whose processes leave are the ones Heroku stopped. Each scale-down that stops exactly m+1..n is
C(n, n-m) times likelier under the highest-numbered rule than under a random choice of dynos; once the
product of these passes EVIDENCE (a 1-in-100 coincidence), a scale-down waits only for jobs on the dynos
it will stop. One scale-down seen to stop others, and it waits on the whole type again until restart.
Each verdict is said in one line, so a team can see for itself what Heroku did.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sidekiq_metrics.autoscale.jobs_at_risk import RunningJob
from sidekiq_metrics.heroku.dynos import dyno_number, is_fir

EVIDENCE = 100.0  # how much likelier than chance the highest-numbered rule must have shown itself
WATCH = 300.0  # seconds a scale-down's outcome is watched: a kept dyno that restarts is back well within it


@dataclass(frozen=True)
class ScaleDown:
    """One of our scale-downs, as it was sent."""

    at: float
    before: frozenset[int]  # the numbers of the type's dynos that ran Sidekiq then
    old: int
    new: int
    watch: float = WATCH  # seconds its outcome is watched: WATCH, or less when the type may change again sooner


def judge(change: ScaleDown, now_running: Iterable[int], final: bool = False) -> bool | None:
    """True: exactly the highest-numbered dynos left; False (only once the watch is over, `final`): a dyno it
    should have kept is gone while one it should have stopped still runs; None: not told (yet).

    A kept dyno that is gone may come back: a crash, or the daily restart, stops its Sidekiq and starts a new
    one on the same dyno name. So while the watch lasts a gone kept dyno only means "wait", and once it is
    back the scale-down is judged on the others. A scale-down during which a kept dyno left and stayed gone,
    while every dyno to stop did stop, teaches nothing either way."""
    kept, stopped = set(range(1, change.new + 1)), set(range(change.new + 1, change.old + 1))
    if not kept | stopped <= change.before:
        return None
    gone = (kept | stopped) - set(now_running)
    if gone == stopped:
        return True
    return False if final and gone & kept and not stopped <= gone else None


class StopWatch:
    """What the emitter has seen its scale-downs stop, for every process type of the app."""

    def __init__(self, evidence: float = EVIDENCE) -> None:
        self.needed = evidence
        self.evidence = 1.0  # how much likelier than chance the highest-numbered rule has shown itself
        self.contradicted = False
        self._watching: dict[str, ScaleDown] = {}
        self._said_fir = False

    @property
    def known(self) -> bool:
        """Heroku has been seen to stop the highest-numbered dynos, and never others."""
        return not self.contradicted and self.evidence >= self.needed

    def stops(self, process_type: str, hostname: str, quantity: int) -> bool:
        """Whether going to `quantity` dynos may stop the dyno `hostname`: any of the type's may, unless known."""
        number = dyno_number(process_type, hostname)
        return not self.known or number is None or number > quantity

    def on_stopping(self, process_type: str, jobs: Iterable[RunningJob], quantity: int) -> list[RunningJob]:
        """The jobs that going to `quantity` dynos may stop."""
        return [job for job in jobs if self.stops(process_type, job.dyno, quantity)]

    def scaled_down(self, process_type: str, at: float, hostnames: Iterable[str], old: int, new: int,
                    watch: float = WATCH) -> str | None:
        """Watch what a scale-down stops, for `watch` seconds at most (the type's next scale-down would replace it:
        the autoscaler passes the down cool-down when it is shorter than WATCH). On Fir, whose dynos have no
        numbers, there is nothing to learn: a line to say so, the first time."""
        hostnames = list(hostnames)
        if not self._said_fir and any(is_fir(h) for h in hostnames):
            self._said_fir = True
            return ("autoscale: learning which dynos Heroku stops does not apply on Fir (its dyno names have no "
                    "numbers): a scale-down waits for jobs at risk on every dyno of the type")
        before = frozenset(n for h in hostnames if (n := dyno_number(process_type, h)) is not None)
        self._watching[process_type] = ScaleDown(at, before, old, new, min(watch, WATCH))
        return None

    def look(self, process_type: str, at: float, hostnames: Iterable[str]) -> str | None:
        """Judge the type's last scale-down from the dynos that run Sidekiq now; a line to say, once judged."""
        change = self._watching.get(process_type)
        if change is None:
            return None
        running = [n for h in hostnames if (n := dyno_number(process_type, h)) is not None]
        over = at - change.at > change.watch
        verdict = judge(change, running, final=over)
        if verdict is None:
            if over:
                del self._watching[process_type]
            return None
        del self._watching[process_type]
        what = f"scaling {process_type} from {change.old} to {change.new} stopped"
        if not verdict:
            gone = sorted(set(range(1, change.old + 1)) - set(running))
            was_known, self.contradicted = self.known, True
            return (f"autoscale: {what} {', '.join(f'{process_type}.{n}' for n in gone)}, not only the "
                    f"highest-numbered: a scale-down waits for jobs on every dyno of the app's types"
                    + (" again" if was_known else "") + " until restart")
        was_known = self.known
        self.evidence *= math.comb(change.old, change.old - change.new)
        said = f"autoscale: {what} the highest-numbered dyno(s), {process_type}.{change.new + 1}"
        said += f"..{process_type}.{change.old}" if change.old > change.new + 1 else ""
        if self.known and not was_known:
            said += ("; seen often enough that chance does not explain it: a scale-down now waits only for jobs "
                     "on the dynos it stops")
        return said
