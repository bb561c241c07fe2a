"""The two Heroku Platform API calls autoscaling needs: a formation's quantity, and setting it.

    GET   /apps/{app}/formation/{type}                    -> {"quantity": 2, "type": "worker", ...}
    PATCH /apps/{app}/formation/{type}  {"quantity": 3}   -> the same, updated

Standard library only (http.client). Every failure becomes an ApiError whose `kind` says what
the caller should do; no message ever holds the token.
"""

from __future__ import annotations

import http.client
import json
import ssl
from urllib.parse import quote, urlsplit

from sidekiq_metrics import __version__
from sidekiq_metrics.http.deadline import Deadline
from sidekiq_metrics.http.retry_after import retry_after

ACCEPT = "application/vnd.heroku+json; version=3"
TIMEOUT = 10.0  # seconds for a whole request, connect to the last byte: a slow API delays autoscaling, never metrics
DEFAULT_RETRY_AFTER = 60.0  # when a 429 names no Retry-After (Heroku refills ~75 requests a minute)

# ApiError kinds
REFUSED = "refused"  # 401/403: the token cannot do this; retrying will not help
NOT_FOUND = "not_found"  # 404: no such app, or no such process type in its formation
RATE_LIMITED = "rate_limited"  # 429: wait `retry_after` seconds
UNAVAILABLE = "unavailable"  # 5xx, timeouts, connection errors, a reply we cannot read: try next poll


class ApiError(Exception):
    def __init__(self, kind: str, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class PlatformApi:
    def __init__(self, base_url: str, token: str, app: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._base_path = parts.path.rstrip("/")
        self._headers = {"Accept": ACCEPT, "Authorization": f"Bearer {token}",
                         "User-Agent": f"sidekiq-metrics/{__version__}"}
        self.app = app
        self.timeout = timeout

    def quantity(self, process_type: str) -> int:
        return self._formation("GET", process_type, None)

    def scale(self, process_type: str, quantity: int) -> int:
        return self._formation("PATCH", process_type, {"quantity": quantity})

    def _formation(self, method: str, process_type: str, body: dict[str, int] | None) -> int:
        path = f"{self._base_path}/apps/{quote(self.app, safe='')}/formation/{quote(process_type, safe='')}"
        status, headers, data = self._request(method, path, body)
        if status == 200:
            try:
                quantity = json.loads(data)["quantity"]
            except (ValueError, KeyError, TypeError):
                quantity = None
            if isinstance(quantity, int) and not isinstance(quantity, bool) and quantity >= 0:
                return quantity
            raise ApiError(UNAVAILABLE, f"{method} {process_type} formation: the reply has no quantity")
        reason = _error_message(data)
        if status in (401, 403):
            raise ApiError(REFUSED, f"the Heroku API refused the token ({status}{reason})")
        if status == 404:
            raise ApiError(NOT_FOUND, f"app {self.app!r} has no {process_type!r} process type ({status}{reason})")
        if status == 429:
            raise ApiError(RATE_LIMITED, f"the Heroku API rate limit was reached ({status}{reason})",
                           _retry_after(headers.get("retry-after")))
        raise ApiError(UNAVAILABLE, f"the Heroku API answered {status}{reason}")

    def _request(self, method: str, path: str, body: dict[str, int] | None) -> tuple[int, dict[str, str], bytes]:
        headers = dict(self._headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        deadline = Deadline(lambda: conn.sock, self.timeout)  # the whole exchange: a trickled answer must not hold it
        try:
            with deadline:
                conn.timeout = deadline.left()
                conn.connect()
                deadline.left()  # a connect that ended past the deadline
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read(1 << 20)
            if deadline.expired:
                raise TimeoutError
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired or isinstance(exc, TimeoutError):
                raise ApiError(UNAVAILABLE, f"no answer from the Heroku API within {self.timeout:g}s") from None
            raise ApiError(UNAVAILABLE, f"cannot reach the Heroku API: {type(exc).__name__}: "
                                        f"{' '.join(str(exc).split())}") from None
        finally:
            conn.close()


def _error_message(data: bytes) -> str:
    """Heroku's error body, {"id": "...", "message": "..."}, as ': message' (one line). Not cut here:
    whoever prints it scrubs the token first, then cuts (redact.describe_error)."""
    try:
        message = json.loads(data).get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {' '.join(str(message).split())}" if message else ""


def _retry_after(value: str | None) -> float:
    """A 429's wait: Retry-After within 1 s to an hour, else a minute (what Heroku refills in)."""
    seconds = retry_after(value, least=1.0, most=3600.0)
    return DEFAULT_RETRY_AFTER if seconds is None else seconds
