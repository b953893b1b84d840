//! Seata's domain enumerations and their wire numbers (PROTOCOL.md §5).
//!
//! Every enum here is written on the wire as one byte. Statuses and branch types use their ordinal,
//! which Seata's Java clients decode by array index, so an unknown number makes a whole response
//! undecodable on the client: [`GlobalStatus::for_client`] and [`ExceptionCode::to_wire`] map the
//! numbers to what each client generation knows.

use crate::error::ProtocolError;
use crate::version::Version;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $($(#[$vmeta])* $variant = $value),+ }

        impl $name {
            /// Every member, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The number written on the wire and stored in the database.
            pub const fn code(self) -> u8 { self as u8 }

            /// Seata's Java constant name (what the database and the console show).
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }

            /// Looks a member up by its Java constant name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $(stringify!($variant) => Some($name::$variant),)+ _ => None }
            }
        }

        impl TryFrom<u8> for $name {
            type Error = ProtocolError;
            fn try_from(v: u8) -> Result<Self, ProtocolError> {
                match v {
                    $($value => Ok($name::$variant),)+
                    other => Err(ProtocolError::UnknownEnum { kind: stringify!($name), value: i32::from(other) }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.name()) }
        }
    };
}

wire_enum! {
    /// `ResultCode`: whether a response reports success.
    ResultCode { Failed = 0, Success = 1 }
}

wire_enum! {
    /// `GlobalStatus` of a global transaction (`core/model/GlobalStatus.java`; code = ordinal).
    GlobalStatus {
        UnKnown = 0, Begin = 1, Committing = 2, CommitRetrying = 3, Rollbacking = 4, RollbackRetrying = 5,
        TimeoutRollbacking = 6, TimeoutRollbackRetrying = 7, AsyncCommitting = 8, Committed = 9,
        CommitFailed = 10, Rollbacked = 11, RollbackFailed = 12, TimeoutRollbacked = 13,
        TimeoutRollbackFailed = 14, Finished = 15, CommitRetryTimeout = 16, RollbackRetryTimeout = 17,
        /// Later versions (console "delete"); tolerated when read from a shared database.
        Deleting = 18,
        /// Later versions (console "stop retry" of a commit).
        StopCommitOrCommitRetry = 19,
        /// Later versions (console "stop retry" of a rollback).
        StopRollbackOrRollbackRetry = 20,
    }
}

impl GlobalStatus {
    /// The status as a client of `version` can decode it (PROTOCOL.md §6.8): codes 16 and 17 are
    /// unknown before 1.5.0/1.5.1 and to seata-python, codes 18 to 20 exist on no released client.
    pub fn for_client(self, version: &Version) -> GlobalStatus {
        match self {
            GlobalStatus::CommitRetryTimeout if !version.at_least(1, 5, 0) => GlobalStatus::CommitFailed,
            GlobalStatus::RollbackRetryTimeout if !version.at_least(1, 5, 1) => GlobalStatus::RollbackFailed,
            GlobalStatus::Deleting => GlobalStatus::Finished,
            GlobalStatus::StopCommitOrCommitRetry => GlobalStatus::CommitRetrying,
            GlobalStatus::StopRollbackOrRollbackRetry => GlobalStatus::RollbackRetrying,
            other => other,
        }
    }

    /// Final statuses: the transaction will not change any more by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            GlobalStatus::Committed
                | GlobalStatus::CommitFailed
                | GlobalStatus::Rollbacked
                | GlobalStatus::RollbackFailed
                | GlobalStatus::TimeoutRollbacked
                | GlobalStatus::TimeoutRollbackFailed
                | GlobalStatus::Finished
                | GlobalStatus::CommitRetryTimeout
                | GlobalStatus::RollbackRetryTimeout
        )
    }

    /// The "timeout family" of TC-BEHAVIOR §0.1.
    pub fn is_timeout(self) -> bool {
        matches!(
            self,
            GlobalStatus::TimeoutRollbacking
                | GlobalStatus::TimeoutRollbackRetrying
                | GlobalStatus::TimeoutRollbacked
                | GlobalStatus::TimeoutRollbackFailed
        )
    }

    /// Statuses in which a rollback is under way.
    pub fn is_rollbacking(self) -> bool {
        matches!(
            self,
            GlobalStatus::Rollbacking
                | GlobalStatus::RollbackRetrying
                | GlobalStatus::TimeoutRollbacking
                | GlobalStatus::TimeoutRollbackRetrying
        )
    }

    /// Statuses in which a commit is under way.
    pub fn is_committing(self) -> bool {
        matches!(self, GlobalStatus::Committing | GlobalStatus::CommitRetrying | GlobalStatus::AsyncCommitting)
    }
}

wire_enum! {
    /// `BranchStatus` of a branch (`core/model/BranchStatus.java`; code = ordinal). The members keep
    /// Seata's names because they are what the console and operators see.
    #[allow(non_camel_case_types)]
    BranchStatus {
        Unknown = 0, Registered = 1, PhaseOne_Done = 2, PhaseOne_Failed = 3, PhaseOne_Timeout = 4,
        PhaseTwo_Committed = 5, PhaseTwo_CommitFailed_Retryable = 6, PhaseTwo_CommitFailed_Unretryable = 7,
        PhaseTwo_Rollbacked = 8, PhaseTwo_RollbackFailed_Retryable = 9, PhaseTwo_RollbackFailed_Unretryable = 10,
        PhaseTwo_CommitFailed_XAER_NOTA_Retryable = 11, PhaseTwo_RollbackFailed_XAER_NOTA_Retryable = 12,
        PhaseOne_RDONLY = 13,
        /// Later versions (console "stop retry" of a branch).
        STOP_RETRY = 14,
    }
}

wire_enum! {
    /// `BranchType` (`core/model/BranchType.java`; ordinal on the wire, name in the database).
    BranchType { AT = 0, TCC = 1, SAGA = 2, XA = 3 }
}

/// `TransactionExceptionCode`: why a request failed.
///
/// The members are meanings; the byte on the wire depends on the client generation
/// (PROTOCOL.md §5.5), see [`ExceptionCode::to_wire`] and [`ExceptionCode::from_wire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExceptionCode {
    Unknown,
    BeginFailed,
    LockKeyConflict,
    IO,
    BranchRollbackFailedRetriable,
    BranchRollbackFailedUnretriable,
    BranchRegisterFailed,
    BranchReportFailed,
    LockableCheckFailed,
    BranchTransactionNotExist,
    GlobalTransactionNotExist,
    GlobalTransactionNotActive,
    GlobalTransactionStatusInvalid,
    FailedToSendBranchCommitRequest,
    FailedToSendBranchRollbackRequest,
    FailedToAddBranch,
    FailedLockGlobalTransaction,
    FailedWriteSession,
    FailedStore,
    NotRaftLeader,
    LockKeyConflictFailFast,
    TransactionTimeout,
    CommitHeuristic,
    Broken,
}

/// The numbering of [`ExceptionCode`] a client understands (PROTOCOL.md §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeTable {
    /// Seata 2.x (2.0.0 and later): NotRaftLeader at 19, then 20..23.
    V2,
    /// Java 1.7.x–1.8.x and seata-go: 19 LockKeyConflictFailFast .. 22 Broken.
    V1_7,
    /// Java 1.5.x–1.6.x and seata-python: codes end at 18 FailedStore.
    V1_5,
    /// Java 1.4.x and older: codes end at 17 FailedWriteSession.
    V1_4,
}

impl CodeTable {
    /// The table a client that registered with `version` decodes with.
    pub fn for_version(version: &Version) -> CodeTable {
        if version.at_least(2, 0, 0) {
            CodeTable::V2
        } else if version.at_least(1, 7, 0) {
            CodeTable::V1_7
        } else if version.at_least(1, 5, 0) {
            CodeTable::V1_5
        } else {
            CodeTable::V1_4
        }
    }
}

impl ExceptionCode {
    const COMMON: [ExceptionCode; 19] = [
        ExceptionCode::Unknown,
        ExceptionCode::BeginFailed,
        ExceptionCode::LockKeyConflict,
        ExceptionCode::IO,
        ExceptionCode::BranchRollbackFailedRetriable,
        ExceptionCode::BranchRollbackFailedUnretriable,
        ExceptionCode::BranchRegisterFailed,
        ExceptionCode::BranchReportFailed,
        ExceptionCode::LockableCheckFailed,
        ExceptionCode::BranchTransactionNotExist,
        ExceptionCode::GlobalTransactionNotExist,
        ExceptionCode::GlobalTransactionNotActive,
        ExceptionCode::GlobalTransactionStatusInvalid,
        ExceptionCode::FailedToSendBranchCommitRequest,
        ExceptionCode::FailedToSendBranchRollbackRequest,
        ExceptionCode::FailedToAddBranch,
        ExceptionCode::FailedLockGlobalTransaction,
        ExceptionCode::FailedWriteSession,
        ExceptionCode::FailedStore,
    ];

    /// The byte a client using `table` reads as this meaning (or the closest it knows).
    pub fn to_wire(self, table: CodeTable) -> u8 {
        use ExceptionCode as E;
        let v2 = match self {
            E::NotRaftLeader => 19,
            E::LockKeyConflictFailFast => 20,
            E::TransactionTimeout => 21,
            E::CommitHeuristic => 22,
            E::Broken => 23,
            other => Self::common_index(other),
        };
        match table {
            CodeTable::V2 => v2,
            CodeTable::V1_7 => match self {
                E::NotRaftLeader => 0,
                E::LockKeyConflictFailFast => 19,
                E::TransactionTimeout => 20,
                E::CommitHeuristic => 21,
                E::Broken => 22,
                _ => v2,
            },
            CodeTable::V1_5 | CodeTable::V1_4 => match self {
                E::LockKeyConflictFailFast => 2,
                E::NotRaftLeader | E::TransactionTimeout | E::CommitHeuristic | E::Broken => 0,
                E::FailedStore if table == CodeTable::V1_4 => 17,
                _ => v2,
            },
        }
    }

    /// Reads a byte written by a client (or server) using `table`: only the bytes that table
    /// writes are known, so that `from_wire` and [`ExceptionCode::to_wire`] are inverses.
    pub fn from_wire(byte: u8, table: CodeTable) -> Result<ExceptionCode, ProtocolError> {
        use ExceptionCode as E;
        // Java 1.4.x and older end at 17 FailedWriteSession (FailedStore came with 1.5.0).
        let common = match table {
            CodeTable::V1_4 => &Self::COMMON[..=17],
            _ => &Self::COMMON[..],
        };
        let tail: &[ExceptionCode] = match table {
            CodeTable::V2 => {
                &[E::NotRaftLeader, E::LockKeyConflictFailFast, E::TransactionTimeout, E::CommitHeuristic, E::Broken]
            }
            CodeTable::V1_7 => &[E::LockKeyConflictFailFast, E::TransactionTimeout, E::CommitHeuristic, E::Broken],
            CodeTable::V1_5 | CodeTable::V1_4 => &[],
        };
        let i = usize::from(byte);
        common
            .get(i)
            .or_else(|| tail.get(i.wrapping_sub(common.len())))
            .copied()
            .ok_or(ProtocolError::UnknownEnum { kind: "TransactionExceptionCode", value: i32::from(byte) })
    }

    fn common_index(code: ExceptionCode) -> u8 {
        Self::COMMON.iter().zip(0u8..).find(|(c, _)| **c == code).map_or(0, |(_, i)| i)
    }

    /// Seata's Java constant name.
    pub fn name(self) -> &'static str {
        use ExceptionCode as E;
        match self {
            E::Unknown => "Unknown",
            E::BeginFailed => "BeginFailed",
            E::LockKeyConflict => "LockKeyConflict",
            E::IO => "IO",
            E::BranchRollbackFailedRetriable => "BranchRollbackFailed_Retriable",
            E::BranchRollbackFailedUnretriable => "BranchRollbackFailed_Unretriable",
            E::BranchRegisterFailed => "BranchRegisterFailed",
            E::BranchReportFailed => "BranchReportFailed",
            E::LockableCheckFailed => "LockableCheckFailed",
            E::BranchTransactionNotExist => "BranchTransactionNotExist",
            E::GlobalTransactionNotExist => "GlobalTransactionNotExist",
            E::GlobalTransactionNotActive => "GlobalTransactionNotActive",
            E::GlobalTransactionStatusInvalid => "GlobalTransactionStatusInvalid",
            E::FailedToSendBranchCommitRequest => "FailedToSendBranchCommitRequest",
            E::FailedToSendBranchRollbackRequest => "FailedToSendBranchRollbackRequest",
            E::FailedToAddBranch => "FailedToAddBranch",
            E::FailedLockGlobalTransaction => "FailedLockGlobalTransaction",
            E::FailedWriteSession => "FailedWriteSession",
            E::FailedStore => "FailedStore",
            E::NotRaftLeader => "NotRaftLeader",
            E::LockKeyConflictFailFast => "LockKeyConflictFailFast",
            E::TransactionTimeout => "TransactionTimeout",
            E::CommitHeuristic => "CommitHeuristic",
            E::Broken => "Broken",
        }
    }

    /// Looks a meaning up by its Java constant name (both spellings of code 16 are accepted).
    pub fn from_name(name: &str) -> Option<ExceptionCode> {
        if name == "FailedLockGlobalTranscation" {
            return Some(ExceptionCode::FailedLockGlobalTransaction);
        }
        (0..=23u8).filter_map(|b| ExceptionCode::from_wire(b, CodeTable::V2).ok()).find(|c| c.name() == name)
    }
}

impl std::fmt::Display for ExceptionCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_codes_follow_each_generation() {
        let fail_fast = ExceptionCode::LockKeyConflictFailFast;
        assert_eq!(fail_fast.to_wire(CodeTable::V2), 20);
        assert_eq!(fail_fast.to_wire(CodeTable::V1_7), 19);
        assert_eq!(fail_fast.to_wire(CodeTable::V1_5), 2);
        assert_eq!(ExceptionCode::FailedStore.to_wire(CodeTable::V1_4), 17);
        assert_eq!(ExceptionCode::FailedStore.to_wire(CodeTable::V1_5), 18);
        for b in 0..=23u8 {
            let c = ExceptionCode::from_wire(b, CodeTable::V2).unwrap();
            assert_eq!(c.to_wire(CodeTable::V2), b);
            assert_eq!(ExceptionCode::from_name(c.name()), Some(c));
        }
        assert!(ExceptionCode::from_wire(24, CodeTable::V2).is_err());
        assert_eq!(ExceptionCode::from_wire(19, CodeTable::V1_7).unwrap(), fail_fast);
        assert!(ExceptionCode::from_wire(19, CodeTable::V1_5).is_err());
    }

    #[test]
    fn global_status_is_mapped_for_old_clients() {
        let old = Version::parse("1.4.2");
        let new = Version::parse("2.2.0");
        assert_eq!(GlobalStatus::CommitRetryTimeout.for_client(&old), GlobalStatus::CommitFailed);
        assert_eq!(GlobalStatus::CommitRetryTimeout.for_client(&new), GlobalStatus::CommitRetryTimeout);
        assert_eq!(
            GlobalStatus::RollbackRetryTimeout.for_client(&Version::parse("1.5.0")),
            GlobalStatus::RollbackFailed
        );
        for s in GlobalStatus::ALL {
            assert_eq!(GlobalStatus::try_from(s.code()).unwrap(), *s);
            assert_eq!(GlobalStatus::from_name(s.name()), Some(*s));
        }
    }
}
