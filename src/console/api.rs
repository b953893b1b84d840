//! The console's JSON API, shaped like seata-server's (TC-BEHAVIOR §9.2): `PageResult` and
//! `SingleResult` bodies, every 64-bit integer written as a string (`null` as `""`), HTTP 200 with
//! the outcome in `code`/`success` (as Seata's console answers), except 401 for authentication.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::actions::{ActionError, ActionOutcome, ForceTarget};
use super::{ConsoleState, User};
use crate::lock::{LockFilter, LockInfo};
use crate::session::GlobalSession;
use crate::store::{BranchRecord, GlobalRecord};

/// How long a query waits for one busy session before showing what it knows without its lock.
const SESSION_WAIT: Duration = Duration::from_secs(2);

/// A `SingleResult` body.
pub(crate) fn single(code: &str, message: &str, data: Value) -> Json<Value> {
    Json(json!({ "code": code, "message": message, "data": data, "success": code == "200" }))
}

/// A failed `SingleResult` answered with HTTP 200, as Seata's console does.
fn failure(code: &str, message: impl AsRef<str>) -> Response {
    single(code, message.as_ref(), Value::Null).into_response()
}

/// 401 with a JSON body.
pub(crate) fn unauthorized(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, single("401", message, Value::Null)).into_response()
}

fn string_id(v: i64) -> Value {
    Value::String(v.to_string())
}

fn opt_string(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

fn epoch_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `GlobalSessionVO`. The TC keeps no modification time in memory: `gmtCreate` is the begin
/// time and `gmtModified` is empty (Seata's null).
pub(crate) fn global_vo(g: &GlobalRecord, branches: Option<&[BranchRecord]>) -> Value {
    json!({
        "xid": g.xid,
        "transactionId": string_id(g.transaction_id),
        "status": g.status.code(),
        "applicationId": g.application_id,
        "transactionServiceGroup": g.transaction_service_group,
        "transactionName": g.transaction_name,
        "timeout": string_id(i64::from(g.timeout_ms)),
        "beginTime": string_id(g.begin_time_ms),
        "applicationData": opt_string(g.application_data.as_deref()),
        "gmtCreate": string_id(g.begin_time_ms),
        "gmtModified": "",
        "branchSessionVOs": branches.map_or_else(Vec::new, |b| b.iter().map(branch_vo).collect()),
    })
}

/// `BranchSessionVO` (registration times are not kept: `gmtCreate`/`gmtModified` are empty).
pub(crate) fn branch_vo(b: &BranchRecord) -> Value {
    json!({
        "xid": b.xid,
        "transactionId": string_id(b.transaction_id),
        "branchId": string_id(b.branch_id),
        "resourceGroupId": opt_string(b.resource_group_id.as_deref()),
        "resourceId": b.resource_id,
        "branchType": b.branch_type.name(),
        "status": b.status.code(),
        "clientId": b.client_id,
        "applicationData": opt_string(b.application_data.as_deref()),
        "gmtCreate": "",
        "gmtModified": "",
    })
}

/// `GlobalLockVO`.
pub(crate) fn lock_vo(l: &LockInfo) -> Value {
    let at = string_id(epoch_ms(l.acquired_at));
    json!({
        "xid": l.xid,
        "transactionId": string_id(l.transaction_id),
        "branchId": string_id(l.branch_id),
        "resourceId": l.resource_id,
        "tableName": l.table_name,
        "pk": l.pk,
        "rowKey": l.row_key,
        "gmtCreate": at,
        "gmtModified": at,
    })
}

/// Query parameters, all as text: empty values count as absent, numbers are checked here so
/// that a bad one gets a JSON answer naming it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Params {
    xid: Option<String>,
    application_id: Option<String>,
    status: Option<String>,
    transaction_name: Option<String>,
    vgroup: Option<String>,
    with_branch: Option<String>,
    page_num: Option<String>,
    page_size: Option<String>,
    time_start: Option<String>,
    time_end: Option<String>,
    table_name: Option<String>,
    transaction_id: Option<String>,
    branch_id: Option<String>,
    pk: Option<String>,
    resource_id: Option<String>,
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn number<T: std::str::FromStr>(v: &Option<String>, name: &str) -> Result<Option<T>, String> {
    match present(v) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| format!("wrong {name}: {s:?} is not a number")),
    }
}

struct Paging {
    num: usize,
    size: usize,
}

impl Paging {
    /// pageNum 1..999 and pageSize 1..100, as seata-server's database mode checks; 1 and 10 when
    /// absent.
    fn from(p: &Params) -> Result<Paging, String> {
        let num = number::<i64>(&p.page_num, "pageNum")?.unwrap_or(1);
        let size = number::<i64>(&p.page_size, "pageSize")?.unwrap_or(10);
        if !(1..=999).contains(&num) || !(1..=100).contains(&size) {
            return Err(format!(
                "wrong pageSize or pageNum: pageNum must be 1..999 and pageSize 1..100 (got {num} and {size})"
            ));
        }
        Ok(Paging { num: usize::try_from(num).unwrap_or(1), size: usize::try_from(size).unwrap_or(10) })
    }

    /// The `PageResult` body for the whole filtered list.
    fn result(&self, all: Vec<Value>) -> Response {
        let total = all.len();
        let pages = total.div_ceil(self.size);
        let start = self.size.saturating_mul(self.num - 1).min(total);
        let end = start.saturating_add(self.size).min(total);
        let data: Vec<Value> = all.into_iter().skip(start).take(end - start).collect();
        Json(json!({
            "code": "200",
            "message": "success",
            "success": true,
            "data": data,
            "total": total,
            "pages": pages,
            "pageNum": self.num,
            "pageSize": self.size,
            "currPage": self.num,
        }))
        .into_response()
    }
}

/// A session's stored record and branches, taken under its mutex (or, if it stays busy, the
/// fields readable without it).
async fn snapshot(entry: &crate::coordinator::SessionEntry) -> GlobalSession {
    match tokio::time::timeout(SESSION_WAIT, entry.lock()).await {
        Ok(s) => s.clone(),
        Err(_) => {
            warn!(xid = entry.xid(), "console: session busy; showing it without its details");
            GlobalSession::new(GlobalRecord {
                xid: entry.xid().to_owned(),
                transaction_id: crate::session::transaction_id_of(entry.xid()).unwrap_or(0),
                status: entry.status(),
                application_id: String::new(),
                transaction_service_group: String::new(),
                transaction_name: String::new(),
                timeout_ms: entry.timeout_ms,
                begin_time_ms: entry.begin_time_ms,
                application_data: None,
            })
        }
    }
}

/// `GET /api/v1/console/globalSession/query`.
pub(crate) async fn global_sessions(State(st): State<ConsoleState>, Query(p): Query<Params>) -> Response {
    let parsed = (|| -> Result<_, String> {
        let paging = Paging::from(&p)?;
        let status = number::<u8>(&p.status, "status")?;
        let start = number::<i64>(&p.time_start, "timeStart")?;
        let end = number::<i64>(&p.time_end, "timeEnd")?;
        Ok((paging, status, start, end))
    })();
    let (paging, status, start, end) = match parsed {
        Ok(v) => v,
        Err(e) => return failure("400", e),
    };
    let with_branch = present(&p.with_branch).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let xid = present(&p.xid);
    let app = present(&p.application_id);
    let name = present(&p.transaction_name);
    let vgroup = present(&p.vgroup);
    let mut found: Vec<GlobalSession> = Vec::new();
    for entry in st.inner.coordinator.sessions() {
        // Lock-free filters first: only matching sessions are locked.
        if xid.is_some_and(|x| !entry.xid().contains(x))
            || status.is_some_and(|s| entry.status().code() != s)
            || start.is_some_and(|t| entry.begin_time_ms < t)
            || end.is_some_and(|t| entry.begin_time_ms > t)
        {
            continue;
        }
        let s = snapshot(&entry).await;
        let g = &s.global;
        if app.is_some_and(|a| !g.application_id.contains(a))
            || name.is_some_and(|n| !g.transaction_name.contains(n))
            || vgroup.is_some_and(|v| g.transaction_service_group != v)
        {
            continue;
        }
        found.push(s);
    }
    found.sort_by(|a, b| {
        b.global.begin_time_ms.cmp(&a.global.begin_time_ms).then_with(|| b.global.xid.cmp(&a.global.xid))
    });
    let all = found.iter().map(|s| global_vo(&s.global, with_branch.then_some(s.branches.as_slice()))).collect();
    paging.result(all)
}

/// `GET /api/v1/console/branchSession/query?xid=`: the branches of one transaction, in
/// registration order (a `PageResult`, paging optional).
pub(crate) async fn branch_sessions(State(st): State<ConsoleState>, Query(mut p): Query<Params>) -> Response {
    if present(&p.page_size).is_none() {
        p.page_size = Some("100".into());
    }
    let paging = match Paging::from(&p) {
        Ok(v) => v,
        Err(e) => return failure("400", e),
    };
    let Some(xid) = present(&p.xid) else {
        return failure("400", "Wrong parameter for xid: the xid is required");
    };
    let branches = match st.inner.coordinator.session(xid) {
        Some(entry) => snapshot(&entry).await.branches,
        None => Vec::new(),
    };
    paging.result(branches.iter().map(branch_vo).collect())
}

/// `GET /api/v1/console/globalLock/query`: exact matches (as seata-server's database mode),
/// newest first; the time range applies to when the lock was taken.
pub(crate) async fn global_locks(State(st): State<ConsoleState>, Query(p): Query<Params>) -> Response {
    let parsed = (|| -> Result<_, String> {
        let paging = Paging::from(&p)?;
        let filter = LockFilter {
            xid: present(&p.xid).map(str::to_owned),
            transaction_id: number(&p.transaction_id, "transactionId")?,
            branch_id: number(&p.branch_id, "branchId")?,
            resource_id: present(&p.resource_id).map(str::to_owned),
            table_name: present(&p.table_name).map(str::to_owned),
            pk: present(&p.pk).map(str::to_owned),
        };
        let start = number::<i64>(&p.time_start, "timeStart")?;
        let end = number::<i64>(&p.time_end, "timeEnd")?;
        Ok((paging, filter, start, end))
    })();
    let (paging, filter, start, end) = match parsed {
        Ok(v) => v,
        Err(e) => return failure("400", e),
    };
    let locks = match st.inner.coordinator.locks().query(&filter).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "console: lock query failed");
            return failure("500", format!("the lock store failed: {e}"));
        }
    };
    let all = locks
        .iter()
        .filter(|l| {
            let at = epoch_ms(l.acquired_at);
            start.is_none_or(|t| at >= t) && end.is_none_or(|t| at <= t)
        })
        .map(lock_vo)
        .collect();
    paging.result(all)
}

/// The operator actions (`PUT`/`DELETE` under `/api/v1/console/globalSession/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    RetryNow,
    Stop,
    Start,
    Change,
    Delete,
    ForceDelete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::RetryNow => "sendCommitOrRollback",
            Action::Stop => "stopGlobalSession",
            Action::Start => "startGlobalSession",
            Action::Change => "changeGlobalStatus",
            Action::Delete => "deleteGlobalSession",
            Action::ForceDelete => "forceDeleteGlobalSession",
        }
    }
}

async fn act(st: &ConsoleState, user: &str, action: Action, q: &HashMap<String, String>) -> Response {
    let Some(xid) = q.get("xid").map(|s| s.trim()).filter(|s| !s.is_empty()) else {
        return failure("400", "Wrong parameter for xid: the xid is required");
    };
    let target = match q.get("status").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match ForceTarget::parse(s) {
            Some(t) => Some(t),
            None => {
                return failure(
                    "400",
                    format!("wrong status {s:?}: changeGlobalStatus takes CommitRetrying (3) or RollbackRetrying (5)"),
                )
            }
        },
    };
    let c = &st.inner.coordinator;
    info!(user, action = action.name(), xid, "console: operator action");
    let result: Result<ActionOutcome, ActionError> = match action {
        Action::RetryNow => c.admin_retry_now(xid).await,
        Action::Stop => c.admin_stop_retry(xid).await,
        Action::Start => c.admin_start_retry(xid).await,
        Action::Change => c.admin_change_status(xid, target).await,
        Action::Delete => c.admin_delete(xid, false).await,
        Action::ForceDelete => c.admin_delete(xid, true).await,
    };
    match result {
        Ok(o) => {
            info!(user, action = action.name(), xid, status = %o.status, detail = %o.message, "console: action done");
            single(
                "200",
                "success",
                json!({ "xid": o.xid, "status": o.status.code(), "statusName": o.status.name(), "detail": o.message }),
            )
            .into_response()
        }
        Err(e) => {
            info!(user, action = action.name(), xid, error = %e, "console: action refused");
            failure(e.code(), e.to_string())
        }
    }
}

macro_rules! action_handler {
    ($name:ident, $action:expr) => {
        pub(crate) async fn $name(
            State(st): State<ConsoleState>,
            Extension(user): Extension<User>,
            Query(q): Query<HashMap<String, String>>,
        ) -> Response {
            act(&st, &user.0, $action, &q).await
        }
    };
}

action_handler!(retry_now, Action::RetryNow);
action_handler!(stop, Action::Stop);
action_handler!(start, Action::Start);
action_handler!(change_status, Action::Change);
action_handler!(delete, Action::Delete);
action_handler!(force_delete, Action::ForceDelete);
