"""The reference tables in docs/, made from the declarations in the code.

    .venv/bin/python docs/tables.py          rewrite the tables in place
    .venv/bin/python docs/tables.py --check  exit 1 if a table differs from the code (tests/test_docs.py)

A table lives between `<!-- table: NAME -->` and `<!-- end of table -->`; only what is between
them is rewritten. Settings come from config.SETTINGS and autoscale/settings.AUTOSCALE_RULE_SETTINGS, metrics
from catalogue.CATALOGUE: change those, then run this.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from sidekiq_metrics.autoscale.settings import AUTOSCALE_APP_SETTINGS, AUTOSCALE_RULE_SETTINGS
from sidekiq_metrics.catalogue import CATALOGUE, Kind, Metric
from sidekiq_metrics.config import SETTINGS
from sidekiq_metrics.outputs.otlp import UNITS, otel_name
from sidekiq_metrics.outputs.otlp_settings import OTLP_SETTINGS
from sidekiq_metrics.redis.target import REDIS_URL
from sidekiq_metrics.setting import Setting
from sidekiq_metrics.tools.alerts import alert_table

DOCS = Path(__file__).resolve().parent
_BLOCK = re.compile(r"(<!-- table: (?P<name>[a-z-]+) -->\n).*?(<!-- end of table -->)", re.S)


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def settings_table() -> str:
    def row(s: Setting) -> str:
        flag = f"`{s.flag}`" + (f" / `--no-{s.flag[2:]}`" if s.boolean else "") if s.flag else ""
        default = s.shown_default if s.shown is not None or s.default is None else f"`{s.shown_default}`"
        return _row(f"`{s.variable}`", flag, default, s.help)
    return "\n".join([_row("variable", "flag", "default", "meaning"), "|---|---|---|---|",
                      *map(row, (REDIS_URL, *SETTINGS))])


def autoscale_rule_table() -> str:
    rows = [_row(f"`{s.variable}`",
                 f"`{s.shown_default}`" if s.shown_default[0].isdigit() else s.shown_default, s.help)
            for s in AUTOSCALE_RULE_SETTINGS]
    return "\n".join([_row("variable", "default", "meaning"), "|---|---|---|", *rows])


def autoscale_app_table() -> str:
    rows = [_row(f"`{s.variable}`", s.shown_default, s.help) for s in AUTOSCALE_APP_SETTINGS]
    return "\n".join([_row("variable", "default", "meaning"), "|---|---|---|", *rows])


def metrics_table() -> str:
    def row(m: Metric) -> str:
        name = f"sidekiq.<queue>.{m.name}" if m.per_queue else f"sidekiq.{m.name}"
        return _row(f"`{name}`", m.kind.value, m.unit.value, m.help)
    return "\n".join([_row("metric", "kind", "unit", "meaning"), "|---|---|---|---|", *map(row, CATALOGUE)])


def otlp_table() -> str:
    rows = [_row(" / ".join(f"`{v}`" for v in s.variables), s.shown_default if s.default in (None, ()) else
                 f"`{s.shown_default}`", s.help) for s in OTLP_SETTINGS]
    return "\n".join([_row("variable (the first one set wins)", "default", "meaning"), "|---|---|---|", *rows])


def otel_names_table() -> str:
    """Each metric as the otlp output sends it. A running total and its increase are one Sum."""
    rows = []
    for m in CATALOGUE:
        if m.kind is Kind.DELTA and m.total is not None:
            continue  # sent with its total, as one Sum
        l2met = f"sidekiq.<queue>.{m.name}" if m.per_queue else f"sidekiq.{m.name}"
        also = next((f" and `sidekiq.{d.name}`" for d in CATALOGUE if d.total is m), "")
        instrument = "Gauge" if m.kind is Kind.GAUGE else "Sum (monotonic)"
        attributes = "queue" if m.per_queue else "process_type" if "<type>" in m.name else ""
        rows.append(_row(f"`{l2met}`{also}", f"`{otel_name('sidekiq', m)}`", instrument, f"`{UNITS[m.unit]}`",
                         attributes))
    return "\n".join([_row("l2met name", "OpenTelemetry name", "instrument", "unit", "attributes"),
                      "|---|---|---|---|---|", *rows])


TABLES: dict[str, Callable[[], str]] = {
    "settings": settings_table, "autoscale-rule": autoscale_rule_table, "autoscale-app": autoscale_app_table,
    "metrics": metrics_table,
    "otlp": otlp_table, "otel-names": otel_names_table, "alerts": alert_table,
}


def rendered(text: str) -> str:
    """`text` with each of its tables made anew."""
    return _BLOCK.sub(lambda m: f"{m[1]}{TABLES[m['name']]()}\n{m[3]}", text)


def stale() -> list[Path]:
    """The documents whose tables differ from the code."""
    return [path for path in sorted(DOCS.glob("*.md")) if rendered(path.read_text()) != path.read_text()]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        for path in stale():
            print(f"{path.name}: a table differs from the code; run .venv/bin/python docs/tables.py")
        return 1 if stale() else 0
    for path in sorted(DOCS.glob("*.md")):
        path.write_text(rendered(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
