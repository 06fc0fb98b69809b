// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Agreement} from "contracts/Agreement.sol";
import {AgreementFactory} from "contracts/AgreementFactory.sol";
import {Terms, Options, SignedReport, PPM} from "contracts/SlaTypes.sol";

import {TestBase} from "./TestBase.sol";
import {TermsGen} from "./TermsGen.sol";

interface IMintable {
    function mint(address to, uint256 amount) external;
    function approve(address spender, uint256 amount) external returns (bool);
}

/// @title Parties, a committee with private keys, and helpers to open, fund and settle.
abstract contract Fixture is TestBase {
    AgreementFactory internal factory;
    uint256 internal constant PROVIDER_KEY = 0xA11CE;
    uint256 internal constant CUSTOMER_KEY = 0xB0B;
    address internal provider = vm.addr(PROVIDER_KEY);
    address internal customer = vm.addr(CUSTOMER_KEY);
    address internal stranger = vm.addr(0x5000);
    uint256[] internal oracleKeys;
    address[] internal oracles;
    uint64 internal start;

    function _setUpFixture(uint256 committeeSize) internal {
        factory = new AgreementFactory();
        for (uint256 i = 0; i < committeeSize; ++i) {
            oracleKeys.push(0x0A0 + i);
            oracles.push(vm.addr(0x0A0 + i));
        }
        // The term starts an hour from now: deposits are accepted only before the start.
        vm.warp(1_700_000_000);
        start = 1_700_000_000 + 1 hours;
    }

    function _terms(uint8 quorum, address asset) internal view returns (Terms memory t) {
        t = TermsGen.example(provider, customer, oracles, quorum, asset, start);
    }

    function _open(Terms memory t) internal returns (Agreement) {
        return Agreement(factory.createAgreement(t));
    }

    /// @dev Both deposits, in ether or in a mintable token.
    function _fund(Agreement a, Terms memory t) internal {
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        if (t.asset == address(0)) {
            vm.deal(customer, fees);
            vm.prank(customer);
            a.depositFees{value: fees}();
            vm.deal(provider, t.collateral);
            vm.prank(provider);
            a.depositCollateral{value: t.collateral}();
        } else {
            IMintable(t.asset).mint(customer, fees);
            vm.prank(customer);
            IMintable(t.asset).approve(address(a), fees);
            vm.prank(customer);
            a.depositFees();
            IMintable(t.asset).mint(provider, t.collateral);
            vm.prank(provider);
            IMintable(t.asset).approve(address(a), t.collateral);
            vm.prank(provider);
            a.depositCollateral();
        }
    }

    function _values(uint32 a, uint32 b) internal pure returns (uint32[] memory v) {
        v = new uint32[](2);
        v[0] = a;
        v[1] = b;
    }

    /// @dev A report of a fully measured period, valid for a day.
    function _sign(Agreement a, uint256 key, uint256 period, uint32[] memory values)
        internal
        returns (SignedReport memory)
    {
        return _signFull(a, key, period, values, PPM, uint64(block.timestamp + 1 days));
    }

    function _signFull(
        Agreement a,
        uint256 key,
        uint256 period,
        uint32[] memory values,
        uint32 measuredPpm,
        uint64 deadline
    ) internal returns (SignedReport memory) {
        return _signEvidence(a, key, period, values, measuredPpm, EVIDENCE_ROOT, deadline);
    }

    /// @dev A report signed over `root` as its evidence.
    function _signEvidence(
        Agreement a,
        uint256 key,
        uint256 period,
        uint32[] memory values,
        uint32 measuredPpm,
        bytes32 root,
        uint64 deadline
    ) internal returns (SignedReport memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, a.reportDigest(period, values, measuredPpm, root, deadline));
        return SignedReport({
            valuesPpm: values,
            measuredPpm: measuredPpm,
            evidenceRoot: root,
            deadline: deadline,
            signature: abi.encodePacked(r, s, v)
        });
    }

    /// @dev Default options of createAgreement, to be changed field by field.
    function _defaultOptions() internal pure returns (Options memory o) {
        o.sliceLength = 60;
        o.minMeasuredPpm = 900_000;
    }

    function _toEnd(Agreement a, uint256 period) internal {
        uint256 end = a.periodEnd(period);
        if (block.timestamp < end) vm.warp(end);
    }
}
