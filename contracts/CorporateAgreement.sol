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
/// many departments there are. Each department's period then settles with `settleDepartment`,
/// which anyone may call (the department, the provider, a keeper): no transaction per
/// department from the oracle.
contract CorporateAgreement is ReentrancyGuard {
    using SafeERC20 for IERC20;

    uint256 public constant MAX_DEPARTMENTS = 256;
    uint256 public constant MAX_SERVICES = 16;

    error Unauthorized(address caller);
    error InvalidTerms(string reason);
    error WrongAmount(uint256 expected, uint256 received);
    error AlreadyDeposited();
    error NotFunded();
    error PeriodNotEnded(uint256 period, uint256 endsAt);
    error PeriodAlreadyReported(uint256 period);
    error PeriodOutOfOrder(uint256 expected, uint256 given);
    error PeriodNotReported(uint256 period);
    error WrongNumberOfValues(uint256 expected, uint256 given);
    error ValueAboveOneHundredPercent(uint256 serviceIndex, uint256 valuePpm);
    error NothingToWithdraw(address party);
    error TermNotOver();

    event FeesDeposited(address indexed organisation, uint256 amount);
    event CollateralDeposited(address indexed provider, uint256 amount);
    event PeriodReported(uint256 indexed period, uint32[] valuesPpm);
    event DepartmentSettled(
        uint256 indexed department, uint256 indexed period, uint256[] serviceCredits, uint256 creditPaid, uint256 fee
    );
    event CollateralExhausted(uint256 indexed department, uint256 indexed period, uint256 shortfall);
    event CollateralReleased(uint256 amount);
    event Withdrawn(address indexed party, uint256 amount);
    event Cancelled(address indexed by, uint256 refundToOrganisation, uint256 refundToProvider);

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
    uint256 public totalFees;

    Service[] private _services;
    Department[] private _departments;

    bool public feesDeposited;
    bool public cancelled;
    bool public collateralDeposited;
    uint16 public reportedPeriods;
    uint16 public departmentsDone;
    uint128 public feesEscrowed;
    uint128 public collateralPool;

    mapping(uint256 period => uint32[]) private _values;
    mapping(uint256 department => uint16) public settledPeriodsOf;
    mapping(address party => uint256) public owed;

    /// @param services_ corporate services with default objectives and tiers (availability kind)
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
            Service storage stored = _services.push();
            stored.id = s.id;
            stored.objectivePpm = s.objectivePpm;
            stored.weightBps = s.weightBps;
            for (uint256 j = 0; j < s.tiers.length; ++j) {
                if (j > 0 && (s.tiers[j].belowPpm >= s.tiers[j - 1].belowPpm || s.tiers[j].creditBps <= s.tiers[j - 1].creditBps)) {
                    revert InvalidTerms("tiers not ordered");
                }
                stored.tiers.push(s.tiers[j]);
            }
        }
    }

    event DepartmentAdded(uint256 indexed index, address indexed payout, uint256 feePerPeriod, uint32 serviceMask);

    /// @notice The creator adds departments (customer-level agreements) before the first deposit;
    /// the deposits of the organisation and the provider accept the terms as they then stand.
    function addDepartments(Department[] calldata departments) external {
        if (msg.sender != creator) revert Unauthorized(msg.sender);
        if (feesDeposited || collateralDeposited) revert AlreadyDeposited();
        if (_departments.length + departments.length > MAX_DEPARTMENTS) {
            revert InvalidTerms("more than 256 departments");
        }
        uint256 n = _services.length;
        uint256 fees = totalFees;
        for (uint256 d = 0; d < departments.length; ++d) {
            Department memory dep = departments[d];
            _checkDepartment(dep, n);
            fees += uint256(dep.feePerPeriod) * periodCount;
            _departments.push(dep);
            emit DepartmentAdded(_departments.length - 1, dep.payout, dep.feePerPeriod, dep.serviceMask);
        }
        totalFees = fees;
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
        return _departments[index];
    }

    /// @notice The values the oracle reported for `period` (empty if not yet reported).
    function reportedValues(uint256 period) external view returns (uint32[] memory) {
        return _values[period];
    }

    /// @notice Unix time at which `period` ends.
    function periodEnd(uint256 period) public view returns (uint256) {
        return uint256(start) + (period + 1) * uint256(periodLength);
    }

    // ---------------------------------------------------------------- money in

    /// @notice Either party calls off the agreement before both deposits are in; what was
    /// deposited becomes withdrawable by whoever deposited it.
    function cancel() external {
        if (msg.sender != organisation && msg.sender != provider) revert Unauthorized(msg.sender);
        if (cancelled || (feesDeposited && collateralDeposited)) revert AlreadyDeposited();
        cancelled = true;
        uint128 fees = feesEscrowed;
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
        if (_departments.length == 0) revert InvalidTerms("no departments");
        if (cancelled) revert AlreadyDeposited();
        if (expectedTotal != totalFees) revert WrongAmount(expectedTotal, totalFees);
        if (totalFees > type(uint128).max) revert InvalidTerms("total fees overflow");
        if (feesDeposited) revert AlreadyDeposited();
        feesDeposited = true;
        feesEscrowed = uint128(totalFees);
        emit FeesDeposited(msg.sender, totalFees);
        _pull(totalFees);
    }

    /// @notice The provider deposits the collateral pool that backs every department's credits.
    function depositCollateral() external payable nonReentrant {
        if (msg.sender != provider) revert Unauthorized(msg.sender);
        if (cancelled) revert AlreadyDeposited();
        if (collateralDeposited) revert AlreadyDeposited();
        collateralDeposited = true;
        collateralPool = collateral;
        emit CollateralDeposited(msg.sender, collateral);
        _pull(collateral);
    }

    // ---------------------------------------------------------------- settlement

    /// @notice The oracle reports one value per corporate service for the next period, once.
    /// Its cost does not depend on the number of departments.
    function report(uint256 period, uint32[] calldata valuesPpm) external {
        if (msg.sender != oracle) revert Unauthorized(msg.sender);
        if (!feesDeposited || !collateralDeposited) revert NotFunded();
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
    /// The department's fee goes to the provider, its credit (from the pool) to its payout address.
    function settleDepartment(uint256 index, uint256 period) external {
        Department memory dep = _departments[index];
        uint16 next = settledPeriodsOf[index];
        if (period != next) revert PeriodOutOfOrder(next, period);
        if (period >= reportedPeriods) revert PeriodNotReported(period);
        uint32[] memory values = _values[period];
        uint256[] memory credits = new uint256[](values.length);
        uint256 total = 0;
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
        uint128 pool = collateralPool;
        if (total > pool) {
            emit CollateralExhausted(index, period, total - pool);
            total = pool;
        }
        settledPeriodsOf[index] = next + 1;
        collateralPool = pool - uint128(total);
        feesEscrowed -= dep.feePerPeriod;
        owed[dep.payout] += total;
        owed[provider] += dep.feePerPeriod;
        emit DepartmentSettled(index, period, credits, total, dep.feePerPeriod);
        if (next + 1 == periodCount) {
            departmentsDone += 1;
            if (departmentsDone == _departments.length) {
                uint128 left = collateralPool;
                collateralPool = 0;
                owed[provider] += left;
                emit CollateralReleased(left);
            }
        }
    }

    /// @notice Pays the caller (provider or a department's payout address) what it is owed.
    function withdraw() external nonReentrant {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        if (asset == address(0)) Address.sendValue(payable(msg.sender), amount);
        else IERC20(asset).safeTransfer(msg.sender, amount);
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
