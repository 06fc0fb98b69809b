// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// Shared types of smartsla agreements.
// Units used everywhere: measured values and objectives in parts per million
// (1_000_000 = 100 %, so 99.99 % is 999_900); credits, weights and caps in basis points
// (10_000 = 100 %).

uint32 constant PPM = 1_000_000;
uint16 constant BPS = 10_000;

/// @notice One step of a credit schedule: a measured value strictly below `belowPpm`
/// earns `creditBps` of the service's share of the period fee.
struct Tier {
    uint32 belowPpm;
    uint16 creditBps;
}

/// @notice One service covered by an agreement.
/// @dev `weightBps` is the service's share of the period fee; the shares of all services sum
/// to 100 %. Tiers are ordered from the mildest (highest threshold) to the harshest.
struct Service {
    bytes32 id;
    uint32 objectivePpm;
    uint16 weightBps;
    Tier[] tiers;
}

/// @notice The terms of an agreement, fixed at creation.
/// @dev `oracles` is the oracle committee; a period settles on the median of at least `quorum`
/// reports signed by distinct members (with `quorum` 1 a member may also report directly).
/// `asset` is address(0) for native ETH, else an ERC-20 token. `terminationPpm` is the
/// disaster clause: a settled period in which any service measured below it lets the customer
/// terminate early (0 disables the clause).
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

/// @notice Life cycle of an agreement.
/// Pending: waiting for the prepaid fees and the collateral. Active: both deposited, periods
/// settle. Ended: every period settled. Terminated: the customer used the disaster clause.
/// Cancelled: a party withdrew from a pending agreement; deposits are returned.
enum Status {
    Pending,
    Active,
    Ended,
    Terminated,
    Cancelled
}

/// @notice Everything that changes over an agreement's life, in one read.
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
}

/// @notice One oracle's signed report of a period (EIP-712 typed data, see Agreement.REPORT_TYPEHASH).
struct SignedReport {
    uint32[] valuesPpm;
    bytes signature;
}
