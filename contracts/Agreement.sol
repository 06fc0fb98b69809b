// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
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
} from "./SlaTypes.sol";
import {TermsCodec} from "./TermsCodec.sol";
import {CreditMath} from "./CreditMath.sol";

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
contract Agreement is ReentrancyGuard, EIP712 {
    using SafeERC20 for IERC20;

    // ---------------------------------------------------------------- errors
    error NotAClone();
    error Unauthorized(address caller);
    error WrongStatus(Status current);
    error AlreadyDeposited();
    error WrongAmount(uint256 expected, uint256 received);
    error PeriodAlreadySettled(uint256 period);
    error PeriodOutOfOrder(uint256 expected, uint256 given);
    error PeriodNotEnded(uint256 period, uint256 endsAt);
    error WrongNumberOfValues(uint256 expected, uint256 given);
    error ValueAboveOneHundredPercent(uint256 serviceIndex, uint256 valuePpm);
    error NoDisaster();
    error NothingToWithdraw(address party);
    error QuorumNotReached(uint256 quorum, uint256 reports);
    error NotACommitteeMember(address signer);
    error DuplicateSigner(address signer);
    error InvalidWindow(uint256 start, uint256 end);
    error NoSatisfactionService();
    error WrongPeriodState(uint256 period, PeriodState state);
    error DisputeWindowOpen(uint256 period, uint256 until);
    error DisputeWindowClosed(uint256 period, uint256 closedAt);
    error PeriodAwaitingReport(uint256 period);
    error NotExpired(uint256 expiresAt);
    error MaintenanceBudgetExceeded(uint256 requested, uint256 remaining);

    /// @notice How long after the term's end periods may still be reported; after it anyone may
    /// `expire()` the agreement, so that silent oracles cannot lock the escrow forever.
    uint256 public constant REPORT_DEADLINE = 30 days;

    /// @notice EIP-712 type of an oracle report. The domain (name "smartsla Agreement", version
    /// "1", chain id, verifyingContract = this agreement) and the period make a signature useless
    /// on any other chain, agreement or period.
    bytes32 public constant REPORT_TYPEHASH = keccak256("Report(uint256 period,uint32[] valuesPpm)");

    // ---------------------------------------------------------------- events
    event FeesDeposited(address indexed customer, uint256 amount);
    event CollateralDeposited(address indexed provider, uint256 amount);
    event Activated(uint256 timestamp);
    event Cancelled(address indexed by, uint256 refundToCustomer, uint256 refundToProvider);
    /// @notice A period settled: the values that counted (satisfaction and composite figures
    /// filled in), each service's credit, the credit after cap and collateral limit, and the fee
    /// released to the provider (payable now, or after the dispute window).
    event PeriodSettled(
        uint256 indexed period,
        uint32[] valuesPpm,
        uint256[] serviceCredits,
        uint256 creditPaid,
        uint256 feeEarned,
        bool disaster
    );
    /// @notice The credit owed exceeded the collateral left; `shortfall` was not paid.
    event CollateralExhausted(uint256 indexed period, uint256 shortfall);
    event Terminated(address indexed customer, uint256 refundedFees, uint256 returnedCollateral);
    event Ended(uint256 returnedCollateral);
    event Withdrawn(address indexed party, uint256 amount);
    /// @notice A period was settled from signed reports; bit i of `signers` is committee member i.
    event ReportsAccepted(uint256 indexed period, uint256 signers);
    /// @notice The provider declared maintenance; `withNotice` says whether it came at least the
    /// agreed notice ahead (only then do the oracles exclude it from the figures).
    event MaintenanceDeclared(uint256 indexed index, uint64 start, uint64 end, uint64 declaredAt, bool withNotice);
    event SatisfactionAttested(uint256 indexed period, uint32 scorePpm);
    event Disputed(uint256 indexed period, address indexed by, bytes32 evidence);
    event DisputeResolved(uint256 indexed period, uint32[] valuesPpm, uint256 previousCredit, uint256 creditPaid);
    event PeriodFinalized(uint256 indexed period, uint256 creditPaid, uint256 feeEarned);
    /// @notice Collateral kept back for pending periods was released to the provider.
    event CollateralReleased(uint256 amount);
    /// @notice Periods were never reported by the deadline: their prepaid fees went back to the
    /// customer, the collateral left to the provider.
    event Expired(uint256 unreportedPeriods, uint256 refundedFees, uint256 returnedCollateral);

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
    /// service kinds), as fixed at creation.
    function options() external view onlyClone returns (Options memory o) {
        (, o) = _load();
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

    /// @notice The customer prepays the fees of every period (feePerPeriod x periodCount).
    /// @dev For an ERC-20 asset, approve the amount first; send no ether.
    function depositFees() external payable onlyClone nonReentrant {
        Terms memory t = terms();
        if (msg.sender != t.customer) revert Unauthorized(msg.sender);
        if (_status != Status.Pending) revert WrongStatus(_status);
        if (_feesDeposited) revert AlreadyDeposited();
        uint256 amount = uint256(t.feePerPeriod) * t.periodCount;
        _feesDeposited = true;
        _feesEscrowed = uint128(amount);
        emit FeesDeposited(msg.sender, amount);
        _maybeActivate();
        _pull(t.asset, amount);
    }

    /// @notice The provider deposits the collateral bond that backs the credits.
    /// @dev For an ERC-20 asset, approve the amount first; send no ether.
    function depositCollateral() external payable onlyClone nonReentrant {
        Terms memory t = terms();
        if (msg.sender != t.provider) revert Unauthorized(msg.sender);
        if (_status != Status.Pending) revert WrongStatus(_status);
        if (_collateralDeposited) revert AlreadyDeposited();
        _collateralDeposited = true;
        _collateralEscrowed = t.collateral;
        emit CollateralDeposited(msg.sender, t.collateral);
        _maybeActivate();
        _pull(t.asset, t.collateral);
    }

    /// @notice Either party calls off an agreement that is still waiting for deposits; whatever
    /// was deposited becomes withdrawable by whoever deposited it.
    function cancel() external onlyClone {
        Terms memory t = terms();
        if (msg.sender != t.customer && msg.sender != t.provider) revert Unauthorized(msg.sender);
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

    /// @notice The provider declares a maintenance window. Declared at least the agreed notice
    /// ahead, the oracles exclude it from the figures; with shorter notice it counts as usual.
    /// @param start unix time, not in the past and within the term
    /// @param end unix time, after start and within the term
    function declareMaintenance(uint64 start, uint64 end) external onlyClone {
        (Terms memory t, Options memory o) = _load();
        if (msg.sender != t.provider) revert Unauthorized(msg.sender);
        if (_status != Status.Pending && _status != Status.Active) revert WrongStatus(_status);
        uint256 termEnd = _periodEnd(t, o, t.periodCount - 1);
        if (start < block.timestamp || end <= start || start < t.start || end > termEnd) {
            revert InvalidWindow(start, end);
        }
        bool withNotice = uint256(start) >= block.timestamp + o.maintenanceNotice;
        if (withNotice && o.maintenanceBudget != 0) {
            // Excluded maintenance is bounded, or the provider could exclude the whole term.
            uint256 remaining = o.maintenanceBudget - _maintenanceUsed;
            if (end - start > remaining) revert MaintenanceBudgetExceeded(end - start, remaining);
            _maintenanceUsed += uint32(end - start);
        }
        _maintenance.push(MaintenanceWindow({start: start, end: end, declaredAt: uint64(block.timestamp)}));
        emit MaintenanceDeclared(_maintenance.length - 1, start, end, uint64(block.timestamp), withNotice);
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
    function settle(uint256 period, uint32[] calldata valuesPpm) external onlyClone {
        (Terms memory t, Options memory o) = _load();
        if (_memberIndex(t, msg.sender) == type(uint256).max) revert Unauthorized(msg.sender);
        if (t.quorum > 1) revert QuorumNotReached(t.quorum, 1);
        _settle(t, o, period, valuesPpm);
    }

    /// @notice A committee member submits the signed reports of at least `quorum` distinct members;
    /// the period settles on each service's median (the lower one for an even count).
    /// @dev With f lying members, a quorum of 2f+1 keeps every median between honest values.
    /// @param period zero-based period index; must be the next unsettled period
    /// @param reports signed reports, each with one value per service
    function settleWithReports(uint256 period, SignedReport[] calldata reports) external onlyClone {
        (Terms memory t, Options memory o) = _load();
        if (_memberIndex(t, msg.sender) == type(uint256).max) revert Unauthorized(msg.sender);
        uint256 k = reports.length;
        if (k < t.quorum || k == 0) revert QuorumNotReached(t.quorum, k);
        uint256 n = t.services.length;
        uint256 signers = 0;
        uint32[][] memory columns = new uint32[][](n);
        for (uint256 s = 0; s < n; ++s) {
            columns[s] = new uint32[](k);
        }
        for (uint256 i = 0; i < k; ++i) {
            uint32[] calldata values = reports[i].valuesPpm;
            if (values.length != n) revert WrongNumberOfValues(n, values.length);
            address signer = ECDSA.recover(reportDigest(period, values), reports[i].signature);
            uint256 index = _memberIndex(t, signer);
            if (index == type(uint256).max) revert NotACommitteeMember(signer);
            if (signers & (1 << index) != 0) revert DuplicateSigner(signer);
            signers |= 1 << index;
            for (uint256 s = 0; s < n; ++s) {
                columns[s][i] = values[s];
            }
        }
        uint32[] memory medians = new uint32[](n);
        for (uint256 s = 0; s < n; ++s) {
            medians[s] = _lowerMedian(columns[s]);
        }
        emit ReportsAccepted(period, signers);
        _settle(t, o, period, medians);
    }

    /// @notice The EIP-712 digest an oracle signs for `valuesPpm` of `period` of this agreement.
    function reportDigest(uint256 period, uint32[] memory valuesPpm) public view onlyClone returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REPORT_TYPEHASH, period, keccak256(abi.encodePacked(valuesPpm)))));
    }

    function _settle(Terms memory t, Options memory o, uint256 period, uint32[] memory reported) private {
        if (_status != Status.Active) revert WrongStatus(_status);
        uint16 settled = _settledPeriods;
        if (period < settled) revert PeriodAlreadySettled(period);
        if (period != settled) revert PeriodOutOfOrder(settled, period);
        uint256 endsAt = _periodEnd(t, o, period);
        if (block.timestamp < endsAt) revert PeriodNotEnded(period, endsAt);

        (uint32[] memory values, uint256[] memory serviceCredits, uint256 credit, bool disaster) =
            _credits(t, o, period, reported);
        uint128 collateral = _collateralEscrowed;
        if (credit > collateral) {
            emit CollateralExhausted(period, credit - collateral);
            credit = collateral;
        }
        uint128 fee = t.feePerPeriod;

        // Effects only: nothing leaves the contract here (pull payments).
        bool last = settled + 1 == t.periodCount;
        _settledPeriods = settled + 1;
        if (disaster) _disasterOccurred = true;
        _feesEscrowed -= fee;
        _collateralEscrowed = collateral - uint128(credit);
        if (o.disputeWindow == 0) {
            _owedToCustomer += uint128(credit);
            _owedToProvider += fee;
        } else {
            _pending[period] = Pending({
                credit: uint128(credit), finalAfter: uint64(block.timestamp + o.disputeWindow), state: PeriodState.Pending
            });
            _pendingPeriods += 1;
            _pendingToCustomer += uint128(credit);
            _pendingToProvider += fee;
        }
        emit PeriodSettled(period, values, serviceCredits, credit, fee, disaster);
        if (last) {
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
        _pendingToCustomer -= credit;
        _pendingToProvider -= fee;
        _pendingPeriods -= 1;
        _owedToCustomer += credit;
        _owedToProvider += fee;
        emit PeriodFinalized(period, credit, fee);
        _releaseCollateralIfDone();
    }

    // ---------------------------------------------------------------- ending

    /// @notice Disaster clause: after a settled period in which a service fell below the
    /// termination threshold, the customer ends the agreement and gets back every prepaid fee
    /// not yet earned; the provider gets back the collateral left (once no period is pending).
    function terminate() external onlyClone {
        (Terms memory t, Options memory o) = _load();
        if (msg.sender != t.customer) revert Unauthorized(msg.sender);
        if (_status != Status.Active) revert WrongStatus(_status);
        if (!_disasterOccurred) revert NoDisaster();
        // A period that has ended was served: its fee is the provider's once reported, so the
        // customer cannot take it back by terminating before the oracle's report arrives.
        uint16 settled = _settledPeriods;
        if (settled < t.periodCount && block.timestamp >= _periodEnd(t, o, settled)) {
            revert PeriodAwaitingReport(settled);
        }
        uint128 refund = _feesEscrowed;
        _status = Status.Terminated;
        _feesEscrowed = 0;
        _owedToCustomer += refund;
        emit Terminated(msg.sender, refund, _releaseCollateral());
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
    function withdraw() external onlyClone nonReentrant {
        Terms memory t = terms();
        uint256 amount = 0;
        if (msg.sender == t.customer) {
            amount = _owedToCustomer;
            _owedToCustomer = 0;
        } else if (msg.sender == t.provider) {
            amount = _owedToProvider;
            _owedToProvider = 0;
        } else {
            revert Unauthorized(msg.sender);
        }
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        emit Withdrawn(msg.sender, amount);
        if (t.asset == address(0)) Address.sendValue(payable(msg.sender), amount);
        else IERC20(t.asset).safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- internals

    function _load() private view returns (Terms memory t, Options memory o) {
        return TermsCodec.decode(Clones.fetchCloneArgs(address(this)));
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

    /// @dev Takes `amount` of the asset from the caller; an ERC-20 that delivers less than asked
    /// (fee-on-transfer) is refused, so the escrow always holds what the books say.
    function _pull(address asset, uint256 amount) private {
        if (asset == address(0)) {
            if (msg.value != amount) revert WrongAmount(amount, msg.value);
            return;
        }
        if (msg.value != 0) revert WrongAmount(0, msg.value);
        IERC20 token = IERC20(asset);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert WrongAmount(amount, received);
    }

    /// @dev Position of `who` in the committee, or type(uint256).max when not a member.
    function _memberIndex(Terms memory t, address who) private pure returns (uint256) {
        for (uint256 i = 0; i < t.oracles.length; ++i) {
            if (t.oracles[i] == who) return i;
        }
        return type(uint256).max;
    }

    /// @dev Lower median by insertion sort: at most 16 committee reports, so the loop is bounded.
    function _lowerMedian(uint32[] memory xs) private pure returns (uint32) {
        for (uint256 i = 1; i < xs.length; ++i) {
            uint32 x = xs[i];
            uint256 j = i;
            while (j > 0 && xs[j - 1] > x) {
                xs[j] = xs[j - 1];
                --j;
            }
            xs[j] = x;
        }
        return xs[(xs.length - 1) / 2];
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
