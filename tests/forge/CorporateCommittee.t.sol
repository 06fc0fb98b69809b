// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TestBase} from "./utils/TestBase.sol";
import {RefModel} from "./utils/RefModel.sol";

import {CorporateAgreement} from "contracts/CorporateAgreement.sol";
import {CorporateAgreementFactory} from "contracts/CorporateAgreementFactory.sol";
import {Service, Tier, Department, CorporateTerms, SignedReport, PeriodState} from "contracts/SlaTypes.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";

/// @title The multi-level agreement's committee: EIP-712 reports signed with vm.sign.
/// @notice Five oracles, quorum 3 (one liar tolerated), two services, two departments. The same
/// rules as `Agreement`'s committee (tests/forge/Committee.t.sol): a quorum of distinct members,
/// the median of each service, signatures bound to this agreement, the period and a deadline.
contract CorporateCommitteeTest is TestBase {
    uint256 internal constant MEMBERS = 5;
    uint8 internal constant QUORUM = 3;
    uint16 internal constant PERIODS = 2;
    uint32 internal constant LENGTH = 1 hours;
    bytes32 internal constant ROOT = keccak256("evidence");
    address internal provider = vm.addr(0xC0B1);
    address internal organisation = vm.addr(0xC0B2);
    uint256[MEMBERS] internal keys;
    address[] internal members;
    uint64 internal start;
    CorporateAgreementFactory internal factory;
    CorporateAgreement internal a;
    CorporateAgreement internal b; // same terms, another address: a replay target

    function setUp() public {
        for (uint256 i = 0; i < MEMBERS; ++i) {
            keys[i] = 0xA11CE + i;
            members.push(vm.addr(keys[i]));
        }
        start = uint64(block.timestamp + 1 hours);
        factory = new CorporateAgreementFactory();
        a = _funded();
        b = _funded();
    }

    function _terms() internal view returns (CorporateTerms memory t) {
        t.provider = provider;
        t.organisation = organisation;
        t.start = start;
        t.periodLength = LENGTH;
        t.periodCount = PERIODS;
        t.collateral = 10 ether;
        t.creditCapBps = 5_000;
        t.oracles = members;
        t.quorum = QUORUM;
        t.sliceLength = 60;
        t.services = new Service[](2);
        t.services[0].id = "email";
        t.services[0].objective = 999_000;
        t.services[0].tiers = new Tier[](1);
        t.services[0].tiers[0] = Tier(999_000, 2_000);
        t.services[1].id = "erp";
        t.services[1].objective = 995_000;
        t.services[1].tiers = new Tier[](1);
        t.services[1].tiers[0] = Tier(995_000, 3_000);
    }

    function _departments() internal pure returns (Department[] memory d) {
        d = new Department[](2);
        for (uint256 i = 0; i < 2; ++i) {
            d[i].payout = address(uint160(0xD100 + i));
            d[i].feePerPeriod = 1 ether;
            d[i].serviceMask = 3;
            d[i].objectives = new uint32[](2);
            d[i].weightsBps = new uint16[](2);
            d[i].weightsBps[0] = 5_000;
            d[i].weightsBps[1] = 5_000;
        }
    }

    function _funded() internal returns (CorporateAgreement c) {
        c = CorporateAgreement(factory.createCorporateAgreement(_terms(), _departments()));
        uint256 fees = c.totalFees();
        vm.deal(organisation, fees);
        vm.prank(organisation);
        c.depositFees{value: fees}();
        vm.deal(provider, 10 ether);
        vm.prank(provider);
        c.depositCollateral{value: 10 ether}();
    }

    function _values(uint32 x, uint32 y) internal pure returns (uint32[] memory v) {
        v = new uint32[](2);
        v[0] = x;
        v[1] = y;
    }

    function _sign(CorporateAgreement c, uint256 key, uint256 period, uint32[] memory values)
        internal
        returns (SignedReport memory r)
    {
        r.valuesPpm = values;
        r.measuredPpm = 1_000_000;
        r.evidenceRoot = ROOT;
        r.deadline = uint64(block.timestamp + 1 hours);
        (uint8 v, bytes32 rr, bytes32 s) =
            vm.sign(key, c.reportDigest(period, values, r.measuredPpm, r.evidenceRoot, r.deadline));
        r.signature = abi.encodePacked(rr, s, v);
    }

    function _three(CorporateAgreement c, uint256 period, uint32[] memory v) internal returns (SignedReport[] memory r) {
        r = new SignedReport[](3);
        for (uint256 i = 0; i < 3; ++i) {
            r[i] = _sign(c, keys[i], period, v);
        }
    }

    /// @notice Any 3 to 5 distinct members with any values, submitted by anyone: the period is
    /// reported with each service's median (of an even count, the floor of the middle two's mean).
    function testFuzz_reportsTheMedianWhoeverSubmits(uint256 seed, uint8 k, address submitter) public {
        k = uint8(bound(k, QUORUM, MEMBERS));
        vm.warp(a.periodEnd(0));
        SignedReport[] memory reports = new SignedReport[](k);
        uint32[] memory xs = new uint32[](k);
        uint32[] memory ys = new uint32[](k);
        for (uint256 i = 0; i < k; ++i) {
            xs[i] = uint32(bound(uint256(keccak256(abi.encode(seed, i, 0))), 900_000, 1_000_000));
            ys[i] = uint32(bound(uint256(keccak256(abi.encode(seed, i, 1))), 900_000, 1_000_000));
            reports[i] = _sign(a, keys[(seed % MEMBERS + i) % MEMBERS], 0, _values(xs[i], ys[i]));
        }
        vm.prank(submitter);
        a.settleWithReports(0, reports);
        uint32[] memory got = a.reportedValues(0);
        assertEq(got[0], RefModel.median(xs), "median of the first service");
        assertEq(got[1], RefModel.median(ys), "median of the second service");
        assertEq(a.snapshot().reportedPeriods, 1, "one period reported");
    }

    /// @notice One lying member (reporting 0 % for everything) moves no median: the two honest
    /// values around it decide.
    function testFuzz_oneLiarMovesNothing(uint32 honest, uint8 liar) public {
        honest = uint32(bound(honest, 999_000, 1_000_000));
        liar = uint8(bound(liar, 0, 2));
        vm.warp(a.periodEnd(0));
        SignedReport[] memory r = _three(a, 0, _values(honest, honest));
        r[liar] = _sign(a, keys[liar], 0, _values(0, 0));
        a.settleWithReports(0, r);
        uint32[] memory got = a.reportedValues(0);
        assertEq(got[0], honest, "the liar does not move the first service");
        assertEq(got[1], honest, "nor the second");
    }

    /// @notice Reports signed for agreement `b` are worth nothing on `a` (the verifying contract
    /// is in the digest): the recovered signer is a stranger.
    function test_reportsForAnotherAgreementAreRefused() public {
        vm.warp(a.periodEnd(0));
        SignedReport[] memory forB = _three(b, 0, _values(1_000_000, 1_000_000));
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotACommitteeMember.selector, _signer(a, 0, forB[0])));
        a.settleWithReports(0, forB);
        b.settleWithReports(0, forB); // where they belong they count
        assertEq(b.snapshot().reportedPeriods, 1, "reported on b");
    }

    /// @notice Reports of period 0 cannot be replayed as period 1's, nor accepted twice.
    function test_reportsForAnotherPeriodAndReplaysAreRefused() public {
        vm.warp(a.periodEnd(1));
        SignedReport[] memory p0 = _three(a, 0, _values(1_000_000, 1_000_000));
        a.settleWithReports(0, p0);
        vm.expectRevert(abi.encodeWithSelector(CorporateAgreement.PeriodAlreadyReported.selector, 0));
        a.settleWithReports(0, p0);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotACommitteeMember.selector, _signer(a, 1, p0[0])));
        a.settleWithReports(1, p0);
        assertEq(a.snapshot().reportedPeriods, 1, "period 0 only");
    }

    /// @notice Fewer than the quorum, one member twice, a stranger's signature, an expired report:
    /// each refused with its own error, nothing reported.
    function test_quorumDuplicatesStrangersAndDeadlines() public {
        vm.warp(a.periodEnd(0));
        uint32[] memory v = _values(1_000_000, 1_000_000);
        SignedReport[] memory r = _three(a, 0, v);

        SignedReport[] memory two = new SignedReport[](2);
        two[0] = r[0];
        two[1] = r[1];
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.QuorumNotReached.selector, QUORUM, 2));
        a.settleWithReports(0, two);

        SignedReport[] memory twice = _three(a, 0, v);
        twice[2] = twice[0];
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.DuplicateSigner.selector, members[0]));
        a.settleWithReports(0, twice);

        SignedReport[] memory stranger = _three(a, 0, v);
        stranger[1] = _sign(a, 0xBAD, 0, v);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotACommitteeMember.selector, vm.addr(0xBAD)));
        a.settleWithReports(0, stranger);

        SignedReport[] memory late = _three(a, 0, v);
        vm.warp(uint256(late[0].deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.ReportExpired.selector, 0, late[0].deadline));
        a.settleWithReports(0, late);

        assertEq(a.snapshot().reportedPeriods, 0, "nothing reported");
        (PeriodState state,,) = a.periodState(0);
        assertEq(uint8(state), uint8(PeriodState.None), "period 0 not reported");
    }

    /// @notice With a quorum above 1 no single member reports directly.
    function test_aSingleMemberCannotReportDirectly() public {
        vm.warp(a.periodEnd(0));
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.QuorumNotReached.selector, QUORUM, 1));
        a.settle(0, _values(0, 0), 1_000_000, ROOT);
    }

    /// @dev Who `r`'s signature recovers to over `c`'s digest for `period` (a stranger when the
    /// report was signed for another agreement or period).
    function _signer(CorporateAgreement c, uint256 period, SignedReport memory r) internal view returns (address) {
        bytes memory sig = r.signature;
        bytes32 rr;
        bytes32 s;
        uint8 v;
        assembly {
            rr := mload(add(sig, 32))
            s := mload(add(sig, 64))
            v := byte(0, mload(add(sig, 96)))
        }
        return ecrecover(c.reportDigest(period, r.valuesPpm, r.measuredPpm, r.evidenceRoot, r.deadline), v, rr, s);
    }
}
