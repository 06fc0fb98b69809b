// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {
    CorporateSnapshot,
    Department,
    Service,
    Status,
    SignedReport,
    MaintenanceWindow,
    PeriodState,
    PPM
} from "./SlaTypes.sol";
import {CorporateCodec} from "./CorporateCodec.sol";
import {ISlaErrors} from "./interfaces/ISlaErrors.sol";
import {ISlaEvents} from "./interfaces/ISlaEvents.sol";
import {SlaEscrow} from "./libraries/SlaEscrow.sol";
import {SlaCommittee} from "./libraries/SlaCommittee.sol";
import {DepartmentCredit} from "./libraries/DepartmentCredit.sol";

/// @title A multi-level SLA: corporate terms and one collateral pool, departments on top.
/// @notice Corporate level: the provider, the paying organisation, the oracle committee, the
/// schedule, the services with their default objectives and credit tiers, dispute, maintenance and
/// disaster clauses, and one collateral pool. Customer level: each department has its own payout
/// address, its own subset of the services, its own fee, weights, objectives and cap.
/// The committee reports each period once for the whole organisation, one value per corporate
/// service (the median of at least `quorum` EIP-712 reports signed by distinct members, exactly as
/// `Agreement`; with a quorum of 1 a member may report directly with `settle`). Its cost does not
/// depend on the number of departments. Once a period is final (at once without a dispute
/// window; else after the window, or when the arbiter resolves a dispute), each department's
/// period settles with `settleDepartment` (or a range with `settleDepartments`), which anyone may
/// call: the contract applies the department's services, objectives, weights and cap, credits its
/// payout address (pull payment) and releases the fee and the rest of the reservation to the
/// provider.
///
/// Fair pool: the factory refuses a pool that does not cover the worst case (every department's
/// capped credit for a total outage, every period), so each department-period has its own
/// reservation and no settlement order can change anyone's payout.
///
/// Departments: their terms are written at creation into data contracts (see CorporateCodec),
/// addressed from the clone's immutable terms; nobody can add, remove or change a department,
/// so credits can only ever go to a department's payout address.
///
/// Disaster clause, per department: once a period is final with a figure below
/// `terminationPpm` in a service the department covers, the organisation (which pays) may end
/// that department's part with `terminateDepartment`: the provider earns the served part of the
/// period in progress (pro rata by the second), the organisation gets back the rest and every
/// later period's fee, the provider the department's later reservations. Every ended period must
/// have been reported first (its fee is the provider's once reported).
///
/// Silent committee: from REPORT_DEADLINE after the term's end no report is accepted and anyone
/// may `expire` the agreement: the unreported periods' fees go back to the organisation, their
/// reservations to the provider, in one transaction; reported periods still settle.
/// @dev Deployed as an EIP-1167 clone with immutable args by CorporateAgreementFactory. The
/// implementation contract itself refuses every call.
contract CorporateAgreement is ReentrancyGuard, EIP712, ISlaErrors, ISlaEvents {
    // ---------------------------------------------------------------- errors
    /// @notice Department `index` does not exist (there are `count`).
    error UnknownDepartment(uint256 index, uint256 count);
    /// @notice `period` was already reported.
    error PeriodAlreadyReported(uint256 period);
    /// @notice `period` has no report yet.
    error PeriodNotReported(uint256 period);
    /// @notice The report deadline passed at `expiresAt`: no more reports.
    error AgreementExpired(uint256 expiresAt);
    /// @notice Department `index` used the disaster clause: it has no period from `endPeriod` on.
    error DepartmentEnded(uint256 index, uint256 endPeriod);
    /// @notice `period` has ended and waits for its report; its fee is the provider's once reported.
    error PeriodAwaitingReport(uint256 period);

    // ---------------------------------------------------------------- events
    /// @notice `period` was reported: the values (one per corporate service) and the measured share.
    /// `finalAfter`: when it becomes final (the report's time without a dispute window).
    event PeriodReported(uint256 indexed period, uint32[] valuesPpm, uint32 measuredPpm, uint64 finalAfter);
    /// @notice The arbiter replaced a disputed period's values; the period is final.
    event ReportCorrected(uint256 indexed period, uint32[] valuesPpm);
    /// @notice `period` became final: departments may settle it.
    event PeriodFinal(uint256 indexed period);
    /// @param released the part of the department-period's pool reservation returned to the provider
    event DepartmentSettled(
        uint256 indexed department,
        uint256 indexed period,
        uint256[] serviceCredits,
        uint256 creditPaid,
        uint256 fee,
        uint256 released
    );
    /// @notice The organisation ended department `index`'s part under the disaster clause, from
    /// `endPeriod` on.
    event DepartmentTerminated(
        uint256 indexed index, uint256 endPeriod, uint256 refundedFees, uint256 feeEarned, uint256 releasedCollateral
    );
    /// @notice Every period was reported.
    event Ended(uint256 timestamp);

    // ---------------------------------------------------------------- constants
    uint256 public constant MAX_DEPARTMENTS = 256;
    uint256 public constant MAX_SERVICES = 16;
    /// @notice The most maintenance windows one agreement may declare (as Agreement).
    uint256 public constant MAX_MAINTENANCE_WINDOWS = 64;
    /// @notice How long after the term's end periods may still be reported (as Agreement).
    uint256 public constant REPORT_DEADLINE = 30 days;
    /// @notice The same EIP-712 report type as Agreement (domain "smartsla Agreement", "1", this
    /// contract): the oracles sign a corporate period exactly as a single agreement's.
    bytes32 public constant REPORT_TYPEHASH = SlaCommittee.REPORT_TYPEHASH;

    // ---------------------------------------------------------------- state
    Status private _status;
    uint16 private _reportedPeriods;
    uint16 private _pendingPeriods;
    bool private _feesDeposited;
    bool private _collateralDeposited;
    uint32 private _maintenanceUsed;
    /// @dev Fees and worst-case credit per period of the departments not terminated.
    uint128 private _activeFeesPerPeriod;
    uint128 private _activeWorstPerPeriod;

    uint128 private _feesEscrowed;
    uint128 private _collateralPool;

    struct Period {
        uint64 finalAfter;
        PeriodState state;
        uint16 disasterMask; // bit i: service i below terminationPpm in the figures that count
    }

    struct DepartmentState {
        uint16 settledPeriods;
        uint16 endPeriod; // with `terminated`: no period from it on
        bool terminated;
    }

    mapping(uint256 period => Period) private _periods;
    mapping(uint256 period => uint32[]) private _values;
    mapping(uint256 index => DepartmentState) private _departments;
    mapping(address party => uint256) private _owed;
    MaintenanceWindow[] private _maintenance;

    address private immutable _implementation;

    constructor() EIP712("smartsla Agreement", "1") {
        _implementation = address(this);
    }

    modifier onlyClone() {
        if (address(this) == _implementation) revert NotAClone();
        _;
    }

    // ---------------------------------------------------------------- reads

    /// @notice The corporate terms as fixed at creation, packed (layout in CorporateCodec; the
    /// Python driver decodes them). Packed rather than a `CorporateTerms` struct: the ABI encoder
    /// of the nested struct would push this contract over EIP-170's code size limit.
    function packedTerms() external view onlyClone returns (bytes memory) {
        return _args();
    }

    /// @notice Number of departments.
    function departmentCount() public view onlyClone returns (uint256) {
        return _arg(CorporateCodec.DEPARTMENT_COUNT, 16);
    }

    /// @notice One department's terms.
    function department(uint256 index) external view onlyClone returns (Department memory d) {
        (d,) = _department(index);
    }

    /// @notice Department `index`'s credit for a total outage (capped): its reservation per period.
    function worstCreditOf(uint256 index) external view onlyClone returns (uint256 worst) {
        (, worst) = _department(index);
    }

    /// @notice How many periods of department `index` are settled.
    function settledPeriodsOf(uint256 index) external view onlyClone returns (uint16) {
        _checkIndex(index);
        return _departments[index].settledPeriods;
    }

    /// @notice Department `index`'s progress: settled periods, and whether (from which period) it
    /// used the disaster clause.
    function departmentState(uint256 index)
        external
        view
        onlyClone
        returns (uint16 settledPeriods, bool terminated, uint16 endPeriod)
    {
        _checkIndex(index);
        DepartmentState memory s = _departments[index];
        return (s.settledPeriods, s.terminated, s.endPeriod);
    }

    /// @notice Status, balances and progress in one call.
    function snapshot() external view onlyClone returns (CorporateSnapshot memory) {
        return CorporateSnapshot({
            status: _status,
            reportedPeriods: _reportedPeriods,
            pendingPeriods: _pendingPeriods,
            feesDeposited: _feesDeposited,
            collateralDeposited: _collateralDeposited,
            feesEscrowed: _feesEscrowed,
            collateralPool: _collateralPool,
            feesPerPeriod: uint128(_arg(CorporateCodec.FEES_PER_PERIOD, 128)),
            worstCasePerPeriod: uint128(_arg(CorporateCodec.WORST_PER_PERIOD, 128))
        });
    }

    /// @notice What the agreement owes `party` (provider, organisation or a department's payout).
    function owed(address party) external view onlyClone returns (uint256) {
        return _owed[party];
    }

    /// @notice Every department's fees for the whole term.
    function totalFees() public view onlyClone returns (uint256) {
        return _arg(CorporateCodec.FEES_PER_PERIOD, 128) * _arg(CorporateCodec.PERIOD_COUNT, 16);
    }

    /// @notice A reported period's state, when it becomes (became) final, and which services fell
    /// below the disaster threshold.
    function periodState(uint256 period)
        external
        view
        onlyClone
        returns (PeriodState state, uint256 finalAfter, uint16 disasterMask)
    {
        Period memory p = _periods[period];
        return (p.state, p.finalAfter, p.disasterMask);
    }

    /// @notice The values that count for `period` (empty if not yet reported).
    function reportedValues(uint256 period) external view onlyClone returns (uint32[] memory) {
        return _values[period];
    }

    /// @notice Unix time at which `period` ends.
    function periodEnd(uint256 period) public view onlyClone returns (uint256) {
        return _arg(CorporateCodec.START, 64) + (period + 1) * _arg(CorporateCodec.PERIOD_LENGTH, 32);
    }

    /// @notice From this time on no report is accepted and anyone may `expire` the agreement.
    function expiresAt() public view onlyClone returns (uint256) {
        return periodEnd(_arg(CorporateCodec.PERIOD_COUNT, 16) - 1) + REPORT_DEADLINE;
    }

    /// @notice Number of maintenance windows declared so far.
    function maintenanceCount() external view onlyClone returns (uint256) {
        return _maintenance.length;
    }

    /// @notice A page of declared maintenance windows, oldest first.
    function maintenanceWindows(uint256 offset, uint256 limit)
        external
        view
        onlyClone
        returns (MaintenanceWindow[] memory out)
    {
        uint256 n = _maintenance.length;
        if (offset >= n) return new MaintenanceWindow[](0);
        uint256 end = limit > n - offset ? n : offset + limit;
        out = new MaintenanceWindow[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            out[i - offset] = _maintenance[i];
        }
    }

    /// @notice The EIP-712 digest an oracle signs for `period` of this agreement (as Agreement's).
    function reportDigest(
        uint256 period,
        uint32[] memory valuesPpm,
        uint32 measuredPpm,
        bytes32 evidenceRoot,
        uint64 deadline
    ) public view onlyClone returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    REPORT_TYPEHASH, period, keccak256(abi.encodePacked(valuesPpm)), measuredPpm, evidenceRoot, deadline
                )
            )
        );
    }

    // ---------------------------------------------------------------- deposits

    /// @notice The organisation prepays every department's fees for the whole term, before it starts.
    /// @dev For an ERC-20 asset, approve the amount first; send no ether.
    function depositFees() external payable onlyClone nonReentrant {
        if (msg.sender != _organisation()) revert Unauthorized(msg.sender);
        if (_status != Status.Pending) revert WrongStatus(_status);
        if (_feesDeposited) revert AlreadyDeposited();
        uint256 start = _arg(CorporateCodec.START, 64);
        if (block.timestamp >= start) revert TermStarted(start);
        uint256 amount = totalFees();
        _feesDeposited = true;
        _feesEscrowed = uint128(amount);
        emit FeesDeposited(msg.sender, amount);
        _maybeActivate();
        SlaEscrow.pull(_asset(), amount, msg.value);
    }

    /// @notice The provider deposits the collateral pool, before the term starts. What exceeds
    /// the worst case reserved for the term is released to the provider at once.
    /// @dev For an ERC-20 asset, approve the amount first; send no ether.
    function depositCollateral() external payable onlyClone nonReentrant {
        address provider = _provider();
        if (msg.sender != provider) revert Unauthorized(msg.sender);
        if (_status != Status.Pending) revert WrongStatus(_status);
        if (_collateralDeposited) revert AlreadyDeposited();
        uint256 start = _arg(CorporateCodec.START, 64);
        if (block.timestamp >= start) revert TermStarted(start);
        uint128 collateral = uint128(_arg(CorporateCodec.COLLATERAL, 128));
        // <= collateral: the factory refused a pool below the worst case.
        uint128 reserved =
            uint128(_arg(CorporateCodec.WORST_PER_PERIOD, 128) * _arg(CorporateCodec.PERIOD_COUNT, 16));
        _collateralDeposited = true;
        _collateralPool = reserved;
        emit CollateralDeposited(msg.sender, collateral);
        uint128 excess = collateral - reserved;
        if (excess != 0) {
            _owed[provider] += excess;
            emit CollateralReleased(excess);
        }
        _maybeActivate();
        SlaEscrow.pull(_asset(), collateral, msg.value);
    }

    /// @notice Either party calls off an agreement still waiting for deposits; whatever was
    /// deposited becomes withdrawable by whoever deposited it.
    function cancel() external onlyClone {
        address provider = _provider();
        address organisation = _organisation();
        if (msg.sender != organisation && msg.sender != provider) revert Unauthorized(msg.sender);
        if (_status != Status.Pending) revert WrongStatus(_status);
        uint128 fees = _feesEscrowed;
        uint128 pool = _collateralPool;
        _status = Status.Cancelled;
        _feesEscrowed = 0;
        _collateralPool = 0;
        _owed[organisation] += fees;
        _owed[provider] += pool;
        emit Cancelled(msg.sender, fees, pool);
    }

    // ---------------------------------------------------------------- maintenance

    /// @notice The provider declares a maintenance window, exactly as in Agreement: under the
    /// maintenance clause a window declared at least the notice ahead, aligned to the slices, is
    /// excluded from the figures by the oracles and charged to the budget; any other window counts
    /// as ordinary time.
    function declareMaintenance(uint64 start, uint64 end) external onlyClone {
        if (msg.sender != _provider()) revert Unauthorized(msg.sender);
        if (_status != Status.Pending && _status != Status.Active) revert WrongStatus(_status);
        if (_maintenance.length >= MAX_MAINTENANCE_WINDOWS) revert TooManyMaintenanceWindows(MAX_MAINTENANCE_WINDOWS);
        uint256 termStart = _arg(CorporateCodec.START, 64);
        uint256 termEnd = periodEnd(_arg(CorporateCodec.PERIOD_COUNT, 16) - 1);
        if (start < block.timestamp || end <= start || start < termStart || end > termEnd) {
            revert InvalidWindow(start, end);
        }
        uint256 notice = _arg(CorporateCodec.MAINTENANCE_NOTICE, 32);
        uint256 budget = _arg(CorporateCodec.MAINTENANCE_BUDGET, 32);
        bool excluded = notice != 0 && budget != 0 && uint256(start) >= block.timestamp + notice;
        if (excluded) {
            uint256 slice = _arg(CorporateCodec.SLICE_LENGTH, 32);
            if ((start - termStart) % slice != 0 || (end - termStart) % slice != 0) {
                revert MisalignedWindow(start, end, slice);
            }
            uint256 remaining = budget - _maintenanceUsed;
            if (end - start > remaining) revert MaintenanceBudgetExceeded(end - start, remaining);
            _maintenanceUsed += uint32(end - start);
        }
        _maintenance.push(
            MaintenanceWindow({start: start, end: end, declaredAt: uint64(block.timestamp), excluded: excluded})
        );
        emit MaintenanceDeclared(_maintenance.length - 1, start, end, uint64(block.timestamp), excluded);
    }

    // ---------------------------------------------------------------- reports

    /// @notice A committee member reports one period directly (only when the quorum is 1): one
    /// value per corporate service, the measured share and the evidence root (never zero).
    function settle(uint256 period, uint32[] calldata valuesPpm, uint32 measuredPpm, bytes32 evidenceRoot)
        external
        onlyClone
    {
        address[] memory members = CorporateCodec.oracles(_args());
        if (SlaCommittee.memberIndex(members, msg.sender) == type(uint256).max) revert Unauthorized(msg.sender);
        uint256 quorum = _arg(CorporateCodec.QUORUM, 8);
        if (quorum > 1) revert QuorumNotReached(quorum, 1);
        if (evidenceRoot == bytes32(0)) revert MissingEvidence();
        emit EvidenceCommitted(period, msg.sender, evidenceRoot);
        _report(period, valuesPpm, measuredPpm);
    }

    /// @notice Anyone submits the signed reports of at least `quorum` distinct members; the period
    /// is reported with each service's median and the median measured share (Agreement's rule).
    function settleWithReports(uint256 period, SignedReport[] calldata reports) external onlyClone {
        uint256 k = reports.length;
        address[] memory members;
        uint256 n;
        {
            bytes memory args = _args();
            members = CorporateCodec.oracles(args);
            n = CorporateCodec.read(args, CorporateCodec.SERVICE_COUNT, 8);
            uint256 quorum = CorporateCodec.read(args, CorporateCodec.QUORUM, 8);
            if (k < quorum || k == 0) revert QuorumNotReached(quorum, k);
        }
        uint256 signers = 0;
        uint32[][] memory columns = new uint32[][](n + 1); // one per service, then the measured shares
        for (uint256 s = 0; s <= n; ++s) {
            columns[s] = new uint32[](k);
        }
        for (uint256 i = 0; i < k; ++i) {
            SignedReport calldata r = reports[i];
            if (r.deadline < block.timestamp) revert ReportExpired(i, r.deadline);
            uint32[] calldata values = r.valuesPpm;
            if (values.length != n) revert WrongNumberOfValues(n, values.length);
            if (r.evidenceRoot == bytes32(0)) revert MissingEvidence();
            address signer =
                ECDSA.recover(reportDigest(period, values, r.measuredPpm, r.evidenceRoot, r.deadline), r.signature);
            uint256 index = SlaCommittee.memberIndex(members, signer);
            if (index == type(uint256).max) revert NotACommitteeMember(signer);
            if (signers & (1 << index) != 0) revert DuplicateSigner(signer);
            signers |= 1 << index;
            emit EvidenceCommitted(period, signer, r.evidenceRoot);
            for (uint256 s = 0; s < n; ++s) {
                columns[s][i] = values[s];
            }
            columns[n][i] = r.measuredPpm;
        }
        uint32[] memory medians = new uint32[](n);
        for (uint256 s = 0; s < n; ++s) {
            medians[s] = SlaCommittee.median(columns[s]);
        }
        emit ReportsAccepted(period, signers);
        _report(period, medians, SlaCommittee.median(columns[n]));
    }

    /// @dev Records the next period's figures; cost independent of the number of departments.
    function _report(uint256 period, uint32[] memory values, uint32 measuredPpm) private {
        if (_status != Status.Active) revert WrongStatus(_status);
        uint256 deadline = expiresAt();
        if (block.timestamp >= deadline) revert AgreementExpired(deadline);
        uint16 reported = _reportedPeriods;
        if (period < reported) revert PeriodAlreadyReported(period);
        if (period != reported) revert PeriodOutOfOrder(reported, period);
        uint256 endsAt = periodEnd(period);
        if (block.timestamp < endsAt) revert PeriodNotEnded(period, endsAt);
        uint256 n = _arg(CorporateCodec.SERVICE_COUNT, 8);
        if (values.length != n) revert WrongNumberOfValues(n, values.length);
        if (measuredPpm > PPM) revert MeasuredShareAboveOneHundredPercent(measuredPpm);
        uint256 minimum = _arg(CorporateCodec.MIN_MEASURED, 32);
        if (measuredPpm < minimum) revert PeriodNotMeasured(period, measuredPpm, minimum);
        uint16 mask = _disasterMask(values);
        uint256 window = _arg(CorporateCodec.DISPUTE_WINDOW, 32);
        uint64 finalAfter = uint64(block.timestamp + window);
        _reportedPeriods = reported + 1;
        _values[period] = values;
        if (window == 0) {
            _periods[period] = Period({finalAfter: finalAfter, state: PeriodState.Final, disasterMask: mask});
        } else {
            _periods[period] = Period({finalAfter: finalAfter, state: PeriodState.Pending, disasterMask: mask});
            _pendingPeriods += 1;
        }
        emit PeriodReported(period, values, measuredPpm, finalAfter);
        if (window == 0) emit PeriodFinal(period);
        if (reported + 1 == _arg(CorporateCodec.PERIOD_COUNT, 16)) {
            _status = Status.Ended;
            emit Ended(block.timestamp);
        }
    }

    // ---------------------------------------------------------------- disputes

    /// @notice Within the dispute window, the organisation or the provider disputes a reported
    /// period, pointing at its evidence. The arbiter decides; departments wait.
    function dispute(uint256 period, bytes32 evidence) external onlyClone {
        if (msg.sender != _organisation() && msg.sender != _provider()) revert Unauthorized(msg.sender);
        Period storage p = _periods[period];
        if (p.state != PeriodState.Pending) revert WrongPeriodState(period, p.state);
        if (block.timestamp >= p.finalAfter) revert DisputeWindowClosed(period, p.finalAfter);
        p.state = PeriodState.Disputed;
        emit Disputed(period, msg.sender, evidence);
    }

    /// @notice The arbiter resolves a disputed period with corrected values (one per corporate
    /// service); they count for every department, and the period is final at once.
    function resolveDispute(uint256 period, uint32[] calldata correctedValues) external onlyClone {
        if (msg.sender != address(uint160(_arg(CorporateCodec.ARBITER, 160)))) revert Unauthorized(msg.sender);
        Period storage p = _periods[period];
        if (p.state != PeriodState.Disputed) revert WrongPeriodState(period, p.state);
        uint256 n = _arg(CorporateCodec.SERVICE_COUNT, 8);
        if (correctedValues.length != n) revert WrongNumberOfValues(n, correctedValues.length);
        p.disasterMask = _disasterMask(correctedValues);
        p.state = PeriodState.Final;
        _pendingPeriods -= 1;
        _values[period] = correctedValues;
        emit ReportCorrected(period, correctedValues);
        emit PeriodFinal(period);
    }

    /// @notice Anyone makes a reported period final once its dispute window has passed; a
    /// disputed period the arbiter left undecided for another window counts as reported.
    function finalize(uint256 period) external onlyClone {
        Period storage p = _periods[period];
        uint256 until = p.finalAfter;
        if (p.state == PeriodState.Disputed) until += _arg(CorporateCodec.DISPUTE_WINDOW, 32);
        else if (p.state != PeriodState.Pending) revert WrongPeriodState(period, p.state);
        if (block.timestamp < until) revert DisputeWindowOpen(period, until);
        p.state = PeriodState.Final;
        _pendingPeriods -= 1;
        emit PeriodFinal(period);
    }

    // ---------------------------------------------------------------- departments

    /// @notice Settles a department's next period once it is final; anyone may call. The
    /// department's credit goes to its payout address, its fee and the rest of its reservation
    /// to the provider.
    function settleDepartment(uint256 index, uint256 period) external onlyClone {
        bytes memory args = _args();
        _checkIndex(index);
        _settle(args, CorporateCodec.services(args, _servicesOffset(args)), index, period);
    }

    /// @notice Settles `period` for departments `first` to `end - 1` in one transaction; those
    /// already past it or terminated before it are skipped. At most MAX_DEPARTMENTS iterations.
    function settleDepartments(uint256 period, uint256 first, uint256 end) external onlyClone {
        uint256 count = departmentCount();
        if (end > count) revert UnknownDepartment(end - 1, count);
        bytes memory args = _args();
        Service[] memory services = CorporateCodec.services(args, _servicesOffset(args));
        for (uint256 index = first; index < end; ++index) {
            DepartmentState memory s = _departments[index];
            if (s.settledPeriods > period || (s.terminated && period >= s.endPeriod)) continue;
            _settle(args, services, index, period);
        }
    }

    /// @notice Disaster clause of department `index`: once `period` is final with a figure below
    /// the termination threshold in a service the department covers, the organisation ends the
    /// department's part. Every ended period must be reported first.
    function terminateDepartment(uint256 index, uint256 period) external onlyClone {
        if (msg.sender != _organisation()) revert Unauthorized(msg.sender);
        if (_status != Status.Active) revert WrongStatus(_status);
        (Department memory d, uint256 worst) = _department(index);
        DepartmentState storage s = _departments[index];
        if (s.terminated) revert DepartmentEnded(index, s.endPeriod);
        Period memory p = _periods[period];
        if (p.state != PeriodState.Final) revert WrongPeriodState(period, p.state);
        if (p.disasterMask & d.serviceMask == 0) revert NoDisaster();
        // The period in progress is the first not reported; a period that has ended was served.
        uint16 current = _reportedPeriods;
        uint256 endsAt = periodEnd(current);
        if (block.timestamp >= endsAt) revert PeriodAwaitingReport(current);
        uint256 length = _arg(CorporateCodec.PERIOD_LENGTH, 32);
        uint256 startsAt = endsAt - length;
        uint256 fee = d.feePerPeriod;
        // Rounded down, in the organisation's favour (it just suffered a disaster), as Agreement.
        uint256 earned = block.timestamp > startsAt ? fee * (block.timestamp - startsAt) / length : 0;
        uint256 remaining = _arg(CorporateCodec.PERIOD_COUNT, 16) - current;
        uint256 refund = fee * remaining - earned;
        uint256 released = worst * remaining;
        s.terminated = true;
        s.endPeriod = current;
        _activeFeesPerPeriod -= uint128(fee);
        _activeWorstPerPeriod -= uint128(worst);
        _feesEscrowed -= uint128(fee * remaining);
        _collateralPool -= uint128(released);
        _owed[_organisation()] += refund;
        _owed[_provider()] += earned + released;
        emit DepartmentTerminated(index, current, refund, earned, released);
    }

    // ---------------------------------------------------------------- ending

    /// @notice Anyone ends an agreement whose periods were not all reported by `expiresAt()`
    /// (committee gone silent): the unreported periods' fees go back to the organisation, their
    /// reservations to the provider, in this one transaction. Reported periods still settle.
    function expire() external onlyClone {
        if (_status != Status.Active) revert WrongStatus(_status);
        uint256 deadline = expiresAt();
        if (block.timestamp < deadline) revert NotExpired(deadline);
        uint256 unreported = _arg(CorporateCodec.PERIOD_COUNT, 16) - _reportedPeriods;
        // Terminated departments gave back their later periods already (they end at or before
        // the first unreported period: termination needs every ended period reported).
        uint128 refund = uint128(uint256(_activeFeesPerPeriod) * unreported);
        uint128 returned = uint128(uint256(_activeWorstPerPeriod) * unreported);
        _status = Status.Expired;
        _feesEscrowed -= refund;
        _collateralPool -= returned;
        _owed[_organisation()] += refund;
        _owed[_provider()] += returned;
        emit Expired(unreported, refund, returned);
    }

    /// @notice Pays the caller (provider, organisation or a department's payout address) what it is owed.
    function withdraw() external onlyClone {
        withdrawTo(payable(msg.sender));
    }

    /// @notice Pays what the caller is owed to `to`, for a party that cannot receive ether or is
    /// blocked by the token.
    function withdrawTo(address payable to) public onlyClone nonReentrant {
        if (to == address(0)) revert InvalidRecipient();
        uint256 amount = _owed[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, to, amount);
        SlaEscrow.pay(_asset(), to, amount);
    }

    // ---------------------------------------------------------------- internals

    function _settle(bytes memory args, Service[] memory services, uint256 index, uint256 period) private {
        DepartmentState memory s = _departments[index];
        if (s.terminated && period >= s.endPeriod) revert DepartmentEnded(index, s.endPeriod);
        if (period != s.settledPeriods) revert PeriodOutOfOrder(s.settledPeriods, period);
        if (period >= _reportedPeriods) revert PeriodNotReported(period);
        PeriodState state = _periods[period].state;
        if (state != PeriodState.Final) revert WrongPeriodState(period, state);
        (Department memory d, uint256 worst) = _readDepartment(args, index, services.length);
        (uint256[] memory credits, uint256 credit) = DepartmentCredit.credits(
            services, d, uint16(CorporateCodec.read(args, CorporateCodec.CREDIT_CAP, 16)), _values[period]
        );
        // credit <= worst: credits only grow as values fall, and the worst case is every value 0.
        uint256 released = worst - credit;
        _departments[index].settledPeriods = s.settledPeriods + 1;
        _collateralPool -= uint128(worst);
        _feesEscrowed -= d.feePerPeriod;
        _owed[d.payout] += credit;
        _owed[address(uint160(CorporateCodec.read(args, CorporateCodec.PROVIDER, 160)))] += d.feePerPeriod + released;
        emit DepartmentSettled(index, period, credits, credit, d.feePerPeriod, released);
    }

    function _disasterMask(uint32[] memory values) private view returns (uint16 mask) {
        uint256 threshold = _arg(CorporateCodec.TERMINATION, 32);
        for (uint256 i = 0; i < values.length; ++i) {
            if (values[i] > PPM) revert ValueAboveOneHundredPercent(i, values[i]);
            if (values[i] < threshold) mask |= uint16(1 << i);
        }
    }

    function _maybeActivate() private {
        if (_feesDeposited && _collateralDeposited) {
            _status = Status.Active;
            _activeFeesPerPeriod = uint128(_arg(CorporateCodec.FEES_PER_PERIOD, 128));
            _activeWorstPerPeriod = uint128(_arg(CorporateCodec.WORST_PER_PERIOD, 128));
            emit Activated(block.timestamp);
        }
    }

    function _checkIndex(uint256 index) private view {
        uint256 count = departmentCount();
        if (index >= count) revert UnknownDepartment(index, count);
    }

    function _department(uint256 index) private view returns (Department memory d, uint256 worst) {
        _checkIndex(index);
        bytes memory args = _args();
        return _readDepartment(args, index, CorporateCodec.read(args, CorporateCodec.SERVICE_COUNT, 8));
    }

    /// @dev Copies department `index`'s record out of its data contract (one EXTCODECOPY).
    function _readDepartment(bytes memory args, uint256 index, uint256 serviceCount)
        private
        view
        returns (Department memory, uint256)
    {
        uint256 length = CorporateCodec.read(args, CorporateCodec.RECORD_LENGTH, 16);
        uint256 capacity = CorporateCodec.read(args, CorporateCodec.CHUNK_CAPACITY, 16);
        address pointer = CorporateCodec.chunk(args, index / capacity);
        uint256 offset = 1 + (index % capacity) * length; // after the data contract's STOP byte
        bytes memory record = new bytes(length);
        assembly ("memory-safe") {
            extcodecopy(pointer, add(record, 32), offset, length)
        }
        return CorporateCodec.decodeDepartment(record, serviceCount);
    }

    function _servicesOffset(bytes memory args) private pure returns (uint256) {
        return CorporateCodec.HEADER_LENGTH
            + 20
                * (CorporateCodec.read(args, CorporateCodec.ORACLE_COUNT, 8)
                    + CorporateCodec.read(args, CorporateCodec.CHUNK_COUNT, 8));
    }

    function _args() private view returns (bytes memory) {
        return Clones.fetchCloneArgs(address(this));
    }

    function _provider() private view returns (address) {
        return address(uint160(_arg(CorporateCodec.PROVIDER, 160)));
    }

    function _organisation() private view returns (address) {
        return address(uint160(_arg(CorporateCodec.ORGANISATION, 160)));
    }

    function _asset() private view returns (address) {
        return address(uint160(_arg(CorporateCodec.ASSET, 160)));
    }

    /// @dev `bits` bits at byte `offset` of this clone's packed terms (after the clone's 45 bytes
    /// of code), through the scratch space: one word copied, not the whole terms.
    function _arg(uint256 offset, uint256 bits) private view returns (uint256 value) {
        assembly ("memory-safe") {
            extcodecopy(address(), 0, add(45, offset), 32)
            value := shr(sub(256, bits), mload(0))
        }
    }
}
