"""Units shared with the contracts: ppm for measured values, bps for shares of a fee, and their
conversions to and from percent. How amounts, times and values are shown: smartsla.presentation."""

from __future__ import annotations

from decimal import Decimal

PPM = 1_000_000  # 100 % in parts per million
BPS = 10_000  # 100 % in basis points


def percent_to_ppm(percent: float | str | Decimal) -> int:
    """99.99 -> 999_900, exactly (goes through Decimal so 99.99 is not 99.98999...)."""
    value = Decimal(str(percent)) * 10_000
    if value != value.to_integral_value():
        raise ValueError(f"{percent}% has more precision than 0.0001 %")
    return int(value)


def percent_to_bps(percent: float | str | Decimal) -> int:
    """10 -> 1_000; 2.5 -> 250."""
    value = Decimal(str(percent)) * 100
    if value != value.to_integral_value():
        raise ValueError(f"{percent}% has more precision than 0.01 %")
    return int(value)


def ppm_to_percent(ppm: int) -> str:
    """999_900 -> '99.9900%' (four decimals: enough for 99.99 % objectives)."""
    return f"{Decimal(ppm) / 10_000:.4f}%"


def bps_to_percent(bps: int) -> str:
    return f"{Decimal(bps) / 100:.2f}%"
