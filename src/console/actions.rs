//! What an operator action on a transaction returns (the coordinator's `admin_*` methods).

use seata_protocol::GlobalStatus;

/// The direction of a forced phase two (`changeGlobalStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceTarget {
    /// Drive the commit to its end (`CommitRetrying`).
    Commit,
    /// Drive the rollback to its end (`RollbackRetrying`); for a transaction still in Begin, the
    /// same as its TM's GlobalRollback.
    Rollback,
}

impl ForceTarget {
    /// Reads the `status` parameter of `changeGlobalStatus`: a status code or name naming the
    /// direction (`CommitRetrying`/`Committing`/2/3, `RollbackRetrying`/`Rollbacking`/4/5), or
    /// plainly `commit`/`rollback`.
    pub fn parse(value: &str) -> Option<ForceTarget> {
        let v = value.trim();
        let status = match v.parse::<u8>() {
            Ok(code) => GlobalStatus::try_from(code).ok(),
            Err(_) => GlobalStatus::from_name(v),
        };
        match status {
            Some(GlobalStatus::Committing | GlobalStatus::CommitRetrying) => Some(ForceTarget::Commit),
            Some(GlobalStatus::Rollbacking | GlobalStatus::RollbackRetrying) => Some(ForceTarget::Rollback),
            Some(_) => None,
            None if v.eq_ignore_ascii_case("commit") => Some(ForceTarget::Commit),
            None if v.eq_ignore_ascii_case("rollback") => Some(ForceTarget::Rollback),
            None => None,
        }
    }
}

/// An action that was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOutcome {
    /// The transaction.
    pub xid: String,
    /// Its status afterwards (a final status when the transaction ended and is gone).
    pub status: GlobalStatus,
    /// What happened, for the operator.
    pub message: String,
}

impl ActionOutcome {
    pub(crate) fn new(xid: &str, status: GlobalStatus, message: impl Into<String>) -> Self {
        ActionOutcome { xid: xid.to_owned(), status, message: message.into() }
    }
}

/// Why an action was not carried out. Every message says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The TC does not hold this transaction (it finished, or the XID is wrong).
    #[error("Global session is not exist, may be finished: {0}")]
    NotFound(String),
    /// The transaction's state makes the action unsafe or meaningless.
    #[error("{0}")]
    Refused(String),
    /// Phase two of the transaction is being driven right now.
    #[error("{0}")]
    Busy(String),
    /// The action started but the store or the lock table failed; nothing was acknowledged.
    #[error("{0}")]
    Failed(String),
}

impl ActionError {
    /// The `code` of the console's JSON answer.
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::NotFound(_) => "404",
            ActionError::Refused(_) | ActionError::Busy(_) => "409",
            ActionError::Failed(_) => "500",
        }
    }
}

impl From<crate::coordinator::TxError> for ActionError {
    fn from(e: crate::coordinator::TxError) -> Self {
        match e {
            crate::coordinator::TxError::SessionBusy(xid) => {
                ActionError::Busy(format!("global transaction {xid} is busy; try again in a moment"))
            }
            other => ActionError::Failed(format!("the change was not stored: {other}")),
        }
    }
}

impl From<crate::lock::LockError> for ActionError {
    fn from(e: crate::lock::LockError) -> Self {
        ActionError::Failed(format!("the row-lock store failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_from_codes_names_and_words() {
        assert_eq!(ForceTarget::parse("3"), Some(ForceTarget::Commit));
        assert_eq!(ForceTarget::parse("CommitRetrying"), Some(ForceTarget::Commit));
        assert_eq!(ForceTarget::parse("5"), Some(ForceTarget::Rollback));
        assert_eq!(ForceTarget::parse(" Rollbacking "), Some(ForceTarget::Rollback));
        assert_eq!(ForceTarget::parse("rollback"), Some(ForceTarget::Rollback));
        assert_eq!(ForceTarget::parse("9"), None);
        assert_eq!(ForceTarget::parse("Committed"), None);
        assert_eq!(ForceTarget::parse("999"), None);
    }
}
