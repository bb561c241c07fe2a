"""The otlp output's settings: the variables every OpenTelemetry SDK reads, declared once (OTLP_SETTINGS), parsed and
checked here, beside the output that uses them; config.py only calls resolve_otlp when `otlp` is chosen."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.parsing import check_host, one_of, quote, text, whole_number
from sidekiq_metrics.setting import Setting, read_section


@dataclass(frozen=True)
class OtlpSettings:
    endpoint: str  # the whole URL exports are POSTed to
    headers: tuple[tuple[str, str], ...] = field(repr=False)  # API keys: never printed
    protocol: str  # http/protobuf or http/json
    compression: str  # gzip or none
    timeout: float  # seconds for one export
    certificate: str | None  # a CA file to verify the endpoint with, instead of the system's
    client_certificate: str | None
    client_key: str | None
    temporality: str  # cumulative or delta
    resource: tuple[tuple[str, str], ...]  # the resource attributes, service.name first

    @property
    def secrets(self) -> tuple[str, ...]:
        """The header values scrubbed from every line: those of a header named like a credential, and any of
        SECRET_LENGTH characters or more. Not a short value under another name (`X-Scope-OrgID=1`): masking
        it would mask every `1` of our own lines (the port, the interval), and it keeps nothing secret."""
        return tuple(value for name, value in self.headers
                     if value and (len(value) >= SECRET_LENGTH or _CREDENTIAL_HEADER.search(name)))

    @property
    def display(self) -> str:
        """Where exports go, safe to print: scheme, host and port, no path or query (a key may be there)."""
        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _otel(suffix: str) -> tuple[str, str]:
    return f"OTEL_EXPORTER_OTLP_METRICS_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"


GENERAL_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
MAX_OTLP_TIMEOUT = 3600.0  # seconds: what a timeout of 0 ("no limit") means here
SECRET_LENGTH = 8  # a header value this long is scrubbed whatever the header's name
_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|pass|cookie|sign|credential|session|bearer", re.IGNORECASE)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_ATTRIBUTE_KEY = re.compile(r"[\x21-\x7e]{1,256}")


def parse_otlp_endpoint(raw: str, label: str) -> str:
    """The URL exports go to: the general variable's with `v1/metrics` appended to its path, the metrics
    variable's as it is (`/` when it has no path). Never quoted back: some put keys in URLs."""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        raise ConfigError(label, "must be an http:// or https:// URL (the value could not be parsed)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(label, "must be an http:// or https:// URL with a host, e.g. https://otlp.example.com")
    if parts.username or parts.password:
        raise ConfigError(label, "must not hold credentials: put API keys in OTEL_EXPORTER_OTLP_HEADERS")
    check_host(parts.hostname, label)
    path = parts.path
    if label == GENERAL_ENDPOINT:
        path = (path if path.endswith("/") else path + "/") + "v1/metrics"
    return parts._replace(path=path or "/", fragment="").geturl()


def _key_values(raw: str, label: str, what: str) -> list[tuple[str, str]]:
    """`key1=value1,key2=value2`, values percent-decoded (the W3C Baggage form OpenTelemetry uses).
    Errors never quote a value: these hold API keys."""
    pairs = []
    for n, item in enumerate((i for i in raw.split(",") if i.strip()), 1):
        key, sep, value = item.partition("=")
        key, value = key.strip(), unquote(value.strip())
        if not sep or not key:
            raise ConfigError(label, f"must be {what} pairs key=value separated by commas (entry {n} is not)")
        if any(c in value for c in "\r\n\0"):
            raise ConfigError(label, f"has a line break or NUL in the value of entry {n}")
        pairs.append((key, value))
    return pairs


def parse_otlp_headers(raw: str, label: str) -> tuple[tuple[str, str], ...]:
    pairs = _key_values(raw, label, "header")
    for n, (key, value) in enumerate(pairs, 1):
        if not _HEADER_NAME.fullmatch(key):
            raise ConfigError(label, f"has a header name that HTTP does not allow (entry {n})")
        try:
            value.encode("latin-1")  # how HTTP/1.1 (and http.client) sends a header's value
        except UnicodeEncodeError:
            raise ConfigError(label, f"has a value HTTP headers cannot carry in entry {n}: only Latin-1 "
                                     "characters (percent-encode UTF-8 only where the backend decodes it)") from None
    return tuple(pairs)


def parse_resource_attributes(raw: str, label: str) -> tuple[tuple[str, str], ...]:
    pairs = _key_values(unquote_keys(raw), label, "attribute")
    for n, (key, _) in enumerate(pairs, 1):
        if not _ATTRIBUTE_KEY.fullmatch(key):
            raise ConfigError(label, f"has an attribute key that is empty or not printable ASCII (entry {n})")
    return tuple(pairs)


def unquote_keys(raw: str) -> str:
    """Keys may be percent-encoded too; decoding them keeps `,` and `=` inside a value encoded."""
    return ",".join(f"{unquote(k)}{sep}{v}" for k, sep, v in (item.partition("=") for item in raw.split(",")))


def parse_otlp_protocol(raw: str, label: str) -> str:
    low = raw.lower()
    if low == "grpc":
        raise ConfigError(label, "is grpc, which this emitter does not speak: use http/protobuf (the default; "
                                 "a Collector takes it on port 4318)")
    if low not in ("http/protobuf", "http/json"):
        raise ConfigError(label, f"must be http/protobuf or http/json, got {quote(raw)}")
    return low


def parse_otlp_timeout(raw: str, label: str) -> float:
    """Milliseconds, as OpenTelemetry's Timeout type; 0 means no limit, here an hour."""
    if whole_number(raw) is None or int(raw) > MAX_OTLP_TIMEOUT * 1000:
        raise ConfigError(label, f"must be a whole number of milliseconds from 0 to {MAX_OTLP_TIMEOUT * 1000:.0f}, "
                                 f"e.g. 10000, got {quote(raw)}")
    return int(raw) / 1000 or MAX_OTLP_TIMEOUT


def parse_pem_file(raw: str, label: str) -> str:
    if not (os.path.isfile(raw) and os.access(raw, os.R_OK)):
        raise ConfigError(label, f"must be the path of a readable PEM file, got {quote(raw, 80)}")
    return raw


def parse_temporality(raw: str, label: str) -> str:
    """lowmemory asks for delta only for synchronous counters; ours are observed, so it means cumulative."""
    low = raw.lower()
    if low not in ("cumulative", "delta", "lowmemory"):
        raise ConfigError(label, f"must be cumulative, delta or lowmemory, got {quote(raw)}")
    return "cumulative" if low == "lowmemory" else low


OTLP_SETTINGS: tuple[Setting, ...] = (
    Setting("endpoint", (_otel("ENDPOINT")[0], GENERAL_ENDPOINT), "http://localhost:4318/v1/metrics",
                "where exports go. The metrics variable is the whole URL; the general one a base URL, to which "
                "`v1/metrics` is added", parse_otlp_endpoint),
    Setting("headers", _otel("HEADERS"), (), "HTTP headers of every export, `key=value,key2=value2`, values "
                "percent-decoded: the backend's API key goes here. Never printed: a value is scrubbed from every "
                "line when its header is named like a credential (auth, key, token, secret, ...) or it is 8 "
                "characters or more", parse_otlp_headers, shown="none"),
    Setting("protocol", _otel("PROTOCOL"), "http/protobuf", "`http/protobuf` or `http/json`; `grpc` is refused",
                parse_otlp_protocol),
    Setting("compression", _otel("COMPRESSION"), "none", "`gzip` or `none`", one_of(("gzip", "none"))),
    Setting("timeout", _otel("TIMEOUT"), 10.0, "milliseconds one export may take; 0: no limit (an hour)",
                parse_otlp_timeout, shown="10000"),
    Setting("certificate", _otel("CERTIFICATE"), None, "a PEM file of the CA to verify the endpoint with, "
                "instead of the system's", parse_pem_file),
    Setting("client_certificate", _otel("CLIENT_CERTIFICATE"), None, "a PEM client certificate, for mutual "
                "TLS (with the key below)", parse_pem_file),
    Setting("client_key", _otel("CLIENT_KEY"), None, "the PEM private key of that client certificate",
                parse_pem_file),
    Setting("temporality", ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",), "cumulative",
                "`cumulative`, or `delta` for backends that want it (`lowmemory` means cumulative here: "
                "Sidekiq's counters are observed, not counted by us)", parse_temporality),
    Setting("service_name", ("OTEL_SERVICE_NAME",), None, "the resource's `service.name`; unset: "
                "`service.name` of the attributes below, else `HEROKU_APP_NAME`, else `sidekiq`",
                text),
    Setting("resource_attributes", ("OTEL_RESOURCE_ATTRIBUTES",), (), "more resource attributes, "
                "`key=value,...`, percent-decoded; they win over those read from Heroku's dyno metadata",
                parse_resource_attributes, shown="none"),
)

def _tls_files(ca: str | None, certificate: str | None, key: str | None,
               origins: Mapping[str, str]) -> list[ConfigError]:
    """The PEM files loaded as the exporter will load them, so that one which is not a certificate (or a key
    that does not go with it) is a setting's error now, not a traceback at the first export."""
    context = ssl.create_default_context()
    try:
        if ca:
            context.load_verify_locations(cafile=ca)
    except (ssl.SSLError, OSError):
        return [ConfigError(origins.get("otlp.certificate", _otel("CERTIFICATE")[1]),
                            "must be a PEM file of CA certificates (none could be read from it)")]
    try:
        if certificate:
            context.load_cert_chain(certificate, key)
    except (ssl.SSLError, OSError):
        return [ConfigError(origins.get("otlp.client_certificate", _otel("CLIENT_CERTIFICATE")[1]),
                            "and its key must be a PEM certificate and the PEM private key that goes with it")]
    return []


# Heroku's dyno metadata (`heroku labs:enable runtime-dyno-metadata`) as the semantic conventions name it
# (semantic-conventions: docs/resource/cloud-provider/heroku.md).
HEROKU_RESOURCE = (("HEROKU_APP_ID", "heroku.app.id"), ("HEROKU_RELEASE_VERSION", "service.version"),
                   ("HEROKU_SLUG_COMMIT", "heroku.release.commit"),
                   ("HEROKU_RELEASE_CREATED_AT", "heroku.release.creation_timestamp"))


def resolve_otlp(env: Mapping[str, str], origins: dict[str, str], errors: list[ConfigError]) -> OtlpSettings | None:
    """The otlp output's settings from the environment; None, with `errors` added to, when any is bad."""
    before = len(errors)
    values = read_section(OTLP_SETTINGS, env, origins, errors, origin_prefix="otlp.")
    if bool(values["client_certificate"]) != bool(values["client_key"]):
        errors.append(ConfigError(_otel("CLIENT_KEY")[1], "and OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE must be set "
                                  "together, for mutual TLS"))
    elif len(errors) == before:
        errors += _tls_files(values["certificate"], values["client_certificate"], values["client_key"], origins)
    if len(errors) > before:
        return None
    given = dict(values.pop("resource_attributes"))
    name = values.pop("service_name") or given.get("service.name") or env.get("HEROKU_APP_NAME", "").strip() \
        or "sidekiq"
    resource = {"service.name": name}
    instance = env.get("HEROKU_DYNO_ID", "").strip() or env.get("DYNO", "").strip()
    if instance:
        resource["service.instance.id"] = instance
    if env.get("DYNO", "").strip():
        resource["cloud.provider"] = "heroku"
    resource.update((key, env[var].strip()) for var, key in HEROKU_RESOURCE if env.get(var, "").strip())
    resource.update((k, v) for k, v in given.items() if k != "service.name")
    return OtlpSettings(resource=tuple(resource.items()), **values)
