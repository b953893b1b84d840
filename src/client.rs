//! A small Seata client over `seata-protocol`: what the integration tests and the load generator
//! use to play TMs and RMs against the server over real TCP.
//!
//! One connection, requests matched to answers by request id, heartbeats answered, and the TC's
//! own requests (BranchCommit, BranchRollback, UndoLogDelete) handed to the caller through a
//! bounded channel together with a [`Replier`] to answer them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::{SinkExt, StreamExt};
use seata_protocol::frame::msg_type;
use seata_protocol::message::{RegisterRequest, RegisterResponse};
use seata_protocol::{CodecContext, Frame, Message, ProtocolError, RpcCodec};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Encoding or decoding error.
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// The connection closed.
    #[error("connection closed")]
    Closed,
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server refused the registration.
    #[error("registration refused")]
    Refused,
}

/// A request the TC sent to this client.
#[derive(Debug)]
pub struct ServerRequest {
    /// The frame (its id is what the answer must carry).
    pub frame: Frame,
    /// The decoded message.
    pub message: Message,
}

/// Answers [`ServerRequest`]s on the client's connection.
#[derive(Debug, Clone)]
pub struct Replier {
    tx: mpsc::Sender<Frame>,
    ctx: CodecContext,
}

impl Replier {
    /// Sends `msg` as the answer to `req`.
    pub async fn reply(&self, req: &Frame, msg: &Message) -> Result<(), ClientError> {
        let f = req.response(msg, &self.ctx)?;
        self.tx.send(f).await.map_err(|_| ClientError::Closed)
    }
}

/// One client connection.
#[derive(Debug)]
pub struct RpcClient {
    tx: mpsc::Sender<Frame>,
    pending: Arc<DashMap<u32, oneshot::Sender<Message>>>,
    next_id: AtomicU32,
    ctx: CodecContext,
    timeout: Duration,
    tasks: [tokio::task::AbortHandle; 2],
}

impl Drop for RpcClient {
    /// Closes the connection (repliers handed out stop working).
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RpcClient {
    /// Connects; TC requests go to the returned receiver (drop it to ignore them).
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<(RpcClient, mpsc::Receiver<ServerRequest>), ClientError> {
        let sock = TcpStream::connect(addr).await?;
        sock.set_nodelay(true)?;
        let (mut sink, mut stream) = Framed::new(sock, RpcCodec::default()).split();
        let (tx, mut rx) = mpsc::channel::<Frame>(1024);
        let (req_tx, req_rx) = mpsc::channel::<ServerRequest>(1024);
        let pending: Arc<DashMap<u32, oneshot::Sender<Message>>> = Arc::new(DashMap::new());
        let ctx = CodecContext::default();
        let writer = tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                if sink.feed(f).await.is_err() {
                    return;
                }
                while let Ok(f) = rx.try_recv() {
                    if sink.feed(f).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        });
        let p = Arc::clone(&pending);
        let pong_tx = tx.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                if frame.is_heartbeat() {
                    if frame.message_type == msg_type::HEARTBEAT_REQUEST {
                        let _ = pong_tx.send(frame.pong()).await;
                    } else if let Some((_, w)) = p.remove(&frame.request_id) {
                        let _ = w.send(Message::RegisterTmResponse(RegisterResponse::default()));
                    }
                    continue;
                }
                let Ok(message) = frame.decode_message(&ctx, 8 << 20) else {
                    continue;
                };
                if frame.message_type == msg_type::RESPONSE {
                    if let Some((_, w)) = p.remove(&frame.request_id) {
                        let _ = w.send(message);
                    }
                } else if req_tx.try_send(ServerRequest { frame, message }).is_err() {
                    // Nobody listens for TC requests on this connection (or the queue is full).
                }
            }
            p.clear();
        });
        let client = RpcClient {
            tx,
            pending,
            next_id: AtomicU32::new(0),
            ctx,
            timeout: Duration::from_secs(30),
            tasks: [writer.abort_handle(), reader.abort_handle()],
        };
        Ok((client, req_rx))
    }

    /// Changes how long calls wait for an answer.
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// A replier for TC requests arriving on this connection.
    pub fn replier(&self) -> Replier {
        Replier { tx: self.tx.clone(), ctx: self.ctx }
    }

    fn next_request_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & 0x7fff_ffff
    }

    /// Sends `msg` (frame type `ty`) and waits for the answer with the same id.
    pub async fn call_as(&self, ty: u8, msg: &Message) -> Result<Message, ClientError> {
        let id = self.next_request_id();
        let frame = Frame::with_message(ty, id, msg, &self.ctx, 0)?;
        self.call_frame(frame).await
    }

    /// Sends a prepared frame and waits for the answer with its id.
    pub async fn call_frame(&self, frame: Frame) -> Result<Message, ClientError> {
        let id = frame.request_id;
        let (w, r) = oneshot::channel();
        self.pending.insert(id, w);
        if self.tx.send(frame).await.is_err() {
            self.pending.remove(&id);
            return Err(ClientError::Closed);
        }
        match tokio::time::timeout(self.timeout, r).await {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.pending.remove(&id);
                Err(ClientError::Timeout(self.timeout))
            }
        }
    }

    /// Sends `msg` as a request (frame type 0) and waits for its answer.
    pub async fn call(&self, msg: &Message) -> Result<Message, ClientError> {
        self.call_as(msg_type::REQUEST, msg).await
    }

    /// Sends raw bytes (tests of malformed input).
    pub async fn send_frame(&self, frame: Frame) -> Result<(), ClientError> {
        self.tx.send(frame).await.map_err(|_| ClientError::Closed)
    }

    /// Sends a ping and waits for the pong.
    pub async fn ping(&self) -> Result<(), ClientError> {
        let id = self.next_request_id();
        self.call_frame(Frame::heartbeat(id, true)).await.map(|_| ())
    }

    /// Registers as a TM.
    pub async fn register_tm(&self, application_id: &str, group: &str, version: &str) -> Result<(), ClientError> {
        let req = RegisterRequest {
            version: version.into(),
            application_id: application_id.into(),
            transaction_service_group: group.into(),
            extra_data: format!("vgroup={group}\nip=127.0.0.1\n"),
            resource_ids: String::new(),
        };
        match self.call(&Message::RegisterTmRequest(req)).await? {
            Message::RegisterTmResponse(r) if r.identified => Ok(()),
            _ => Err(ClientError::Refused),
        }
    }

    /// Registers as an RM of `resources`.
    pub async fn register_rm(
        &self,
        application_id: &str,
        group: &str,
        version: &str,
        resources: &[&str],
    ) -> Result<(), ClientError> {
        let req = RegisterRequest {
            version: version.into(),
            application_id: application_id.into(),
            transaction_service_group: group.into(),
            extra_data: String::new(),
            resource_ids: resources.join(","),
        };
        match self.call(&Message::RegisterRmRequest(req)).await? {
            Message::RegisterRmResponse(r) if r.identified => Ok(()),
            _ => Err(ClientError::Refused),
        }
    }
}
