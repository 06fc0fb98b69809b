// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

import {
    Terms,
    Options,
    Service,
    Tier,
    PPM,
    BPS,
    KIND_AVAILABILITY,
    KIND_LATENCY,
    KIND_COMPOSITE
} from "./SlaTypes.sol";
import {TermsCodec} from "./TermsCodec.sol";
import {Agreement} from "./Agreement.sol";

/// @title Creates agreements and keeps the registry of who is party to which.
/// @notice Every agreement is an EIP-1167 minimal-proxy clone of one Agreement implementation,
/// with its validated terms packed into the clone's code.
contract AgreementFactory {
    uint256 public constant MAX_SERVICES = 16;
    uint256 public constant MAX_TIERS = 8;
    uint256 public constant MAX_ORACLES = 16;
    /// @notice Longest measurement slice, in seconds.
    uint256 public constant MAX_SLICE_LENGTH = 3600;
    /// @notice Slice length and least measured share `createAgreement` (no options) agrees to.
    uint32 public constant DEFAULT_SLICE_LENGTH = 60;
    uint32 public constant DEFAULT_MIN_MEASURED_PPM = 900_000;
    /// @notice The most bytes of packed terms a clone can carry: EIP-170 limits code to 24,576
    /// bytes and the clone's own code (Clones.cloneWithImmutableArgs) takes 45 of them.
    uint256 public constant MAX_PACKED_TERMS = 24_531;

    /// @notice Terms that cannot make a sound agreement; `reason` says which rule failed.
    error InvalidTerms(string reason);
    /// @notice A service's terms are unsound; `serviceIndex` is its position in the terms.
    error InvalidService(uint256 serviceIndex, string reason);
    /// @notice The packed terms (`size` bytes) exceed what a clone's code can hold (`limit`).
    error TermsTooLarge(uint256 size, uint256 limit);
    /// @notice `latencyPercentiles` must be empty or hold one entry per service (`expected`).
    error WrongNumberOfPercentiles(uint256 expected, uint256 given);
    /// @notice Service `serviceIndex` is not a latency service, so its percentile must be 0.
    error PercentileOnNonLatencyService(uint256 serviceIndex, uint8 percentile);
    /// @notice A latency service's percentile must be 50, 95 or 99 (what the oracles compute).
    error UnsupportedPercentile(uint256 serviceIndex, uint8 percentile);

    event AgreementCreated(
        address indexed agreement, address indexed provider, address indexed customer, address asset
    );

    /// @notice The Agreement implementation every clone delegates to.
    address public immutable implementation;

    mapping(address => bool) public isAgreement;
    mapping(address => address[]) private _byProvider;
    mapping(address => address[]) private _byCustomer;
    uint256 public agreementCount;

    constructor() {
        implementation = address(new Agreement());
    }

    /// @notice Creates an agreement with the given terms and the default options: no dispute
    /// window, no maintenance clause (every declared window counts as ordinary time),
    /// availability services only, fixed periods, one-minute slices, and reports accepted only
    /// when at least 90 % of a period was measured. Anyone may create one; it does nothing until
    /// the customer deposits the fees and the provider the collateral.
    /// @return agreement the new agreement's address
    function createAgreement(Terms calldata terms) external returns (address agreement) {
        Options memory defaults = Options(
            0,
            address(0),
            0,
            new uint8[](0),
            new uint32[](0),
            0,
            DEFAULT_SLICE_LENGTH,
            DEFAULT_MIN_MEASURED_PPM,
            bytes32(0),
            new uint8[](0)
        );
        return _create(terms, defaults);
    }

    /// @notice Creates an agreement with optional terms: a dispute window and its arbiter, the
    /// notice that makes declared maintenance excluded, the kind of each service, and the
    /// measurement method (slice length, least measured share, latency percentiles) with the hash
    /// of the signed specification document.
    /// @return agreement the new agreement's address
    function createAgreementWithOptions(Terms calldata terms, Options calldata options)
        external
        returns (address agreement)
    {
        return _create(terms, options);
    }

    function _create(Terms calldata terms, Options memory options) private returns (address agreement) {
        validate(terms, options);
        agreement = Clones.cloneWithImmutableArgs(implementation, TermsCodec.encode(terms, options));
        isAgreement[agreement] = true;
        _byProvider[terms.provider].push(agreement);
        _byCustomer[terms.customer].push(agreement);
        agreementCount += 1;
        emit AgreementCreated(agreement, terms.provider, terms.customer, terms.asset);
    }

    /// @notice Reverts with InvalidTerms/InvalidService/TermsTooLarge when `terms` with `options`
    /// cannot make a sound agreement, or when the term would start before the current block.
    function validate(Terms memory terms, Options memory options) public view {
        if (terms.start < block.timestamp) revert InvalidTerms("start is in the past");
        if (terms.provider == address(0)) revert InvalidTerms("provider is the zero address");
        if (terms.customer == address(0)) revert InvalidTerms("customer is the zero address");
        if (terms.provider == terms.customer) revert InvalidTerms("provider and customer are the same");
        uint256 oracleCount = terms.oracles.length;
        if (oracleCount == 0 || oracleCount > MAX_ORACLES) revert InvalidTerms("oracle count outside 1..16");
        if (terms.quorum == 0 || terms.quorum > oracleCount) revert InvalidTerms("quorum outside 1..oracle count");
        // An odd quorum has a true middle report: no tie for a bribed member to break.
        if (terms.quorum % 2 == 0) revert InvalidTerms("quorum must be odd");
        for (uint256 i = 0; i < oracleCount; ++i) {
            address o = terms.oracles[i];
            if (o == address(0)) revert InvalidTerms("oracle is the zero address");
            if (o == terms.provider || o == terms.customer) revert InvalidTerms("a party cannot be an oracle");
            for (uint256 k = 0; k < i; ++k) {
                if (terms.oracles[k] == o) revert InvalidTerms("duplicate oracle");
            }
        }
        if (terms.periodCount == 0) revert InvalidTerms("period count is zero");
        uint256 slice = options.sliceLength;
        if (slice == 0 || slice > MAX_SLICE_LENGTH) revert InvalidTerms("slice length outside 1..3600 s");
        uint256 ends = options.periodEnds.length;
        if (ends == 0 && terms.periodLength == 0) revert InvalidTerms("period length is zero");
        if (ends == 0 && terms.periodLength % slice != 0) {
            revert InvalidTerms("period length is not a whole number of slices");
        }
        if (ends != 0) {
            if (terms.periodLength != 0) revert InvalidTerms("calendar periods need a period length of zero");
            if (ends != terms.periodCount) revert InvalidTerms("one period end per period");
            for (uint256 i = 0; i < ends; ++i) {
                uint32 previous = i == 0 ? 0 : options.periodEnds[i - 1];
                if (options.periodEnds[i] <= previous) revert InvalidTerms("period ends not rising");
                if (options.periodEnds[i] % slice != 0) revert InvalidTerms("period end is not a whole number of slices");
            }
        }
        if (options.minMeasuredPpm > PPM) revert InvalidTerms("minimum measured share above 100%");
        // The maintenance clause is opt-in and bounded: notice without a budget would exclude
        // without limit, a budget without notice would let the provider exclude an outage as it
        // happens.
        if ((options.maintenanceNotice == 0) != (options.maintenanceBudget == 0)) {
            revert InvalidTerms("maintenance notice and budget go together");
        }
        if (terms.feePerPeriod == 0) revert InvalidTerms("fee per period is zero");
        // The books hold fees, collateral and what is owed in uint128: the sum must fit.
        if (uint256(terms.feePerPeriod) * terms.periodCount + terms.collateral > type(uint128).max) {
            revert InvalidTerms("total fees plus collateral overflow");
        }
        if (terms.creditCapBps == 0 || terms.creditCapBps > BPS) revert InvalidTerms("credit cap outside 1..10000 bps");
        if (terms.terminationPpm > PPM) revert InvalidTerms("termination threshold above 100%");
        if (options.disputeWindow != 0) {
            if (options.arbiter == address(0)) revert InvalidTerms("a dispute window needs an arbiter");
            if (options.arbiter == terms.provider || options.arbiter == terms.customer) {
                revert InvalidTerms("a party cannot be the arbiter");
            }
        }
        uint256 n = terms.services.length;
        if (n == 0 || n > MAX_SERVICES) revert InvalidTerms("service count outside 1..16");
        if (options.serviceKinds.length != 0 && options.serviceKinds.length != n) {
            revert InvalidTerms("one service kind per service");
        }
        uint256 percentiles = options.latencyPercentiles.length;
        if (percentiles != 0 && percentiles != n) revert WrongNumberOfPercentiles(n, percentiles);
        uint256 weights = 0;
        bool hasAvailability = false;
        bool hasComposite = false;
        for (uint256 i = 0; i < n; ++i) {
            Service memory s = terms.services[i];
            uint8 kind = options.serviceKinds.length == 0 ? KIND_AVAILABILITY : options.serviceKinds[i];
            if (kind > KIND_COMPOSITE) revert InvalidService(i, "unknown kind");
            hasAvailability = hasAvailability || kind == KIND_AVAILABILITY;
            hasComposite = hasComposite || kind == KIND_COMPOSITE;
            if (s.id == bytes32(0)) revert InvalidService(i, "empty id");
            for (uint256 k = 0; k < i; ++k) {
                if (terms.services[k].id == s.id) revert InvalidService(i, "duplicate id");
            }
            if (s.objective == 0) revert InvalidService(i, "objective is zero");
            if (kind != KIND_LATENCY && s.objective > PPM) revert InvalidService(i, "objective above 100%");
            if (s.weightBps == 0) revert InvalidService(i, "zero weight");
            weights += s.weightBps;
            _validateTiers(s, i, kind == KIND_LATENCY);
            if (percentiles != 0) _validatePercentile(i, kind, options.latencyPercentiles[i]);
        }
        if (weights != BPS) revert InvalidTerms("service weights do not sum to 10000 bps");
        if (hasComposite && !hasAvailability) revert InvalidTerms("a composite needs availability services");
        uint256 size = TermsCodec.packedLength(terms, options);
        if (size > MAX_PACKED_TERMS) revert TermsTooLarge(size, MAX_PACKED_TERMS);
    }

    /// @dev A latency service names the percentile its figure is (50, 95 or 99); any other
    /// service has none (0), so a percentile cannot silently change what an availability counts.
    function _validatePercentile(uint256 i, uint8 kind, uint8 p) private pure {
        if (kind != KIND_LATENCY) {
            if (p != 0) revert PercentileOnNonLatencyService(i, p);
        } else if (p != 50 && p != 95 && p != 99) {
            revert UnsupportedPercentile(i, p);
        }
    }

    /// @dev Tiers go from mildest to harshest: credits rise; thresholds fall below the objective
    /// (higher is better) or rise above it (latency: lower is better).
    function _validateTiers(Service memory s, uint256 i, bool latency) private pure {
        uint256 m = s.tiers.length;
        if (m == 0 || m > MAX_TIERS) revert InvalidService(i, "tier count outside 1..8");
        for (uint256 j = 0; j < m; ++j) {
            Tier memory tier = s.tiers[j];
            if (tier.creditBps == 0 || tier.creditBps > BPS) revert InvalidService(i, "tier credit outside 1..10000 bps");
            if (latency) {
                if (tier.threshold < s.objective) revert InvalidService(i, "latency tier below objective");
            } else if (tier.threshold > s.objective) {
                revert InvalidService(i, "tier threshold above objective");
            }
            if (j == 0) continue;
            if (latency && tier.threshold <= s.tiers[j - 1].threshold) {
                revert InvalidService(i, "latency tier thresholds not rising");
            }
            if (!latency && tier.threshold >= s.tiers[j - 1].threshold) {
                revert InvalidService(i, "tier thresholds not falling");
            }
            if (tier.creditBps <= s.tiers[j - 1].creditBps) revert InvalidService(i, "tier credits not rising");
        }
    }

    /// @notice Number of agreements in which `provider` is the provider.
    function providerAgreementCount(address provider) external view returns (uint256) {
        return _byProvider[provider].length;
    }

    /// @notice Number of agreements in which `customer` is the customer.
    function customerAgreementCount(address customer) external view returns (uint256) {
        return _byCustomer[customer].length;
    }

    /// @notice A page of the agreements of `provider`, oldest first.
    function agreementsOfProvider(address provider, uint256 offset, uint256 limit)
        external
        view
        returns (address[] memory)
    {
        return _page(_byProvider[provider], offset, limit);
    }

    /// @notice A page of the agreements of `customer`, oldest first.
    function agreementsOfCustomer(address customer, uint256 offset, uint256 limit)
        external
        view
        returns (address[] memory)
    {
        return _page(_byCustomer[customer], offset, limit);
    }

    function _page(address[] storage list, uint256 offset, uint256 limit) private view returns (address[] memory out) {
        if (offset >= list.length) return new address[](0);
        uint256 end = offset + limit;
        if (end > list.length || end < offset) end = list.length;
        out = new address[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            out[i - offset] = list[i];
        }
    }
}
