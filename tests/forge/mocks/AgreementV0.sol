// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {
    Terms,
    Options,
    Status,
    Snapshot,
    SignedReport,
    MaintenanceWindow,
    PeriodState,
    PPM,
    KIND_AVAILABILITY,
    KIND_SATISFACTION,
    KIND_COMPOSITE
} from "contracts/SlaTypes.sol";
import {TermsCodec} from "contracts/TermsCodec.sol";
import {CreditMath} from "contracts/CreditMath.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";
import {ISlaEvents} from "contracts/interfaces/ISlaEvents.sol";
import {SlaEscrow} from "contracts/libraries/SlaEscrow.sol";
import {SlaCommittee} from "contracts/libraries/SlaCommittee.sol";

/// @title One Service Level Agreement between a provider and a customer.
/// @notice The customer prepays every period's fee and the provider deposits a collateral bond,
/// both in the agreement's asset. After each period the oracle committee reports the measured
/// value of every service (the median of at least `quorum` EIP-712 reports signed by distinct
/// members, so a lying minority cannot move it); the agreement pays the customer the service
/// credit its terms promise, out of the collateral, and releases that period's fee to the
/// provider. Payments are pulled with `withdraw()`. A period below the disaster threshold lets
/// the customer terminate and take back every fee not yet earned. With a dispute window, a
/// settled period pays out only after the window, and an arbiter settles disputes.
/// @dev Deployed as an EIP-1167 clone by AgreementFactory with the packed terms appended to the
/// clone's code (see TermsCodec), so the terms are immutable and need no initializer. The
/// implementation contract itself refuses every call.
contract AgreementV0 is ReentrancyGuard, EIP712, ISlaErrors, ISlaEvents {

    // ---------------------------------------------------------------- errors
    /// @notice `period` is already settled.
    error PeriodAlreadySettled(uint256 period);
    /// @notice The agreement has no satisfaction service to attest.
    error NoSatisfactionService();
    /// @notice `period` has ended and waits for its report; its fee is the provider's.
    error PeriodAwaitingReport(uint256 period);

    /// @notice The most maintenance windows one agreement may declare, so that every reader (the
    /// oracles, anyone auditing the figures) reads a bounded list.
    uint256 public constant MAX_MAINTENANCE_WINDOWS = 64;

    /// @notice How long after the term's end periods may still be reported; after it anyone may
    /// `expire()` the agreement, so that silent oracles cannot lock the escrow forever.
    uint256 public constant REPORT_DEADLINE = 30 days;

    /// @notice EIP-712 type of an oracle report. The domain (name "smartsla Agreement", version
    /// "1", chain id, verifyingContract = this agreement) and the period make a signature useless
    /// on any other chain, agreement or period.
    /// The deadline makes an unused signature worthless after it. The evidence root is signed
    /// with the values: a signature over one body of evidence is invalid with another.
    bytes32 public constant REPORT_TYPEHASH = SlaCommittee.REPORT_TYPEHASH;

    // ---------------------------------------------------------------- events
    /// @notice A period settled: the values that counted (satisfaction and composite figures
    /// filled in), each service's credit, the credit after cap and collateral limit, and the fee
    /// released to the provider (payable now, or after the dispute window). `disaster`: the
    /// reported figures fell below the disaster threshold (with a dispute window the clause opens
    /// only when the period becomes final with such a figure). `measuredPpm`: the share of the
    /// period's countable time the oracles measured.
    event PeriodSettled(
        uint256 indexed period,
        uint32[] valuesPpm,
        uint256[] serviceCredits,
        uint256 creditPaid,
        uint256 feeEarned,
        bool disaster,
        uint32 measuredPpm
    );
    /// @notice The credit owed exceeded the collateral left; `shortfall` was not paid.
    event CollateralExhausted(uint256 indexed period, uint256 shortfall);
    /// @notice The customer used the disaster clause: `refundedFees` (the unserved part of the
    /// period in progress and every later period) went back to it, `feeEarnedByProvider` (the
    /// served part of the period in progress) to the provider.
    event Terminated(
        address indexed customer, uint256 refundedFees, uint256 returnedCollateral, uint256 feeEarnedByProvider
    );
    event Ended(uint256 returnedCollateral);
    event SatisfactionAttested(uint256 indexed period, uint32 scorePpm);
    event DisputeResolved(uint256 indexed period, uint32[] valuesPpm, uint256 previousCredit, uint256 creditPaid);
    event PeriodFinalized(uint256 indexed period, uint256 creditPaid, uint256 feeEarned);

    // ---------------------------------------------------------------- state
    // Packed so that a settlement on the fast path touches three slots.
    Status private _status;
    uint16 private _settledPeriods;
    bool private _feesDeposited;
    bool private _collateralDeposited;
    bool private _disasterOccurred;
    uint16 private _pendingPeriods;
    uint32 private _maintenanceUsed; // seconds of excluded maintenance declared so far

    uint128 private _feesEscrowed;
    uint128 private _collateralEscrowed;

    uint128 private _owedToCustomer;
    uint128 private _owedToProvider;

    uint128 private _pendingToCustomer;
    uint128 private _pendingToProvider;

    struct Pending {
        uint128 credit;
        uint64 finalAfter;
        PeriodState state;
        bool disaster; // the figure that becomes final opens the disaster clause
    }

    mapping(uint256 period => Pending) private _pending;
    mapping(uint256 period => uint256 scorePlusOne) private _satisfaction;
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

    /// @notice The agreement's terms, as fixed at creation.
    function terms() public view onlyClone returns (Terms memory t) {
        (t,) = _load();
    }

    /// @notice The agreement's optional terms (dispute window, arbiter, maintenance notice,
    /// service kinds, and the measurement method with the signed document's hash), as fixed at
    /// creation.
    function options() external view onlyClone returns (Options memory o) {
        (, o) = _loadWithMethod();
    }

    /// @notice Current status, balances and progress in one call.
    function snapshot() external view onlyClone returns (Snapshot memory) {
        return Snapshot({
            status: _status,
            settledPeriods: _settledPeriods,
            feesDeposited: _feesDeposited,
            collateralDeposited: _collateralDeposited,
            disasterOccurred: _disasterOccurred,
            feesEscrowed: _feesEscrowed,
            collateralEscrowed: _collateralEscrowed,
            owedToCustomer: _owedToCustomer,
            owedToProvider: _owedToProvider,
            pendingToCustomer: _pendingToCustomer,
            pendingToProvider: _pendingToProvider,
            pendingPeriods: _pendingPeriods
        });
    }

    /// @notice Unix time at which `period` ends (and may be settled).
    function periodEnd(uint256 period) public view onlyClone returns (uint256) {
        (Terms memory t, Options memory o) = _load();
        return _periodEnd(t, o, period);
    }

    /// @notice A settled period's payout state under a dispute window (None without one).
    function periodState(uint256 period)
        external
        view
        onlyClone
        returns (PeriodState state, uint256 credit, uint256 finalAfter)
    {
        Pending memory p = _pending[period];
        return (p.state, p.credit, p.finalAfter);
    }

    /// @notice The customer's satisfaction score for `period`, if attested.
    function satisfaction(uint256 period) external view onlyClone returns (bool attested, uint32 scorePpm) {
        uint256 v = _satisfaction[period];
        return (v != 0, v == 0 ? 0 : uint32(v - 1));
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

    /// @notice What `values` would earn the customer in one period, before the collateral limit
    /// (satisfaction services count as attested so far for period `settledPeriods`).
    /// @return serviceCredits credit of each service in asset units
    /// @return capped total after the per-period cap
    function quoteCredit(uint32[] calldata values)
        external
        view
        onlyClone
        returns (uint256[] memory serviceCredits, uint256 capped)
    {
        (Terms memory t, Options memory o) = _load();
        (, serviceCredits, capped,) = _credits(t, o, _settledPeriods, values);
    }

    // ---------------------------------------------------------------- deposits

    /// @notice The customer prepays the fees of every period (feePerPeriod x periodCount), before
    /// the term starts.
    /// @dev For an ERC-20 asset, approve the amount first; send no ether.
    function depositFees() external payable onlyClone nonReentrant {
        if (msg.sender != _customer()) revert Unauthorized(msg.sender);
        if (_status != Status.Pending) revert WrongStatus(_status);
        if (_feesDeposited) revert AlreadyDeposited();
        uint256 start = _arg(TermsCodec.START_OFFSET, 64);
        if (block.timestamp >= start) revert TermStarted(start);
        uint256 amount = _arg(TermsCodec.FEE_OFFSET, 128) * _arg(TermsCodec.PERIOD_COUNT_OFFSET, 16);
        _feesDeposited = true;
        _feesEscrowed = uint128(amount);
        emit FeesDeposited(msg.sender, amount);
        _maybeActivate();
        SlaEscrow.pull(_asset(), amount, msg.value);
    }

    /// @notice The provider deposits the collateral bond that backs the credits, before the term
    /// starts.
    /// @dev For an ERC-20 asset, approve the amount first; send no ether.
    function depositCollateral() external payable onlyClone nonReentrant {
        if (msg.sender != _provider()) revert Unauthorized(msg.sender);
        if (_status != Status.Pending) revert WrongStatus(_status);
        if (_collateralDeposited) revert AlreadyDeposited();
        uint256 start = _arg(TermsCodec.START_OFFSET, 64);
        if (block.timestamp >= start) revert TermStarted(start);
        uint128 collateral = uint128(_arg(TermsCodec.COLLATERAL_OFFSET, 128));
        _collateralDeposited = true;
        _collateralEscrowed = collateral;
        emit CollateralDeposited(msg.sender, collateral);
        _maybeActivate();
        SlaEscrow.pull(_asset(), collateral, msg.value);
    }

    /// @notice Either party calls off an agreement that is still waiting for deposits (past its
    /// start that is all a pending agreement can do); whatever was deposited becomes withdrawable
    /// by whoever deposited it.
    function cancel() external onlyClone {
        if (msg.sender != _customer() && msg.sender != _provider()) revert Unauthorized(msg.sender);
        if (_status != Status.Pending) revert WrongStatus(_status);
        uint128 fees = _feesEscrowed;
        uint128 collateral = _collateralEscrowed;
        _status = Status.Cancelled;
        _feesEscrowed = 0;
        _collateralEscrowed = 0;
        _owedToCustomer += fees;
        _owedToProvider += collateral;
        emit Cancelled(msg.sender, fees, collateral);
    }

    // ---------------------------------------------------------------- measurements

    /// @notice The provider declares a maintenance window. Under the agreement's maintenance
    /// clause (a positive notice and budget), a window declared at least the notice ahead is
    /// excluded from the figures by the oracles and charged to the budget; it must then start and
    /// end on slice boundaries. Any other window counts as ordinary time (it is only a notice).
    /// @param start unix time, not in the past and within the term
    /// @param end unix time, after start and within the term
    function declareMaintenance(uint64 start, uint64 end) external onlyClone {
        (Terms memory t, Options memory o) = _load();
        if (msg.sender != t.provider) revert Unauthorized(msg.sender);
        if (_status != Status.Pending && _status != Status.Active) revert WrongStatus(_status);
        if (_maintenance.length >= MAX_MAINTENANCE_WINDOWS) revert TooManyMaintenanceWindows(MAX_MAINTENANCE_WINDOWS);
        uint256 termEnd = _periodEnd(t, o, t.periodCount - 1);
        if (start < block.timestamp || end <= start || start < t.start || end > termEnd) {
            revert InvalidWindow(start, end);
        }
        // No clause (notice and budget both zero, the default): nothing is ever excluded, so the
        // provider cannot declare an outage away as it happens.
        bool excluded = o.maintenanceNotice != 0 && o.maintenanceBudget != 0
            && uint256(start) >= block.timestamp + o.maintenanceNotice;
        if (excluded) {
            // The oracles exclude whole slices; aligned windows make the seconds charged to the
            // budget exactly the seconds excluded (a one-second window cannot erase a slice).
            uint256 slice = o.sliceLength;
            if ((start - t.start) % slice != 0 || (end - t.start) % slice != 0) {
                revert MisalignedWindow(start, end, slice);
            }
            uint256 remaining = o.maintenanceBudget - _maintenanceUsed;
            if (end - start > remaining) revert MaintenanceBudgetExceeded(end - start, remaining);
            _maintenanceUsed += uint32(end - start);
        }
        _maintenance.push(
            MaintenanceWindow({start: start, end: end, declaredAt: uint64(block.timestamp), excluded: excluded})
        );
        emit MaintenanceDeclared(_maintenance.length - 1, start, end, uint64(block.timestamp), excluded);
    }

    /// @notice The customer attests its satisfaction score (ppm) for a period not yet settled; the
    /// last attestation before settlement counts. Without one the period counts as satisfied.
    function attestSatisfaction(uint256 period, uint32 scorePpm) external onlyClone {
        (Terms memory t, Options memory o) = _load();
        if (msg.sender != t.customer) revert Unauthorized(msg.sender);
        if (_status != Status.Active && _status != Status.Pending) revert WrongStatus(_status);
        if (period < _settledPeriods) revert PeriodAlreadySettled(period);
        if (period >= t.periodCount) revert PeriodOutOfOrder(_settledPeriods, period);
        if (scorePpm > PPM) revert ValueAboveOneHundredPercent(type(uint256).max, scorePpm);
        bool has = false;
        for (uint256 i = 0; i < o.serviceKinds.length; ++i) {
            if (o.serviceKinds[i] == KIND_SATISFACTION) has = true;
        }
        if (!has) revert NoSatisfactionService();
        _satisfaction[period] = uint256(scorePpm) + 1;
        emit SatisfactionAttested(period, scorePpm);
    }

    // ---------------------------------------------------------------- settlement

    /// @notice A committee member reports one period's measured value of every service directly
    /// (only when the quorum is 1). Values are in ppm (ms for latency services), in the order of
    /// the terms' services.
    /// @param period zero-based period index; must be the next unsettled period
    /// @param valuesPpm one measured value per service
    /// @param measuredPpm share of the period's countable time that was measured (the least over
    /// the services); at least the agreed `minMeasuredPpm`
    /// @param evidenceRoot Merkle root of the oracle's evidence for the period (never zero)
    function settle(uint256 period, uint32[] calldata valuesPpm, uint32 measuredPpm, bytes32 evidenceRoot)
        external
        onlyClone
    {
        (Terms memory t, Options memory o) = _load();
        if (SlaCommittee.memberIndex(t.oracles, msg.sender) == type(uint256).max) revert Unauthorized(msg.sender);
        if (t.quorum > 1) revert QuorumNotReached(t.quorum, 1);
        if (evidenceRoot == bytes32(0)) revert MissingEvidence();
        emit EvidenceCommitted(period, msg.sender, evidenceRoot);
        _settle(t, o, period, valuesPpm, measuredPpm);
    }

    /// @notice Anyone submits the signed reports of at least `quorum` distinct members; the period
    /// settles on each service's median, and the median measured share. With an odd number of
    /// reports the median is the middle one; with an even number (more than the odd quorum) it is
    /// the mean of the two middle ones, rounded down, which favours neither side for higher-is-
    /// better and lower-is-better services alike.
    /// @dev The signatures are the authority, not the sender: each is bound to this chain, this
    /// agreement, the period, the values, the evidence root and a deadline, a quorum of distinct members is needed,
    /// and a period settles once. With f lying members, a quorum of 2f+1 keeps every median
    /// between honest values.
    /// @param period zero-based period index; must be the next unsettled period
    /// @param reports signed reports, each with one value per service
    function settleWithReports(uint256 period, SignedReport[] calldata reports) external onlyClone {
        (Terms memory t, Options memory o) = _load();
        uint256 k = reports.length;
        if (k < t.quorum || k == 0) revert QuorumNotReached(t.quorum, k);
        uint256 n = t.services.length;
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
            uint256 index = SlaCommittee.memberIndex(t.oracles, signer);
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
        _settle(t, o, period, medians, SlaCommittee.median(columns[n]));
    }

    /// @notice The EIP-712 digest an oracle signs for `valuesPpm`, `measuredPpm` and the
    /// `evidenceRoot` of `period` of this agreement, valid until `deadline`.
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

    /// @dev The checks of a settlement; returns the number of periods settled so far.
    function _checkSettle(Terms memory t, Options memory o, uint256 period, uint32 measuredPpm)
        private
        view
        returns (uint16 settled)
    {
        if (_status != Status.Active) revert WrongStatus(_status);
        settled = _settledPeriods;
        if (period < settled) revert PeriodAlreadySettled(period);
        if (period != settled) revert PeriodOutOfOrder(settled, period);
        uint256 endsAt = _periodEnd(t, o, period);
        if (block.timestamp < endsAt) revert PeriodNotEnded(period, endsAt);
        if (measuredPpm > PPM) revert MeasuredShareAboveOneHundredPercent(measuredPpm);
        if (measuredPpm < o.minMeasuredPpm) revert PeriodNotMeasured(period, measuredPpm, o.minMeasuredPpm);
    }

    function _settle(Terms memory t, Options memory o, uint256 period, uint32[] memory reported, uint32 measuredPpm)
        private
    {
        uint16 settled = _checkSettle(t, o, period, measuredPpm);
        (uint32[] memory values, uint256[] memory serviceCredits, uint256 credit, bool disaster) =
            _credits(t, o, period, reported);
        uint128 collateral = _collateralEscrowed;
        if (credit > collateral) {
            emit CollateralExhausted(period, credit - collateral);
            credit = collateral;
        }
        uint128 fee = t.feePerPeriod;

        // Effects only: nothing leaves the contract here (pull payments).
        _settledPeriods = settled + 1;
        _feesEscrowed -= fee;
        _collateralEscrowed = collateral - uint128(credit);
        if (o.disputeWindow == 0) {
            if (disaster) _disasterOccurred = true;
            _owedToCustomer += uint128(credit);
            _owedToProvider += fee;
        } else {
            // The disaster clause follows the final figure: a report that can still be disputed
            // (or is overturned later) does not open it.
            _pending[period] = Pending({
                credit: uint128(credit),
                finalAfter: uint64(block.timestamp + o.disputeWindow),
                state: PeriodState.Pending,
                disaster: disaster
            });
            _pendingPeriods += 1;
            _pendingToCustomer += uint128(credit);
            _pendingToProvider += fee;
        }
        emit PeriodSettled(period, values, serviceCredits, credit, fee, disaster, measuredPpm);
        if (settled + 1 == t.periodCount) {
            _status = Status.Ended;
            emit Ended(_releaseCollateral());
        }
    }

    // ---------------------------------------------------------------- disputes

    /// @notice Within the dispute window, the customer or the provider disputes a settled period,
    /// pointing at its evidence (e.g. the hash of a document both can see). The arbiter decides.
    function dispute(uint256 period, bytes32 evidence) external onlyClone {
        Terms memory t = terms();
        if (msg.sender != t.customer && msg.sender != t.provider) revert Unauthorized(msg.sender);
        Pending storage p = _pending[period];
        if (p.state != PeriodState.Pending) revert WrongPeriodState(period, p.state);
        if (block.timestamp >= p.finalAfter) revert DisputeWindowClosed(period, p.finalAfter);
        p.state = PeriodState.Disputed;
        emit Disputed(period, msg.sender, evidence);
    }

    /// @notice The arbiter settles a disputed period with a corrected report; the corrected
    /// credit (within the cap and the collateral) becomes payable at once.
    function resolveDispute(uint256 period, uint32[] calldata correctedValues) external onlyClone {
        (Terms memory t, Options memory o) = _load();
        if (msg.sender != o.arbiter) revert Unauthorized(msg.sender);
        Pending storage p = _pending[period];
        if (p.state != PeriodState.Disputed) revert WrongPeriodState(period, p.state);
        (uint32[] memory values,, uint256 credit, bool disaster) = _credits(t, o, period, correctedValues);
        uint128 previous = p.credit;
        uint256 available = uint256(_collateralEscrowed) + previous;
        if (credit > available) {
            emit CollateralExhausted(period, credit - available);
            credit = available;
        }
        uint128 fee = t.feePerPeriod;
        p.state = PeriodState.Final;
        p.credit = uint128(credit);
        p.disaster = disaster;
        // The corrected figure decides: a corrected non-disaster leaves the clause closed.
        if (disaster) _disasterOccurred = true;
        _collateralEscrowed = uint128(available - credit);
        _pendingToCustomer -= previous;
        _pendingToProvider -= fee;
        _pendingPeriods -= 1;
        _owedToCustomer += uint128(credit);
        _owedToProvider += fee;
        emit DisputeResolved(period, values, previous, credit);
        emit PeriodFinalized(period, credit, fee);
        _releaseCollateralIfDone();
    }

    /// @notice Anyone makes a settled period payable once its dispute window has passed; a
    /// disputed period the arbiter left undecided for another window pays out as reported.
    function finalize(uint256 period) external onlyClone {
        (Terms memory t, Options memory o) = _load();
        Pending storage p = _pending[period];
        uint256 until = p.finalAfter;
        if (p.state == PeriodState.Disputed) until += o.disputeWindow;
        else if (p.state != PeriodState.Pending) revert WrongPeriodState(period, p.state);
        if (block.timestamp < until) revert DisputeWindowOpen(period, until);
        uint128 credit = p.credit;
        uint128 fee = t.feePerPeriod;
        p.state = PeriodState.Final;
        if (p.disaster) _disasterOccurred = true;
        _pendingToCustomer -= credit;
        _pendingToProvider -= fee;
        _pendingPeriods -= 1;
        _owedToCustomer += credit;
        _owedToProvider += fee;
        emit PeriodFinalized(period, credit, fee);
        _releaseCollateralIfDone();
    }

    // ---------------------------------------------------------------- ending

    /// @notice Disaster clause: after a period that became final with a service below the
    /// termination threshold, the customer ends the agreement. The provider earns the part of
    /// the period in progress already served, pro rata by the second (rounded down, in the
    /// customer's favour: the terminating party just suffered a disaster); the customer gets back
    /// the rest of it and every later period's fee; the provider gets back the collateral left
    /// (once no period is pending).
    function terminate() external onlyClone {
        (Terms memory t, Options memory o) = _load();
        if (msg.sender != t.customer) revert Unauthorized(msg.sender);
        if (_status != Status.Active) revert WrongStatus(_status);
        if (!_disasterOccurred) revert NoDisaster();
        // A period that has ended was served: its fee is the provider's once reported, so the
        // customer cannot take it back by terminating before the oracle's report arrives.
        uint16 settled = _settledPeriods;
        uint256 periodEndsAt = _periodEnd(t, o, settled);
        if (block.timestamp >= periodEndsAt) revert PeriodAwaitingReport(settled);
        // A disaster needs a settled period, so `settled` >= 1 and the period in progress began
        // at the previous one's end, which is in the past.
        uint256 periodStartsAt = _periodEnd(t, o, settled - 1);
        uint128 earned =
            uint128(uint256(t.feePerPeriod) * (block.timestamp - periodStartsAt) / (periodEndsAt - periodStartsAt));
        uint128 refund = _feesEscrowed - earned;
        _status = Status.Terminated;
        _feesEscrowed = 0;
        _owedToCustomer += refund;
        _owedToProvider += earned;
        emit Terminated(msg.sender, refund, _releaseCollateral(), earned);
    }

    /// @notice Anyone ends an agreement whose periods were not all reported within REPORT_DEADLINE
    /// of the term's end (oracles gone silent): the unreported periods' fees go back to the
    /// customer (nothing proved the service), the collateral left to the provider.
    function expire() external onlyClone {
        (Terms memory t, Options memory o) = _load();
        if (_status != Status.Active) revert WrongStatus(_status);
        uint256 expiresAt = _periodEnd(t, o, t.periodCount - 1) + REPORT_DEADLINE;
        if (block.timestamp < expiresAt) revert NotExpired(expiresAt);
        uint128 refund = _feesEscrowed;
        uint256 unreported = t.periodCount - _settledPeriods;
        _status = Status.Expired;
        _feesEscrowed = 0;
        _owedToCustomer += refund;
        uint128 returned = _pendingPeriods == 0 ? _releaseCollateral() : 0;
        emit Expired(unreported, refund, returned);
    }

    /// @notice Pays the caller (provider or customer) everything the agreement owes them.
    function withdraw() external onlyClone {
        withdrawTo(payable(msg.sender));
    }

    /// @notice Pays everything the agreement owes the caller (provider or customer) to `to`, for
    /// a party that cannot receive ether or is blocked by the token.
    function withdrawTo(address payable to) public onlyClone nonReentrant {
        if (to == address(0)) revert InvalidRecipient();
        uint256 amount = 0;
        if (msg.sender == _customer()) {
            amount = _owedToCustomer;
            _owedToCustomer = 0;
        } else if (msg.sender == _provider()) {
            amount = _owedToProvider;
            _owedToProvider = 0;
        } else {
            revert Unauthorized(msg.sender);
        }
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        emit Withdrawn(msg.sender, to, amount);
        SlaEscrow.pay(_asset(), to, amount);
    }

    // ---------------------------------------------------------------- internals

    /// @dev The terms every rule reads; without the method's description (specHash,
    /// latencyPercentiles), which no rule of the contract uses: see `options()`.
    function _load() private view returns (Terms memory t, Options memory o) {
        return TermsCodec.decode(Clones.fetchCloneArgs(address(this)), false);
    }

    /// @dev Fixed-offset readers of the hot header fields (see TermsCodec's layout): deposits,
    /// cancel and withdrawals copy one word of the clone's code per field instead of decoding
    /// every tier.
    function _customer() private view returns (address) {
        return address(uint160(_arg(TermsCodec.CUSTOMER_OFFSET, 160)));
    }

    function _provider() private view returns (address) {
        return address(uint160(_arg(TermsCodec.PROVIDER_OFFSET, 160)));
    }

    function _asset() private view returns (address) {
        return address(uint160(_arg(TermsCodec.ASSET_OFFSET, 160)));
    }

    /// @dev `bits` bits at byte `offset` of this clone's packed terms (which start after the
    /// 45 bytes of the clone's own code), through the scratch space.
    function _arg(uint256 offset, uint256 bits) private view returns (uint256 value) {
        assembly ("memory-safe") {
            extcodecopy(address(), 0, add(45, offset), 32)
            value := shr(sub(256, bits), mload(0))
        }
    }

    /// @dev The terms with the method's description, for `options()`.
    function _loadWithMethod() private view returns (Terms memory t, Options memory o) {
        return TermsCodec.decode(Clones.fetchCloneArgs(address(this)), true);
    }

    /// @dev End of `period`: fixed-length periods, or the calendar ends fixed at creation.
    function _periodEnd(Terms memory t, Options memory o, uint256 period) private pure returns (uint256) {
        if (o.periodEnds.length == 0) return uint256(t.start) + (period + 1) * uint256(t.periodLength);
        return uint256(t.start) + o.periodEnds[period];
    }

    /// @dev Returns the collateral left to the provider when nothing can still claim it: the
    /// agreement is over and no settled period waits for its dispute window.
    function _releaseCollateral() private returns (uint128 amount) {
        if (_pendingPeriods != 0) return 0;
        amount = _collateralEscrowed;
        _collateralEscrowed = 0;
        _owedToProvider += amount;
    }

    function _releaseCollateralIfDone() private {
        if (_status != Status.Ended && _status != Status.Terminated && _status != Status.Expired) return;
        uint128 amount = _releaseCollateral();
        if (amount != 0) emit CollateralReleased(amount);
    }

    function _maybeActivate() private {
        if (_feesDeposited && _collateralDeposited) {
            _status = Status.Active;
            emit Activated(block.timestamp);
        }
    }

    /// @dev The values that count (reported ones, with satisfaction attested by the customer and
    /// composite figures computed here), each service's credit, the capped total, and whether an
    /// availability figure fell below the disaster threshold.
    function _credits(Terms memory t, Options memory o, uint256 period, uint32[] memory reported)
        private
        view
        returns (uint32[] memory values, uint256[] memory serviceCredits, uint256 total, bool disaster)
    {
        values = _effectiveValues(t, o, period, reported);
        uint256 n = values.length;
        serviceCredits = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            uint8 kind = o.serviceKinds[i];
            if ((kind == KIND_AVAILABILITY || kind == KIND_COMPOSITE) && values[i] < t.terminationPpm) disaster = true;
            serviceCredits[i] = CreditMath.serviceCredit(t.services[i], kind, values[i], t.feePerPeriod);
            total += serviceCredits[i];
        }
        uint256 cap = CreditMath.cap(t.feePerPeriod, t.creditCapBps);
        if (total > cap) total = cap;
    }

    function _effectiveValues(Terms memory t, Options memory o, uint256 period, uint32[] memory reported)
        private
        view
        returns (uint32[] memory values)
    {
        uint256 n = t.services.length;
        if (reported.length != n) revert WrongNumberOfValues(n, reported.length);
        values = new uint32[](n);
        uint256 weighted = 0;
        uint256 weights = 0;
        for (uint256 i = 0; i < n; ++i) {
            uint8 kind = o.serviceKinds[i];
            uint32 v = reported[i];
            if (kind == KIND_SATISFACTION) {
                uint256 s = _satisfaction[period];
                v = s == 0 ? PPM : uint32(s - 1);
            } else if (kind == KIND_AVAILABILITY) {
                if (v > PPM) revert ValueAboveOneHundredPercent(i, v);
                weighted += uint256(v) * t.services[i].weightBps;
                weights += t.services[i].weightBps;
            }
            values[i] = v;
        }
        for (uint256 i = 0; i < n; ++i) {
            if (o.serviceKinds[i] == KIND_COMPOSITE) values[i] = uint32(weighted / weights);
        }
    }
}
