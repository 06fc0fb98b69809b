"""`smartsla verify AGREEMENT PERIOD`: check a settled period against the oracles' evidence.

Exit codes: 0 verified, 1 mismatch (each difference named), 2 evidence missing (or bad input).
The checks live in smartsla.verify; this module prints them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..credit import tier_credit_bps
from ..terms import Kind, Service
from ..units import PPM, bps_to_percent, ppm_to_percent
from ..verify import (
    DOWN,
    NONE,
    UP,
    OracleCheck,
    Source,
    Verdict,
    evidence_url,
    explaining_check,
    fetch_bundle,
    read_bundle,
    runs_with_times,
    to_json,
    verify_period,
)
from .common import (
    DEFAULT_RPC_URL,
    FactoryOpt,
    RpcUrl,
    _address,
    _amount_formatter,
    _connect,
    _console,
    _factory,
    cli_errors,
    fail,
)

app = typer.Typer()  # `smartsla verify`, at the top level

def _hm(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _unit(slice_seconds: int, n: int) -> str:
    names = {1: "second", 60: "minute", 3600: "hour"}
    base = names.get(slice_seconds, f"{slice_seconds}-second slice")
    return base if n == 1 else base + "s"


def tier_text(service: Service, value: int) -> str:
    """The step of the schedule `value` falls in, in the direction of the service."""
    bps = tier_credit_bps(service, value)
    if bps == 0:
        return "objective met" if (value <= service.objective if service.lower_is_better
                                   else value >= service.objective) else "missed, no tier"
    tier = next(t for t in service.tiers if t.credit_bps == bps)
    if service.lower_is_better:
        return f"tier > {tier.threshold:,} ms → {bps_to_percent(bps)} credit"
    return f"tier < {ppm_to_percent(tier.threshold)} → {bps_to_percent(bps)} credit"


def explain_service(check: OracleCheck, index: int, service: Service, declared: dict[int, int],
                    value: int, credit: str | None) -> str:
    """E.g. '43,170 of 43,200 minutes good; 30 down between 02:14 and 02:44 UTC; 60 excluded by
    window #3 declared 9 days ahead → 99.9305 % → tier < 99.99 % → 10 % credit = 0.15 ETH'."""
    r, f = check.records[index], check.figures[index]
    L = r.slice_seconds
    parts = [f"{f.good_slices:,} of {f.total_slices:,} measured {_unit(L, f.total_slices)} good"]
    downs = runs_with_times(r, DOWN)
    for _, n, t in downs[:5]:
        parts.append(f"{n:,} down between {_hm(t)} and {_hm(min(t + n * L, r.end))} UTC")
    if len(downs) > 5:
        parts.append(f"{sum(n for _, n, _ in downs[5:]):,} down in {len(downs) - 5} more runs")
    by_window: dict[int, int] = {}
    for s, n in r.runs:
        if s not in (UP, DOWN, NONE):
            by_window[int(s[1:])] = by_window.get(int(s[1:]), 0) + n
    for k, n in sorted(by_window.items()):
        ahead = declared.get(k)
        when = "" if ahead is None else f" declared {_ahead(ahead)} ahead"
        parts.append(f"{n:,} excluded by window #{k}{when}")
    unmeasured = sum(n for s, n in r.runs if s == NONE)
    if unmeasured:
        parts.append(f"{unmeasured:,} not measured ({ppm_to_percent(f.measured_ppm)} of the period measured)")
    figure = f"{value:,} ms" if service.kind is Kind.latency else ppm_to_percent(value)
    text = "; ".join(parts) + f" → {figure} → {tier_text(service, value)}"
    if credit is not None:
        text += f" = {credit}"
    return text


def _ahead(seconds: int) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.0f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.0f} hours"
    return f"{seconds} s"


@app.command("verify")
@cli_errors
def verify_cmd(
    agreement: Annotated[str, typer.Argument(help="Agreement address.")],
    period: Annotated[int, typer.Argument(help="Period number (0 = the first).", min=0)],
    evidence_urls: Annotated[list[str] | None, typer.Option(
        "--evidence-url", help="An oracle's HTTP address (the one serving /metrics) or a full /evidence/... URL; "
        "repeat for each committee member.")] = None,
    bundles: Annotated[list[str] | None, typer.Option(
        "--bundle", help="An evidence bundle saved as a file; repeatable.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory: FactoryOpt = None,
) -> None:
    """Recompute a settled period from the oracles' evidence and compare it with the chain.

    Exit 0: verified; 1: a mismatch (each named); 2: evidence missing.
    """
    address = _address(agreement, "AGREEMENT")
    if not evidence_urls and not bundles:
        fail("no evidence source: give the oracle's --evidence-url or a --bundle file", 2)
    chain = _connect(rpc_url)
    ag = _factory(chain, factory).agreement(address)
    sources: list[Source] = [fetch_bundle(evidence_url(u, ag.address, period)) for u in evidence_urls or ()]
    sources += [read_bundle(p) for p in bundles or ()]
    verdict = verify_period(ag, chain.chain_id, period, sources)
    if as_json:
        typer.echo(json.dumps(to_json(verdict), indent=2))
    else:
        _print(verdict, ag, chain)
    raise typer.Exit(verdict.exit_code)


def _print(verdict: Verdict, ag, chain) -> None:  # noqa: ANN001 - Agreement, Chain
    out = _console()
    terms = ag.terms
    money = _amount_formatter(chain, terms.asset)
    windows = ag.maintenance_windows()
    declared = {k: w.start - w.declared_at for k, w in enumerate(windows)}
    table = Table(title=f"period {verdict.period} of {verdict.agreement}")
    for col in ("oracle", "service", "good", "down", "excluded", "not measured", "figure", "root"):
        table.add_column(col)
    for c in verdict.oracles:
        for i, f in sorted(c.figures.items()):
            r = c.records[i]
            s = terms.services[i]
            down = sum(n for st, n in r.runs if st == DOWN)
            excluded = sum(n for st, n in r.runs if st not in (UP, DOWN, NONE))
            figure = f"{f.value_ppm:,} ms" if s.kind is Kind.latency else ppm_to_percent(f.value_ppm)
            ok = "[green]✓[/]" if c.committed_root == c.bundle_root else "[red]✗[/]"
            table.add_row(c.oracle[:10] + "…", escape(s.name), f"{f.good_slices:,}", f"{down:,}", f"{excluded:,}",
                          f"{f.missing_slices:,}", figure, f"{ok} {c.bundle_root[:10]}…")
    if verdict.oracles:
        out.print(table)
    if verdict.outcome == "verified" and verdict.oracles:
        # Explain with the record of an oracle whose figure is the median (the one that counted).
        for i in sorted(verdict.medians):
            check, m = explaining_check(verdict, i)
            credit = money(verdict.service_credits[i]) if verdict.service_credits else None
            out.print(f"[bold]{escape(terms.services[i].name)}[/]: "
                      + escape(explain_service(check, i, terms.services[i], declared, m, credit)))
        settled = verdict.settlement
        assert settled is not None
        out.print(f"credit paid {money(settled.credit_paid)} (measured share "
                  f"{ppm_to_percent(settled.measured_ppm if settled else PPM)})")
        if verdict.resolved:
            out.print("the arbiter corrected this period (DisputeResolved): the final figures and credit are the "
                      "ones verified, from the evidence the dispute named")
        out.print(f"[bold green]verified[/]: period {verdict.period} matches the evidence of "
                  f"{len(verdict.oracles)} oracle(s)")
    for problem in verdict.problems:
        out.print(f"[red]mismatch:[/] {escape(problem)}")
    for missing in verdict.missing:
        out.print(f"[yellow]missing:[/] {escape(missing)}")


# ---------------------------------------------------------------------------- the arbiter's review
arbiter_app = typer.Typer(help="The arbiter's tools.", no_args_is_help=True)


def diff_runs(states: list[list[str]]) -> list[tuple[int, int, tuple[str, ...]]]:
    """(first slice, count, the states of each bundle) of the runs where the bundles disagree."""
    out: list[tuple[int, int, tuple[str, ...]]] = []
    for i, row in enumerate(zip(*states, strict=True)):
        if len(set(row)) == 1:
            continue
        if out and out[-1][0] + out[-1][1] == i and out[-1][2] == row:
            out[-1] = (out[-1][0], out[-1][1] + 1, row)
        else:
            out.append((i, 1, row))
    return out


@arbiter_app.command("review")
@cli_errors
def review_cmd(
    agreement: Annotated[str, typer.Argument(help="Agreement address.")],
    period: Annotated[int, typer.Argument(help="Disputed period.", min=0)],
    evidence_urls: Annotated[list[str] | None, typer.Option(
        "--evidence-url", help="An oracle's or watchdog's HTTP address, or a full /evidence/... URL.")] = None,
    bundles: Annotated[list[str] | None, typer.Option("--bundle", help="A bundle file; repeatable.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many differing runs per service.", min=1)] = 40,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory: FactoryOpt = None,
) -> None:
    """Both sides' evidence of a disputed period, slice by slice, the differences first: each
    bundle checked against the root its author committed (EvidenceCommitted for an oracle, the
    Disputed event for a party), and each side's figure recomputed."""
    from oracle.evidence import figure_from_record

    from ..verify import agreed_percentile, committed_roots, dispute_roots

    address = _address(agreement, "AGREEMENT")
    chain = _connect(rpc_url)
    ag = _factory(chain, factory).agreement(address)
    sources = [fetch_bundle(evidence_url(u, ag.address, period)) for u in evidence_urls or ()]
    sources += [read_bundle(p) for p in bundles or ()]
    bad = [s.error for s in sources if s.bundle is None]
    if bad:
        fail("; ".join(str(b) for b in bad), 2)
    if len(sources) < 2:
        fail("give at least two bundles to compare (--bundle / --evidence-url)", 2)
    committed = {**dispute_roots(ag, period), **committed_roots(ag, period)}
    out = _console()
    terms = ag.terms
    authors = []
    for s in sources:
        b = s.bundle
        assert b is not None
        who = "oracle" if b.oracle.lower() in {o.lower() for o in terms.oracles} else (
            "customer" if b.oracle.lower() == terms.customer.lower() else
            "provider" if b.oracle.lower() == terms.provider.lower() else "stranger")
        root = "0x" + b.root.hex()
        on_chain = next((r for a, r in committed.items() if a.lower() == b.oracle.lower()), None)
        mark = "[green]root committed on-chain[/]" if on_chain == root else (
            "[red]root NOT the one committed[/]" if on_chain else "[red]no root committed by its author[/]")
        authors.append(f"{who} {b.oracle[:10]}…")
        out.print(f"{escape(s.where)}: {who} {b.oracle}, {mark}")
    for i, service in enumerate(terms.services):
        records = [next((r for r in s.bundle.records if r.index == i), None) for s in sources]  # type: ignore[union-attr]
        if any(r is None for r in records):
            continue
        states = [r.states() for r in records]  # type: ignore[union-attr]
        if len({len(x) for x in states}) != 1:
            out.print(f"[red]{escape(service.name)}: the bundles cover different slices[/]")
            continue
        figures = [figure_from_record(r, percentile=agreed_percentile(terms, i),  # type: ignore[arg-type]
                                      objective_ms=service.objective).value_ppm for r in records]
        runs = diff_runs(states)
        n_diff = sum(n for _, n, _ in runs)
        table = Table(title=f"{service.name}: {n_diff:,} of {len(states[0]):,} slices differ")
        for col in ("slices", "from (UTC)", "to (UTC)", *authors):
            table.add_column(col)
        L, start = records[0].slice_seconds, records[0].start  # type: ignore[union-attr]
        for first, n, row in runs[:limit]:
            table.add_row(f"{first}–{first + n - 1}" if n > 1 else str(first), _hm(start + first * L),
                          _hm(start + (first + n) * L), *row)
        table.add_row("figure", "", "", *[f"{v:,} ms" if service.kind is Kind.latency else ppm_to_percent(v)
                                         for v in figures])
        out.print(table)
        if len(runs) > limit:
            out.print(f"… and {len(runs) - limit} more differing runs")
