// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TestBase} from "./utils/TestBase.sol";

import {CorporateAgreement} from "contracts/CorporateAgreement.sol";
import {CorporateAgreementFactory} from "contracts/CorporateAgreementFactory.sol";
import {Service, Tier, Department, CorporateTerms, Status} from "contracts/SlaTypes.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";

/// @title Multi-level agreement (issue 11): the silent oracle and the shared pool.
/// @notice Three corporate services, four departments with different subsets, fees, caps and an
/// objective override; three one-hour periods; native ETH.
contract CorporateAgreementTest is TestBase {
    address internal provider = vm.addr(0xB0B1);
    address internal organisation = vm.addr(0xB0B2);
    address internal oracle = vm.addr(0xB0B3);
    address internal stranger = vm.addr(0xB0B4);
    uint16 internal constant PERIODS = 3;
    uint32 internal constant LENGTH = 1 hours;
    uint256 internal constant DEPARTMENTS = 4;
    uint64 internal start;
    bytes32 internal constant ROOT = keccak256("evidence");
    CorporateAgreementFactory internal factory;
    // Two funded agreements with the same terms, deployed once: every fuzz run starts from this
    // snapshot (deploying in each run made the CI profile cost minutes).
    CorporateAgreement internal a;
    CorporateAgreement internal b;

    function setUp() public {
        start = uint64(block.timestamp + 1 hours);
        factory = new CorporateAgreementFactory();
        a = _funded();
        b = _funded();
    }

    function _services() internal pure returns (Service[] memory s) {
        s = new Service[](3);
        s[0].id = "email";
        s[0].objective = 999_000;
        s[0].tiers = new Tier[](2);
        s[0].tiers[0] = Tier(999_000, 1_000);
        s[0].tiers[1] = Tier(990_000, 2_500);
        s[1].id = "erp";
        s[1].objective = 995_000;
        s[1].tiers = new Tier[](2);
        s[1].tiers[0] = Tier(995_000, 1_000);
        s[1].tiers[1] = Tier(980_000, 3_000);
        s[2].id = "vpn";
        s[2].objective = 990_000;
        s[2].tiers = new Tier[](1);
        s[2].tiers[0] = Tier(990_000, 2_000);
    }

    function _departments() internal returns (Department[] memory d) {
        d = new Department[](DEPARTMENTS);
        for (uint256 i = 0; i < DEPARTMENTS; ++i) {
            d[i].payout = vm.addr(0xD000 + i);
            d[i].feePerPeriod = uint128((i + 1) * 0.5 ether);
            d[i].objectives = new uint32[](3);
            d[i].weightsBps = new uint16[](3);
        }
        d[0].serviceMask = 3; // email 30 %, erp 70 % with a stricter objective, full cap
        d[0].weightsBps[0] = 3_000;
        d[0].weightsBps[1] = 7_000;
        d[0].objectives[1] = 999_000;
        d[0].creditCapBps = 10_000;
        d[1].serviceMask = 5;
        d[1].weightsBps[0] = 5_000;
        d[1].weightsBps[2] = 5_000;
        d[2].serviceMask = 7;
        d[2].weightsBps[0] = 2_000;
        d[2].weightsBps[1] = 2_000;
        d[2].weightsBps[2] = 6_000;
        d[3].serviceMask = 4;
        d[3].weightsBps[2] = 10_000;
        d[3].creditCapBps = 1_000;
    }

    function _terms(uint128 collateral) internal view returns (CorporateTerms memory t) {
        t.provider = provider;
        t.organisation = organisation;
        t.start = start;
        t.periodLength = LENGTH;
        t.periodCount = PERIODS;
        t.collateral = collateral;
        t.creditCapBps = 5_000;
        t.oracles = new address[](1);
        t.oracles[0] = oracle;
        t.quorum = 1;
        t.sliceLength = 60;
        t.services = _services();
    }

    function _deploy(uint128 collateral) internal returns (CorporateAgreement c) {
        c = CorporateAgreement(factory.createCorporateAgreement(_terms(collateral), _departments()));
    }

    function _worstPerPeriod() internal returns (uint256) {
        return _deploy(type(uint64).max).snapshot().worstCasePerPeriod;
    }

    function _funded() internal returns (CorporateAgreement c) {
        // The smallest pool accepted: exactly the worst case.
        uint128 pool = uint128(_worstPerPeriod() * PERIODS);
        c = _deploy(pool);
        uint256 fees = c.totalFees();
        vm.deal(organisation, fees);
        vm.prank(organisation);
        c.depositFees{value: fees}();
        vm.deal(provider, pool);
        vm.prank(provider);
        c.depositCollateral{value: pool}();
    }

    function _reportAll(CorporateAgreement c, uint32[3][PERIODS] memory values, uint256 count) internal {
        for (uint256 p = 0; p < count; ++p) {
            vm.warp(c.periodEnd(p));
            uint32[] memory v = new uint32[](3);
            for (uint256 i = 0; i < 3; ++i) {
                v[i] = uint32(bound(values[p][i], 0, 1_000_000));
            }
            vm.prank(oracle);
            c.settle(p, v, 1_000_000, ROOT);
        }
    }

    /// @dev Money is accounted for: what the contract holds is what it owes plus what it escrows.
    function _assertAccounted(CorporateAgreement c) internal {
        Department[] memory d = _departments();
        uint256 owed = c.owed(provider) + c.owed(organisation);
        for (uint256 i = 0; i < d.length; ++i) {
            owed += c.owed(d[i].payout);
        }
        assertEq(address(c).balance, owed + c.snapshot().feesEscrowed + c.snapshot().collateralPool, "money accounted for");
    }

    /// @notice Two settlement orders (department by department, and period by period from the
    /// last department) pay every party exactly the same. On the old contract, with a pool short
    /// of the worst case, the first order gave one department everything.
    /// forge-config: ci.fuzz.runs = 1000
    function testFuzz_settlementOrderDoesNotChangePayouts(uint32[3][PERIODS] memory values) public {
        _reportAll(a, values, PERIODS);
        vm.warp(start); // b's reports are made at the same times
        _reportAll(b, values, PERIODS);
        for (uint256 d = 0; d < DEPARTMENTS; ++d) {
            for (uint256 p = 0; p < PERIODS; ++p) {
                a.settleDepartment(d, p);
            }
        }
        for (uint256 p = 0; p < PERIODS; ++p) {
            for (uint256 d = DEPARTMENTS; d > 0; --d) {
                b.settleDepartment(d - 1, p);
            }
        }
        Department[] memory deps = _departments();
        for (uint256 i = 0; i < DEPARTMENTS; ++i) {
            assertEq(a.owed(deps[i].payout), b.owed(deps[i].payout), "same credit whatever the order");
        }
        assertEq(a.owed(provider), b.owed(provider), "same provider payout");
        assertEq(a.snapshot().collateralPool, 0, "the pool is released by the settlements themselves");
        assertEq(a.snapshot().feesEscrowed, 0, "every fee paid");
        _assertAccounted(a);
        _assertAccounted(b);
    }

    /// @notice A pool below the worst case is refused at creation.
    function test_poolShortOfTheWorstCaseIsRefused() public {
        uint256 worst = _worstPerPeriod() * PERIODS;
        CorporateTerms memory t = _terms(uint128(worst - 1));
        Department[] memory d = _departments();
        vm.expectRevert(abi.encodeWithSelector(CorporateAgreementFactory.PoolBelowWorstCase.selector, worst - 1, worst));
        factory.createCorporateAgreement(t, d);
    }

    /// @notice The oracle reports `reported` periods then goes silent: REPORT_DEADLINE after the
    /// term anyone expires the agreement, and once the reported periods are settled and everyone
    /// has withdrawn the contract holds nothing. The organisation gets back exactly the fees of
    /// the unreported periods. (Old contract: no expire; the fees and the pool stayed locked.)
    /// forge-config: ci.fuzz.runs = 1000
    function testFuzz_silentOracleExpireReleasesEverything(uint32[3][PERIODS] memory values, uint8 reported) public {
        uint256 count = bound(reported, 0, PERIODS - 1);
        CorporateAgreement c = a;
        _reportAll(c, values, count);
        uint256 deadline = c.expiresAt();
        vm.warp(deadline - 1);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotExpired.selector, deadline));
        c.expire();
        vm.warp(deadline);
        vm.prank(oracle);
        vm.expectRevert(abi.encodeWithSelector(CorporateAgreement.AgreementExpired.selector, deadline));
        c.settle(count, new uint32[](3), 1_000_000, ROOT);
        vm.prank(stranger);
        c.expire();
        assertEq(c.owed(organisation), uint256(c.snapshot().feesPerPeriod) * (PERIODS - count), "unreported fees back");
        _assertAccounted(c);
        for (uint256 p = 0; p < count; ++p) {
            c.settleDepartments(p, 0, DEPARTMENTS);
        }
        assertEq(c.snapshot().feesEscrowed, 0, "every fee settled or refunded");
        assertEq(c.snapshot().collateralPool, 0, "every reservation released");
        _assertAccounted(c);
        Department[] memory d = _departments();
        address[] memory parties = new address[](DEPARTMENTS + 2);
        parties[0] = provider;
        parties[1] = organisation;
        for (uint256 i = 0; i < DEPARTMENTS; ++i) {
            parties[i + 2] = d[i].payout;
        }
        for (uint256 i = 0; i < parties.length; ++i) {
            if (c.owed(parties[i]) == 0) continue;
            vm.prank(parties[i]);
            c.withdraw();
        }
        assertEq(address(c).balance, 0, "nothing left locked");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.WrongStatus.selector, Status.Expired));
        c.expire(); // once
    }

    function test_badIndexAndCancelHaveTheirOwnErrors() public {
        CorporateAgreement c = a;
        vm.expectRevert(abi.encodeWithSelector(CorporateAgreement.UnknownDepartment.selector, 4, 4));
        c.settleDepartment(4, 0);
        vm.expectRevert(abi.encodeWithSelector(CorporateAgreement.UnknownDepartment.selector, 4, 4));
        c.department(4);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.WrongStatus.selector, Status.Active));
        c.cancel();
    }
}
