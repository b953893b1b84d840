//! One client connection: a reader loop (this task) and a writer task fed by a bounded queue.
//!
//! Frames of one connection are read in order. Registrations are handled inline, so a request
//! that follows a registration always sees it (seata-go sends RegisterTM one-way and continues at
//! once, PROTOCOL.md §6.2). Transaction requests run as separate tasks, at most
//! `max_in_flight_per_connection` at a time, and may be answered out of order, as Seata does.
//! Heartbeats are answered at once, registered or not (§6.4). A connection that stays silent for
//! the idle timeout is closed.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use seata_protocol::message::{RegisterRequest, RegisterResponse};
use seata_protocol::{Frame, Message, RpcCodec, Version};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::channels::Conn;
use super::dispatch::{adapt_for_client, handle_merged, handle_request};
use super::server::ServerState;

/// Serves one connection until the peer leaves, the connection idles out, a frame cannot be
/// parsed, or `stop` is cancelled (then requests in hand are finished and answered first).
pub(super) async fn run(sock: TcpStream, peer: SocketAddr, id: u64, state: ServerState, stop: CancellationToken) {
    let cfg = state.transport.config().clone();
    // Owned halves rather than `Framed::split`: the reader and the writer task then never
    // contend on the lock `split` puts between them (the encoder keeps no state to share).
    let (read_half, write_half) = sock.into_split();
    let mut stream = FramedRead::new(read_half, RpcCodec::new(cfg.max_frame_len));
    let mut sink = FramedWrite::new(write_half, RpcCodec::new(cfg.max_frame_len));
    let (tx, mut rx) = mpsc::channel::<Frame>(cfg.write_queue.max(1));
    let conn = Arc::new(Conn::new(id, peer, tx));
    state.transport.channels().add(Arc::clone(&conn));
    debug!("connection opened");

    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if let Err(e) = sink.feed(f).await {
                warn!(error = %e, "write failed; closing");
                return;
            }
            // Coalesce whatever is already queued into one write.
            while let Ok(f) = rx.try_recv() {
                if sink.feed(f).await.is_err() {
                    return;
                }
            }
            if SinkExt::<Frame>::flush(&mut sink).await.is_err() {
                return;
            }
        }
        let _ = SinkExt::<Frame>::close(&mut sink).await;
    });

    let inflight = Arc::new(Semaphore::new(cfg.max_in_flight_per_connection.max(1)));
    let mut handlers = JoinSet::new();
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            r = tokio::time::timeout(cfg.idle_timeout, stream.next()) => r,
        };
        let frame = match next {
            Err(_) => {
                info!("no traffic within the idle timeout; closing");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                warn!(error = %e, "unreadable frame; closing the connection");
                break;
            }
            Ok(Some(Ok(f))) => f,
        };
        while handlers.try_join_next().is_some() {}
        if frame.is_heartbeat() {
            if frame.message_type == seata_protocol::frame::msg_type::HEARTBEAT_REQUEST {
                let _ = conn.tx.send(frame.pong()).await;
            }
            continue;
        }
        let ctx = conn.codec_context();
        let msg = match frame.decode_message(&ctx, cfg.max_frame_len) {
            Ok(m) => m,
            Err(e) => {
                // The length prefix keeps the stream in sync: drop the frame, keep the connection,
                // answer nothing (the codec may be one we cannot write), as Seata does (§2.4).
                warn!(request_id = frame.request_id, error = %e, "undecodable request dropped");
                continue;
            }
        };
        match msg {
            Message::RegisterTmRequest(r) => {
                let resp = register(&state, &conn, r, false);
                respond(&conn, &frame, resp).await;
            }
            Message::RegisterRmRequest(r) => {
                let resp = register(&state, &conn, r, true);
                respond(&conn, &frame, resp).await;
            }
            Message::BranchCommitResponse(r) | Message::BranchRollbackResponse(r) => {
                if !state.transport.complete(frame.request_id, r) {
                    if !conn.is_registered() {
                        warn!(
                            request_id = frame.request_id,
                            "unexpected answer on an unregistered connection; closing"
                        );
                        break;
                    }
                    debug!(request_id = frame.request_id, "late phase-two answer ignored");
                }
            }
            Message::GlobalBeginRequest(_)
            | Message::GlobalCommitRequest(_)
            | Message::GlobalRollbackRequest(_)
            | Message::GlobalStatusRequest(_)
            | Message::GlobalReportRequest(_)
            | Message::BranchRegisterRequest(_)
            | Message::BranchReportRequest(_)
            | Message::GlobalLockQueryRequest(_)
            | Message::MergedWarpMessage(_) => {
                if !conn.is_registered() {
                    warn!(msg_type = msg.type_code(), "request before registration; closing the connection");
                    break;
                }
                let permit = tokio::select! {
                    () = stop.cancelled() => break,
                    p = Arc::clone(&inflight).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                };
                // Boxed: the handler's state machine is kilobytes, and a task moves its future
                // (into the task cell, out at completion); a box makes those moves a pointer.
                handlers.spawn(Box::pin(handle(state.clone(), Arc::clone(&conn), frame, msg, permit)));
            }
            other => debug!(msg_type = other.type_code(), "message a TC does not handle; ignored"),
        }
    }
    state.transport.channels().remove(id);
    while handlers.join_next().await.is_some() {}
    drop(conn);
    let _ = writer.await;
    debug!("connection closed");
}

async fn respond(conn: &Conn, req: &Frame, msg: Message) {
    match req.response(&msg, &conn.codec_context()) {
        Ok(f) => {
            if conn.tx.send(f).await.is_err() {
                debug!("connection closed before the answer could be written");
            }
        }
        Err(e) => warn!(error = %e, "answer could not be encoded"),
    }
}

async fn handle(state: ServerState, conn: Arc<Conn>, req: Frame, msg: Message, _permit: OwnedSemaphorePermit) {
    let identity = conn.identity();
    let (client, version) = (&identity.client, &identity.version);
    let cfg = state.transport.config();
    let metrics = state.metrics.as_deref();
    let resp = match msg {
        Message::MergedWarpMessage(m) => {
            let started = std::time::Instant::now();
            let batch = cfg.batch_response && version.at_least(1, 5, 0);
            let r = handle_merged(&state.coordinator, metrics, client, m, cfg.parallel_merged, batch).await;
            if let Some(mx) = metrics {
                mx.observe_request(seata_protocol::message::type_code::SEATA_MERGE, started.elapsed());
            }
            Some(r)
        }
        other => handle_request(&state.coordinator, metrics, client, other).await,
    };
    if let Some(mut resp) = resp {
        adapt_for_client(&mut resp, version);
        respond(&conn, &req, resp).await;
    }
}

/// RegisterTM / RegisterRM (TC-BEHAVIOR §3.1): the first registration fixes the identity; later
/// RM registrations add resources. Registration is accepted as seata-server's default handler
/// does.
fn register(state: &ServerState, conn: &Conn, req: RegisterRequest, rm: bool) -> Message {
    let cfg = state.transport.config();
    let now = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis(),
    )
    .unwrap_or(i64::MAX);
    if let Err(e) = super::auth::check(&cfg.auth, &req, rm, now) {
        warn!(application_id = %req.application_id, error = %e, "registration refused");
        let resp = RegisterResponse { identified: false, version: cfg.server_version.clone() };
        return if rm { Message::RegisterRmResponse(resp) } else { Message::RegisterTmResponse(resp) };
    }
    {
        let mut r = conn.registration();
        if !(r.tm || r.rm) {
            r.version = Version::parse(&req.version);
            r.application_id.clone_from(&req.application_id);
            r.transaction_service_group.clone_from(&req.transaction_service_group);
            // seata-go registers its TM as 1.1.0 with no extra data; Java TMs always send lines.
            r.go = !rm && req.version == "1.1.0" && req.extra_data.is_empty();
            r.identity = None;
        }
        if rm {
            r.rm = true;
        } else {
            r.tm = true;
        }
    }
    if rm {
        for res in req.resource_id_list() {
            state.transport.channels().add_resource(conn, res);
        }
    }
    info!(
        role = if rm { "RM" } else { "TM" },
        application_id = %req.application_id,
        group = %req.transaction_service_group,
        version = %req.version,
        "client registered"
    );
    let resp = RegisterResponse { identified: true, version: cfg.server_version.clone() };
    if rm {
        Message::RegisterRmResponse(resp)
    } else {
        Message::RegisterTmResponse(resp)
    }
}
