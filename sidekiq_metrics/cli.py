"""Command line: parse, then hand over. The settings' options are made from their declarations (config.SETTINGS)."""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from sidekiq_metrics import __version__
from sidekiq_metrics.config import SETTINGS, Settings, load_settings
from sidekiq_metrics.errors import EXIT_CONFIG, ConfigError
from sidekiq_metrics.redis.target import REDIS_URL
from sidekiq_metrics.setting import Setting

if TYPE_CHECKING:
    from sidekiq_metrics.tools.alerts import AlertFlags, Context  # imported when used: `run` never loads it


def _option(setting: Setting) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A setting's flag, made from its declaration (config.SETTINGS). Values are parsed by config, not by
    click, so that a flag and its variable are checked alike and a bad one gets the same one-line error."""
    flag = setting.flag or f"--{setting.name.replace('_', '-')}"  # (every setting of SETTINGS declares one)
    where = f"[env {setting.variable}; default {setting.shown_default}]"
    text = setting.help.replace("`", "")
    if setting.boolean:
        name = flag.removeprefix("--")
        return click.option(f"--{name}/--no-{name}", setting.name, default=None, help=f"{text} {where}")
    return click.option(flag, setting.name, help=f"{text} {where}")


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for setting in reversed((REDIS_URL, *SETTINGS)):
        func = _option(setting)(func)
    return func


def resolve_settings(flags: dict[str, object]) -> Settings:
    """Settings from flags and the environment, or exit 2 with one line naming what is wrong."""
    try:
        return load_settings(os.environ, flags)
    except ConfigError as exc:
        click.echo(f"sidekiq-metrics: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sidekiq-metrics")
def main() -> None:
    """Sidekiq queue metrics read straight from Redis, printed as Heroku log metrics."""
    _usable_streams()


class _ClosedStream(io.TextIOBase):
    """stdout as it is when the process was started with it closed: writing to it is writing to a reader
    that is gone (BrokenPipeError), which the commands already end on quietly."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "stdout is closed")


def _usable_streams() -> None:
    """The standard streams as a dyno, a shell or a terminal may hand them over: closed (None), or in an
    encoding that cannot spell a queue's name. No output ever fails on an encoding (backslash escapes
    stand in), a closed stdout reads as a reader gone, and a closed stderr swallows what we would say."""
    if sys.stdout is None:
        sys.stdout = _ClosedStream()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


@main.command()
@settings_options
@click.option("--once", is_flag=True, help="Poll once, print, and exit (status 1 if Redis cannot be read).")
def run(once: bool, **flags: object) -> None:
    """Poll Sidekiq every interval and report to the chosen outputs (l2met lines on stdout by default)."""
    from sidekiq_metrics.wiring import run as run_loop

    sys.exit(run_loop(resolve_settings(flags), once=once))


@main.command()
@settings_options
def doctor(**flags: object) -> None:
    """Check the set-up, one line a check, with the fix for each problem. Exit 1 if the emitter would not work."""
    from sidekiq_metrics.tools.doctor import run_doctor

    sys.exit(run_doctor(os.environ, flags, sys.stdout))


@main.command()
@settings_options
@click.option("--every", default=2.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between refreshes.")
@click.option("--threshold", default=30.0, show_default=True, type=click.FloatRange(0),
              help="Latency (seconds) above which a queue is marked.")
def watch(every: float, threshold: float, **flags: object) -> None:
    """Queue health live in the terminal, worst queue first. Ctrl-C to leave."""
    from sidekiq_metrics.tools.watch import run_watch

    sys.exit(run_watch(resolve_settings(flags), every, threshold))


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sidecar(command: tuple[str, ...]) -> None:
    """Run COMMAND with an emitter beside it that polls while it holds the Redis lease (Fir's Procfile: `web:
    sidekiq-metrics sidecar -- bundle exec puma`). The emitter ends with COMMAND, whose exit status and signals are
    passed on."""
    from sidekiq_metrics.sidecar import USAGE, become_sidecar

    if not command:
        click.echo(f"sidekiq-metrics: {USAGE}", err=True)
        sys.exit(EXIT_CONFIG)
    sys.exit(become_sidecar(list(command)))


@main.group()
def autoscale() -> None:
    """Autoscaling tools (autoscaling itself runs in `run`, configured by SIDEKIQ_METRICS_AUTOSCALE_*)."""


@autoscale.command()
@click.argument("recording", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--start", "starts", multiple=True, metavar="TYPE=N",
              help="The formation at the start of the recording, e.g. worker=3 (default: each type's MIN).")
@click.option("--dyno", default=None, metavar="DYNO",
              help="Read only this dyno's lines of a `heroku logs` file (default: the one whose lines carry "
                   "metrics.up).")
def simulate(recording: str, starts: tuple[str, ...], dyno: str | None) -> None:
    """What autoscaling would have done with recorded readings: the json output's lines, or l2met lines from
    `heroku logs`. The SIDEKIQ_METRICS_AUTOSCALE_* settings apply; no Redis, no Platform API, no token."""
    from sidekiq_metrics.tools.simulate import run_simulation

    sys.exit(run_simulation(os.environ, recording, starts, sys.stdout, dyno))


def _alert_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The thresholds and naming of `alerts` and `dashboard`, taken as text: tools/alerts.py parses them, so that a
    bad one is one line and status 2 (docs/alerts.md)."""
    options = [
        click.option("--naming", default="prometheus", show_default=True,
                     help="Series names of our Prometheus endpoint (prometheus) or of our OTLP export as a "
                          "Prometheus-compatible backend stores it (otlp)."),
        click.option("--latency", default="30", show_default=True, help="Seconds a queue may wait."),
        click.option("--queue-latency", multiple=True, metavar="QUEUE=SECONDS",
                     help="A queue's own latency threshold (`orders:critical=10` on the shard orders)."),
        click.option("--failure-ratio", default="0.05", show_default=True, help="Failed / processed, 0 to 1."),
        click.option("--memory-ratio", default="0.9", show_default=True, help="Redis used / maxmemory, 0 to 1."),
        click.option("--utilization", default="0.95", show_default=True, help="Busy / concurrency, 0 to 1."),
        click.option("--scheduler-lag", default="300", show_default=True,
                     help="Seconds the schedule or retry set's earliest due job may be late."),
        click.option("--stuck-job", default="3600", show_default=True, help="Seconds a job may run."),
        click.option("--for-scale", default="1", show_default=True,
                     help="For tests: multiply every rule's `for:` (0 to 1)."),
        click.option("--docs-url", default="docs/troubleshooting.md", show_default=True,
                     help="The absolute http(s) URL of docs/troubleshooting.md, for each rule's runbook_url "
                          "(pass it: the default is a relative link)."),
        click.option("--selector", default="", metavar="MATCHERS",
                     help="PromQL label matchers of this app's series, e.g. 'app=\"shop\"', when one store holds "
                          "several apps' series: added to every selector, kept by every aggregation."),
        click.option("--scrape-interval", default="60", show_default=True, metavar="SECONDS",
                     help="How often the store scrapes our endpoint: the rules' windows and `for:` span readings."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _alert_flags(flags: dict[str, object]) -> AlertFlags:
    """The command's own flags taken out of `flags`, which keeps the settings' ones."""
    from sidekiq_metrics.tools.alerts import AlertFlags

    return AlertFlags(**{name: flags.pop(name) for name in AlertFlags.__dataclass_fields__})  # type: ignore[arg-type]


def _alert_context(own: AlertFlags, settings: Settings) -> tuple[Context, float]:
    """The names and thresholds the rules and the dashboard are made with, or exit 2 with one line."""
    from sidekiq_metrics.tools.alerts import settings_context

    try:
        return settings_context(own, settings)
    except ConfigError as exc:
        click.echo(f"sidekiq-metrics: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


@main.command()
@settings_options
@_alert_options
def alerts(**flags: object) -> None:
    """Print Prometheus alerting rules for these metrics, with this app's prefix, shards and thresholds
    (docs/alerts.md). Save them as a rules file: `sidekiq-metrics alerts > sidekiq.rules.yml`."""
    from sidekiq_metrics.tools.alerts import run_alerts

    own = _alert_flags(flags)
    settings = resolve_settings(flags)
    ctx, scale = _alert_context(own, settings)
    sys.exit(run_alerts(own, ctx, scale, settings, sys.stdout, sys.stderr))


@main.command()
@settings_options
@_alert_options
def dashboard(**flags: object) -> None:
    """Print a Grafana dashboard (JSON model) of these metrics: import it in Grafana (Dashboards > New > Import)."""
    from sidekiq_metrics.tools.dashboard import run_dashboard

    own = _alert_flags(flags)
    settings = resolve_settings(flags)
    ctx, _ = _alert_context(own, settings)
    sys.exit(run_dashboard(ctx, settings, sys.stdout, sys.stderr))


@main.command()
@click.option("--polls", default=3, show_default=True, type=click.IntRange(1, 100), help="How many polls to show.")
def demo(polls: int) -> None:
    """Start a throwaway redis-server holding sample Sidekiq jobs and show a few polls."""
    from sidekiq_metrics.tools.demo import run_demo

    sys.exit(run_demo(polls))
