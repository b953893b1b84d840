//! The HTTP console end to end: a real TC node and its console on ephemeral ports, fake TMs and
//! RMs over the Seata protocol, and a small HTTP client. The browser test drives the web page in
//! headless Chromium (needs `tests/browser/setup.sh`; skipped without it unless
//! `SEATA_BROWSER_TEST=1`).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use seata_protocol::message::{GlobalBeginRequest, GlobalBeginResponse, GlobalEndResponse, ResultHead};
use seata_protocol::{BranchStatus, BranchType, GlobalStatus, Message};
use seata_server::app::{Node, NodeOptions};
use seata_server::client::RpcClient;
use seata_server::config::Secret;
use seata_server::console::{self, ConsoleConfig, ConsoleState, Metrics};
use seata_server::coordinator::ClientInfo;
use seata_server::store::{FileStore, FileStoreOptions, SessionStore};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const USER: &str = "operator";
const PASSWORD: &str = "s3cret-console-pw";
/// base64 of a 32-byte key.
const KEY: &str = "Y29uc29sZS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVm";

/// A node with its console (and the Prometheus exporter) in this process.
struct Tc {
    /// The RPC address.
    addr: SocketAddr,
    node: Node,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
    http: SocketAddr,
    exporter: SocketAddr,
    state: ConsoleState,
    stop: Vec<oneshot::Sender<()>>,
}

impl Tc {
    async fn shutdown(mut self) {
        for s in self.stop.drain(..) {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        http(self.http, "GET", path, token, None).await
    }

    async fn put(&self, path: &str, token: &str) -> Resp {
        http(self.http, "PUT", path, Some(token), None).await
    }

    async fn delete(&self, path: &str, token: &str) -> Resp {
        http(self.http, "DELETE", path, Some(token), None).await
    }

    async fn login(&self) -> String {
        let r = login(self.http, USER, PASSWORD).await;
        let data = r.json()["data"].as_str().unwrap_or_default().to_owned();
        data.strip_prefix("Bearer ").unwrap_or_default().to_owned()
    }
}

fn configured() -> ConsoleConfig {
    ConsoleConfig {
        username: Some(USER.into()),
        password: Some(Secret::new(PASSWORD)),
        secret_key: Some(Secret::new(KEY)),
        ..ConsoleConfig::default()
    }
}

/// Starts a TC node (file store, instrumented for metrics) and its console and exporter.
async fn start_tc(config: ConsoleConfig) -> Tc {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts: NodeOptions = options(addr.port());
    let metrics = Metrics::new();
    let store: Arc<dyn SessionStore> =
        Arc::new(FileStore::open(dir.path(), FileStoreOptions::default()).await.unwrap());
    let node = Node::start(opts, metrics.instrument_store(store)).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let n = node.clone();
    let task = tokio::spawn(async move {
        n.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let state = ConsoleState::new(node.coordinator.clone(), node.transport.clone(), config).with_metrics(metrics);
    let mut stops = vec![stop];
    let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = http_listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(console::serve(http_listener, state.clone(), async {
        let _ = rx.await;
    }));
    stops.push(tx);
    let exp_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter = exp_listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(console::serve_exporter(exp_listener, state.clone(), async {
        let _ = rx.await;
    }));
    stops.push(tx);
    Tc { addr, node, task, _dir: dir, http, exporter, state, stop: stops }
}

// ---- a small HTTP/1.1 client ----

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

async fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))).collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_owned() };
    Resp { status, headers, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

async fn login(addr: SocketAddr, user: &str, password: &str) -> Resp {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    http(addr, "POST", "/api/v1/auth/login", None, Some(&body)).await
}

// ---- transactions ----

async fn begin_named(c: &RpcClient, name: &str, timeout_ms: i32) -> String {
    let m = Message::GlobalBeginRequest(GlobalBeginRequest { timeout: timeout_ms, transaction_name: name.into() });
    match c.call(&m).await.unwrap() {
        Message::GlobalBeginResponse(r) => r.xid,
        other => panic!("{other:?}"),
    }
}

/// A policy failing phase two (retryably, or for good) while `fail` is set.
fn switchable(fail: Arc<AtomicBool>, unretryable: bool) -> Policy {
    Arc::new(move |code, _, _| {
        let failing = fail.load(Ordering::SeqCst);
        Some(match (code, failing, unretryable) {
            (3, false, _) => BranchStatus::PhaseTwo_Committed,
            (3, true, false) => BranchStatus::PhaseTwo_CommitFailed_Retryable,
            (3, true, true) => BranchStatus::PhaseTwo_CommitFailed_Unretryable,
            (_, false, _) => BranchStatus::PhaseTwo_Rollbacked,
            (_, true, false) => BranchStatus::PhaseTwo_RollbackFailed_Retryable,
            (_, true, true) => BranchStatus::PhaseTwo_RollbackFailed_Unretryable,
        })
    })
}

fn q(xid: &str) -> String {
    xid.replace(':', "%3A")
}

async fn action(tc: &Tc, token: &str, method: &str, name: &str, xid: &str, extra: &str) -> Value {
    let path = format!("/api/v1/console/globalSession/{name}?xid={}{extra}", q(xid));
    // Phase two may be running in a recovery round at that moment: the console then says so.
    for _ in 0..50 {
        let r = if method == "PUT" { tc.put(&path, token).await } else { tc.delete(&path, token).await };
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["message"].as_str().is_some_and(|m| m.contains("right now")) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        return v;
    }
    panic!("{name} stayed busy");
}

fn status_of(tc: &Tc, xid: &str) -> Option<GlobalStatus> {
    tc.node.coordinator.session(xid).map(|e| e.status())
}

// ---- tests ----

#[tokio::test]
async fn health_page_and_assets_are_public() {
    let tc = start_tc(configured()).await;
    let r = tc.get("/health", None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    tc.state.set_ready(false);
    assert_eq!(tc.get("/health", None).await.body, "not_ok");
    tc.state.set_ready(true);
    let page = tc.get("/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.body.contains("Seata TC console"));
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'self'"));
    for (path, ty) in [("/console.js", "text/javascript"), ("/console.css", "text/css"), ("/favicon.svg", "image/svg")]
    {
        let r = tc.get(path, None).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with(ty), "{path}");
    }
    // No asset is fetched from elsewhere.
    assert!(!page.body.contains("http://") && !page.body.contains("https://"));
    let missing = tc.get("/api/v1/console/nothing", Some(&tc.login().await)).await;
    assert_eq!(missing.status, 404);
    tc.shutdown().await;
}

#[tokio::test]
async fn login_answers_seata_shapes() {
    let tc = start_tc(configured()).await;
    assert!(tc.state.warnings().is_empty(), "{:?}", tc.state.warnings());
    let ok = login(tc.http, USER, PASSWORD).await;
    assert_eq!(ok.status, 200);
    let v = ok.json();
    assert_eq!(
        (v["code"].as_str(), v["message"].as_str(), v["success"].as_bool()),
        (Some("200"), Some("success"), Some(true))
    );
    let bearer = v["data"].as_str().unwrap();
    assert!(bearer.starts_with("Bearer ") && bearer.matches('.').count() == 2, "{bearer}");
    assert_eq!(ok.header("authorization"), Some(bearer));

    let bad = login(tc.http, USER, "wrong").await;
    assert_eq!(bad.status, 200);
    let v = bad.json();
    assert_eq!((v["code"].as_str(), v["message"].as_str()), (Some("401"), Some("Login failed")));
    assert_eq!((v["data"].clone(), v["success"].as_bool()), (Value::Null, Some(false)));
    assert!(bad.header("authorization").is_none());
    assert_eq!(login(tc.http, "someone", PASSWORD).await.json()["code"], "401");

    let garbage = http(tc.http, "POST", "/api/v1/auth/login", None, Some("user=x")).await;
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["code"], "400");
    tc.shutdown().await;
}

#[tokio::test]
async fn without_a_console_user_the_api_stays_closed() {
    let tc = start_tc(ConsoleConfig::default()).await;
    let warnings = tc.state.warnings();
    assert!(warnings.iter().any(|w| w.contains("console.user.password")), "{warnings:?}");
    let r = login(tc.http, "seata", "seata").await;
    assert_eq!(r.status, 401);
    assert!(r.json()["message"].as_str().unwrap().contains("no console user is configured"));
    let r = tc.get("/api/v1/console/globalSession/query", None).await;
    assert_eq!(r.status, 401);
    assert!(r.json()["message"].as_str().unwrap().contains("console.user.password"));
    // A token made with some key is no way in either.
    let forged = seata_server::console::Auth::new(
        Some("seata".into()),
        Some(Secret::new("seata")),
        Some(&Secret::new(KEY)),
        Duration::from_secs(60),
    )
    .login("seata", "seata")
    .unwrap();
    assert_eq!(tc.get("/api/v1/console/globalSession/query", Some(&forged)).await.status, 401);
    // Health, metrics and the page stay up.
    assert_eq!(tc.get("/health", None).await.body, "ok");
    assert_eq!(tc.get("/metrics", None).await.status, 200);
    assert_eq!(tc.get("/", None).await.status, 200);
    tc.shutdown().await;
}

#[tokio::test]
async fn tokens_are_checked_for_signature_expiry_and_user() {
    let tc = start_tc(ConsoleConfig { token_validity: Duration::from_millis(1500), ..configured() }).await;
    let path = "/api/v1/console/globalSession/query";
    let none = tc.get(path, None).await;
    assert_eq!((none.status, none.json()["code"].as_str()), (401, Some("401")));
    assert_eq!(tc.get(path, Some("not.a.token")).await.status, 401);
    let other_key = seata_server::console::Auth::new(
        Some(USER.into()),
        Some(Secret::new(PASSWORD)),
        Some(&Secret::new("b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktb3RoZXI=")),
        Duration::from_secs(60),
    );
    let forged = other_key.login(USER, PASSWORD).unwrap();
    assert_eq!(tc.get(path, Some(&forged)).await.status, 401);
    let token = tc.login().await;
    // A changed claim breaks the signature.
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
    assert_eq!(tc.get(path, Some(&tampered)).await.status, 401);
    assert_eq!(tc.get(path, Some(&token)).await.status, 200);
    // Seata also takes the token as a query parameter.
    assert_eq!(tc.get(&format!("{path}?access_token={token}"), None).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = tc.get(path, Some(&token)).await;
    assert_eq!(expired.status, 401);
    assert!(expired.json()["message"].as_str().unwrap().contains("expired"));
    tc.shutdown().await;
}

#[tokio::test]
async fn global_session_query_shape_filters_and_paging() {
    let tc = start_tc(configured()).await;
    let token = tc.login().await;
    let tm = tm(tc.addr).await;
    let (rm, _log) = rm(tc.addr, &[DB, "tcc-a"]).await;
    let before = seata_server::coordinator::system_clock()();
    let x1 = begin_named(&tm, "purchase", 60_000).await;
    let x2 = begin_named(&tm, "refund", 30_000).await;
    let x3 = begin_named(&tm, "purchase-2", 60_000).await;
    let b1 = register(&rm, &x1, BranchType::AT, DB, "product:1,2").await.branch_id;
    let b2 = register(&rm, &x1, BranchType::TCC, "tcc-a", "").await.branch_id;
    let after = seata_server::coordinator::system_clock()();

    let all = tc.get("/api/v1/console/globalSession/query?pageNum=1&pageSize=10&withBranch=true", Some(&token)).await;
    assert_eq!(all.status, 200);
    let v = all.json();
    for (k, want) in [("code", "200"), ("message", "success")] {
        assert_eq!(v[k], want);
    }
    assert_eq!(v["success"], true);
    for k in ["total", "pages", "pageNum", "pageSize", "currPage"] {
        assert!(v[k].is_u64(), "{k}: {v}");
    }
    assert_eq!((v["total"].as_u64(), v["pages"].as_u64(), v["currPage"].as_u64()), (Some(3), Some(1), Some(1)));
    let data = v["data"].as_array().unwrap();
    // Newest first.
    assert_eq!(data.iter().map(|g| g["xid"].as_str().unwrap()).collect::<Vec<_>>(), vec![&x3, &x2, &x1]);
    let g1 = &data[2];
    assert_eq!(g1["transactionId"], x1.rsplit(':').next().unwrap());
    assert_eq!(g1["status"], 1);
    assert_eq!(g1["applicationId"], APP);
    assert_eq!(g1["transactionServiceGroup"], GROUP);
    assert_eq!(g1["transactionName"], "purchase");
    assert_eq!(g1["timeout"], "60000");
    let begin: i64 = g1["beginTime"].as_str().unwrap().parse().unwrap();
    assert!((before..=after).contains(&begin));
    assert_eq!(g1["gmtCreate"], g1["beginTime"]);
    assert_eq!(g1["gmtModified"], "");
    assert_eq!(g1["applicationData"], Value::Null);
    let branches = g1["branchSessionVOs"].as_array().unwrap();
    assert_eq!(branches.len(), 2);
    let br = &branches[0];
    assert_eq!(br["branchId"], b1.to_string());
    assert_eq!(br["transactionId"], g1["transactionId"]);
    assert_eq!(br["xid"], x1.as_str());
    assert_eq!(br["branchType"], "AT");
    assert_eq!(br["status"], 1);
    assert_eq!(br["resourceId"], DB);
    assert!(br["clientId"].as_str().unwrap().starts_with(&format!("{APP}:127.0.0.1:")));
    assert_eq!(br["resourceGroupId"], Value::Null);
    assert_eq!(branches[1]["branchId"], b2.to_string());
    assert_eq!(branches[1]["branchType"], "TCC");

    let count = |v: &Value| v["total"].as_u64().unwrap();
    let get = |query: String| {
        let tc = &tc;
        let token = token.clone();
        async move { tc.get(&format!("/api/v1/console/globalSession/query?{query}"), Some(&token)).await.json() }
    };
    // Without withBranch the branch lists are empty.
    assert!(get(String::new()).await["data"][2]["branchSessionVOs"].as_array().unwrap().is_empty());
    assert_eq!(count(&get(format!("xid={}", q(&x2))).await), 1);
    assert_eq!(count(&get(format!("xid={}", x2.rsplit(':').next().unwrap())).await), 1);
    assert_eq!(count(&get("transactionName=purchase".into()).await), 2);
    assert_eq!(count(&get("applicationId=order".into()).await), 3);
    assert_eq!(count(&get("applicationId=nobody".into()).await), 0);
    assert_eq!(count(&get("vgroup=default_tx_group".into()).await), 3);
    assert_eq!(count(&get("status=1".into()).await), 3);
    assert_eq!(count(&get("status=5".into()).await), 0);
    assert_eq!(count(&get(format!("timeStart={before}&timeEnd={after}")).await), 3);
    assert_eq!(count(&get(format!("timeStart={}", after + 1)).await), 0);
    assert_eq!(count(&get(format!("timeEnd={}", before - 1)).await), 0);
    // Empty parameters are ignored, as a form sends them.
    assert_eq!(count(&get("xid=&status=&applicationId=".into()).await), 3);

    let p2 = get("pageNum=2&pageSize=2".into()).await;
    assert_eq!((p2["total"].as_u64(), p2["pages"].as_u64(), p2["pageNum"].as_u64()), (Some(3), Some(2), Some(2)));
    assert_eq!(p2["pageSize"], 2);
    assert_eq!(p2["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2["data"][0]["xid"], x1.as_str());
    assert!(get("pageNum=5&pageSize=2".into()).await["data"].as_array().unwrap().is_empty());
    for bad in ["pageNum=0", "pageNum=1000", "pageSize=0", "pageSize=101", "status=abc", "timeStart=yesterday"] {
        let v = get(bad.into()).await;
        assert_eq!((v["code"].as_str(), v["success"].as_bool()), (Some("400"), Some(false)), "{bad}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with("wrong"), "{bad}: {v}");
    }

    // One transaction's branches.
    let r = tc.get(&format!("/api/v1/console/branchSession/query?xid={}", q(&x1)), Some(&token)).await.json();
    assert_eq!(r["total"], 2);
    assert_eq!(r["data"][1]["branchId"], b2.to_string());
    let r = tc.get("/api/v1/console/branchSession/query", Some(&token)).await.json();
    assert_eq!(r["code"], "400");
    tc.shutdown().await;
}

#[tokio::test]
async fn global_lock_query_shape_and_filters() {
    let tc = start_tc(configured()).await;
    let token = tc.login().await;
    let tm = tm(tc.addr).await;
    let (rm, _log) = rm(tc.addr, &[DB]).await;
    let x1 = begin_named(&tm, "a", 60_000).await;
    let x2 = begin_named(&tm, "b", 60_000).await;
    let b1 = register(&rm, &x1, BranchType::AT, DB, "product:1,2").await.branch_id;
    let b2 = register(&rm, &x2, BranchType::AT, DB, "stock:7").await.branch_id;
    let get = |query: String| {
        let tc = &tc;
        let token = token.clone();
        async move { tc.get(&format!("/api/v1/console/globalLock/query?{query}"), Some(&token)).await.json() }
    };
    let all = get(String::new()).await;
    assert_eq!((all["code"].as_str(), all["total"].as_u64()), (Some("200"), Some(3)));
    let lock = all["data"].as_array().unwrap().iter().find(|l| l["tableName"] == "stock").unwrap().clone();
    assert_eq!(lock["xid"], x2.as_str());
    assert_eq!(lock["transactionId"], x2.rsplit(':').next().unwrap());
    assert_eq!(lock["branchId"], b2.to_string());
    assert_eq!(lock["resourceId"], DB);
    assert_eq!(lock["pk"], "7");
    assert_eq!(lock["rowKey"], format!("{DB}^^^stock^^^7"));
    let at: i64 = lock["gmtCreate"].as_str().unwrap().parse().unwrap();
    assert!(at > 1_600_000_000_000);
    assert_eq!(lock["gmtModified"], lock["gmtCreate"]);

    assert_eq!(get(format!("xid={}", q(&x1))).await["total"], 2);
    assert_eq!(get("tableName=product".into()).await["total"], 2);
    assert_eq!(get("tableName=product&pk=2".into()).await["total"], 1);
    assert_eq!(get(format!("branchId={b1}")).await["total"], 2);
    assert_eq!(get(format!("transactionId={}", x2.rsplit(':').next().unwrap())).await["total"], 1);
    assert_eq!(get(format!("resourceId={}", DB.replace(':', "%3A").replace('/', "%2F"))).await["total"], 3);
    assert_eq!(get(format!("timeStart={}", at + 60_000)).await["total"], 0);
    let page = get("pageNum=2&pageSize=2".into()).await;
    assert_eq!((page["pages"].as_u64(), page["data"].as_array().unwrap().len()), (Some(2), 1));
    assert_eq!(get("branchId=x".into()).await["code"], "400");
    assert_eq!(get("transactionId=1.5".into()).await["code"], "400");
    tc.shutdown().await;
}

#[tokio::test]
async fn rollback_of_an_open_transaction_from_the_console() {
    let tc = start_tc(configured()).await;
    let token = tc.login().await;
    let tm = tm(tc.addr).await;
    let (rm, log) = rm(tc.addr, &[DB, "tcc-a"]).await;
    let xid = begin(&tm, 60_000).await;
    let b1 = register(&rm, &xid, BranchType::AT, DB, "product:1").await.branch_id;
    let b2 = register(&rm, &xid, BranchType::TCC, "tcc-a", "").await.branch_id;

    // An open transaction belongs to its TM: no commit, delete, stop or retry from the console.
    for (method, name, extra, needle) in [
        ("PUT", "changeGlobalStatus", "&status=CommitRetrying", "only its TM may commit it"),
        ("PUT", "changeGlobalStatus", "", "not failed"),
        ("PUT", "sendCommitOrRollback", "", "no commit or rollback to send"),
        ("PUT", "stopGlobalSession", "", "nothing is being retried"),
        ("PUT", "startGlobalSession", "", "not stopped"),
        ("DELETE", "deleteGlobalSession", "", "still open"),
        ("DELETE", "forceDeleteGlobalSession", "", "still open"),
    ] {
        let v = action(&tc, &token, method, name, &xid, extra).await;
        assert_eq!((v["code"].as_str(), v["success"].as_bool()), (Some("409"), Some(false)), "{name}: {v}");
        assert!(v["message"].as_str().unwrap().contains(needle), "{name}: {v}");
        assert_eq!(status_of(&tc, &xid), Some(GlobalStatus::Begin), "{name}");
    }
    let v = action(&tc, &token, "PUT", "changeGlobalStatus", &xid, "&status=Committed").await;
    assert_eq!(v["code"], "400", "{v}");

    let v = action(&tc, &token, "PUT", "changeGlobalStatus", &xid, "&status=RollbackRetrying").await;
    assert_eq!((v["code"].as_str(), v["message"].as_str()), (Some("200"), Some("success")), "{v}");
    assert_eq!((v["data"]["statusName"].as_str(), v["data"]["status"].as_u64()), (Some("Rollbacked"), Some(11)));
    assert_eq!(log.rollbacks(), vec![b2, b1]);
    assert_eq!(status_of(&tc, &xid), None);
    assert_eq!(status(&tm, &xid).await, GlobalStatus::Finished);
    assert_eq!(tc.node.coordinator.locks().count(), Some(0));
    let v = action(&tc, &token, "PUT", "changeGlobalStatus", &xid, "&status=RollbackRetrying").await;
    assert_eq!(v["code"], "404");
    let v = action(&tc, &token, "PUT", "stopGlobalSession", "", "").await;
    assert_eq!(v["code"], "400");
    tc.shutdown().await;
}

#[tokio::test]
async fn stuck_rollback_stop_start_retry_and_delete_rules() {
    let tc = start_tc(configured()).await;
    let token = tc.login().await;
    let tm = tm(tc.addr).await;
    let fail = Arc::new(AtomicBool::new(true));
    let (rm, log) = rm_with(tc.addr, APP, &[DB], switchable(Arc::clone(&fail), false)).await;
    let xid = begin(&tm, 60_000).await;
    let b = register(&rm, &xid, BranchType::AT, DB, "product:9").await.branch_id;
    assert_eq!(rollback(&tm, &xid).await.global_status, GlobalStatus::RollbackRetrying);

    let v = action(&tc, &token, "PUT", "stopGlobalSession", &xid, "").await;
    assert_eq!(v["data"]["statusName"], "StopRollbackOrRollbackRetry", "{v}");
    assert_eq!(status_of(&tc, &xid), Some(GlobalStatus::StopRollbackOrRollbackRetry));
    // Stopped: the recovery jobs leave it alone, its row lock stays, a TM sees RollbackRetrying.
    let n = log.rollbacks().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(log.rollbacks().len(), n);
    assert_eq!(tc.node.coordinator.locks().count(), Some(1));
    assert_eq!(status(&tm, &xid).await, GlobalStatus::RollbackRetrying);
    let v = action(&tc, &token, "PUT", "stopGlobalSession", &xid, "").await;
    assert_eq!((v["code"].as_str(), v["data"]["detail"].as_str()), (Some("200"), Some("retrying was already stopped")));

    // Never committed while rolling back; never deleted quietly while its lock protects data.
    let v = action(&tc, &token, "PUT", "changeGlobalStatus", &xid, "&status=CommitRetrying").await;
    assert_eq!(v["code"], "409");
    assert!(v["message"].as_str().unwrap().contains("half committed"), "{v}");
    let v = action(&tc, &token, "DELETE", "deleteGlobalSession", &xid, "").await;
    assert_eq!(v["code"], "409");
    assert!(v["message"].as_str().unwrap().contains("1 row lock(s) on product"), "{v}");

    // Retry now while the RM still fails: still stopped, nothing lost.
    let v = action(&tc, &token, "PUT", "sendCommitOrRollback", &xid, "").await;
    assert_eq!(v["code"], "200", "{v}");
    assert_eq!(v["data"]["statusName"], "StopRollbackOrRollbackRetry");
    assert!(v["data"]["detail"].as_str().unwrap().contains("not finished"), "{v}");
    assert_eq!(log.rollbacks().len(), n + 1);

    // Start again: the jobs resume; stop once more, then the RM recovers and a retry finishes it.
    let v = action(&tc, &token, "PUT", "startGlobalSession", &xid, "").await;
    assert_eq!(v["data"]["statusName"], "RollbackRetrying", "{v}");
    assert!(eventually(5, || log.rollbacks().len() > n + 1).await);
    let v = action(&tc, &token, "PUT", "stopGlobalSession", &xid, "").await;
    assert_eq!(v["code"], "200", "{v}");
    let v = action(&tc, &token, "PUT", "startGlobalSession", &xid, "").await;
    assert_eq!(v["code"], "200", "{v}");
    let v = action(&tc, &token, "PUT", "startGlobalSession", &xid, "").await;
    assert_eq!(v["code"], "409", "{v}");
    fail.store(false, Ordering::SeqCst);
    let v = action(&tc, &token, "PUT", "sendCommitOrRollback", &xid, "").await;
    // The recovery job may have finished it first.
    if v["code"] == "200" {
        assert_eq!(v["data"]["statusName"], "Rollbacked", "{v}");
    } else {
        assert_eq!(v["code"], "404", "{v}");
    }
    assert!(eventually(5, || status_of(&tc, &xid).is_none()).await);
    assert!(log.rollbacks().iter().all(|id| *id == b));
    assert_eq!(tc.node.coordinator.locks().count(), Some(0));
    tc.shutdown().await;
}

#[tokio::test]
async fn failed_commit_is_committed_again_never_rolled_back_and_can_be_deleted() {
    let tc = start_tc(configured()).await;
    let token = tc.login().await;
    let tm = tm(tc.addr).await;
    let fail = Arc::new(AtomicBool::new(true));
    let (rm, log) = rm_with(tc.addr, APP, &["tcc-a"], switchable(Arc::clone(&fail), true)).await;
    let x1 = begin(&tm, 60_000).await;
    let b1 = register(&rm, &x1, BranchType::TCC, "tcc-a", "").await.branch_id;
    assert_eq!(commit(&tm, &x1).await.global_status, GlobalStatus::CommitFailed);
    let x2 = begin(&tm, 60_000).await;
    register(&rm, &x2, BranchType::TCC, "tcc-a", "").await;
    assert_eq!(commit(&tm, &x2).await.global_status, GlobalStatus::CommitFailed);

    let v = action(&tc, &token, "PUT", "changeGlobalStatus", &x1, "&status=RollbackRetrying").await;
    assert_eq!(v["code"], "409");
    assert!(v["message"].as_str().unwrap().contains("its commit began"), "{v}");
    let v = action(&tc, &token, "PUT", "sendCommitOrRollback", &x1, "").await;
    assert_eq!(v["code"], "409");
    assert!(v["message"].as_str().unwrap().contains("changeGlobalStatus"), "{v}");
    let v = action(&tc, &token, "PUT", "stopGlobalSession", &x1, "").await;
    assert_eq!(v["code"], "409");

    // Still failing: the commit is sent again and fails for good again.
    let v = action(&tc, &token, "PUT", "changeGlobalStatus", &x1, "").await;
    assert_eq!(v["data"]["statusName"], "CommitFailed", "{v}");
    assert_eq!(log.commits().iter().filter(|id| **id == b1).count(), 2);
    fail.store(false, Ordering::SeqCst);
    let v = action(&tc, &token, "PUT", "changeGlobalStatus", &x1, "").await;
    assert_eq!(v["data"]["statusName"], "Committed", "{v}");
    assert!(v["data"]["detail"].as_str().unwrap().starts_with("CommitFailed -> CommitRetrying"), "{v}");
    assert_eq!(status_of(&tc, &x1), None);
    assert!(log.rollbacks().is_empty());

    // Deleting a failed commit holding no locks is allowed, and says what it leaves behind.
    let v = action(&tc, &token, "DELETE", "deleteGlobalSession", &x2, "").await;
    assert_eq!((v["code"].as_str(), v["data"]["statusName"].as_str()), (Some("200"), Some("Deleting")), "{v}");
    assert!(v["data"]["detail"].as_str().unwrap().contains("1 branch(es) never finished phase two"), "{v}");
    assert_eq!(status_of(&tc, &x2), None);
    assert_eq!(status(&tm, &x2).await, GlobalStatus::Finished);
    let v = action(&tc, &token, "DELETE", "deleteGlobalSession", &x2, "").await;
    assert_eq!(v["code"], "404");
    tc.shutdown().await;
}

#[tokio::test]
async fn failed_rollback_keeps_its_locks_until_forced() {
    let tc = start_tc(configured()).await;
    let token = tc.login().await;
    let tm = tm(tc.addr).await;
    let fail = Arc::new(AtomicBool::new(true));
    let (rm, log) = rm_with(tc.addr, APP, &[DB], switchable(Arc::clone(&fail), true)).await;
    let x1 = begin(&tm, 60_000).await;
    register(&rm, &x1, BranchType::AT, DB, "product:1,2").await;
    assert_eq!(rollback(&tm, &x1).await.global_status, GlobalStatus::RollbackFailed);
    let x2 = begin(&tm, 60_000).await;
    let b2 = register(&rm, &x2, BranchType::AT, DB, "product:3").await.branch_id;
    assert_eq!(rollback(&tm, &x2).await.global_status, GlobalStatus::RollbackFailed);
    assert_eq!(tc.node.coordinator.locks().count(), Some(3));

    let v = action(&tc, &token, "PUT", "changeGlobalStatus", &x1, "&status=CommitRetrying").await;
    assert_eq!(v["code"], "409", "{v}");
    let v = action(&tc, &token, "DELETE", "deleteGlobalSession", &x1, "").await;
    assert_eq!(v["code"], "409", "{v}");
    assert!(v["message"].as_str().unwrap().contains("forceDeleteGlobalSession"), "{v}");
    let v = action(&tc, &token, "DELETE", "forceDeleteGlobalSession", &x1, "").await;
    assert_eq!(v["code"], "200", "{v}");
    assert!(v["data"]["detail"].as_str().unwrap().contains("released 2 row lock(s)"), "{v}");
    assert_eq!(tc.node.coordinator.locks().count(), Some(1));

    // The other one is rolled back again once its RM recovers.
    fail.store(false, Ordering::SeqCst);
    let v = action(&tc, &token, "PUT", "changeGlobalStatus", &x2, "").await;
    assert_eq!(v["data"]["statusName"], "Rollbacked", "{v}");
    assert_eq!(log.rollbacks().iter().filter(|id| **id == b2).count(), 2);
    assert_eq!(tc.node.coordinator.locks().count(), Some(0));
    tc.shutdown().await;
}

#[tokio::test]
async fn metrics_on_both_ports() {
    let tc = start_tc(configured()).await;
    let tm = tm(tc.addr).await;
    let (rm, _log) = rm(tc.addr, &[DB]).await;
    let xid = begin(&tm, 60_000).await;
    register(&rm, &xid, BranchType::AT, DB, "product:1,2").await;
    let m = tc.state.metrics();
    m.observe_request(seata_protocol::message::type_code::GLOBAL_BEGIN, Duration::from_micros(700));
    m.observe_request(9999, Duration::from_millis(3));
    let client = ClientInfo {
        application_id: APP.into(),
        transaction_service_group: GROUP.into(),
        client_id: format!("{APP}:127.0.0.1:1"),
    };
    let done = "10.0.0.1:8091:42";
    m.observe_begin(
        &client,
        &GlobalBeginResponse { result: ResultHead::success(), xid: done.into(), extra_data: String::new() },
    );
    m.observe_global_end(&client, done, &GlobalEndResponse::success(GlobalStatus::Committed));
    m.observe_global_end(&client, "10.0.0.1:8091:43", &GlobalEndResponse::success(GlobalStatus::Rollbacked));

    let r = tc.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.body;
    let labels = format!("applicationId=\"{APP}\",group=\"{GROUP}\"");
    for want in [
        "# TYPE seata_transaction untyped".to_owned(),
        format!("seata_transaction{{role=\"tc\",meter=\"counter\",status=\"active\",{labels}}} 1"),
        format!("seata_transaction{{role=\"tc\",meter=\"counter\",status=\"committed\",{labels}}} 1"),
        format!("seata_transaction{{role=\"tc\",meter=\"counter\",status=\"rollbacked\",{labels}}} 1"),
        format!(
            "seata_transaction{{role=\"tc\",meter=\"summary\",status=\"committed\",{labels},statistic=\"count\"}} 1"
        ),
        format!("seata_transaction{{role=\"tc\",meter=\"timer\",status=\"committed\",{labels},statistic=\"count\"}} 1"),
        "seata_transaction{role=\"tc\",meter=\"counter\",status=\"AfterCommitted\"} 0".to_owned(),
        "seata_tc_sessions{status=\"Begin\"} 1".to_owned(),
        "seata_tc_sessions{status=\"RollbackRetrying\"} 0".to_owned(),
        "seata_tc_locks_held 2".to_owned(),
        "seata_tc_connections{role=\"tm\"} 1".to_owned(),
        "seata_tc_connections{role=\"rm\"} 1".to_owned(),
        "seata_tc_transactions_total{outcome=\"began\"} 1".to_owned(),
        "seata_tc_phase2_retries_total 0".to_owned(),
        "# TYPE seata_tc_request_duration_seconds histogram".to_owned(),
        "seata_tc_request_duration_seconds_bucket{message=\"GlobalBegin\",le=\"0.001\"} 1".to_owned(),
        "seata_tc_request_duration_seconds_count{message=\"Other\"} 1".to_owned(),
        "seata_tc_store_batches_total ".to_owned(),
        "seata_tc_store_last_batch_size ".to_owned(),
        "seata_tc_store_write_duration_seconds_count ".to_owned(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
    }
    // Every sample line is `name{labels} number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    // Summaries restart at every scrape of the same endpoint; counters do not.
    let again = tc.get("/metrics", None).await.body;
    assert!(!again.contains("meter=\"summary\""), "{again}");
    assert!(again.contains(&format!("status=\"committed\",{labels}}} 1")));
    // The exporter has its own window and answers on any path, without a token.
    let exported = http(tc.exporter, "GET", "/metrics", None, None).await;
    assert_eq!(exported.status, 200);
    assert!(exported.body.contains("meter=\"summary\",status=\"committed\""), "{}", exported.body);
    assert!(http(tc.exporter, "GET", "/", None, None).await.body.contains("seata_tc_sessions"));
    tc.shutdown().await;
}

/// The web page in headless Chromium: log in, see the transaction, roll it back from the page;
/// the RM receives the BranchRollback. Saves a screenshot to `docs/console.png` when
/// `SEATA_UPDATE_SCREENSHOT=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_rolls_back_from_the_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = browser_dir.join("node_modules/playwright-core").is_dir() && Path::new(&chromium).exists();
    if !ready {
        let msg = "browser test needs Chromium and playwright-core: run tests/browser/setup.sh";
        assert!(std::env::var("SEATA_BROWSER_TEST").as_deref() != Ok("1"), "{msg}");
        eprintln!("skipped: {msg}");
        return;
    }
    let tc = start_tc(configured()).await;
    let tm = tm(tc.addr).await;
    let fail = Arc::new(AtomicBool::new(false));
    let (rm, log) = rm_with(tc.addr, APP, &[DB, "tcc-inventory"], switchable(Arc::clone(&fail), false)).await;
    // Some company for the screenshot: a stopped rollback and a failed commit.
    fail.store(true, Ordering::SeqCst);
    let stuck = begin_named(&tm, "cancel-order", 60_000).await;
    register(&rm, &stuck, BranchType::AT, DB, "orders:1001").await;
    rollback(&tm, &stuck).await;
    let token = tc.login().await;
    action(&tc, &token, "PUT", "stopGlobalSession", &stuck, "").await;
    let (rm2, _) =
        rm_with(tc.addr, "stock-service", &["tcc-deduct"], switchable(Arc::new(AtomicBool::new(true)), true)).await;
    let failed = begin_named(&tm, "restock", 60_000).await;
    register(&rm2, &failed, BranchType::TCC, "tcc-deduct", "").await;
    commit(&tm, &failed).await;
    fail.store(false, Ordering::SeqCst);
    // The transaction rolled back from the page.
    let xid = begin_named(&tm, "place-order", 60_000).await;
    let b1 = register(&rm, &xid, BranchType::AT, DB, "product:1,2").await.branch_id;
    let b2 = register(&rm, &xid, BranchType::TCC, "tcc-inventory", "").await.branch_id;

    let shot = if std::env::var("SEATA_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        root.join("docs/console.png")
    } else {
        std::env::temp_dir().join(format!("seata-console-{}.png", std::process::id()))
    };
    let mut child = std::process::Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .current_dir(&browser_dir)
        .env("CONSOLE_URL", format!("http://{}/", tc.http))
        .env("CONSOLE_USER", USER)
        .env("CONSOLE_PASSWORD", PASSWORD)
        .env("XID", &xid)
        .env("SCREENSHOT", &shot)
        .env("CHROMIUM", &chromium)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    // The server runs on this runtime's other worker while a blocking thread waits for the browser.
    let out = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        child.wait_with_output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser script failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("rolled back from the page"), "{stdout}");
    // The RM got the BranchRollbacks (reverse registration order); the transaction is gone.
    assert!(log.rollbacks().ends_with(&[b2, b1]), "{:?}", log.events());
    assert_eq!(status(&tm, &xid).await, GlobalStatus::Finished);
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 10_000).unwrap_or(false));
    tc.shutdown().await;
}
