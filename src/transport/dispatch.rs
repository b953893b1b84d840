//! From a decoded request to the coordinator and back: one function per message, merged requests
//! fanned out, answers adapted to what the client's version can decode.

use futures::future::join_all;
use seata_protocol::message::{BatchResultMessage, GlobalEndResponse, MergeResultMessage, MergedWarpMessage};
use seata_protocol::{Message, Version};

use std::time::Instant;

use crate::console::Metrics;
use crate::coordinator::{ClientInfo, Coordinator};

/// The answer to one transaction request (not a registration, not a container). `None` for
/// messages a TC does not answer.
pub async fn handle_request(
    coord: &Coordinator,
    metrics: Option<&Metrics>,
    client: &ClientInfo,
    msg: Message,
) -> Option<Message> {
    let started = Instant::now();
    let code = msg.type_code();
    let resp = match msg {
        Message::GlobalBeginRequest(r) => {
            let resp = coord.begin(client, r).await;
            if let Some(m) = metrics {
                m.observe_begin(client, &resp);
            }
            Message::GlobalBeginResponse(resp)
        }
        Message::GlobalCommitRequest(r) => {
            let resp = coord.commit(&r.xid).await;
            if let Some(m) = metrics {
                m.observe_global_end(client, &r.xid, &resp);
            }
            Message::GlobalCommitResponse(resp)
        }
        Message::GlobalRollbackRequest(r) => {
            let resp = coord.rollback(&r.xid).await;
            if let Some(m) = metrics {
                m.observe_global_end(client, &r.xid, &resp);
            }
            Message::GlobalRollbackResponse(resp)
        }
        Message::GlobalStatusRequest(r) => Message::GlobalStatusResponse(coord.global_status(&r.xid).await),
        Message::GlobalReportRequest(r) => Message::GlobalReportResponse(coord.global_report(r).await),
        Message::BranchRegisterRequest(r) => Message::BranchRegisterResponse(coord.branch_register(client, r).await),
        Message::BranchReportRequest(r) => Message::BranchReportResponse(coord.branch_report(r).await),
        Message::GlobalLockQueryRequest(r) => Message::GlobalLockQueryResponse(coord.lock_query(r).await),
        _ => return None,
    };
    if let Some(m) = metrics {
        m.observe_request(code, started.elapsed());
    }
    Some(resp)
}

/// Answers a MergedWarpMessage: every sub-request gets exactly one result of the matching type,
/// in request order (MergeResultMessage), or paired with its id (BatchResultMessage) when batch
/// answers are on, the client is ≥ 1.5.0 and it sent ids (PROTOCOL.md §6.6).
pub async fn handle_merged(
    coord: &Coordinator,
    metrics: Option<&Metrics>,
    client: &ClientInfo,
    merged: MergedWarpMessage,
    parallel: bool,
    batch: bool,
) -> Message {
    let MergedWarpMessage { msgs, msg_ids } = merged;
    let results: Vec<Message> = if parallel {
        join_all(msgs.into_iter().map(|m| answer_sub(coord, metrics, client, m))).await
    } else {
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            out.push(answer_sub(coord, metrics, client, m).await);
        }
        out
    };
    match msg_ids {
        Some(ids) if batch && ids.len() == results.len() => {
            Message::BatchResultMessage(BatchResultMessage { msgs: results, msg_ids: ids })
        }
        _ => Message::MergeResultMessage(MergeResultMessage { msgs: results }),
    }
}

async fn answer_sub(coord: &Coordinator, metrics: Option<&Metrics>, client: &ClientInfo, m: Message) -> Message {
    let code = m.type_code();
    match handle_request(coord, metrics, client, m).await {
        Some(r) => r,
        // A sub-message that is not a transaction request still gets an answer of the expected
        // shape, so the client's positional pairing holds: a failed global-status answer.
        None => Message::GlobalStatusResponse(GlobalEndResponse {
            result: seata_protocol::message::ResultHead::failed(
                seata_protocol::ExceptionCode::Unknown,
                format!("RuntimeException[unsupported message type {code} in a merged request]"),
            ),
            global_status: seata_protocol::GlobalStatus::UnKnown,
        }),
    }
}

/// Maps global statuses the client's version cannot decode (PROTOCOL.md §6.8).
pub fn adapt_for_client(msg: &mut Message, version: &Version) {
    match msg {
        Message::GlobalCommitResponse(r)
        | Message::GlobalRollbackResponse(r)
        | Message::GlobalStatusResponse(r)
        | Message::GlobalReportResponse(r) => r.global_status = r.global_status.for_client(version),
        Message::MergeResultMessage(m) => m.msgs.iter_mut().for_each(|m| adapt_for_client(m, version)),
        Message::BatchResultMessage(m) => m.msgs.iter_mut().for_each(|m| adapt_for_client(m, version)),
        _ => {}
    }
}
