//! The address written into XIDs, and the worker id.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

/// Longest host name accepted (DNS limit).
const MAX_HOST_LEN: usize = 253;

/// Finds this machine's outward-facing IPv4 address: the source address the kernel would use to
/// reach a public, then a private, destination. A UDP `connect` only selects a route; no packet
/// is sent. `None` when the machine has no non-loopback IPv4 route.
#[must_use]
pub fn detect_host() -> Option<Ipv4Addr> {
    ["8.8.8.8:80", "10.255.255.255:9", "192.168.255.255:9", "172.31.255.255:9"].iter().find_map(|target| {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        socket.connect(target).ok()?;
        match socket.local_addr().ok()? {
            SocketAddr::V4(addr) if !addr.ip().is_loopback() && !addr.ip().is_unspecified() => Some(*addr.ip()),
            _ => None,
        }
    })
}

/// Checks an address given for XIDs: an IPv4 address or a host name. IPv6 cannot work (clients
/// split `ip:port:id` at the first `:`), nor can `0.0.0.0`.
pub(crate) fn validate_host(value: &str) -> Result<String, String> {
    let host = value.trim();
    if host.is_empty() {
        return Err("empty address".to_owned());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        if ip.is_unspecified() {
            return Err(format!("\"{host}\" cannot be used: clients connect to the address in the XID"));
        }
        return Ok(ip.to_string());
    }
    if host.contains(':') {
        return Err(format!(
            "\"{host}\": IPv6 addresses cannot be used in XIDs (`ip:port:id`); use an IPv4 address or a host name"
        ));
    }
    let valid_name = host.len() <= MAX_HOST_LEN
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid_name {
        Ok(host.to_owned())
    } else {
        Err(format!("invalid value \"{host}\" (expected an IPv4 address or a host name)"))
    }
}

/// A worker id derived from `host:port` (FNV-1a, low 10 bits), stable across restarts. Nodes of
/// a cluster run on different hosts or ports, so they usually differ; set `-n` to be sure.
pub(crate) fn derive_server_node(host: &str, port: u16) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in host.bytes().chain([b':']).chain(port.to_string().bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    u16::try_from(hash & 0x3ff).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(validate_host(" 10.0.0.1 ").unwrap(), "10.0.0.1");
        assert_eq!(validate_host("seata-0.seata.svc").unwrap(), "seata-0.seata.svc");
        for bad in ["", "0.0.0.0", "::1", "fe80::1", "a b", "-x", "a..b", "x_y"] {
            assert!(validate_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn derived_node_is_stable_and_in_range() {
        let a = derive_server_node("10.0.0.1", 8091);
        assert_eq!(a, derive_server_node("10.0.0.1", 8091));
        assert!(a <= 1023);
        assert_ne!(
            (0..16).map(|p| derive_server_node("10.0.0.1", 8091 + p)).collect::<std::collections::BTreeSet<_>>().len(),
            1
        );
    }

    #[test]
    fn detection_never_gives_loopback() {
        if let Some(ip) = detect_host() {
            assert!(!ip.is_loopback() && !ip.is_unspecified());
        }
    }
}
