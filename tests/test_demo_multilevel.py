"""`smartsla demo --multi-level`: the example's organisation, on the embedded chain and on Anvil."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from cli_helpers import invoke
from node_helpers import start_or_skip
from rich.console import Console

from smartsla.corporate import CorporateSpec, load_corporate_spec
from smartsla.demo_multilevel import PERIODS, demo_spec, run_multilevel_demo

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "multi-level-corporate.yaml"


def test_the_demo_is_the_examples_organisation():
    example = yaml.safe_load(EXAMPLE.read_text())["spec"]
    payouts = {d["name"]: d["payout"] for d in example["departments"]}
    data = demo_spec(example["parties"]["provider"], example["parties"]["organisation"], example["oracle"], payouts,
                     start=1_798_761_600)  # 2027-01-01T00:00:00Z, the example's start
    demo = CorporateSpec.model_validate(data).to_terms()
    terms = load_corporate_spec(EXAMPLE).to_terms()
    assert demo.period_count == PERIODS
    assert demo == terms.__class__(**{**terms.__dict__, "period_count": PERIODS})


def test_demo_multi_level_on_the_embedded_chain(cli_chain):
    code, out, err = invoke("demo", "--multi-level")
    assert code == 0, err
    assert "finance: 0.1400 ETH paid to" in out and "engineering: 0.0300 ETH paid to" in out
    assert "every wei accounted for" in out
    code, _, err = invoke("demo", "--multi-level", "--serve")
    assert code == 2 and "--multi-level runs on its own" in err


@pytest.mark.anvil
def test_demo_multi_level_on_anvil():
    node = start_or_skip("anvil")
    try:
        result = run_multilevel_demo(Console(file=io.StringIO()), node.url)
    finally:
        node.stop()
    assert result.credits == {"finance": [14 * 10**16, 0], "sales": [0, 0], "engineering": [3 * 10**16, 0]}
    assert result.withdrawn == {"finance": 14 * 10**16, "engineering": 3 * 10**16}
