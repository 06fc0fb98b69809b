"""Units shared with the contracts: ppm for measured values, bps for shares of a fee."""

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


# ---------------------------------------------------------------------------- amounts
# One rule for every amount the command line and the demo print (issue 10, finding 12: some
# places printed 4 decimals, others all 18): the EXACT amount, every significant unit shown and
# trailing zeros trimmed, but at least MIN_AMOUNT_DECIMALS decimals (or the token's own number
# of decimals if it has fewer) so that columns of amounts line up. Money is never rounded: a
# non-zero amount never reads as 0, and two different amounts never print the same; what is
# printed is what `withdraw` pays, to the wei. The web views follow the same rule for ETH.
MIN_AMOUNT_DECIMALS = 4
ETH_DECIMALS = 18


def format_amount(units: int, decimals: int = ETH_DECIMALS, symbol: str = "ETH") -> str:
    """1_500_000_000_000_000_000 -> '1.5000 ETH'; 1 -> '0.000000000000000001 ETH';
    with 6 decimals, 12_345_678 -> '12.345678 USDC'; with 0 decimals, 7 -> '7 PTS'."""
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(int(units)), 10**decimals)
    digits = f"{frac:0{decimals}d}".rstrip("0") if decimals else ""
    digits = digits.ljust(min(MIN_AMOUNT_DECIMALS, decimals), "0")
    text = f"{sign}{whole}" + (f".{digits}" if digits else "")
    return f"{text} {symbol}" if symbol else text
