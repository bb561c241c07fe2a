"""The one way a setting is declared, whichever layer owns it, and the one way a section of them is read.

A Setting is a value's field, its environment variables (the first one set wins), its flag when it
has one, its default, what it means and the parser that checks it. Each layer declares its own
section beside the code that uses it (the Redis target, the reader, the loop, the outputs,
autoscaling, otlp); config.py only assembles them. `--help`, `doctor` and the tables in docs/ are
made from the same declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.parsing import format_value, parse_bool

TYPE = "<TYPE>"  # stands for a process type in a per-type variable: SIDEKIQ_METRICS_AUTOSCALE_<TYPE>_MAX


@dataclass(frozen=True)
class Setting:
    name: str  # the field it fills
    variables: tuple[str, ...]  # the environment variables it is read from, the first one set winning
    default: object
    help: str  # what it means, one sentence: for --help, `doctor` and the docs
    parse: Callable[[str, str], object] = field(repr=False)  # (raw text, the flag or variable) -> value
    flag: str | None = None  # of `run` and the other commands; None: a variable only
    shown: str | None = None  # the default as the docs say it, when its value does not say it well

    @property
    def variable(self) -> str:
        """The variable it is documented by."""
        return self.variables[0]

    @property
    def boolean(self) -> bool:
        return self.parse is parse_bool

    @property
    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        return "none" if self.default is None else format_value(self.default)

    def for_type(self, process_type: str) -> Setting:
        """A per-type setting as one process type reads it: SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX for `worker` (a dash
        reads as an underscore: `urgent-worker`)."""
        name = process_type.upper().replace("-", "_")
        return replace(self, variables=tuple(v.replace(TYPE, name) for v in self.variables))


def raw_value(setting: Setting, env: Mapping[str, str], flags: Mapping[str, object] | None = None
              ) -> tuple[str | None, str]:
    """The text a setting is given (its flag, else the first of its variables that is set; an empty variable is
    unset) and the flag or variable to name it by; (None, its variable) when it is not given."""
    value = (flags or {}).get(setting.name)
    if value is not None and setting.flag:
        return str(value).strip(), setting.flag
    for variable in setting.variables:
        raw = env.get(variable, "").strip()
        if raw:
            return raw, variable
    return None, setting.variable


def read_section(section: Sequence[Setting], env: Mapping[str, str], origins: dict[str, str],
                 errors: list[ConfigError], *, flags: Mapping[str, object] | None = None,
                 origin_prefix: str = "") -> dict[str, Any]:
    """Every setting of a section: its value, or its default with the error added to `errors`. `origins` says,
    under the setting's name (after `origin_prefix`), where each value came from: a flag, a variable, "default"."""
    values: dict[str, Any] = {}  # Any: each its own type
    for setting in section:
        raw, label = raw_value(setting, env, flags)
        key = origin_prefix + setting.name
        values[setting.name] = setting.default
        origins[key] = "default"
        if raw is not None:
            try:
                values[setting.name] = setting.parse(raw, label)
                origins[key] = label
            except ConfigError as exc:
                exc.field = setting.name
                errors.append(exc)
    return values
