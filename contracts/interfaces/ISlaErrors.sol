// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Status, PeriodState} from "../SlaTypes.sol";

/// @title Errors shared by every smartsla agreement.
/// @notice In the style of OpenZeppelin's IERC6093: one interface holds the documented custom
/// errors that `Agreement` and `CorporateAgreement` both raise, so a rule named once means the
/// same thing (and decodes the same way) in both. Errors only one contract raises stay in it.
interface ISlaErrors {
    /// @notice The implementation itself was called; only clones hold terms.
    error NotAClone();
    /// @notice `caller` may not do this.
    error Unauthorized(address caller);
    /// @notice Not allowed in the agreement's `current` status.
    error WrongStatus(Status current);
    /// @notice The caller's deposit is already in.
    error AlreadyDeposited();
    /// @notice The amount sent (ether) or received (token) differs from the one due.
    error WrongAmount(uint256 expected, uint256 received);
    /// @notice Deposits close when the term starts (`start`): a party cannot join with hindsight.
    error TermStarted(uint256 start);
    /// @notice Periods are reported (settled) in order; `expected` is the next one.
    error PeriodOutOfOrder(uint256 expected, uint256 given);
    /// @notice `period` ends at `endsAt`; it cannot be reported before.
    error PeriodNotEnded(uint256 period, uint256 endsAt);
    /// @notice A report needs one value per service.
    error WrongNumberOfValues(uint256 expected, uint256 given);
    /// @notice An availability value above 1,000,000 ppm.
    error ValueAboveOneHundredPercent(uint256 serviceIndex, uint256 valuePpm);
    /// @notice The oracles measured only `measuredPpm` of the period's countable time, less than
    /// the agreed `minimumPpm` (a figure nobody measured is not reported; see `expire`).
    error PeriodNotMeasured(uint256 period, uint256 measuredPpm, uint256 minimumPpm);
    /// @notice A measured share above 1,000,000 ppm.
    error MeasuredShareAboveOneHundredPercent(uint256 measuredPpm);
    /// @notice The signed report at position `index` expired at `deadline`.
    error ReportExpired(uint256 index, uint256 deadline);
    /// @notice No final period has triggered the disaster clause.
    error NoDisaster();
    /// @notice Nothing is owed to `party`.
    error NothingToWithdraw(address party);
    /// @notice Payments to the zero address are refused.
    error InvalidRecipient();
    /// @notice Fewer reports than the quorum.
    error QuorumNotReached(uint256 quorum, uint256 reports);
    /// @notice A report was signed by someone outside the committee.
    error NotACommitteeMember(address signer);
    /// @notice Two reports by the same member.
    error DuplicateSigner(address signer);
    /// @notice A maintenance window in the past, empty, or outside the term.
    error InvalidWindow(uint256 start, uint256 end);
    /// @notice A window declared with notice under the maintenance clause must start and end on
    /// slice boundaries (`sliceLength` seconds after the term's start), so that what is charged
    /// to the budget equals what the oracles exclude.
    error MisalignedWindow(uint256 start, uint256 end, uint256 sliceLength);
    /// @notice The agreement already has `limit` declared windows, the most anyone must read.
    error TooManyMaintenanceWindows(uint256 limit);
    /// @notice The period is not in a state that allows this.
    error WrongPeriodState(uint256 period, PeriodState state);
    /// @notice The dispute window of `period` is open until `until`.
    error DisputeWindowOpen(uint256 period, uint256 until);
    /// @notice The dispute window of `period` closed at `closedAt`.
    error DisputeWindowClosed(uint256 period, uint256 closedAt);
    /// @notice The report deadline passes at `expiresAt`.
    error NotExpired(uint256 expiresAt);
    /// @notice Excluded maintenance of `requested` seconds exceeds the `remaining` budget.
    error MaintenanceBudgetExceeded(uint256 requested, uint256 remaining);
    /// @notice A report came without its evidence: the Merkle root of the oracle's slice records
    /// is zero. Every accepted figure must be checkable, so a bare number is refused.
    error MissingEvidence();
}
