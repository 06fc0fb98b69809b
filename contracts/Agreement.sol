// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
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
import {ISlaErrors} from "./interfaces/ISlaErrors.sol";
import {ISlaEvents} from "./interfaces/ISlaEvents.sol";
import {SlaEscrow} from "./libraries/SlaEscrow.sol";
import {SlaCommittee} from "./libraries/SlaCommittee.sol";
import {CompactReports} from "./libraries/CompactReports.sol";

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
contract Agreement is EIP712, ISlaErrors, ISlaEvents {

    // ---------------------------------------------------------------- errors
    /// @notice `period` is already settled.
    error PeriodAlreadySettled(uint256 period);
    /// @notice The agreement has no satisfaction service to attest.
    error NoSatisfactionService();
    /// @notice `period` has ended and waits for its report; its fee is the provider's.
    error PeriodAwaitingReport(uint256 period);
    /// @notice The packed reports of `settleCompact` are not exactly `expected` bytes long (what
    /// their report count and the terms' service count make, see CompactReports), or shorter
    /// than their 3-byte header: `length` bytes were given. Nothing past the end is ever read.
    error MalformedReports(uint256 expected, uint256 length);
    /// @notice A deposit or a withdrawal was entered again before it returned (the error of
    /// OpenZeppelin's ReentrancyGuard, whose flag this contract keeps in its first slot).
    error ReentrancyGuardReentrantCall();

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
    // Packed so that a settlement writes one slot, whether the objective was met or a credit is
    // paid (issue 15: batch settlement). A period's fee moves from the escrow to the provider by
    // counting, not by moving amounts: the fee is fixed by the terms, so
    //   fees escrowed        = fee x (periodCount - _settledPeriods) once deposited, 0 after
    //                          cancellation, termination or expiry (they hand the rest back)
    //   owed to the provider = _owedToProvider + fee x _feesOwedPeriods
    //   pending to provider  = fee x _pendingPeriods
    // and a settlement only increments counters of the first slot (see `snapshot`). Likewise the
    // collateral left at the end is released to the provider by a flag, not moved: once
    // `_collateralStage` is COLLATERAL_RELEASED, `_collateralEscrowed` is the provider's until it
    // withdraws it (COLLATERAL_WITHDRAWN; the amount stays, for the customer's balance below).
    // A credit paid at settlement (no dispute window) moves collateral to the customer by
    // lowering `_collateralEscrowed` alone, in the first slot:
    //   owed to the customer = _owedToCustomer + (_collateralMark - _collateralEscrowed)
    // Every other change of the collateral goes through `_setCollateral`, which first folds the
    // credits into `_owedToCustomer` and then moves the mark with the collateral, so the
    // difference only ever counts credits the customer has not been credited with yet.
    // Slot 1: status, flags and counters, the reentrancy guard, and the collateral in escrow.
    Status private _status;
    uint16 private _settledPeriods;
    bool private _feesDeposited;
    bool private _collateralDeposited;
    bool private _disasterOccurred;
    uint16 private _pendingPeriods;
    uint32 private _maintenanceUsed; // seconds of excluded maintenance declared so far
    uint16 private _feesOwedPeriods; // final periods whose fee the provider has not withdrawn
    uint8 private _collateralStage; // COLLATERAL_HELD, COLLATERAL_RELEASED or COLLATERAL_WITHDRAWN
    bool private _entered; // nonReentrant
    uint128 private _collateralEscrowed;

    // Slot 2: the customer's balance, and the collateral at its last change other than a credit.
    uint128 private _collateralMark;
    uint128 private _owedToCustomer;

    // Slot 3: collateral returned and fees earned pro rata at termination; credits in dispute.
    uint128 private _owedToProvider;
    uint128 private _pendingToCustomer;

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

    /// @dev The EIP-712 domain of every agreement (EIP712("smartsla Agreement", "1") below, with
    /// the chain id and the clone's address), for `_compactSigner`; `reportDigest` builds the same
    /// through OpenZeppelin's EIP712 (the tests sign what it returns and settle compactly).
    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant _NAME_HASH = keccak256("smartsla Agreement");
    bytes32 private constant _VERSION_HASH = keccak256("1");

    /// @dev Byte offset of `_entered` in its slot (`forge inspect Agreement storageLayout`; a
    /// test checks that the guard refuses a reentrant withdrawal).
    uint256 private constant _ENTERED_OFFSET = 15;
    uint8 private constant COLLATERAL_HELD = 0;
    uint8 private constant COLLATERAL_RELEASED = 1;
    uint8 private constant COLLATERAL_WITHDRAWN = 2;

    constructor() EIP712("smartsla Agreement", "1") {
        _implementation = address(this);
    }

    /// @dev OpenZeppelin's ReentrancyGuard with its flag in the first slot, which every guarded
    /// function reads or writes anyway (a separate slot cost each deposit and withdrawal ~2,100
    /// gas more).
    modifier nonReentrant() {
        _enter();
        _;
        _entered = false;
    }

    /// @dev The check and the write of `nonReentrant`'s flag with one read of the slot.
    function _enter() private {
        uint256 word;
        assembly ("memory-safe") {
            word := sload(_entered.slot)
        }
        uint256 flag = 1 << (8 * _ENTERED_OFFSET);
        if (word & flag != 0) revert ReentrancyGuardReentrantCall();
        assembly ("memory-safe") {
            sstore(_entered.slot, or(word, flag))
        }
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
            feesEscrowed: _feesLeft(_fee(), _arg(TermsCodec.PERIOD_COUNT_OFFSET, 16)),
            collateralEscrowed: _collateralStage == COLLATERAL_HELD ? _collateralEscrowed : 0,
            owedToCustomer: _customerOwed(),
            owedToProvider: _providerOwed(),
            pendingToCustomer: _pendingToCustomer,
            pendingToProvider: uint128(_fee() * _pendingPeriods),
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
        // Nothing to fold: no credit before the term starts.
        _collateralEscrowed = collateral;
        _collateralMark = collateral;
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
        uint128 fees = _feesLeft(_fee(), _arg(TermsCodec.PERIOD_COUNT_OFFSET, 16));
        uint128 collateral = _collateralEscrowed;
        _status = Status.Cancelled;
        _setCollateral(0);
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

    /// @notice Anyone submits the signed reports of at least `quorum` distinct members, packed
    /// tightly (CompactReports: the period, the count, then each report's measured share,
    /// evidence root, deadline, 65-byte signature and one 4-byte value per service); the period
    /// settles on each service's median, and the median measured share. With an odd number of
    /// reports the median is the middle one; with an even number (more than the odd quorum) it is
    /// the mean of the two middle ones, rounded down, which favours neither side for higher-is-
    /// better and lower-is-better services alike. Each accepted report emits `EvidenceCommitted`
    /// (its signer and evidence root).
    /// @dev The signatures are the authority, not the sender: each is bound to this chain, this
    /// agreement, the period, the values, the measured share, the evidence root and a deadline
    /// (the EIP-712 `Report`, REPORT_TYPEHASH); a quorum of distinct members is needed, and a
    /// period settles once. With f lying members, a quorum of 2f+1 keeps every median between
    /// honest values. The buffer is read in place with calldataload at fixed offsets, after one
    /// check that it is exactly as long as its count and the terms' service count make it
    /// (MalformedReports): no read runs past its end. It replaced `settleWithReports` with
    /// ABI-encoded `SignedReport[]` (issue 15: about 5,000 gas less per settlement, and the
    /// contract stays under the 24,576-byte code limit).
    /// @param packed CompactReports.encode(period, reports)
    function settleCompact(bytes calldata packed) external onlyClone {
        (Terms memory t, Options memory o) = _load();
        (uint256 period, uint256 k, uint256 size) = _compactHeader(packed, t.services.length, t.quorum);
        // One report's values, one word each as abi.encodePacked(uint32[]) hashes them; with a
        // single report they are also the values settled.
        uint32[] memory values = new uint32[](t.services.length);
        uint256 signers = 0;
        for (uint256 i = 0; i < k; ++i) {
            (address signer, bytes32 root) = _compactSigner(packed, i, size, period, values);
            uint256 index = SlaCommittee.memberIndex(t.oracles, signer);
            if (index == type(uint256).max) revert NotACommitteeMember(signer);
            if (signers & (1 << index) != 0) revert DuplicateSigner(signer);
            signers |= 1 << index;
            emit EvidenceCommitted(period, signer, root);
        }
        _settle(t, o, period, values, _compactMedians(packed, k, size, values));
    }

    /// @dev The period, the report count and one report's size of `settleCompact`'s buffer, after
    /// checking that it is exactly as long as they make it (every later read is inside it) and
    /// that it holds a quorum of reports.
    function _compactHeader(bytes calldata packed, uint256 services, uint256 quorum)
        private
        pure
        returns (uint256 period, uint256 k, uint256 size)
    {
        if (packed.length < CompactReports.HEADER_LENGTH) {
            revert MalformedReports(CompactReports.HEADER_LENGTH, packed.length);
        }
        assembly ("memory-safe") {
            let head := calldataload(packed.offset)
            period := shr(240, head)
            k := byte(2, head)
        }
        size = CompactReports.reportLength(services);
        uint256 expected = CompactReports.HEADER_LENGTH + k * size;
        if (packed.length != expected) revert MalformedReports(expected, packed.length);
        if (k < quorum || k == 0) revert QuorumNotReached(quorum, k);
    }

    /// @dev The measured share to settle, and the values in `values`: one report's own (already
    /// there), or each service's median over the `k` reports and the median measured share.
    function _compactMedians(bytes calldata packed, uint256 k, uint256 size, uint32[] memory values)
        private
        pure
        returns (uint32)
    {
        if (k == 1) return uint32(_compactMeasured(packed, 0, size));
        uint256 n = values.length;
        uint32[] memory column = new uint32[](k);
        for (uint256 s = 0; s < n; ++s) {
            for (uint256 i = 0; i < k; ++i) {
                column[i] = uint32(_compactValue(packed, i, size, s));
            }
            values[s] = SlaCommittee.median(column);
        }
        for (uint256 i = 0; i < k; ++i) {
            column[i] = uint32(_compactMeasured(packed, i, size));
        }
        return SlaCommittee.median(column);
    }

    /// @dev Checks report `i` of `settleCompact`'s checked buffer (deadline, evidence root, the
    /// signature as OpenZeppelin's ECDSA.recover does) and returns its signer and evidence root;
    /// copies its values into `values`, one word each, which is also how the EIP-712 struct hashes
    /// them (keccak256(abi.encodePacked(uint32[]))). Offsets as in CompactReports: 3 (header),
    /// then measured 0, root 4, deadline 36, r 44, s 76, v 108, values 109.
    function _compactSigner(bytes calldata packed, uint256 i, uint256 size, uint256 period, uint32[] memory values)
        private
        view
        returns (address signer, bytes32 root)
    {
        uint256 at;
        uint256 deadline;
        bytes32 structHash;
        bytes32 typehash = REPORT_TYPEHASH;
        assembly ("memory-safe") {
            at := add(add(packed.offset, 3), mul(i, size))
            let measured := shr(224, calldataload(at))
            root := calldataload(add(at, 4))
            deadline := shr(192, calldataload(add(at, 36)))
            let n := mload(values)
            let src := add(at, 109)
            let dst := add(values, 32)
            for { let j := 0 } lt(j, n) { j := add(j, 1) } {
                mstore(add(dst, shl(5, j)), shr(224, calldataload(add(src, shl(2, j)))))
            }
            // keccak256(abi.encode(REPORT_TYPEHASH, period, keccak256(abi.encodePacked(values)),
            // measuredPpm, evidenceRoot, deadline)), built past the free memory pointer.
            let p := mload(0x40)
            mstore(p, typehash)
            mstore(add(p, 0x20), period)
            mstore(add(p, 0x40), keccak256(dst, shl(5, n)))
            mstore(add(p, 0x60), measured)
            mstore(add(p, 0x80), root)
            mstore(add(p, 0xa0), deadline)
            structHash := keccak256(p, 0xc0)
        }
        if (deadline < block.timestamp) revert ReportExpired(i, deadline);
        if (root == bytes32(0)) revert MissingEvidence();
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(add(at, 44))
            s := calldataload(add(at, 76))
            v := byte(0, calldataload(add(at, 108)))
        }
        signer = ECDSA.recover(_typedDataHash(structHash), v, r, s);
    }

    /// @dev `_hashTypedDataV4(structHash)`: a clone is never the contract that cached the domain
    /// separator, so OpenZeppelin's EIP712 rebuilds it with abi.encode on every call; the same
    /// words here, past the free memory pointer, then MessageHashUtils.toTypedDataHash.
    function _typedDataHash(bytes32 structHash) private view returns (bytes32 digest) {
        bytes32 domainTypehash = _DOMAIN_TYPEHASH;
        bytes32 nameHash = _NAME_HASH;
        bytes32 versionHash = _VERSION_HASH;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, domainTypehash)
            mstore(add(p, 0x20), nameHash)
            mstore(add(p, 0x40), versionHash)
            mstore(add(p, 0x60), chainid())
            mstore(add(p, 0x80), address())
            let domain := keccak256(p, 0xa0)
            mstore(p, hex"1901")
            mstore(add(p, 0x02), domain)
            mstore(add(p, 0x22), structHash)
            digest := keccak256(p, 0x42)
        }
    }

    /// @dev Report `i`'s value of service `s` in `settleCompact`'s checked buffer.
    function _compactValue(bytes calldata packed, uint256 i, uint256 size, uint256 s) private pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := shr(224, calldataload(add(add(add(packed.offset, 112), mul(i, size)), shl(2, s))))
        }
    }

    /// @dev Report `i`'s measured share in `settleCompact`'s checked buffer.
    function _compactMeasured(bytes calldata packed, uint256 i, uint256 size) private pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := shr(224, calldataload(add(add(packed.offset, 3), mul(i, size))))
        }
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
        if (credit != 0) {
            // Only a credit reads and writes the collateral's slot.
            uint128 collateral = _collateralEscrowed;
            if (credit > collateral) {
                emit CollateralExhausted(period, credit - collateral);
                credit = collateral;
            }
            // Without a dispute window the customer's balance grows by what the collateral loses
            // (see the state's comment): the same slot, no second write. With one, the credit
            // waits in `_pendingToCustomer`.
            if (o.disputeWindow == 0) _collateralEscrowed = collateral - uint128(credit);
            else _setCollateral(collateral - uint128(credit));
        }
        uint128 fee = t.feePerPeriod;

        // Effects only: nothing leaves the contract here (pull payments). The period's fee leaves
        // the escrow by the count of settled periods (see the state's comment).
        _settledPeriods = settled + 1;
        if (o.disputeWindow == 0) {
            if (disaster) _disasterOccurred = true;
            _feesOwedPeriods += 1;
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
        }
        emit PeriodSettled(period, values, serviceCredits, credit, fee, disaster, measuredPpm);
        if (settled + 1 == t.periodCount) {
            _status = Status.Ended;
            if (o.disputeWindow == 0) {
                // `_releaseCollateral` without its checks: no period is ever pending without a
                // dispute window, and the collateral is held until the agreement ends.
                _collateralStage = COLLATERAL_RELEASED;
                emit Ended(_collateralEscrowed);
            } else {
                emit Ended(_releaseCollateral());
            }
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
        _setCollateral(uint128(available - credit));
        _pendingToCustomer -= previous;
        _pendingPeriods -= 1;
        _owedToCustomer += uint128(credit);
        _feesOwedPeriods += 1;
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
        _pendingPeriods -= 1;
        _owedToCustomer += credit;
        _feesOwedPeriods += 1;
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
        uint128 refund = _feesLeft(t.feePerPeriod, t.periodCount) - earned;
        _status = Status.Terminated;
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
        uint128 refund = _feesLeft(t.feePerPeriod, t.periodCount);
        uint256 unreported = t.periodCount - _settledPeriods;
        _status = Status.Expired;
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
            // `_customerOwed()` from one read of each slot; every credit so far is in `amount`:
            // the balance goes to 0 and the mark to the collateral, in one write of the second
            // slot (`_collateralMark` its low 16 bytes, `_owedToCustomer` its high 16: `forge
            // inspect Agreement storageLayout`).
            uint128 collateral = _collateralEscrowed;
            uint256 books;
            assembly ("memory-safe") {
                books := sload(_collateralMark.slot)
            }
            amount = (books >> 128) + (uint128(books) - collateral);
            assembly ("memory-safe") {
                sstore(_collateralMark.slot, collateral)
            }
        } else if (msg.sender == _provider()) {
            amount = _providerOwed();
            _owedToProvider = 0;
            _feesOwedPeriods = 0;
            if (_collateralStage == COLLATERAL_RELEASED) _collateralStage = COLLATERAL_WITHDRAWN;
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

    function _fee() private view returns (uint256) {
        return _arg(TermsCodec.FEE_OFFSET, 128);
    }

    /// @dev The prepaid fees of the periods not settled yet (see the state's comment): none
    /// before the deposit, nor once cancellation, termination or expiry handed them back.
    function _feesLeft(uint256 fee, uint256 periodCount) private view returns (uint128) {
        Status status = _status;
        if (!_feesDeposited || status == Status.Cancelled || status == Status.Terminated || status == Status.Expired) {
            return 0;
        }
        return uint128(fee * (periodCount - _settledPeriods));
    }

    /// @dev Everything the customer may withdraw: its balance and the credits paid out of the
    /// collateral since the collateral's last other change (see the state's comment).
    function _customerOwed() private view returns (uint128) {
        return _owedToCustomer + (_collateralMark - _collateralEscrowed);
    }

    /// @dev Sets the collateral in escrow for any reason but a settlement's credit without a
    /// dispute window: the credits paid since the mark go to the customer's balance first, then
    /// the mark follows the collateral.
    function _setCollateral(uint128 amount) private {
        _owedToCustomer += _collateralMark - _collateralEscrowed;
        _collateralMark = amount;
        _collateralEscrowed = amount;
    }

    /// @dev Everything the provider may withdraw: the fees of its final periods, the collateral
    /// once released, and the rest.
    function _providerOwed() private view returns (uint128) {
        uint256 released = _collateralStage == COLLATERAL_RELEASED ? _collateralEscrowed : 0;
        return uint128(_owedToProvider + _fee() * _feesOwedPeriods + released);
    }

    /// @dev Returns the collateral left to the provider when nothing can still claim it: the
    /// agreement is over and no settled period waits for its dispute window.
    /// Released once, by the flag (see the state's comment): the amount stays where it is.
    function _releaseCollateral() private returns (uint128 amount) {
        if (_pendingPeriods != 0 || _collateralStage != COLLATERAL_HELD) return 0;
        amount = _collateralEscrowed;
        _collateralStage = COLLATERAL_RELEASED;
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
        // In place: every caller passes its own copy (the compact path's decoded values, or a
        // calldata array copied to memory), so no second array is allocated.
        values = reported;
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
