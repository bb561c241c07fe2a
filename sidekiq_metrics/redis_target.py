"""Where Redis is: what the transport needs to connect, parsed from a URL by config.py."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is, parsed from a URL. `display` is safe to print: it has no credentials."""

    scheme: str
    host: str | None = None
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    unix_path: str | None = None
    tls_verify: bool | None = None  # the URL's ?ssl_cert_reqs=, when it has one

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    @property
    def display(self) -> str:
        auth = "***@" if (self.username or self.password) else ""
        if self.unix_path:
            return f"unix://{auth}{self.unix_path}?db={self.db}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.db}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never reach any output."""
        return tuple(s for s in (self.password, self.username) if s)


DEFAULT_SHARD = "default"  # the name of the one Redis when no shards are named (it is never printed)


@dataclass(frozen=True)
class Shard:
    """One Redis of a sharded Sidekiq (`Sidekiq::Client.via`), by the name the user gives it. The first is
    Sidekiq's default pool: its readings keep the names they have without shards."""

    name: str
    target: RedisTarget
    variable: str  # the config var that holds its URL, to name it by in errors (never its URL)
