"""F8-1 end to end: the daemon (`python -m oracle`) whose period is due while the base fee is above
its cap says so on /healthz and through `smartsla oracle status` (exit 1), sends nothing, and
settles the period once the fee falls, without a restart."""

from __future__ import annotations

import json
from typing import Any

import daemon_helpers
import pytest
import yaml
from cli_helpers import invoke
from daemon_helpers import World, stop, wait_until
from service_helpers import ScheduledService

from oracle.transactions import GWEI

anvil, world, service = daemon_helpers.anvil, daemon_helpers.world, daemon_helpers.service


def rpc(world: World, method: str, *params: Any) -> Any:
    response = world.chain.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response.get("result")


@pytest.mark.slow
def test_a_daemon_blocked_by_the_fee_cap_says_so_and_settles_once_the_fee_falls(world: World,
                                                                                 service: ScheduledService):
    ag = world.agreement(period_length=3, period_count=1)
    path = world.config(ag.address, service.url)
    cfg = yaml.safe_load(path.read_text())
    cfg["chain"]["max_fee_gwei"] = 20
    path.write_text(yaml.safe_dump(cfg))
    rpc(world, "anvil_setNextBlockBaseFeePerGas", hex(80 * GWEI))
    rpc(world, "evm_mine")
    proc = world.start(path)
    try:
        world.wait_ready(ag.terms.start)
        port = next(json.loads(line)["port"] for line in world.log_text().splitlines()
                    if '"msg": "listening"' in line)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: invoke("oracle", "status", "--url", url)[0] == 1, 40, "sending blocked",
                   world.log_text)
        code, out, _ = invoke("oracle", "status", "--url", url)
        assert code == 1 and "BLOCKED" in out and "fee_cap" in out, out
        assert "sending blocked" in world.log_text()
        assert ag.snapshot().settled_periods == 0
        assert world.chain.w3.eth.get_transaction_count(world.oracle) == 0  # nothing sent
        rpc(world, "anvil_setNextBlockBaseFeePerGas", hex(GWEI))
        rpc(world, "evm_mine")
        wait_until(lambda: ag.snapshot().settled_periods == 1, 30, "the settlement", world.log_text)
        code, out, _ = invoke("oracle", "status", "--url", url)
        assert code == 0 and "sending ok" in out, out
    finally:
        stop(proc)
    assert len(ag.settlements()) == 1
    assert world.chain.w3.eth.get_transaction_count(world.oracle) == 1
