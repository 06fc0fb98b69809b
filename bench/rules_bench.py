"""Issue 14's figures: rule generation for 100 services, and the running-period metrics' CPU.

    .venv/bin/python bench/rules_bench.py

1. `smartsla.rules` for 100 services. An agreement holds at most 16 services (MAX_SERVICES), so
   this times (a) terms of 100 services built without that check (`model_construct`: the
   generator's cost, not the limit) and (b) 7 agreements of 16 services (112), each from a spec.
2. What the running period costs a daemon doing 1,000 checks/s (100 agreements x 10 services,
   one check a second each, a 30-day period of one-minute slices, 20 days in): the tally's
   `on_sample` for every check plus a refresh (forecast + gauges) every REFRESH_S, timed with
   the process CPU clock over simulated time, and the /metrics text of all 1,000 series.
   The daemon's prober alone takes 46-49 % of a core at this load (docs/oracle.md, Capacity).

Not a test: it prints figures.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import generate_latest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oracle.metrics import OracleMetrics  # noqa: E402
from oracle.running import REFRESH_S, RunningPeriods  # noqa: E402
from oracle.store import Store  # noqa: E402
from smartsla import rules  # noqa: E402
from smartsla.spec import load_spec  # noqa: E402
from smartsla.terms import Service, Terms, Tier  # noqa: E402

TIERS = (Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=990_000, credit_bps=3_000),
         Tier(threshold=950_000, credit_bps=10_000))


def terms_with(n: int) -> Terms:
    base = Terms(provider="0x" + "11" * 20, customer="0x" + "22" * 20, oracle="0x" + "33" * 20, start=0,
                 period_length=30 * 86_400, period_count=12, fee_per_period=10**18, collateral=0,
                 services=(Service(name="s0", objective=999_900, tiers=TIERS),))
    services = tuple(Service(name=f"service-{i:03d}", objective=999_900, weight_bps=100, tiers=TIERS)
                     for i in range(n))
    return base.model_copy(update={"services": services})  # past MAX_SERVICES on purpose (see above)


def bench_rules() -> None:
    terms = terms_with(100)
    ctx = rules.Context("bench")
    t0 = time.perf_counter()
    text = rules.render(rules.generate_for_terms(terms, ctx))
    one = time.perf_counter() - t0
    print(f"rules, 100 services in one set of terms: {one * 1000:.0f} ms, {len(text):,} bytes, "
          f"{text.count('- record:') + text.count('- alert:')} rules")
    spec_text = (ROOT / "examples" / "aws-ec2-region.yaml").read_text()
    services = "".join(
        f"    - name: svc-{i:02d}\n      weight: {'6.25%'}\n      slo: {{sli: availability, objective: 99.99%}}\n"
        "      credits:\n        - {below: 99.99%, atLeast: 99.0%, credit: 10%}\n"
        "        - {below: 99.0%, atLeast: 95.0%, credit: 30%}\n        - {below: 95.0%, credit: 100%}\n"
        for i in range(16))
    body = spec_text[:spec_text.index("  services:\n")] + "  services:\n" + services
    body = body.replace("    covers: [ec2-region]\n", "    covers: []\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sixteen.yaml"
        path.write_text(body)
        t0 = time.perf_counter()
        total = 0
        for _ in range(7):
            total += len(rules.render(rules.generate(load_spec(path))))
        seven = time.perf_counter() - t0
    print(f"rules, 7 specs x 16 services (112): {seven * 1000:.0f} ms including loading the specs, {total:,} bytes")


def bench_running(seconds: int = 30) -> None:
    terms = terms_with(10)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/s.db")
        metrics = OracleMetrics()
        running = RunningPeriods(store, metrics.running)
        agreements = [f"0x{i:040x}" for i in range(1, 101)]
        names = [s.name for s in terms.services]
        for a in agreements:
            running.serve(a, terms, dict.fromkeys(names, 1), list)
        now0 = terms.start + 20 * 86_400
        windows, seeds = running._inputs(now0)  # noqa: SLF001 - the one-off seeding, not timed
        running.refresh(now0, windows, seeds)
        cpu0 = time.process_time()
        refresh_cpu = 0.0
        checks = 0
        for sec in range(seconds):
            now = now0 + sec
            for a in agreements:
                for n in names:
                    running.on_sample(a, n, now + 0.5, ok=(sec % 97 != 0))
                    checks += 1
            if sec % int(REFRESH_S) == 0:
                r0 = time.process_time()
                running.refresh(now + 1)
                refresh_cpu += time.process_time() - r0
        cpu = time.process_time() - cpu0
        t0 = time.process_time()
        body = generate_latest(metrics.registry)
        scrape = time.process_time() - t0
        store.close()
    per_s = cpu / seconds
    print(f"running period, {checks / seconds:,.0f} checks/s over {seconds} simulated s: {per_s * 100:.2f} % of a core "
          f"(on_sample {(cpu - refresh_cpu) / checks * 1e6:.2f} us/check, refresh of 1,000 services "
          f"{refresh_cpu / (seconds / REFRESH_S) * 1000:.0f} ms every {REFRESH_S:g} s); that is "
          f"{per_s / 0.46 * 100:.1f} % of the prober's own 46 % at this load")
    print(f"/metrics text with 1,000 running services: {len(body):,} bytes in {scrape * 1000:.0f} ms CPU per scrape")


if __name__ == "__main__":
    bench_rules()
    bench_running()
