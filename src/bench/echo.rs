//! The loopback ceiling: the same client, the same frames and the same framing code against a
//! server that answers every frame at once, touching nothing but the frame header.
//!
//! Workers send the request frames of one transaction of the chosen shape (GlobalBegin, the
//! BranchRegisters, GlobalCommit) in turn, one request in flight per connection, and the server
//! sends each body back as a response. What this measures is the cost of a request/response over
//! loopback TCP with this client and tokio on this machine: the yardstick for the TC's figures
//! (a transaction of AT with 2 branches is 6 round trips: begin, 2 registers, commit and 2 branch
//! commits from the TC to the RM).

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use seata_protocol::frame::msg_type;
use seata_protocol::message::{BranchRegisterRequest, GlobalBeginRequest, GlobalEndRequest};
use seata_protocol::{BranchType, CodecContext, Frame, Message, RpcCodec};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

use super::hist::Latency;
use super::proc::{self, Usage};
use super::report::Report;
use super::workload::{Options, TxMode};
use super::BenchError;
use crate::client::RpcClient;

/// Serves echo connections on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, _)) => {
                    conns.spawn(echo_connection(sock));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            () = &mut shutdown => break,
        }
        while conns.try_join_next().is_some() {}
    }
    conns.shutdown().await;
}

/// Answers each frame with its own body as a response (heartbeats with a pong).
async fn echo_connection(sock: TcpStream) {
    if sock.set_nodelay(true).is_err() {
        return;
    }
    let mut framed = Framed::new(sock, RpcCodec::default());
    while let Some(Ok(f)) = framed.next().await {
        let reply = if f.is_heartbeat() {
            f.pong()
        } else {
            Frame { message_type: msg_type::RESPONSE, head_map: Default::default(), ..f }
        };
        if framed.send(reply).await.is_err() {
            return;
        }
    }
}

/// The request messages of one transaction shaped like `opts` (the frames the workload sends).
pub fn transaction_messages(opts: &Options) -> Vec<Message> {
    let xid = "127.0.0.1:8091:2612345678901234567".to_string();
    let mut v = vec![Message::GlobalBeginRequest(GlobalBeginRequest {
        timeout: i32::try_from(opts.tx_timeout.as_millis()).unwrap_or(i32::MAX),
        transaction_name: "bench".into(),
    })];
    for b in 0..opts.branches {
        let at = opts.mode == TxMode::At;
        v.push(Message::BranchRegisterRequest(BranchRegisterRequest {
            xid: xid.clone(),
            branch_type: if at { BranchType::AT } else { BranchType::TCC },
            resource_id: opts.resource(b),
            lock_key: if at { format!("bench_t{b}:w{}r{}", opts.conns, 123_456) } else { String::new() },
            application_data: if at { "{\"autoCommit\":false}".into() } else { String::new() },
        }));
    }
    v.push(Message::GlobalCommitRequest(GlobalEndRequest::new(xid)));
    v
}

fn frame_len(m: &Message) -> usize {
    let mut buf = BytesMut::new();
    match Frame::with_message(msg_type::REQUEST, 1, m, &CodecContext::default(), 0).and_then(|f| f.encode(&mut buf)) {
        Ok(()) => buf.len(),
        Err(_) => 0,
    }
}

/// Measures the echo ceiling against `opts.addr`, or against an echo server started in this
/// process when `external` is false. Uses `conns`, `duration`, `warmup`, `branches`, `mode`,
/// `rpc_timeout`, `server_pid` and `progress` of `opts`.
pub async fn run(opts: Options, external: bool) -> Result<Report, BenchError> {
    let (addr, stop) = if external {
        (opts.addr.clone(), None)
    } else {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, async {
            let _ = rx.await;
        }));
        (addr, Some((tx, task)))
    };
    let msgs = Arc::new(transaction_messages(&opts));
    let mut clients = Vec::new();
    for _ in 0..opts.conns.max(1) {
        let (mut c, _) = RpcClient::connect(addr.as_str()).await?;
        c.set_timeout(opts.rpc_timeout);
        clients.push(c);
    }
    let start = Instant::now();
    let from = start + opts.warmup;
    let to = from + opts.duration;
    let answered = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let progress = opts.progress.then(|| {
        let (answered, done) = (Arc::clone(&answered), Arc::clone(&done));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at((start + Duration::from_secs(1)).into(), Duration::from_secs(1));
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                let n = answered.load(Ordering::Relaxed);
                let line = format!("[{:>4.0}s] echo {:>8} round trips/s\n", start.elapsed().as_secs_f64(), n - last);
                let _ = std::io::stderr().write_all(line.as_bytes());
                last = n;
            }
        })
    });
    let mut workers = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let msgs = Arc::clone(&msgs);
        let answered = Arc::clone(&answered);
        workers.push(tokio::spawn(async move {
            let mut h = Latency::new();
            let mut n = 0u64;
            let mut errors = 0u64;
            let mut k = i;
            while Instant::now() < to {
                let t = Instant::now();
                let r = c.call(&msgs[k % msgs.len()]).await;
                let end = Instant::now();
                k += 1;
                answered.fetch_add(1, Ordering::Relaxed);
                if r.is_err() {
                    errors += 1;
                    continue;
                }
                if end >= from && end <= to {
                    n += 1;
                    h.record(end - t);
                }
            }
            (h, n, errors)
        }));
    }
    let pid = opts.server_pid;
    tokio::time::sleep_until(from.into()).await;
    let (ca, sa, ta) = (proc::sample(None), pid.and_then(|p| proc::sample(Some(p))), Instant::now());
    tokio::time::sleep_until(to.into()).await;
    let (cb, sb, tb) = (proc::sample(None), pid.and_then(|p| proc::sample(Some(p))), Instant::now());
    let load_avg = proc::load_average();
    let mut h = Latency::new();
    let mut report = Report {
        scenario: "echo".into(),
        conns: opts.conns.max(1),
        branches: opts.branches,
        load: "closed loop".into(),
        warmup_s: opts.warmup.as_secs_f64(),
        frame_bytes: msgs.iter().map(frame_len).collect(),
        ..Report::default()
    };
    for w in workers {
        let (wh, n, e) = w.await.map_err(|e| BenchError::Task(e.to_string()))?;
        h.merge(&wh);
        report.completed += n;
        if e > 0 {
            *report.errors.entry("client:echo".into()).or_default() += e;
        }
    }
    done.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        p.abort();
    }
    if let Some((tx, task)) = stop {
        let _ = tx.send(());
        let _ = task.await;
    }
    let window = tb - ta;
    report.window_s = proc::round2(window.as_secs_f64());
    report.rt_per_s = Some(proc::round2(report.completed as f64 / window.as_secs_f64().max(1e-9)));
    report.errors_total = report.errors.values().sum();
    let s = h.summary();
    (report.p50_us, report.p99_us, report.p999_us) = (s.p50_us, s.p99_us, s.p999_us);
    report.latency_us.insert("rt".into(), s);
    if let (Some(a), Some(b)) = (ca, cb) {
        report.client = Some(Usage::between(&a, &b, window, report.completed));
    }
    if let (Some(a), Some(b)) = (sa, sb) {
        report.server = Some(Usage::between(&a, &b, window, report.completed));
    }
    report.load_avg = load_avg;
    Ok(report)
}
