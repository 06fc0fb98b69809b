"""The oracle daemon's configuration: one YAML file, validated before anything starts.

A wrong configuration stops the daemon with a message naming every problem (field and line),
so an operator never finds out at the end of a month that a probe was never configured, or that
its slices could hold no sample (finding 9). docs/oracle.md documents every setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from smartsla.addresses import parse_address
from smartsla.database import normalise_url
from smartsla.yamlfile import load_model


class ConfigError(ValueError):
    """The configuration cannot run; the message names the file, line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpCheck(_Strict):
    url: HttpUrl
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=lambda: list(range(200, 400)))
    keyword: str | None = None
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    method: Literal["GET", "HEAD", "POST"] = "GET"


class TcpCheck(_Strict):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class PrometheusCheck(_Strict):
    """A PromQL expression evaluated over the period: a slice is good when its value > threshold
    (or >= with inclusive)."""

    url: HttpUrl
    query: Annotated[str, Field(min_length=1)]
    threshold: float = 0.0
    inclusive: bool = False


class ServiceProbe(_Strict):
    """How one service is measured: exactly one of http, tcp, prometheus."""

    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    prometheus: PrometheusCheck | None = None
    interval_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    failure_threshold: Annotated[int, Field(ge=1, le=100)] = 1
    # For latency services (an experience objective): which percentile of the period is reported.
    latency_percentile: Literal[50, 95, 99] = 95

    @model_validator(mode="after")
    def _exactly_one(self) -> ServiceProbe:
        given = [k for k in ("http", "tcp", "prometheus") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of http, tcp, prometheus (got {given or 'none'})")
        return self

    def timeout_s(self) -> float | None:
        check = self.http or self.tcp
        return None if check is None else check.timeout_s


MAINTENANCE_REMOVED = ("maintenance windows in the oracle's configuration are no longer applied: a figure "
                       "must never depend on something the parties did not sign. Have the provider declare the "
                       "window on-chain with the agreed notice (Agreement.declare_maintenance) and remove this key")
MISSING_DATA_REMOVED = ("missing_data was removed: a slice without a sample is now always 'not measured' (left "
                        "out of good and total), and a period measured for less than the agreement's "
                        "min_measured_ppm gets no report; remove this key (only 'exclude' is still accepted)")


class AgreementEntry(_Strict):
    address: str
    services: dict[str, ServiceProbe] = Field(default_factory=dict)  # overrides the top-level ones
    # Removed (see MAINTENANCE_REMOVED); kept as a field only to refuse it with a clear message.
    maintenance: Any = None

    @field_validator("maintenance")
    @classmethod
    def _no_maintenance(cls, v: Any) -> None:
        if v:
            raise ValueError(MAINTENANCE_REMOVED)
        return None

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return parse_address(v, None)


class KeySource(_Strict):
    """Where the oracle's signing key comes from: an environment variable holding the hex key, or
    an encrypted keystore file whose password is in an environment variable."""

    env: str | None = None
    keystore: Path | None = None
    password_env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> KeySource:
        if (self.env is None) == (self.keystore is None):
            raise ValueError("give either env or keystore (with password_env)")
        if self.keystore is not None and self.password_env is None:
            raise ValueError("a keystore needs password_env")
        return self


class ChainConfig(_Strict):
    rpc_url: str = "http://127.0.0.1:8545"
    factory: str | None = None  # default: the deployments record for the chain id
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    # Never pay more than this per gas (EIP-1559 max fee); above it, reports wait for fees to fall.
    max_fee_gwei: Annotated[float, Field(gt=0, le=100_000)] = 500.0
    # Blocks deep before a settlement counts as confirmed; None: 1 on dev chains (ids 1337, 31337),
    # 3 elsewhere. A settlement reorganised out before then is sent again.
    confirmations: Annotated[int, Field(ge=1, le=128)] | None = None
    # A deployed SettlementBatch: due periods of many agreements settle in one transaction (at
    # most batch_size items), each through signed reports. None (the default): the one
    # `smartsla deploy` recorded for the chain id beside the factory in use, if any; false: one
    # transaction per period.
    batch_contract: str | Literal[False] | None = None
    batch_size: Annotated[int, Field(ge=1, le=200)] = 50

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        return v

    @field_validator("factory", "batch_contract")
    @classmethod
    def _factory(cls, v: str | Literal[False] | None) -> str | Literal[False] | None:
        return v if v is None or v is False else parse_address(v, None)


class FleetConfig(_Strict):
    """Several daemons with the same key sharing agreements through a PostgreSQL store
    (oracle.fleet). lease_s: how long a lease lasts without renewal (renewed every lease_s/3):
    a dead daemon's agreements are taken over within it. id: this daemon's name in the leases
    table (default: host name + random suffix)."""

    lease_s: Annotated[float, Field(ge=3, le=3600)] = 15.0
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class OracleConfig(_Strict):
    chain: ChainConfig = Field(default_factory=ChainConfig)
    key: KeySource
    store: str = "sqlite:///oracle.db"
    agreements: list[AgreementEntry] = Field(default_factory=list)
    discover: bool = False  # also serve agreements of the factory naming this oracle...
    discover_providers: list[str] = Field(default_factory=list)  # ...whose provider is one of these
    services: dict[str, ServiceProbe] = Field(default_factory=dict)  # probes by service name
    # Used when the agreement's terms do not state a slice length; must equal it when they do.
    slice_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    # Removed (see MISSING_DATA_REMOVED); kept as a field only to refuse it with a clear message.
    missing_data: str | None = None
    # A period is reported once end + grace_s has passed. None: derived from the agreement's
    # probes (see grace_for), so a 60-s period does not settle a minute late.
    grace_s: Annotated[float | None, Field(ge=0, le=86_400)] = None
    report_check_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # At most this many checks run at once (across all targets); more would only make the
    # checks compete for the CPU, and a check's timeout must measure the target, not the prober.
    max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 64
    listen: str = "127.0.0.1:9464"  # /metrics, /healthz and /reports for committee peers
    peers: list[HttpUrl] = Field(default_factory=list)  # other committee members' listen URLs
    sample_retention_s: Annotated[float, Field(ge=0)] = 90 * 86_400
    fleet: FleetConfig | None = None  # None: this daemon serves every agreement alone

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"must be HOST:PORT, got {v!r}")
        return v

    @field_validator("missing_data")
    @classmethod
    def _missing_data(cls, v: str | None) -> None:
        if v is not None and v != "exclude":
            raise ValueError(MISSING_DATA_REMOVED)
        return None

    @field_validator("discover_providers")
    @classmethod
    def _providers(cls, v: list[str]) -> list[str]:
        out, bad = [], []
        for a in v:
            try:
                out.append(parse_address(a, None))
            except ValueError:
                bad.append(a)
        if bad:  # every one named at once
            raise ValueError(f"not Ethereum addresses: {', '.join(map(repr, bad))}")
        return out

    @model_validator(mode="after")
    def _something_to_serve(self) -> OracleConfig:
        if not self.agreements and not self.discover:
            raise ValueError("list agreements or set discover: true")
        return self

    def problems(self) -> list[tuple[tuple[Any, ...], str]]:
        """Rules across fields, ALL of them: (location, message) pairs (see yamlfile.load_model).

        The daemon checks the same rules again against each agreement's own slice length."""
        found: list[tuple[tuple[Any, ...], str]] = []
        if self.discover and not self.discover_providers:
            found.append((("discover_providers",), "discover: true needs the list of providers whose agreements "
                          "this oracle serves; otherwise anyone can make it spend gas on worthless agreements "
                          "that name it"))
        if self.fleet is not None and not normalise_url(self.store).startswith("postgresql"):
            found.append((("fleet",), "fleet mode needs a PostgreSQL store (postgresql://...): the daemons share "
                          f"leases through row locks that SQLite does not have; store is {self.store!r}"))
        groups: list[tuple[tuple[Any, ...], dict[str, ServiceProbe]]] = [(("services",), self.services)]
        groups += [(("agreements", i, "services"), e.services) for i, e in enumerate(self.agreements)]
        for where, probes in groups:
            for name, probe in probes.items():
                found += [((*where, name, *loc), msg) for loc, msg in probe_problems(probe, self.slice_seconds)]
        return found

    def grace_for(self, probes: dict[str, ServiceProbe]) -> float:
        """grace_s, or by default the longest check timeout + 0.5 s: the last check of a period
        starts before its end (a check that starts later belongs to the next period) and is over
        one timeout later; the daemon flushes the sample queue before computing the figure. A
        Prometheus probe adds its interval_s (the time for the last scrape to be ingested).
        With timeouts no longer than intervals, a period settles within two probe intervals of
        its end (plus the transaction's own time)."""
        if self.grace_s is not None:
            return self.grace_s
        timeouts = [t for p in probes.values() if (t := p.timeout_s()) is not None] or [0.0]
        scrape = [p.interval_s for p in probes.values() if p.prometheus is not None] or [0.0]
        return max(timeouts) + max(scrape) + 0.5

    def probes_for(self, address: str) -> dict[str, ServiceProbe]:
        """Probe definitions for an agreement: its own entries over the top-level ones."""
        merged = dict(self.services)
        for entry in self.agreements:
            if entry.address == address:
                merged.update(entry.services)
        return merged



def probe_problems(probe: ServiceProbe, slice_seconds: int) -> list[tuple[tuple[str, ...], str]]:
    """Why a probe cannot measure every slice of `slice_seconds`: (location, message) pairs.

    Finding 9: with a 1 s slice and a 30 s interval, 29 slices out of 30 held no sample and a
    service that never failed read 5 %. Every slice must be able to hold a sample, and a check
    must end before the next one of the same target is due."""
    if probe.prometheus is not None:
        return []  # evaluated once per slice by construction
    found: list[tuple[tuple[str, ...], str]] = []
    if probe.interval_s > slice_seconds:
        found.append((("interval_s",), f"{probe.interval_s:g} s is longer than the slice length of "
                      f"{slice_seconds} s: some slices could hold no sample; probe at least once per slice"))
    timeout = probe.timeout_s()
    if timeout is not None and timeout > probe.interval_s:
        kind = "http" if probe.http is not None else "tcp"
        found.append(((kind, "timeout_s"), f"{timeout:g} s is longer than interval_s ({probe.interval_s:g} s): "
                      "a check must end before the next one of the same target is due"))
    return found


def load_config(path: str | Path) -> OracleConfig:
    """Read and validate the YAML file; ConfigError names file, line and field of every problem."""
    return load_model(OracleConfig, path, ConfigError)
