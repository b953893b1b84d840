//! The channel registry (TC-BEHAVIOR §6): who is on each connection, which resources each RM
//! connection serves, and the choice of connection for a phase-two request (§6.2).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use seata_protocol::{BranchType, CodeTable, CodecContext, Frame, Version};
use tokio::sync::mpsc;

/// A connection's identity after registration.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// Registered as a TM.
    pub tm: bool,
    /// Registered as an RM.
    pub rm: bool,
    /// The client's version (decides code numbering and batch answers).
    pub version: Version,
    /// The application id of the first registration.
    pub application_id: String,
    /// The transaction service group of the first registration.
    pub transaction_service_group: String,
    /// Resources registered on this connection.
    pub resources: HashSet<String>,
    /// seata-go peer (one-byte failure messages in four responses).
    pub go: bool,
    /// Made at the first request after registration (see [`Conn::identity`]).
    pub identity: Option<Arc<Identity>>,
}

/// What every request of a registered connection carries, made once per connection rather than
/// per request (the identity is fixed by the first registration).
#[derive(Debug)]
pub struct Identity {
    /// The client as the coordinator sees it.
    pub client: crate::coordinator::ClientInfo,
    /// The registered version.
    pub version: Version,
}

/// One live connection.
#[derive(Debug)]
pub struct Conn {
    /// Registry id.
    pub id: u64,
    /// The peer's address as the TC sees it.
    pub peer: SocketAddr,
    /// Frames to write to this connection (bounded).
    pub tx: mpsc::Sender<Frame>,
    // A std mutex: only short, non-async critical sections touch it.
    reg: Mutex<Registration>,
}

impl Conn {
    /// A new, unregistered connection.
    pub fn new(id: u64, peer: SocketAddr, tx: mpsc::Sender<Frame>) -> Self {
        Conn { id, peer, tx, reg: Mutex::new(Registration::default()) }
    }

    /// The registration (locked briefly; never hold it across an await).
    pub fn registration(&self) -> MutexGuard<'_, Registration> {
        self.reg.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True once a RegisterTM or RegisterRM was accepted.
    pub fn is_registered(&self) -> bool {
        let r = self.registration();
        r.tm || r.rm
    }

    /// `applicationId:ip:port` (TC-BEHAVIOR §1).
    pub fn client_id(&self) -> String {
        format!("{}:{}:{}", self.registration().application_id, self.peer.ip(), self.peer.port())
    }

    /// The connection's identity for the coordinator and the answer's encoding.
    pub fn identity(&self) -> Arc<Identity> {
        let mut r = self.registration();
        if let Some(id) = &r.identity {
            return Arc::clone(id);
        }
        let id = Arc::new(Identity {
            client: crate::coordinator::ClientInfo {
                application_id: r.application_id.clone(),
                transaction_service_group: r.transaction_service_group.clone(),
                client_id: format!("{}:{}:{}", r.application_id, self.peer.ip(), self.peer.port()),
            },
            version: r.version.clone(),
        });
        if r.tm || r.rm {
            r.identity = Some(Arc::clone(&id));
        }
        id
    }

    /// How to encode bodies for this peer.
    pub fn codec_context(&self) -> CodecContext {
        let r = self.registration();
        if !(r.tm || r.rm) {
            return CodecContext::default();
        }
        CodecContext { code_table: CodeTable::for_version(&r.version), go_short_msg: r.go }
    }

    /// The registered version.
    pub fn version(&self) -> Version {
        self.registration().version.clone()
    }

    fn alive(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// All connections, indexed for phase-two routing.
#[derive(Debug, Default)]
pub struct Channels {
    conns: DashMap<u64, Arc<Conn>>,
    /// resource id → connections that registered it.
    by_resource: DashMap<String, crate::fasthash::HashSet<u64>>,
    /// peer address → connection (the first choice of phase-two routing, found without a scan).
    by_peer: DashMap<SocketAddr, u64>,
}

/// Splits a client id `app:ip:port` at the first `:` and the last `:` (TC-BEHAVIOR §1).
fn split_client_id(client_id: &str) -> Option<(&str, &str, u16)> {
    let (app, rest) = client_id.split_once(':')?;
    let (ip, port) = rest.rsplit_once(':')?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip.split('%').next().unwrap_or(ip);
    Some((app, ip, port.parse().ok()?))
}

impl Channels {
    /// Adds a connection.
    pub fn add(&self, conn: Arc<Conn>) {
        self.by_peer.insert(conn.peer, conn.id);
        self.conns.insert(conn.id, conn);
    }

    /// Removes a connection from every index.
    pub fn remove(&self, id: u64) {
        if let Some((_, conn)) = self.conns.remove(&id) {
            self.by_peer.remove_if(&conn.peer, |_, v| *v == id);
            let resources: Vec<String> = conn.registration().resources.iter().cloned().collect();
            for r in resources {
                if let Some(mut set) = self.by_resource.get_mut(&r) {
                    set.remove(&id);
                }
                self.by_resource.remove_if(&r, |_, set| set.is_empty());
            }
        }
    }

    /// Records a resource on an RM connection.
    pub fn add_resource(&self, conn: &Conn, resource_id: &str) {
        conn.registration().resources.insert(resource_id.to_owned());
        self.by_resource.entry(resource_id.to_owned()).or_default().insert(conn.id);
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// (TM connections, RM connections) currently registered.
    pub fn role_counts(&self) -> (usize, usize) {
        self.conns.iter().fold((0, 0), |(tm, rm), c| {
            let r = c.registration();
            (tm + usize::from(r.tm), rm + usize::from(r.rm))
        })
    }

    /// Every registered resource id with one live connection serving it.
    pub fn one_per_resource(&self) -> Vec<(String, Arc<Conn>)> {
        let mut out = Vec::new();
        for e in self.by_resource.iter() {
            if let Some(c) = e.value().iter().filter_map(|id| self.conns.get(id)).find(|c| c.alive()) {
                out.push((e.key().clone(), Arc::clone(c.value())));
            }
        }
        out
    }

    fn with_resource(&self, resource_id: &str) -> Vec<Arc<Conn>> {
        self.by_resource
            .get(resource_id)
            .map(|ids| ids.iter().filter_map(|id| self.conns.get(id).map(|c| Arc::clone(c.value()))).collect())
            .unwrap_or_default()
    }

    /// The connection for a phase-two request (TC-BEHAVIOR §6.2): the registering connection,
    /// then the same application on the same IP, then the same application anywhere, then (AT
    /// only) any application that registered the resource. SAGA takes any connection of the
    /// resource.
    pub fn select(&self, resource_id: &str, client_id: &str, branch_type: BranchType) -> Option<Arc<Conn>> {
        let candidates =
            || -> Vec<Arc<Conn>> { self.with_resource(resource_id).into_iter().filter(|c| c.alive()).collect() };
        if branch_type == BranchType::SAGA {
            return candidates().into_iter().next();
        }
        let Some((app, ip, port)) = split_client_id(client_id) else {
            return if branch_type == BranchType::AT { candidates().into_iter().next() } else { None };
        };
        let same_app = |c: &Conn| c.registration().application_id == app;
        // Compared as addresses (no formatting per candidate); an id whose IP does not parse
        // matches no connection by IP, as its text would match no formatted address.
        let parsed: Option<std::net::IpAddr> = ip.parse().ok();
        let same_ip = |c: &Conn| parsed == Some(c.peer.ip());
        // 1. The very connection, if it is still an RM of that application.
        let own = parsed
            .and_then(|ip| self.by_peer.get(&SocketAddr::new(ip, port)).map(|id| *id))
            .and_then(|id| self.conns.get(&id).map(|c| Arc::clone(c.value())));
        if let Some(c) = own.filter(|c| c.alive()) {
            let r = c.registration();
            if r.rm && r.application_id == app {
                drop(r);
                return Some(c);
            }
        }
        // Only now the resource's connections: the first choice above is the usual answer.
        let candidates = candidates();
        // 2. Same application and IP: a connection of the resource, else any RM connection of
        //    that application on that IP (Seata's updateChannelsResource makes those eligible).
        if let Some(c) = candidates.iter().find(|c| same_app(c) && same_ip(c)) {
            return Some(Arc::clone(c));
        }
        if let Some(c) = self.conns.iter().find(|c| c.alive() && same_ip(c) && same_app(c) && c.registration().rm) {
            return Some(Arc::clone(c.value()));
        }
        // 3. Same application, another IP.
        if let Some(c) = candidates.iter().find(|c| same_app(c)) {
            return Some(Arc::clone(c));
        }
        // 4. AT only: another application that registered the same resource (same database).
        if branch_type == BranchType::AT {
            return candidates.into_iter().next();
        }
        None
    }

    /// Every connection (console).
    pub fn all(&self) -> Vec<Arc<Conn>> {
        self.conns.iter().map(|c| Arc::clone(c.value())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(ch: &Channels, id: u64, addr: &str, app: &str, resources: &[&str]) -> (Arc<Conn>, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(1);
        let c = Arc::new(Conn::new(id, addr.parse().unwrap(), tx));
        {
            let mut r = c.registration();
            r.rm = true;
            r.application_id = app.into();
        }
        ch.add(Arc::clone(&c));
        for res in resources {
            ch.add_resource(&c, res);
        }
        (c, rx)
    }

    #[test]
    fn falls_back_in_seata_order() {
        let ch = Channels::default();
        let (_a, _ra) = conn(&ch, 1, "10.0.0.1:5000", "order", &["db"]);
        let (_b, _rb) = conn(&ch, 2, "10.0.0.1:5001", "order", &["db"]);
        let (_c, _rc) = conn(&ch, 3, "10.0.0.2:5000", "order", &["db"]);
        let (_d, _rd) = conn(&ch, 4, "10.0.0.3:5000", "stock", &["db", "tcc-action"]);
        let pick = |client: &str, t| ch.select("db", client, t).map(|c| c.id);
        assert_eq!(pick("order:10.0.0.1:5000", BranchType::AT), Some(1));
        ch.remove(1);
        assert_eq!(pick("order:10.0.0.1:5000", BranchType::AT), Some(2));
        ch.remove(2);
        assert_eq!(pick("order:10.0.0.1:5000", BranchType::AT), Some(3));
        ch.remove(3);
        assert_eq!(pick("order:10.0.0.1:5000", BranchType::AT), Some(4));
        assert_eq!(pick("order:10.0.0.1:5000", BranchType::TCC), None);
        assert_eq!(ch.select("tcc-action", "x", BranchType::SAGA).map(|c| c.id), Some(4));
        ch.remove(4);
        assert_eq!(pick("order:10.0.0.1:5000", BranchType::AT), None);
        assert!(ch.is_empty());
    }

    #[test]
    fn client_ids_split_like_seata() {
        assert_eq!(split_client_id("app:10.0.0.1:8080"), Some(("app", "10.0.0.1", 8080)));
        assert_eq!(split_client_id("app:[::1]:8080"), Some(("app", "::1", 8080)));
        assert_eq!(split_client_id("garbage"), None);
    }
}
