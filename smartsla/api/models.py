"""Request and response models of the REST API (they make the OpenAPI document at /docs).

Amounts are decimal strings in the asset's smallest unit (wei for ETH). Measured values and
objectives are integers in ppm (999_900 = 99.99 %), credit shares in bps (1_000 = 10 %).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from ..addresses import parse_address

Amount = str
ADDRESS_PATTERN = r"^0[xX][0-9a-fA-F]{40}$"


class StatusName(StrEnum):
    Pending = "Pending"
    Active = "Active"
    Ended = "Ended"
    Terminated = "Terminated"
    Cancelled = "Cancelled"
    Expired = "Expired"


class ErrorOut(BaseModel):
    detail: Any = Field(description="What was wrong")


class AgreementSummary(BaseModel):
    address: str
    provider: str
    customer: str
    asset: str
    status: StatusName
    settled_periods: int
    period_count: int
    period_length: int
    start: int
    fee_per_period: Amount
    collateral_escrowed: Amount
    fees_escrowed: Amount
    owed_to_customer: Amount
    owed_to_provider: Amount
    credits_paid: Amount
    disaster_occurred: bool
    created_block: int
    services: list[str]
    exposure: Amount = Field(description="min(collateral left, credit cap x fee x periods left)")


class AgreementPage(BaseModel):
    items: list[AgreementSummary]
    total: int
    limit: int
    offset: int


class TierOut(BaseModel):
    threshold: int = Field(description="ppm, or ms for a latency service")
    credit_bps: int


class ServiceTermsOut(BaseModel):
    name: str
    kind: str = Field(description="availability | latency (objective and values in ms) | satisfaction | composite")
    objective: int = Field(description="ppm, or ms for a latency service (see unit)")
    unit: Literal["ppm", "ms"] = Field(description="the unit of objective and of the tiers' thresholds")
    weight_bps: int
    latency_percentile: int = Field(0, description="latency services: the agreed percentile (50/95/99); 0: not "
                                    "fixed by the agreement (the oracle's default, 95)")
    tiers: list[TierOut]


class TermsOut(BaseModel):
    provider: str
    customer: str
    oracles: list[str]
    quorum: int
    asset: str
    start: int
    period_length: int
    period_count: int
    fee_per_period: Amount
    collateral: Amount
    credit_cap_bps: int
    termination_ppm: int
    total_fees: Amount
    end: int
    dispute_window: int
    arbiter: str
    maintenance_notice: int
    maintenance_budget: int = 0  # seconds of excluded maintenance over the term; 0: no limit
    period_ends: list[int] = Field(description="calendar periods: each period's end, in seconds after start")
    spec_hash: str = Field("0x" + "0" * 64, description="keccak256 of the canonical spec document the agreement "
                           "was created from (smartsla agreement verify-spec); zero: created without one")
    slice_seconds: int = Field(60, description="the measurement's slice length, in seconds")
    min_measured_ppm: int = Field(0, description="the least share of a period that must be measured for a report")
    services: list[ServiceTermsOut]


class SnapshotOut(BaseModel):
    status: StatusName
    settled_periods: int
    fees_deposited: bool
    collateral_deposited: bool
    disaster_occurred: bool
    fees_escrowed: Amount
    collateral_escrowed: Amount
    owed_to_customer: Amount
    owed_to_provider: Amount
    pending_to_customer: Amount = Field(description="credit settled but inside the dispute window")
    pending_to_provider: Amount
    pending_periods: int
    snapshot_block: int | None = Field(description="block at which the snapshot was read")


class TotalsOut(BaseModel):
    credits_earned: Amount = Field(description="credits after the per-period cap, before the collateral limit")
    credits_paid: Amount
    shortfall: Amount = Field(description="credit not paid because the collateral ran out")
    fees_earned: Amount
    withdrawn_customer: Amount
    withdrawn_provider: Amount
    exposure: Amount


class ProgressOut(BaseModel):
    chain_time: int
    periods_left: int
    current_period: int | None
    current_period_start: int | None
    current_period_end: int | None
    elapsed_seconds: int | None
    elapsed_fraction: float | None
    next_settlement_at: int | None
    settlement_overdue: bool
    ends_at: int


class AgreementDetail(BaseModel):
    address: str
    factory: str
    created_block: int
    created_tx: str
    created_timestamp: int
    terms: TermsOut
    snapshot: SnapshotOut
    totals: TotalsOut
    progress: ProgressOut


class ServicePeriodOut(BaseModel):
    service: str
    kind: str
    objective_value: int = Field(description="ppm, or ms for a latency service (see unit)")
    measured_value: int = Field(description="the settled figure behind measured (see unit)")
    unit: Literal["ppm", "ms"] = Field(description="the unit of objective_value and measured_value")
    objective: str = Field(description="as people read it: 99.9900% or 250 ms")
    measured: str
    met: bool
    tier: int | None = Field(description="1 = the mildest tier; null when no tier applied")
    tier_credit_bps: int
    credit: Amount
    disaster: bool
    state: Literal["operational", "degraded", "outage", "maintenance"]


class PeriodOut(BaseModel):
    period: int
    start: int
    end: int
    services: list[ServicePeriodOut]
    credit_paid: Amount
    fee_earned: Amount
    shortfall: Amount
    disaster: bool
    measured_ppm: int = Field(description="share of the period's countable time (maintenance excluded) the "
                              "oracles measured, in ppm; reports below the agreed minimum are refused on-chain")
    state: Literal["final", "pending", "disputed"] = Field(description="pending: inside the dispute window")
    final_after: int | None
    disputed_by: str | None
    resolved: bool = Field(description="corrected by the arbiter")
    previous_credit: Amount | None
    block_number: int
    tx_hash: str
    timestamp: int


class PeriodPage(BaseModel):
    items: list[PeriodOut]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    id: int
    address: str = Field(description="the contract that emitted the event")
    agreement: str | None
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    name: str = Field(description="the event's name; 'Unknown' when the ABI does not know it (args holds the "
                      "raw topics and data)")
    topic0: str | None
    args: dict[str, Any]
    timestamp: int


class EventPage(BaseModel):
    items: list[EventOut]
    total: int
    limit: int
    offset: int


class WithdrawalOut(BaseModel):
    party: str
    role: str
    amount: Amount
    block_number: int
    tx_hash: str
    log_index: int
    timestamp: int


class WithdrawalPage(BaseModel):
    items: list[WithdrawalOut]
    total: int
    limit: int
    offset: int


class ReportRow(BaseModel):
    period: int
    period_start: int
    period_end: int
    service: str
    unit: Literal["percent", "ms"]
    objective: str
    measured: str
    met: bool
    tier: int | None
    tier_credit_percent: str
    service_credit: Amount
    period_credit_paid: Amount
    period_shortfall: Amount
    period_fee_earned: Amount
    disaster: bool
    period_measured_percent: str
    period_state: str
    evidence_roots: str = ""  # "oracle=root ..." from the EvidenceCommitted events (docs/evidence.md)
    # Slice counts of the service from the oracle's evidence bundle (None when the API knows no oracle)
    good_slices: int | None = None
    down_slices: int | None = None
    excluded_slices: int | None = None
    unmeasured_slices: int | None = None


class ReportOut(BaseModel):
    agreement: str
    asset: str
    from_period: int
    to_period: int
    rows: list[ReportRow]


class OracleRunningOut(BaseModel):
    """What the oracle's /metrics said about the period in progress (the forecast's inputs)."""

    period: int
    good_seconds: float
    bad_seconds: float
    excluded_seconds: float
    unmeasured_seconds: float
    remaining_seconds: float


class ServiceForecastOut(BaseModel):
    """One service's period in progress. Absent figures (`available` false) come with a reason."""

    service: str
    kind: str
    available: bool
    reason: str | None
    oracle: OracleRunningOut | None = None
    period: int | None = None
    period_start: int | None = None
    period_end: int | None = None
    now: int | None = Field(None, description="the oracle's instant (period_end - remaining_seconds)")
    value_so_far_value: int | None = Field(None, description="the integer behind value_so_far (see unit)")
    value_so_far: str | None = None
    objective: str | None = None
    projected_value: int | None = Field(None, description="the integer behind projected (see unit): at period "
                                       "end, at the burn so far")
    unit: Literal["ppm", "ms"] | None = Field(None, description="the unit of value_so_far_value and "
                                                "projected_value: ms for a latency service")
    projected: str | None = None
    projected_tier: int | None = Field(None, description="1 = mildest, as in /periods; null: no credit")
    projected_tier_credit_bps: int | None = None
    projected_credit: Amount | None = Field(None, description="this service's credit at the projected figure, "
                                            "capped at the agreement's per-period cap")
    projected_credit_text: str | None = None
    budget_left_seconds: float | None = Field(None, description="downtime left before next_tier is certain")
    slow_checks_left: int | None = Field(None, description="latency services: further checks slower than "
                                         "next_tier's bound (and none faster) before the period's percentile "
                                         "crosses it")
    next_tier: int | None = None
    budget_words: str | None = Field(None, examples=["23 minutes of downtime left before the 10 % tier"])
    oracle_agrees: bool | None = Field(None, description="the oracle's exported value, projection and budget "
                                       "equal these (null: it exported none)")


class ForecastOut(BaseModel):
    address: str
    source: str | None = Field(description="the oracle metrics URL read (null: none configured)")
    error: str | None
    services: list[ServiceForecastOut]


class OracleHealth(BaseModel):
    url: str
    ok: bool
    status_code: int | None
    error: str | None


class HealthOut(BaseModel):
    ok: bool
    chain_reachable: bool
    chain_id: int | None
    factory: str | None
    chain_head: int | None
    last_indexed_block: int | None
    lag_blocks: int | None
    confirmations: int
    indexer_running: bool
    last_sync_age_seconds: float | None
    reorgs: int
    last_error: str | None
    agreements: int
    oracle: OracleHealth | None


class TxRequest(BaseModel):
    from_: str = Field(alias="from", pattern=r"^0[xX][0-9a-fA-F]{40}$",
                       description="the address that will sign and send the transaction")

    model_config = {"populate_by_name": True}

    @field_validator("from_")
    @classmethod
    def _checksum(cls, value: str) -> str:
        # A mixed-case address with a wrong EIP-55 checksum is a typo: a named 422 here, not a
        # ValueError inside the route (a 500).
        return parse_address(value, "from")


class UnsignedTx(BaseModel):
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    data: str
    value: str = Field(description="hex quantity, as eth_sendTransaction takes it")
    chainId: str = Field(description="hex quantity")
    gas: str | None = Field(default=None, description="hex quantity: the node's estimate, when it could give one")

    model_config = {"populate_by_name": True}


class TxOut(BaseModel):
    action: str
    agreement: str
    description: str
    transactions: list[UnsignedTx] = Field(description="send in this order (an ERC-20 deposit needs an approve "
                                           "first)")
    cli: str | None = Field(description="the smartsla command that signs with a local encrypted keystore instead")


class SentOut(BaseModel):
    action: str
    tx_hash: str
    block_number: int
