"""The documentation checked against the code: tables made from the declarations, every variable the
code reads documented, every flag made from a declaration, and no link to a page that is not there."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
from pathlib import Path

from sidekiq_metrics.autoscale.settings import AUTOSCALE_RULE_SETTINGS
from sidekiq_metrics.config import SETTINGS, Settings
from sidekiq_metrics.redis.target import REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def tables_module():
    spec = importlib.util.spec_from_file_location("tables", DOCS / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tables_in_docs_are_the_ones_the_code_makes():
    tables = tables_module()
    assert tables.stale() == [], "run .venv/bin/python docs/tables.py"
    text = "".join(path.read_text() for path in DOCS.glob("*.md"))
    assert set(re.findall(r"<!-- table: ([a-z-]+) -->", text)) == set(tables.TABLES)  # each table is somewhere


def test_a_table_that_disagrees_with_the_code_is_found(tmp_path, monkeypatch):
    tables = tables_module()
    page = (DOCS / "configuration.md").read_text()
    (tmp_path / "configuration.md").write_text(page.replace("`30`", "`60`", 1))
    monkeypatch.setattr(tables, "DOCS", tmp_path)
    assert [p.name for p in tables.stale()] == ["configuration.md"]


def test_every_variable_the_code_reads_is_documented():
    sources = [*ROOT.glob("sidekiq_metrics/**/*.py"), *ROOT.glob("bin/*"), *ROOT.glob("lib/*.sh"),
               *ROOT.glob("profile.d/*.sh")]
    read = set()
    for path in sources:
        read |= set(re.findall(r"\b(SIDEKIQ_METRICS_[A-Z][A-Z0-9_]*[A-Z0-9])\b", path.read_text()))
    suffixes = "|".join(s.variable.rsplit("<TYPE>_", 1)[1] for s in AUTOSCALE_RULE_SETTINGS)
    per_type = re.compile(rf"SIDEKIQ_METRICS_AUTOSCALE_[A-Z0-9_]+_({suffixes})")
    read = {v for v in read if not per_type.fullmatch(v)}  # SIDEKIQ_METRICS_AUTOSCALE_<TYPE>_MAX and its like
    documented = "".join(path.read_text() for path in DOCS.glob("*.md"))
    assert read, "the search found no variable at all"
    assert sorted(v for v in read if f"`{v}`" not in documented) == []


def test_the_settings_are_the_declarations_and_the_flags_are_made_from_them():
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert fields == {s.name for s in SETTINGS} | {"shards", "autoscale", "otlp", "origins"}
    help_text = subprocess.run([str(ROOT / ".venv/bin/sidekiq-metrics"), "run", "--help"], capture_output=True,
                               text=True, check=True).stdout
    flags = set(re.findall(r"^\s+(--[a-z-]+)", help_text, re.M))
    declared = {s.flag for s in (REDIS_URL, *SETTINGS)}
    assert flags == declared | {"--once"}  # (-h, --help is listed as "-h, --help")
    for setting in (REDIS_URL, *SETTINGS):
        assert setting.variable in " ".join(help_text.split()).replace("- ", "-")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_the_documents_lead_somewhere():
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)]*))?\)", page.read_text()):
            if "://" in target or target.startswith("<"):
                continue
            linked = page.parent / target if target else page
            assert linked.exists(), f"{page.name} links to {target}, which is not there"
            if anchor and linked.suffix == ".md":
                headings = {slug(h) for h in re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)}
                assert anchor in headings, f"{page.name} links to {target}#{anchor}, a heading that is not there"


def test_every_app_wide_autoscaling_variable_read_is_declared():
    """Issue 27: the app-wide autoscaling variables were parsed and documented by hand; their docs table is now
    made from autoscale/settings.AUTOSCALE_APP_SETTINGS, and they are read from there: no variable of the section's
    code is read by hand."""
    import inspect

    from sidekiq_metrics.autoscale import settings as autoscale_settings

    code = inspect.getsource(autoscale_settings.resolve_autoscale)
    read = set(re.findall(r'"((?:SIDEKIQ_METRICS|HEROKU)_[A-Z_]+)"', code))
    declared = {v for s in autoscale_settings.AUTOSCALE_APP_SETTINGS for v in s.variables}
    assert read <= declared  # (named only in the lines that say one is missing)
    assert "read_section" in code and "env.get(" not in code.replace('env.get("SIDEKIQ_METRICS_AUTOSCALE"', "")
