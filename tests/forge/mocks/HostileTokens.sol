// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A USDT-style token: transfer and transferFrom return nothing at all.
contract NoReturnToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
    }

    function transfer(address to, uint256 amount) external {
        require(balanceOf[msg.sender] >= amount, "balance");
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
    }

    function transferFrom(address from, address to, uint256 amount) external {
        require(balanceOf[from] >= amount && allowance[from][msg.sender] >= amount, "balance/allowance");
        allowance[from][msg.sender] -= amount;
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
    }
}

/// @notice A token with a blocklist (as USDC and USDT have): a blocked address can neither send
/// nor receive.
contract BlocklistToken is ERC20 {
    mapping(address => bool) public blocked;

    constructor() ERC20("Blocklist", "BLK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setBlocked(address who, bool on) external {
        blocked[who] = on;
    }

    function _update(address from, address to, uint256 value) internal override {
        require(!blocked[from] && !blocked[to], "BlocklistToken: blocked");
        super._update(from, to, value);
    }
}

/// @notice A token with a transfer hook (ERC-777 style): every transfer calls the hook target,
/// which may call back into whoever moved the tokens.
interface ITransferHook {
    function onTokenTransfer(address from, address to, uint256 value) external;
}

contract HookToken is ERC20 {
    ITransferHook public hook;

    constructor() ERC20("Hook", "HOOK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setHook(ITransferHook h) external {
        hook = h;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (address(hook) != address(0) && from != address(0)) hook.onTokenTransfer(from, to, value);
    }
}

/// @notice A token whose balance of the agreement shrinks on its own (a negative rebase).
contract RebasingDownToken is ERC20 {
    constructor() ERC20("Rebase", "RBS") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Takes `amount` away from `who` (what a rebase or a slashing does to a holder).
    function slash(address who, uint256 amount) external {
        _burn(who, amount);
    }
}
