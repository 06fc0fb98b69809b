// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Events shared by every smartsla agreement.
/// @notice The same event, with the same arguments, for the same fact in `Agreement` and
/// `CorporateAgreement`, so that an indexer decodes both with one ABI entry. For a multi-level
/// agreement the "customer" is the paying organisation.
interface ISlaEvents {
    /// @notice The customer (organisation) prepaid every period's fee.
    event FeesDeposited(address indexed customer, uint256 amount);
    /// @notice The provider deposited the collateral.
    event CollateralDeposited(address indexed provider, uint256 amount);
    /// @notice Both deposits are in: periods can be reported.
    event Activated(uint256 timestamp);
    /// @notice A pending agreement was called off; the deposits became withdrawable.
    event Cancelled(address indexed by, uint256 refundToCustomer, uint256 refundToProvider);
    /// @notice What `party` was owed was paid to `to`.
    event Withdrawn(address indexed party, address indexed to, uint256 amount);
    /// @notice A period was reported from signed reports; bit i of `signers` is committee member i.
    event ReportsAccepted(uint256 indexed period, uint256 signers);
    /// @notice `oracle`'s report of `period` was accepted with `evidenceRoot`: the Merkle root of
    /// its slice records of every service, which anyone can fetch and check the figure against.
    /// Emitted (not stored) once per accepted report.
    event EvidenceCommitted(uint256 indexed period, address indexed oracle, bytes32 evidenceRoot);
    /// @notice The provider declared maintenance; `withNotice` says whether it is excluded from
    /// the figures (declared under the maintenance clause at least the agreed notice ahead).
    event MaintenanceDeclared(uint256 indexed index, uint64 start, uint64 end, uint64 declaredAt, bool withNotice);
    /// @notice A party disputed a reported period within its dispute window.
    event Disputed(uint256 indexed period, address indexed by, bytes32 evidence);
    /// @notice Collateral kept back was released to the provider.
    event CollateralReleased(uint256 amount);
    /// @notice Periods were never reported by the deadline: their prepaid fees went back to the
    /// customer (organisation), the collateral that backed them to the provider.
    event Expired(uint256 unreportedPeriods, uint256 refundedFees, uint256 returnedCollateral);
}
