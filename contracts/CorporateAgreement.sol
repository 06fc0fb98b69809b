// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {Service, Tier, PPM, BPS, KIND_AVAILABILITY} from "./SlaTypes.sol";
import {CreditMath} from "./CreditMath.sol";

/// @notice One department (customer level) of a multi-level agreement.
/// @dev `serviceMask` bit i covers corporate service i; `objectives[i]` overrides service i's
/// objective when non-zero; `weightsBps[i]` is service i's share of the department's fee (the
/// covered services' weights sum to 100 %). `creditCapBps` 0 means the corporate default. An
/// objective override also moves the mildest tier's threshold to it.
struct Department {
    address payout;
    uint128 feePerPeriod;
    uint32 serviceMask;
    uint16 creditCapBps;
    uint32[] objectives;
    uint16[] weightsBps;
}

/// @title A multi-level SLA: corporate defaults and one collateral pool, departments on top.
/// @notice Corporate level: the provider, the paying organisation, the oracle, the schedule, the
/// services with their default objectives and credit tiers, and one collateral pool. Customer
/// level: each department has its own payout address, its own subset of the services, its own
/// fee, and may override objectives and the credit cap. Service level: objectives per service.
/// The oracle reports each period once, one value per service: that is all it pays for, however
/// many departments there are. Each department's period then settles with `settleDepartment`
/// (or a whole period for a range of departments with `settleDepartments`), which anyone may
/// call (the department, the provider, a keeper): no transaction per department from the oracle.
///
/// Fair pool: the pool must cover the worst case, every department's credit for a total outage
/// (its harshest tiers, capped) in every period (`PoolBelowWorstCase` otherwise). Each
/// department-period therefore has its own reservation, and no settlement order can leave a
/// department short or change anyone's payout. A settlement pays the department its credit and
/// releases the rest of that reservation to the provider at once, so the pool comes back with
/// the settlements themselves (one `settleDepartments` per period), with no extra transactions.
///
/// Silent oracle: REPORT_DEADLINE after the term's end no report is accepted any more and anyone
/// may `expire` the agreement: the unreported periods' fees go back to the organisation, their
/// reservations to the provider; reported periods still settle.
contract CorporateAgreement is ReentrancyGuard {
    using SafeERC20 for IERC20;

    uint256 public constant MAX_DEPARTMENTS = 256;
    uint256 public constant MAX_SERVICES = 16;
    /// @notice How long after the term's end the oracle may still report (as in Agreement); then
    /// no report is accepted and anyone may `expire` the agreement.
    uint256 public constant REPORT_DEADLINE = 30 days;

    /// @notice `caller` may not do this.
    error Unauthorized(address caller);
    /// @notice The terms break the rule named by `reason` (addresses, schedule, cap, department).
    error InvalidTerms(string reason);
    /// @notice Corporate service `index` has the same id as an earlier one.
    error DuplicateService(uint256 index);
    /// @notice Corporate service `index` carries a weight: each department weighs its services.
    error ServiceWeightUnused(uint256 index);
    /// @notice Tier `tier` of corporate service `service` has a credit outside 1..10000 bps, or
    /// the tiers are not ordered from the mildest to the harshest.
    error InvalidTier(uint256 service, uint256 tier);
    /// @notice The pool (`collateral`) does not cover every department's worst-case credit for
    /// every period (`worstCase`).
    error PoolBelowWorstCase(uint256 collateral, uint256 worstCase);
    /// @notice No department has been added yet.
    error NoDepartments();
    /// @notice Department `index` does not exist (there are `count`).
    error UnknownDepartment(uint256 index, uint256 count);
    /// @notice An amount differs from the one agreed.
    error WrongAmount(uint256 expected, uint256 received);
    /// @notice This deposit was already made.
    error AlreadyDeposited();
    /// @notice The agreement was cancelled.
    error AlreadyCancelled();
    /// @notice Both deposits are in: the agreement can no longer be cancelled.
    error AlreadyFunded();
    /// @notice A deposit is still missing.
    error NotFunded();
    /// @notice `period` ends at `endsAt`.
    error PeriodNotEnded(uint256 period, uint256 endsAt);
    /// @notice `period` was already reported.
    error PeriodAlreadyReported(uint256 period);
    /// @notice Periods go in order: `expected` is next, `given` was asked.
    error PeriodOutOfOrder(uint256 expected, uint256 given);
    /// @notice `period` has no report yet.
    error PeriodNotReported(uint256 period);
    /// @notice One value per corporate service.
    error WrongNumberOfValues(uint256 expected, uint256 given);
    /// @notice A measured value above 100 %.
    error ValueAboveOneHundredPercent(uint256 serviceIndex, uint256 valuePpm);
    /// @notice Nothing is owed to `party`.
    error NothingToWithdraw(address party);
    /// @notice The report deadline passed at `expiresAt`: no more reports.
    error AgreementExpired(uint256 expiresAt);
    /// @notice The agreement may be expired from `expiresAt` on.
    error NotExpired(uint256 expiresAt);
    /// @notice Every period was reported: nothing to expire.
    error NothingToExpire();

    event DepartmentAdded(uint256 indexed index, address indexed payout, uint256 feePerPeriod, uint32 serviceMask);
    event FeesDeposited(address indexed organisation, uint256 amount);
    event CollateralDeposited(address indexed provider, uint256 amount);
    event PeriodReported(uint256 indexed period, uint32[] valuesPpm);
    /// @param released the part of the department-period's pool reservation returned to the provider
    event DepartmentSettled(
        uint256 indexed department,
        uint256 indexed period,
        uint256[] serviceCredits,
        uint256 creditPaid,
        uint256 fee,
        uint256 released
    );
    /// @notice Collateral not needed to back any credit went back to the provider.
    event CollateralReleased(uint256 amount);
    event Withdrawn(address indexed party, uint256 amount);
    event Cancelled(address indexed by, uint256 refundToOrganisation, uint256 refundToProvider);
    event Expired(uint256 unreportedPeriods, uint256 refundedFees, uint256 returnedCollateral);

    address public immutable provider;
    address public immutable organisation;
    address public immutable oracle;
    address public immutable asset;
    uint64 public immutable start;
    uint32 public immutable periodLength;
    uint16 public immutable periodCount;
    uint16 public immutable creditCapBps;
    uint128 public immutable collateral;
    /// @notice Who deployed the agreement and may add departments until the first deposit.
    address public immutable creator;

    /// @notice Sum of the departments' fees for one period.
    uint128 public feesPerPeriod;
    /// @notice Sum of the departments' worst-case credits for one period (the pool reserved per period).
    uint128 public worstCasePerPeriod;

    Service[] private _services;
    Department[] private _departments;

    struct DepartmentState {
        uint128 worstCredit; // credit for a total outage, capped: its reservation per period
        uint16 settledPeriods;
    }

    bool public feesDeposited;
    bool public cancelled;
    bool public collateralDeposited;
    bool public expired;
    uint16 public reportedPeriods;
    uint128 public feesEscrowed;
    /// @notice Collateral reserved for the department-periods not yet settled.
    uint128 public collateralPool;

    mapping(uint256 period => uint32[]) private _values;
    mapping(uint256 department => DepartmentState) private _state;
    mapping(address party => uint256) public owed;

    /// @param services_ corporate services with default objectives and tiers (availability kind;
    /// weight 0: each department weighs the services it covers)
    /// @dev Departments are added with `addDepartments` (in batches: a hundred departments do not
    /// fit in one creation transaction's code size limit) before the first deposit freezes them.
    constructor(
        address provider_,
        address organisation_,
        address oracle_,
        address asset_,
        uint64 start_,
        uint32 periodLength_,
        uint16 periodCount_,
        uint16 creditCapBps_,
        uint128 collateral_,
        Service[] memory services_
    ) {
        if (provider_ == address(0) || organisation_ == address(0) || oracle_ == address(0)) {
            revert InvalidTerms("zero address");
        }
        if (provider_ == organisation_ || oracle_ == provider_ || oracle_ == organisation_) {
            revert InvalidTerms("parties and oracle must differ");
        }
        if (periodLength_ == 0 || periodCount_ == 0) revert InvalidTerms("empty schedule");
        if (creditCapBps_ == 0 || creditCapBps_ > BPS) revert InvalidTerms("credit cap outside 1..10000 bps");
        uint256 n = services_.length;
        if (n == 0 || n > MAX_SERVICES) revert InvalidTerms("service count outside 1..16");
        provider = provider_;
        organisation = organisation_;
        oracle = oracle_;
        asset = asset_;
        start = start_;
        periodLength = periodLength_;
        periodCount = periodCount_;
        creditCapBps = creditCapBps_;
        collateral = collateral_;
        creator = msg.sender;
        for (uint256 i = 0; i < n; ++i) {
            Service memory s = services_[i];
            if (s.objectivePpm == 0 || s.objectivePpm > PPM) revert InvalidTerms("objective outside 1..1000000 ppm");
            if (s.tiers.length == 0 || s.tiers.length > 8) revert InvalidTerms("tier count outside 1..8");
            if (s.weightBps != 0) revert ServiceWeightUnused(i);
            for (uint256 k = 0; k < i; ++k) {
                if (services_[k].id == s.id) revert DuplicateService(i);
            }
            Service storage stored = _services.push();
            stored.id = s.id;
            stored.objectivePpm = s.objectivePpm;
            for (uint256 j = 0; j < s.tiers.length; ++j) {
                Tier memory t = s.tiers[j];
                if (t.creditBps == 0 || t.creditBps > BPS) revert InvalidTier(i, j);
                if (j > 0 && (t.belowPpm >= s.tiers[j - 1].belowPpm || t.creditBps <= s.tiers[j - 1].creditBps)) {
                    revert InvalidTier(i, j);
                }
                stored.tiers.push(t);
            }
        }
    }

    /// @notice The creator adds departments (customer-level agreements) before the first deposit;
    /// the deposits of the organisation and the provider accept the terms as they then stand.
    /// Reverts with `PoolBelowWorstCase` once the departments' worst-case credits for the whole
    /// term exceed the collateral.
    function addDepartments(Department[] calldata departments) external {
        if (msg.sender != creator) revert Unauthorized(msg.sender);
        if (cancelled) revert AlreadyCancelled();
        if (feesDeposited || collateralDeposited) revert AlreadyDeposited();
        if (_departments.length + departments.length > MAX_DEPARTMENTS) {
            revert InvalidTerms("more than 256 departments");
        }
        uint256 n = _services.length;
        uint256 fees = feesPerPeriod;
        uint256 worst = worstCasePerPeriod;
        uint32[] memory outage = new uint32[](n); // a total outage: every value 0
        for (uint256 d = 0; d < departments.length; ++d) {
            Department memory dep = departments[d];
            _checkDepartment(dep, n);
            (, uint256 worstCredit) = _credits(dep, outage);
            fees += dep.feePerPeriod;
            worst += worstCredit;
            uint256 index = _departments.length;
            _departments.push(dep);
            _state[index].worstCredit = uint128(worstCredit);
            emit DepartmentAdded(index, dep.payout, dep.feePerPeriod, dep.serviceMask);
        }
        if (fees * periodCount > type(uint128).max) revert InvalidTerms("total fees overflow");
        if (worst * periodCount > collateral) revert PoolBelowWorstCase(collateral, worst * periodCount);
        feesPerPeriod = uint128(fees);
        worstCasePerPeriod = uint128(worst);
    }

    function _checkDepartment(Department memory dep, uint256 n) private view {
        if (dep.payout == address(0)) revert InvalidTerms("department payout is the zero address");
        if (dep.feePerPeriod == 0) revert InvalidTerms("department fee is zero");
        if (dep.serviceMask == 0 || dep.serviceMask >> n != 0) revert InvalidTerms("department covers no or unknown services");
        if (dep.objectives.length != n || dep.weightsBps.length != n) revert InvalidTerms("one override per service");
        if (dep.creditCapBps > BPS) revert InvalidTerms("department cap above 100%");
        uint256 weights = 0;
        for (uint256 i = 0; i < n; ++i) {
            bool covered = dep.serviceMask & (1 << i) != 0;
            if (!covered && dep.weightsBps[i] != 0) revert InvalidTerms("weight for a service not covered");
            if (dep.objectives[i] > PPM) revert InvalidTerms("objective override above 100%");
            if (dep.objectives[i] != 0 && _services[i].tiers.length > 1 && dep.objectives[i] <= _services[i].tiers[1].belowPpm) {
                revert InvalidTerms("objective override at or below the second tier");
            }
            weights += dep.weightsBps[i];
        }
        if (weights != BPS) revert InvalidTerms("department weights do not sum to 10000 bps");
    }

    // ---------------------------------------------------------------- reads

    /// @notice The corporate services with their default objectives and tiers.
    function services() external view returns (Service[] memory) {
        return _services;
    }

    /// @notice Number of departments.
    function departmentCount() external view returns (uint256) {
        return _departments.length;
    }

    /// @notice One department's terms.
    function department(uint256 index) external view returns (Department memory) {
        _checkIndex(index);
        return _departments[index];
    }

    /// @notice How many periods of department `index` are settled.
    function settledPeriodsOf(uint256 index) external view returns (uint16) {
        return _state[index].settledPeriods;
    }

    /// @notice Department `index`'s credit for a total outage (capped): its pool reservation per period.
    function worstCreditOf(uint256 index) external view returns (uint256) {
        return _state[index].worstCredit;
    }

    /// @notice Every department's fees for the whole term.
    function totalFees() public view returns (uint256) {
        return uint256(feesPerPeriod) * periodCount;
    }

    /// @notice The values the oracle reported for `period` (empty if not yet reported).
    function reportedValues(uint256 period) external view returns (uint32[] memory) {
        return _values[period];
    }

    /// @notice Unix time at which `period` ends.
    function periodEnd(uint256 period) public view returns (uint256) {
        return uint256(start) + (period + 1) * uint256(periodLength);
    }

    /// @notice From this time on no report is accepted and anyone may `expire` the agreement.
    function expiresAt() public view returns (uint256) {
        return periodEnd(periodCount - 1) + REPORT_DEADLINE;
    }

    // ---------------------------------------------------------------- money in

    /// @notice Either party calls off the agreement before both deposits are in; what was
    /// deposited becomes withdrawable by whoever deposited it.
    function cancel() external {
        if (msg.sender != organisation && msg.sender != provider) revert Unauthorized(msg.sender);
        if (cancelled) revert AlreadyCancelled();
        if (feesDeposited && collateralDeposited) revert AlreadyFunded();
        cancelled = true;
        uint128 fees = feesEscrowed;
        // What exceeded the worst case was released at the deposit; the reserved part goes back.
        uint128 pool = collateralPool;
        feesEscrowed = 0;
        collateralPool = 0;
        owed[organisation] += fees;
        owed[provider] += pool;
        emit Cancelled(msg.sender, fees, pool);
    }

    /// @notice The organisation prepays every department's fees for the whole term.
    /// @param expectedTotal the total the organisation agreed to (departments cannot be added in
    /// front of its deposit)
    function depositFees(uint256 expectedTotal) external payable nonReentrant {
        if (msg.sender != organisation) revert Unauthorized(msg.sender);
        if (_departments.length == 0) revert NoDepartments();
        if (cancelled) revert AlreadyCancelled();
        uint256 total = totalFees();
        if (expectedTotal != total) revert WrongAmount(expectedTotal, total);
        if (feesDeposited) revert AlreadyDeposited();
        feesDeposited = true;
        feesEscrowed = uint128(total);
        emit FeesDeposited(msg.sender, total);
        _pull(total);
    }

    /// @notice The provider deposits the collateral pool that backs every department's credits.
    /// What exceeds the worst case reserved for the term is released to the provider at once.
    function depositCollateral() external payable nonReentrant {
        if (msg.sender != provider) revert Unauthorized(msg.sender);
        if (_departments.length == 0) revert NoDepartments();
        if (cancelled) revert AlreadyCancelled();
        if (collateralDeposited) revert AlreadyDeposited();
        uint128 reserved = uint128(uint256(worstCasePerPeriod) * periodCount); // <= collateral (addDepartments)
        collateralDeposited = true;
        collateralPool = reserved;
        emit CollateralDeposited(msg.sender, collateral);
        uint128 excess = collateral - reserved;
        if (excess != 0) {
            owed[provider] += excess;
            emit CollateralReleased(excess);
        }
        _pull(collateral);
    }

    // ---------------------------------------------------------------- settlement

    /// @notice The oracle reports one value per corporate service for the next period, once,
    /// until REPORT_DEADLINE after the term. Its cost does not depend on the number of departments.
    function report(uint256 period, uint32[] calldata valuesPpm) external {
        if (msg.sender != oracle) revert Unauthorized(msg.sender);
        if (!feesDeposited || !collateralDeposited) revert NotFunded();
        uint256 deadline = expiresAt();
        if (expired || block.timestamp >= deadline) revert AgreementExpired(deadline);
        uint16 reported = reportedPeriods;
        if (period < reported) revert PeriodAlreadyReported(period);
        if (period != reported || period >= periodCount) revert PeriodOutOfOrder(reported, period);
        uint256 endsAt = periodEnd(period);
        if (block.timestamp < endsAt) revert PeriodNotEnded(period, endsAt);
        if (valuesPpm.length != _services.length) revert WrongNumberOfValues(_services.length, valuesPpm.length);
        for (uint256 i = 0; i < valuesPpm.length; ++i) {
            if (valuesPpm[i] > PPM) revert ValueAboveOneHundredPercent(i, valuesPpm[i]);
        }
        reportedPeriods = reported + 1;
        _values[period] = valuesPpm;
        emit PeriodReported(period, valuesPpm);
    }

    /// @notice Settles a department's next period from the reported values; anyone may call.
    /// The department's fee goes to the provider, its credit (from its reservation) to its
    /// payout address, the rest of the reservation back to the provider.
    function settleDepartment(uint256 index, uint256 period) external {
        _checkIndex(index);
        _settle(index, period);
    }

    /// @notice Settles `period` for departments `first` to `end - 1` in one transaction; those
    /// already past `period` are skipped. At most MAX_DEPARTMENTS iterations.
    function settleDepartments(uint256 period, uint256 first, uint256 end) external {
        uint256 count = _departments.length;
        if (end > count) revert UnknownDepartment(end - 1, count);
        for (uint256 index = first; index < end; ++index) {
            if (_state[index].settledPeriods > period) continue;
            _settle(index, period);
        }
    }

    /// @notice Anyone ends an agreement whose periods were not all reported by `expiresAt()`
    /// (oracle gone silent): the unreported periods' fees go back to the organisation (nothing
    /// proved the service), their pool reservations to the provider. Reported periods still settle.
    function expire() external {
        if (!feesDeposited || !collateralDeposited) revert NotFunded();
        if (cancelled) revert AlreadyCancelled();
        uint256 deadline = expiresAt();
        if (expired || block.timestamp < deadline) revert NotExpired(deadline);
        uint256 unreported = periodCount - reportedPeriods;
        if (unreported == 0) revert NothingToExpire();
        expired = true;
        uint128 refund = uint128(uint256(feesPerPeriod) * unreported);
        uint128 returned = uint128(uint256(worstCasePerPeriod) * unreported);
        feesEscrowed -= refund;
        collateralPool -= returned;
        owed[organisation] += refund;
        owed[provider] += returned;
        emit Expired(unreported, refund, returned);
    }

    /// @notice Pays the caller (provider, organisation or a department's payout address) what it is owed.
    function withdraw() external nonReentrant {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        if (asset == address(0)) Address.sendValue(payable(msg.sender), amount);
        else IERC20(asset).safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- internals

    function _checkIndex(uint256 index) private view {
        if (index >= _departments.length) revert UnknownDepartment(index, _departments.length);
    }

    function _settle(uint256 index, uint256 period) private {
        DepartmentState memory st = _state[index];
        if (period != st.settledPeriods) revert PeriodOutOfOrder(st.settledPeriods, period);
        if (period >= reportedPeriods) revert PeriodNotReported(period);
        Department memory dep = _departments[index];
        (uint256[] memory credits, uint256 total) = _credits(dep, _values[period]);
        // total <= worstCredit: credits only grow as values fall, and the worst case is value 0.
        uint256 released = st.worstCredit - total;
        _state[index].settledPeriods = st.settledPeriods + 1;
        collateralPool -= st.worstCredit;
        feesEscrowed -= dep.feePerPeriod;
        owed[dep.payout] += total;
        owed[provider] += dep.feePerPeriod + released;
        emit DepartmentSettled(index, period, credits, total, dep.feePerPeriod, released);
    }

    /// @dev Each covered service's credit for `values` under the department's terms, and the
    /// capped total. One home for the rule, used for settlements and for the worst case.
    function _credits(Department memory dep, uint32[] memory values)
        private
        view
        returns (uint256[] memory credits, uint256 total)
    {
        credits = new uint256[](values.length);
        for (uint256 i = 0; i < values.length; ++i) {
            if (dep.serviceMask & (1 << i) == 0) continue;
            Service memory s = _services[i];
            if (dep.objectives[i] != 0) {
                // A department's own objective moves the mildest tier with it: a stricter
                // objective means "below it, the first credit applies".
                s.objectivePpm = dep.objectives[i];
                s.tiers[0].belowPpm = s.objectivePpm;
            }
            s.weightBps = dep.weightsBps[i];
            credits[i] = CreditMath.serviceCredit(s, KIND_AVAILABILITY, values[i], dep.feePerPeriod);
            total += credits[i];
        }
        uint256 cap = CreditMath.cap(dep.feePerPeriod, dep.creditCapBps == 0 ? creditCapBps : dep.creditCapBps);
        if (total > cap) total = cap;
    }

    function _pull(uint256 amount) private {
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
}
