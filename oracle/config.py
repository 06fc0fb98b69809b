"""The oracle daemon's configuration: one YAML file, validated before anything starts.

A wrong field stops the daemon with one message naming the field (and its line in the file), so
an operator never finds out at the end of a month that a probe was never configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator
from web3 import Web3

from smartsla.yamlfile import load_model

from .sli import MissingPolicy


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


class MaintenanceWindow(_Strict):
    start: int
    end: int

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError("maintenance end must be after its start")
        return self


class AgreementEntry(_Strict):
    address: str
    services: dict[str, ServiceProbe] = Field(default_factory=dict)  # overrides the top-level ones
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if not Web3.is_address(v):
            raise ValueError(f"not an Ethereum address: {v!r}")
        return Web3.to_checksum_address(v)


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

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        return v

    @field_validator("factory")
    @classmethod
    def _factory(cls, v: str | None) -> str | None:
        if v is not None and not Web3.is_address(v):
            raise ValueError(f"not an Ethereum address: {v!r}")
        return None if v is None else Web3.to_checksum_address(v)


class OracleConfig(_Strict):
    chain: ChainConfig = Field(default_factory=ChainConfig)
    key: KeySource
    store: str = "sqlite:///oracle.db"
    agreements: list[AgreementEntry] = Field(default_factory=list)
    discover: bool = False  # also serve every agreement of the factory naming this oracle
    services: dict[str, ServiceProbe] = Field(default_factory=dict)  # probes by service name
    slice_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    missing_data: MissingPolicy = MissingPolicy.DOWN
    grace_s: Annotated[float, Field(ge=0, le=86_400)] = 60.0
    report_check_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    listen: str = "127.0.0.1:9464"  # /metrics, /healthz and /reports for committee peers
    peers: list[HttpUrl] = Field(default_factory=list)  # other committee members' listen URLs
    sample_retention_s: Annotated[float, Field(ge=0)] = 90 * 86_400

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"must be HOST:PORT, got {v!r}")
        return v

    @model_validator(mode="after")
    def _something_to_serve(self) -> OracleConfig:
        if not self.agreements and not self.discover:
            raise ValueError("list agreements or set discover: true")
        return self

    def probes_for(self, address: str) -> dict[str, ServiceProbe]:
        """Probe definitions for an agreement: its own entries over the top-level ones."""
        merged = dict(self.services)
        for entry in self.agreements:
            if entry.address == address:
                merged.update(entry.services)
        return merged

    def maintenance_for(self, address: str) -> list[tuple[int, int]]:
        return [(w.start, w.end) for e in self.agreements if e.address == address for w in e.maintenance]


def load_config(path: str | Path) -> OracleConfig:
    """Read and validate the YAML file; ConfigError names file, line and field on any problem."""
    return load_model(OracleConfig, path, ConfigError)
