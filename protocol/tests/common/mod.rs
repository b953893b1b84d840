//! Builds protocol messages from the JSON field maps of the golden vector files.
#![allow(dead_code)]

use seata_protocol::message::*;
use seata_protocol::{BranchStatus, BranchType, ExceptionCode, GlobalStatus, ResultCode};
use serde_json::Value;

pub fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<Value>(&text).unwrap().as_array().unwrap().clone()
}

pub fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn s(f: &Value, k: &str) -> String {
    f.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn i(f: &Value, k: &str) -> i64 {
    f.get(k).and_then(Value::as_i64).unwrap_or_else(|| panic!("missing integer {k} in {f}"))
}

fn result(f: &Value) -> ResultHead {
    let rc = match f.get("resultCode").and_then(Value::as_str) {
        Some("Failed") => ResultCode::Failed,
        _ => ResultCode::Success,
    };
    let code = f
        .get("transactionExceptionCode")
        .and_then(Value::as_str)
        .map(|n| ExceptionCode::from_name(n).unwrap_or_else(|| panic!("unknown code {n}")))
        .unwrap_or(ExceptionCode::Unknown);
    // The message is only on the wire when the result is Failed.
    let msg = if rc == ResultCode::Failed { s(f, "msg") } else { String::new() };
    ResultHead { result_code: rc, msg, exception_code: code }
}

fn branch_type(f: &Value, k: &str) -> BranchType {
    BranchType::from_name(f[k].as_str().unwrap()).unwrap()
}

fn branch_status(f: &Value, k: &str) -> BranchStatus {
    BranchStatus::from_name(f[k].as_str().unwrap()).unwrap()
}

fn global_status(f: &Value, k: &str) -> Option<GlobalStatus> {
    f.get(k).and_then(Value::as_str).map(|n| GlobalStatus::from_name(n).unwrap())
}

fn ids(f: &Value, k: &str) -> Option<Vec<u32>> {
    f.get(k).and_then(Value::as_array).map(|a| a.iter().map(|v| u32::try_from(v.as_u64().unwrap()).unwrap()).collect())
}

fn msgs(f: &Value, k: &str) -> Vec<Message> {
    f[k].as_array().unwrap().iter().map(|m| build(m["message_type_code"].as_i64().unwrap(), &m["fields"])).collect()
}

/// The message with type `code` and Java field map `f`.
pub fn build(code: i64, f: &Value) -> Message {
    let end_req = || GlobalEndRequest { xid: s(f, "xid"), extra_data: s(f, "extraData") };
    let end_resp = || GlobalEndResponse { result: result(f), global_status: global_status(f, "globalStatus").unwrap() };
    let reg_req = || BranchRegisterRequest {
        xid: s(f, "xid"),
        branch_type: branch_type(f, "branchType"),
        resource_id: s(f, "resourceId"),
        lock_key: s(f, "lockKey"),
        application_data: s(f, "applicationData"),
    };
    let branch_end_req = || BranchEndRequest {
        xid: s(f, "xid"),
        branch_id: i(f, "branchId"),
        branch_type: branch_type(f, "branchType"),
        resource_id: s(f, "resourceId"),
        application_data: s(f, "applicationData"),
    };
    let branch_end_resp = || BranchEndResponse {
        result: result(f),
        xid: s(f, "xid"),
        branch_id: i(f, "branchId"),
        branch_status: branch_status(f, "branchStatus"),
    };
    let register = || RegisterRequest {
        version: s(f, "version"),
        application_id: s(f, "applicationId"),
        transaction_service_group: s(f, "transactionServiceGroup"),
        extra_data: s(f, "extraData"),
        resource_ids: s(f, "resourceIds"),
    };
    let register_resp =
        || RegisterResponse { identified: f["identified"].as_bool().unwrap(), version: s(f, "version") };
    match code {
        1 => Message::GlobalBeginRequest(GlobalBeginRequest {
            timeout: i32::try_from(i(f, "timeout")).unwrap(),
            transaction_name: s(f, "transactionName"),
        }),
        2 => Message::GlobalBeginResponse(GlobalBeginResponse {
            result: result(f),
            xid: s(f, "xid"),
            extra_data: s(f, "extraData"),
        }),
        3 => Message::BranchCommitRequest(branch_end_req()),
        4 => Message::BranchCommitResponse(branch_end_resp()),
        5 => Message::BranchRollbackRequest(branch_end_req()),
        6 => Message::BranchRollbackResponse(branch_end_resp()),
        7 => Message::GlobalCommitRequest(end_req()),
        8 => Message::GlobalCommitResponse(end_resp()),
        9 => Message::GlobalRollbackRequest(end_req()),
        10 => Message::GlobalRollbackResponse(end_resp()),
        11 => Message::BranchRegisterRequest(reg_req()),
        12 => {
            Message::BranchRegisterResponse(BranchRegisterResponse { result: result(f), branch_id: i(f, "branchId") })
        }
        13 => Message::BranchReportRequest(BranchReportRequest {
            xid: s(f, "xid"),
            branch_id: i(f, "branchId"),
            status: branch_status(f, "status"),
            resource_id: s(f, "resourceId"),
            application_data: s(f, "applicationData"),
            branch_type: branch_type(f, "branchType"),
        }),
        14 => Message::BranchReportResponse(BranchReportResponse { result: result(f) }),
        15 => Message::GlobalStatusRequest(end_req()),
        16 => Message::GlobalStatusResponse(end_resp()),
        17 => Message::GlobalReportRequest(GlobalReportRequest {
            xid: s(f, "xid"),
            extra_data: s(f, "extraData"),
            global_status: global_status(f, "globalStatus"),
        }),
        18 => Message::GlobalReportResponse(end_resp()),
        21 => Message::GlobalLockQueryRequest(reg_req()),
        22 => Message::GlobalLockQueryResponse(GlobalLockQueryResponse {
            result: result(f),
            lockable: f["lockable"].as_bool().unwrap(),
        }),
        59 => Message::MergedWarpMessage(MergedWarpMessage { msgs: msgs(f, "msgs"), msg_ids: ids(f, "msgIds") }),
        60 => Message::MergeResultMessage(MergeResultMessage { msgs: msgs(f, "msgs") }),
        121 => Message::BatchResultMessage(BatchResultMessage {
            msgs: msgs(f, "resultMessages"),
            msg_ids: ids(f, "msgIds").unwrap(),
        }),
        101 => Message::RegisterTmRequest(RegisterRequest { resource_ids: String::new(), ..register() }),
        102 => Message::RegisterTmResponse(register_resp()),
        103 => Message::RegisterRmRequest(register()),
        104 => Message::RegisterRmResponse(register_resp()),
        111 => Message::UndoLogDeleteRequest(UndoLogDeleteRequest {
            branch_type: branch_type(f, "branchType"),
            resource_id: s(f, "resourceId"),
            save_days: i16::try_from(i(f, "saveDays")).unwrap(),
        }),
        other => panic!("no builder for type code {other}"),
    }
}
