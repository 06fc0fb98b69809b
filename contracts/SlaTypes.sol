// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// Shared types of smartsla agreements.
// Units used everywhere: measured values and objectives in parts per million
// (1_000_000 = 100 %, so 99.99 % is 999_900), except latency services (milliseconds); credits,
// weights and caps in basis points (10_000 = 100 %).

uint32 constant PPM = 1_000_000;
uint16 constant BPS = 10_000;

// Service kinds (Options.serviceKinds).
/// @dev Availability: value in ppm, higher is better; credit below the objective. The default.
uint8 constant KIND_AVAILABILITY = 0;
/// @dev Latency (an experience objective): value in ms, lower is better; credit above the objective.
uint8 constant KIND_LATENCY = 1;
/// @dev Customer satisfaction (an experience objective): the customer attests a score in ppm per
/// period (`attestSatisfaction`); the oracle's value for it is ignored.
uint8 constant KIND_SATISFACTION = 2;
/// @dev Combined figure: the fee-weighted mean of the availability services, computed on-chain;
/// the oracle's value for it is ignored.
uint8 constant KIND_COMPOSITE = 3;

/// @notice One step of a credit schedule. For availability, satisfaction and composite services a
/// value strictly below `threshold` earns `creditBps` of the service's share of the period fee; for
/// latency services `threshold` is a bound in milliseconds and a value strictly above it earns it.
struct Tier {
    uint32 threshold;
    uint16 creditBps;
}

/// @notice One service covered by an agreement. `objective` and the tiers' `threshold`s are in
/// ppm for availability, satisfaction and composite services, in milliseconds for latency services.
/// @dev `weightBps` is the service's share of the period fee; the shares of all services sum
/// to 100 %. Tiers are ordered from the mildest to the harshest.
struct Service {
    bytes32 id;
    uint32 objective;
    uint16 weightBps;
    Tier[] tiers;
}

/// @notice The terms of an agreement, fixed at creation.
/// @dev `oracles` is the oracle committee; a period settles on the median of at least `quorum`
/// reports signed by distinct members (with `quorum` 1 a member may also report directly).
/// `asset` is address(0) for native ETH, else an ERC-20 token. `terminationPpm` is the
/// disaster clause: a settled period in which any availability (or composite) figure fell below
/// it lets the customer terminate early (0 disables the clause).
struct Terms {
    address provider;
    address customer;
    address[] oracles;
    uint8 quorum;
    address asset;
    uint64 start;
    uint32 periodLength;
    uint16 periodCount;
    uint128 feePerPeriod;
    uint128 collateral;
    uint16 creditCapBps;
    uint32 terminationPpm;
    Service[] services;
}

/// @notice Optional terms, also fixed at creation.
/// @dev `disputeWindow` (seconds, 0 = none): a settled period pays out only after it, and within
/// it either party may dispute; `arbiter` then settles the dispute with a corrected report.
/// The maintenance clause is opt-in: `maintenanceNotice` and `maintenanceBudget` (seconds) are
/// both positive or both zero. With the clause, a window declared at least `maintenanceNotice`
/// before it starts, aligned to the measurement slices, is excluded from the figures by the
/// oracles, and its length is charged to `maintenanceBudget` (the most excluded seconds over the
/// whole term). Without it (both zero) every declared window counts as ordinary time.
/// `serviceKinds`: one KIND_* per service, or empty for all availability. `periodEnds`: for
/// calendar periods (e.g. months in a time zone), the end of each period in seconds after
/// `start`, strictly rising; then the terms' `periodLength` is 0. Empty for periods of a fixed
/// `periodLength`. `sliceLength` (seconds, 1..3600): the measurement slice, the unit in which the
/// oracles count time and exclude maintenance; every period boundary is a whole number of slices
/// after `start`. `minMeasuredPpm`: the least share of a period's countable time (not excluded by
/// maintenance) the oracles must have measured for their report to be accepted.
/// The missing-data policy is fixed, not an option: a slice holding no sample is "not measured",
/// neither up nor down; it counts against `minMeasuredPpm` only, never in a figure.
/// `specHash`: keccak256 of the canonical form of the signed specification document (parties,
/// services, objectives, credits, scope and exclusions, maintenance, dispute clauses and the
/// measurement method; see smartsla/spec_hash.py), so anyone holding a file can check it is the one
/// agreed; zero = created without a spec document.
/// `latencyPercentiles`: the percentile (50, 95 or 99) of the per-slice latencies each latency
/// service reports for a period, one per service and 0 for every other kind; empty = not fixed by
/// the terms (agreements created before it existed, or without latency services). The oracles
/// refuse to serve an agreement whose percentile differs from their configuration.
struct Options {
    uint32 disputeWindow;
    address arbiter;
    uint32 maintenanceNotice;
    uint8[] serviceKinds;
    uint32[] periodEnds;
    uint32 maintenanceBudget;
    uint32 sliceLength;
    uint32 minMeasuredPpm;
    bytes32 specHash;
    uint8[] latencyPercentiles;
}

/// @notice Life cycle of an agreement.
/// Pending: waiting for the prepaid fees and the collateral. Active: both deposited, periods
/// settle. Ended: every period settled. Terminated: the customer used the disaster clause.
/// Cancelled: a party withdrew from a pending agreement; deposits are returned. Expired: the term
/// ended long ago (REPORT_DEADLINE) with periods never reported; their fees went back.
enum Status {
    Pending,
    Active,
    Ended,
    Terminated,
    Cancelled,
    Expired
}

/// @notice Everything that changes over an agreement's life, in one read.
/// @dev The contract holds feesEscrowed + collateralEscrowed + owedTo* + pendingTo*.
struct Snapshot {
    Status status;
    uint16 settledPeriods;
    bool feesDeposited;
    bool collateralDeposited;
    bool disasterOccurred;
    uint128 feesEscrowed;
    uint128 collateralEscrowed;
    uint128 owedToCustomer;
    uint128 owedToProvider;
    uint128 pendingToCustomer;
    uint128 pendingToProvider;
    uint16 pendingPeriods;
}

/// @notice One oracle's signed report of a period (EIP-712 typed data, see Agreement.REPORT_TYPEHASH).
/// @dev `measuredPpm`: the share of the period's countable time the oracle measured (the least
/// over the services). `evidenceRoot`: the Merkle root of the oracle's evidence for the period
/// (the slice records of every service), signed with the values so that a signature over one
/// body of evidence cannot be presented with another; never zero. `deadline`: unix time after
/// which the report is refused, so an old signature cannot be held back and used later.
struct SignedReport {
    uint32[] valuesPpm;
    uint32 measuredPpm;
    bytes32 evidenceRoot;
    uint64 deadline;
    bytes signature;
}

/// @notice A maintenance window the provider declared on-chain. `excluded`: declared under the
/// maintenance clause with the agreed notice (and charged to the budget), so the oracles leave it
/// out of the figures; otherwise it counts as ordinary time.
struct MaintenanceWindow {
    uint64 start;
    uint64 end;
    uint64 declaredAt;
    bool excluded;
}

/// @notice States of a settled period when the agreement has a dispute window.
enum PeriodState {
    None,
    Pending,
    Disputed,
    Final
}

/// @notice The corporate level of a multi-level agreement (CorporateAgreement), fixed at creation.
/// @dev Like `Terms` and `Options` of a single agreement: `organisation` is the paying customer;
/// `oracles`/`quorum` the committee (one report per period for the whole organisation, one value
/// per corporate service); `terminationPpm` the disaster threshold each department may invoke
/// (0 disables it); `disputeWindow`/`arbiter`, `maintenanceNotice`/`maintenanceBudget`,
/// `sliceLength` and `minMeasuredPpm` as in `Options`. Services are availability services with
/// weight 0 (each department weighs the services it covers). Fixed-length periods only.
struct CorporateTerms {
    address provider;
    address organisation;
    address asset;
    uint64 start;
    uint32 periodLength;
    uint16 periodCount;
    uint128 collateral;
    uint16 creditCapBps;
    uint32 terminationPpm;
    address[] oracles;
    uint8 quorum;
    uint32 disputeWindow;
    address arbiter;
    uint32 maintenanceNotice;
    uint32 maintenanceBudget;
    uint32 sliceLength;
    uint32 minMeasuredPpm;
    Service[] services;
}

/// @notice One department (customer level) of a multi-level agreement.
/// @dev `serviceMask` bit i covers corporate service i; `objectives[i]` overrides service i's
/// objective when non-zero (and moves the mildest tier's threshold with it); `weightsBps[i]` is
/// service i's share of the department's fee (the covered services' weights sum to 100 %).
/// `creditCapBps` 0 means the corporate cap.
struct Department {
    address payout;
    uint128 feePerPeriod;
    uint32 serviceMask;
    uint16 creditCapBps;
    uint32[] objectives;
    uint16[] weightsBps;
}

/// @notice Everything that changes over a multi-level agreement's life, in one read.
/// @dev The contract holds feesEscrowed + collateralPool + the sum of every address's `owed`.
struct CorporateSnapshot {
    Status status;
    uint16 reportedPeriods;
    uint16 pendingPeriods;
    bool feesDeposited;
    bool collateralDeposited;
    uint128 feesEscrowed;
    uint128 collateralPool;
    uint128 feesPerPeriod;
    uint128 worstCasePerPeriod;
}
