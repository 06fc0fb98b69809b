// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

import {CorporateTerms, Department, Service, Tier, PPM, BPS} from "./SlaTypes.sol";
import {CorporateCodec} from "./CorporateCodec.sol";
import {CorporateAgreement} from "./CorporateAgreement.sol";
import {DepartmentCredit} from "./libraries/DepartmentCredit.sol";

/// @title Creates multi-level agreements (CorporateAgreement clones) and keeps their registry.
/// @notice A sibling of AgreementFactory: every agreement is an EIP-1167 clone of one
/// CorporateAgreement implementation with its validated corporate terms packed into the clone's
/// code, and its departments' records in one or two data contracts written here (see
/// CorporateCodec). Terms and departments are fixed at creation; the pool must cover the worst case.
contract CorporateAgreementFactory {
    uint256 public constant MAX_DEPARTMENTS = 256;
    uint256 public constant MAX_SERVICES = 16;
    uint256 public constant MAX_TIERS = 8;
    uint256 public constant MAX_ORACLES = 16;
    uint256 public constant MAX_SLICE_LENGTH = 3600;
    /// @notice The most bytes of one data contract: EIP-170's 24,576 less its STOP byte.
    uint256 public constant MAX_CHUNK = 24_575;

    // ---------------------------------------------------------------- errors (one per rule)
    /// @notice The term would start before the current block.
    error StartInPast(uint256 start, uint256 now_);
    /// @notice A party, oracle or arbiter address is the zero address.
    error ZeroAddress();
    /// @notice The provider, the organisation, the oracles and the arbiter must be distinct.
    error RolesNotDistinct(address who);
    /// @notice The committee needs 1..16 members and an odd quorum of at most the members.
    error InvalidCommittee(uint256 members, uint256 quorum);
    /// @notice Periods need a positive length, a whole number of 1..3600-second slices, and a count.
    error InvalidSchedule(uint256 periodLength, uint256 periodCount, uint256 sliceLength);
    /// @notice A credit cap outside 1..10000 bps, a threshold or measured share above 100 %.
    error InvalidPercentage(uint256 value);
    /// @notice The maintenance notice and budget go together (both zero or both positive).
    error MaintenanceClauseIncomplete(uint256 notice, uint256 budget);
    /// @notice A dispute window needs an arbiter (and an arbiter a dispute window).
    error DisputeClauseIncomplete(uint256 window, address arbiter);
    /// @notice 1..16 corporate services are needed.
    error InvalidServiceCount(uint256 count);
    /// @notice Corporate service `index` is unsound (empty or duplicate id, objective outside
    /// 1..1000000 ppm, or a weight: each department weighs the services it covers).
    error InvalidService(uint256 index);
    /// @notice Tier `tier` of service `service`: credit outside 1..10000 bps, threshold above the
    /// objective, or tiers not from the mildest to the harshest (1..8 tiers).
    error InvalidTier(uint256 service, uint256 tier);
    /// @notice 1..256 departments are needed.
    error InvalidDepartmentCount(uint256 count);
    /// @notice Department `index` is unsound: zero payout or fee, no or unknown services, one
    /// override per service missing, a weight for a service not covered, weights not summing to
    /// 10000 bps, a cap above 100 %, or an objective override above 100 % or at or below the
    /// service's second tier.
    error InvalidDepartment(uint256 index);
    /// @notice The pool (`collateral`) does not cover every department's worst-case credit for
    /// every period (`worstCase`).
    error PoolBelowWorstCase(uint256 collateral, uint256 worstCase);
    /// @notice The fees for the term plus the collateral do not fit the books (uint128).
    error AmountsOverflow();
    /// @notice A data contract could not be created.
    error DataWriteFailed();

    event CorporateAgreementCreated(
        address indexed agreement,
        address indexed provider,
        address indexed organisation,
        address asset,
        uint256 departmentCount
    );

    /// @notice The CorporateAgreement implementation every clone delegates to.
    address public immutable implementation;

    mapping(address => bool) public isAgreement;
    uint256 public agreementCount;

    constructor() {
        implementation = address(new CorporateAgreement());
    }

    /// @notice Creates a multi-level agreement. Anyone may; it does nothing until the
    /// organisation deposits the fees and the provider the pool.
    function createCorporateAgreement(CorporateTerms calldata terms, Department[] calldata departments)
        external
        returns (address agreement)
    {
        CorporateTerms memory t = terms;
        validate(t);
        uint256 count = departments.length;
        if (count == 0 || count > MAX_DEPARTMENTS) revert InvalidDepartmentCount(count);
        CorporateCodec.Totals memory x = CorporateCodec.Totals(0, 0, 0, 0, 0, new address[](0));
        _writeDepartments(t, departments, x);
        uint256 worstCase = uint256(x.worstCasePerPeriod) * t.periodCount;
        if (uint256(x.feesPerPeriod) * t.periodCount + t.collateral > type(uint128).max) revert AmountsOverflow();
        if (worstCase > t.collateral) revert PoolBelowWorstCase(t.collateral, worstCase);
        agreement = Clones.cloneWithImmutableArgs(implementation, CorporateCodec.encode(t, x));
        isAgreement[agreement] = true;
        agreementCount += 1;
        emit CorporateAgreementCreated(agreement, t.provider, t.organisation, t.asset, count);
    }

    /// @notice Reverts with the rule the corporate terms break (departments are checked at creation).
    function validate(CorporateTerms memory t) public view {
        if (t.start < block.timestamp) revert StartInPast(t.start, block.timestamp);
        if (t.provider == address(0) || t.organisation == address(0)) revert ZeroAddress();
        if (t.provider == t.organisation) revert RolesNotDistinct(t.provider);
        uint256 m = t.oracles.length;
        if (m == 0 || m > MAX_ORACLES || t.quorum == 0 || t.quorum > m || t.quorum % 2 == 0) {
            revert InvalidCommittee(m, t.quorum);
        }
        for (uint256 i = 0; i < m; ++i) {
            address o = t.oracles[i];
            if (o == address(0)) revert ZeroAddress();
            if (o == t.provider || o == t.organisation) revert RolesNotDistinct(o);
            for (uint256 k = 0; k < i; ++k) {
                if (t.oracles[k] == o) revert RolesNotDistinct(o);
            }
        }
        if ((t.disputeWindow == 0) != (t.arbiter == address(0))) revert DisputeClauseIncomplete(t.disputeWindow, t.arbiter);
        if (t.arbiter != address(0) && (t.arbiter == t.provider || t.arbiter == t.organisation)) {
            revert RolesNotDistinct(t.arbiter);
        }
        uint256 slice = t.sliceLength;
        if (
            t.periodCount == 0 || t.periodLength == 0 || slice == 0 || slice > MAX_SLICE_LENGTH
                || t.periodLength % slice != 0
        ) revert InvalidSchedule(t.periodLength, t.periodCount, slice);
        if ((t.maintenanceNotice == 0) != (t.maintenanceBudget == 0)) {
            revert MaintenanceClauseIncomplete(t.maintenanceNotice, t.maintenanceBudget);
        }
        if (t.creditCapBps == 0 || t.creditCapBps > BPS) revert InvalidPercentage(t.creditCapBps);
        if (t.terminationPpm > PPM) revert InvalidPercentage(t.terminationPpm);
        if (t.minMeasuredPpm > PPM) revert InvalidPercentage(t.minMeasuredPpm);
        uint256 n = t.services.length;
        if (n == 0 || n > MAX_SERVICES) revert InvalidServiceCount(n);
        for (uint256 i = 0; i < n; ++i) {
            Service memory s = t.services[i];
            if (s.id == bytes32(0) || s.objective == 0 || s.objective > PPM || s.weightBps != 0) {
                revert InvalidService(i);
            }
            for (uint256 k = 0; k < i; ++k) {
                if (t.services[k].id == s.id) revert InvalidService(i);
            }
            uint256 tiers = s.tiers.length;
            if (tiers == 0 || tiers > MAX_TIERS) revert InvalidTier(i, tiers);
            for (uint256 j = 0; j < tiers; ++j) {
                Tier memory tier = s.tiers[j];
                if (tier.creditBps == 0 || tier.creditBps > BPS || tier.threshold > s.objective) {
                    revert InvalidTier(i, j);
                }
                if (j > 0 && (tier.threshold >= s.tiers[j - 1].threshold || tier.creditBps <= s.tiers[j - 1].creditBps)) {
                    revert InvalidTier(i, j);
                }
            }
        }
    }

    /// @dev Writes every department's record, in chunks that each fit one data contract, and
    /// fills in `x` (with the departments' fees and worst-case credits per period).
    function _writeDepartments(CorporateTerms memory t, Department[] calldata departments, CorporateCodec.Totals memory x)
        private
    {
        uint256 count = departments.length;
        uint256 recordLength = CorporateCodec.RECORD_HEAD + 6 * t.services.length;
        uint256 capacity = MAX_CHUNK / recordLength;
        x.departmentCount = uint16(count);
        x.recordLength = uint16(recordLength);
        x.chunkCapacity = uint16(capacity);
        x.chunks = new address[]((count + capacity - 1) / capacity);
        for (uint256 c = 0; c < x.chunks.length; ++c) {
            x.chunks[c] = _writeChunk(t, departments, c, x);
        }
    }

    /// @dev Checks the departments of chunk `c`, adds their fees and worst-case credits (a total
    /// outage: every value 0) to `x`, and writes their records into one data contract.
    function _writeChunk(CorporateTerms memory t, Department[] calldata departments, uint256 c, CorporateCodec.Totals memory x)
        private
        returns (address)
    {
        uint256 first = c * x.chunkCapacity;
        uint256 end = first + x.chunkCapacity > departments.length ? departments.length : first + x.chunkCapacity;
        uint32[] memory outage = new uint32[](t.services.length);
        uint256[] memory scratch = new uint256[](t.services.length); // reused for every department
        bytes memory data;
        {
            uint256 size = (end - first) * x.recordLength;
            data = new bytes(size + 32); // 32 spare bytes: the codec writes whole words
            assembly ("memory-safe") {
                mstore(data, size)
            }
        }
        for (uint256 i = first; i < end; ++i) {
            _addDepartment(t, departments[i], i, data, (i - first) * x.recordLength, outage, scratch, x);
        }
        return _write(data);
    }

    function _addDepartment(
        CorporateTerms memory t,
        Department memory d,
        uint256 index,
        bytes memory data,
        uint256 at,
        uint32[] memory outage,
        uint256[] memory scratch,
        CorporateCodec.Totals memory x
    ) private pure {
        _checkDepartment(t.services, d, index);
        uint256 worstCredit = DepartmentCredit.creditsInto(t.services, d, t.creditCapBps, outage, scratch);
        x.feesPerPeriod += d.feePerPeriod;
        x.worstCasePerPeriod += uint128(worstCredit);
        CorporateCodec.writeDepartment(data, at, d, worstCredit, t.services.length);
    }

    function _checkDepartment(Service[] memory services, Department memory d, uint256 index) private pure {
        uint256 n = services.length;
        if (
            d.payout == address(0) || d.feePerPeriod == 0 || d.serviceMask == 0 || d.serviceMask >> n != 0
                || d.objectives.length != n || d.weightsBps.length != n || d.creditCapBps > BPS
        ) revert InvalidDepartment(index);
        uint256 weights = 0;
        for (uint256 i = 0; i < n; ++i) {
            bool covered = d.serviceMask & (1 << i) != 0;
            if (!covered && (d.weightsBps[i] != 0 || d.objectives[i] != 0)) revert InvalidDepartment(index);
            uint32 objective = d.objectives[i];
            if (objective > PPM) revert InvalidDepartment(index);
            // The mildest tier moves to an override: it must stay above the second tier.
            if (objective != 0 && services[i].tiers.length > 1 && objective <= services[i].tiers[1].threshold) {
                revert InvalidDepartment(index);
            }
            weights += d.weightsBps[i];
        }
        if (weights != BPS) revert InvalidDepartment(index);
    }

    /// @dev Writes `data` as the code of a new contract that starts with a STOP byte (never run).
    function _write(bytes memory data) private returns (address pointer) {
        bytes memory code = bytes.concat(hex"00", data);
        // PUSH2 len, DUP1, PUSH1 10, RETURNDATASIZE, CODECOPY, RETURNDATASIZE, RETURN; then the code.
        bytes memory init = bytes.concat(hex"61", bytes2(uint16(code.length)), hex"80600a3d393df3", code);
        assembly ("memory-safe") {
            pointer := create(0, add(init, 32), mload(init))
        }
        if (pointer == address(0)) revert DataWriteFailed();
    }
}
