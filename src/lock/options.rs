//! Per-branch lock flags carried in a BranchRegister's `applicationData` JSON.

use serde_json::Value;

/// `applicationData` key: `false` when the application opened its own local transaction.
const AUTO_COMMIT: &str = "autoCommit";
/// `applicationData` key: `true` when the client asks the TC to skip the pre-insert lock check.
const SKIP_CHECK_LOCK: &str = "skipCheckLock";

/// How a branch wants its row locks taken (Seata `ATCore.branchSessionLock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// False only when the client sent `"autoCommit": false`: the application holds a local
    /// transaction, so waiting on a holder that is rolling back would deadlock and a conflict with
    /// such a holder is reported as fail-fast.
    pub auto_commit: bool,
    /// True when the client sent `"skipCheckLock": true` (inserted rows, optimistic retries).
    /// Seata's database store then skips its check query; the in-memory [`LockTable`] checks
    /// anyway, as Seata's file store does (see `docs/LOCKS.md`).
    ///
    /// [`LockTable`]: super::LockTable
    pub skip_check_lock: bool,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions { auto_commit: true, skip_check_lock: false }
    }
}

impl LockOptions {
    /// Reads the flags from a branch's `applicationData` the way Seata does.
    ///
    /// Blank or unparseable data, or JSON that is not an object, gives the defaults (logged, never
    /// an error). `autoCommit` counts only as the JSON boolean `false`; `skipCheckLock` only as a
    /// JSON boolean. Like Jackson's default reader, text after the first JSON value is ignored.
    pub fn from_application_data(application_data: &str) -> Self {
        let mut opts = LockOptions::default();
        if application_data.trim().is_empty() {
            return opts;
        }
        let first = serde_json::Deserializer::from_str(application_data).into_iter::<Value>().next();
        let data = match first {
            Some(Ok(Value::Object(map))) => map,
            Some(Ok(_)) => {
                tracing::warn!("applicationData is not a JSON object; lock flags left at defaults");
                return opts;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "unparseable applicationData; lock flags left at defaults");
                return opts;
            }
            None => return opts,
        };
        if data.get(AUTO_COMMIT) == Some(&Value::Bool(false)) {
            opts.auto_commit = false;
        }
        if let Some(Value::Bool(skip)) = data.get(SKIP_CHECK_LOCK) {
            opts.skip_check_lock = *skip;
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(data: &str) -> (bool, bool) {
        let o = LockOptions::from_application_data(data);
        (o.auto_commit, o.skip_check_lock)
    }

    #[test]
    fn defaults_when_blank() {
        assert_eq!(opts(""), (true, false));
        assert_eq!(opts("  \n"), (true, false));
        assert_eq!(LockOptions::default(), LockOptions::from_application_data(""));
    }

    #[test]
    fn reads_what_java_clients_send() {
        assert_eq!(opts(r#"{"autoCommit":false}"#), (false, false));
        assert_eq!(opts(r#"{"skipCheckLock":true}"#), (true, true));
        assert_eq!(opts(r#"{"autoCommit":false,"skipCheckLock":true,"other":1}"#), (false, true));
    }

    #[test]
    fn only_a_json_false_turns_auto_commit_off() {
        assert_eq!(opts(r#"{"autoCommit":true}"#), (true, false));
        assert_eq!(opts(r#"{"autoCommit":"false"}"#), (true, false));
        assert_eq!(opts(r#"{"autoCommit":0}"#), (true, false));
        assert_eq!(opts(r#"{"autoCommit":null}"#), (true, false));
    }

    #[test]
    fn skip_check_lock_must_be_a_boolean() {
        assert_eq!(opts(r#"{"skipCheckLock":"true"}"#), (true, false));
        assert_eq!(opts(r#"{"skipCheckLock":false}"#), (true, false));
    }

    #[test]
    fn garbage_gives_defaults() {
        assert_eq!(opts("not json"), (true, false));
        assert_eq!(opts(r#"{"autoCommit":false"#), (true, false));
        assert_eq!(opts("[false]"), (true, false));
        assert_eq!(opts("null"), (true, false));
    }

    #[test]
    fn text_after_the_first_value_is_ignored() {
        assert_eq!(opts(r#"{"autoCommit":false} trailing"#), (false, false));
    }
}
