//! Registration auth (TC-BEHAVIOR §10): seata-server's hook accepts everyone; with credentials
//! configured (`seata.server.auth.*`) a TM must sign its registration the way Java TMs do when
//! given `seata.access-key`/`seata.secret-key` (`DefaultAuthSigner`, `RamSignAdapter`, V4).
//!
//! The signed text is `"<group>,<ip>,<timestamp>"` taken from the `extraData` lines; the key is
//! derived from the secret and the timestamp's UTC date in four HMAC-SHA256 steps, then the text
//! is signed and base64-encoded. RMs send no auth data in any client, so they are accepted.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use seata_protocol::message::RegisterRequest;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a registration must prove.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `seata.server.enable-check-auth`.
    pub enabled: bool,
    /// Expected access key (`ak=`), if one is configured.
    pub access_key: Option<String>,
    /// The secret key signatures are checked with; `None` accepts everyone, like seata-server.
    pub secret_key: Option<String>,
    /// Accepted distance between the signed timestamp and now.
    pub max_clock_skew: Duration,
}

/// Why a registration was refused (logged; the wire answer carries no reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A needed `key=value` line is missing.
    #[error("registration has no {0}")]
    Missing(&'static str),
    /// The access key is not the configured one.
    #[error("unknown access key")]
    AccessKey,
    /// The timestamp is not a number or too far from now.
    #[error("timestamp outside the accepted clock skew")]
    Timestamp,
    /// The signature does not match.
    #[error("bad signature")]
    Signature,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Seata's V4 signature of `text` (`"<group>,<ip>,<timestamp ms>"`) with `secret`; `None` when the
/// text has no numeric third field.
pub fn ram_sign(text: &str, secret: &str) -> Option<String> {
    let millis: i64 = text.split(',').nth(2)?.trim().parse().ok()?;
    let date = date_yyyymmdd(millis.div_euclid(1000));
    let k_date = hmac(format!("aliyun_v4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, b"cn-beijing");
    let k_product = hmac(&k_region, b"seata");
    let k_signing = hmac(&k_product, b"aliyun_v4_request");
    Some(base64::engine::general_purpose::STANDARD.encode(hmac(&k_signing, text.as_bytes())))
}

/// `yyyyMMdd` of a Unix time in seconds (UTC), without a date crate.
fn date_yyyymmdd(secs: i64) -> String {
    // Howard Hinnant's days-from-civil inverse.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}")
}

/// Checks a registration. TM registrations must be signed when a secret is configured.
pub fn check(cfg: &AuthConfig, req: &RegisterRequest, rm: bool, now_ms: i64) -> Result<(), AuthError> {
    let Some(secret) = cfg.secret_key.as_deref().filter(|_| cfg.enabled) else { return Ok(()) };
    if rm {
        return Ok(());
    }
    let field = |k: &str| req.extra_data_pairs().find(|(key, _)| *key == k).map(|(_, v)| v.trim());
    if let Some(expected) = cfg.access_key.as_deref() {
        if field("ak").ok_or(AuthError::Missing("ak"))? != expected {
            return Err(AuthError::AccessKey);
        }
    }
    let digest = field("digest").ok_or(AuthError::Missing("digest"))?;
    let timestamp = field("timestamp").ok_or(AuthError::Missing("timestamp"))?;
    let ts: i64 = timestamp.parse().map_err(|_| AuthError::Timestamp)?;
    let skew = i64::try_from(cfg.max_clock_skew.as_millis()).unwrap_or(i64::MAX);
    if now_ms.abs_diff(ts) > skew.unsigned_abs() {
        return Err(AuthError::Timestamp);
    }
    let group = field("vgroup").unwrap_or(req.transaction_service_group.as_str());
    let ip = field("ip").filter(|ip| !ip.is_empty()).unwrap_or("127.0.0.1");
    let expected = ram_sign(&format!("{group},{ip},{timestamp}"), secret).ok_or(AuthError::Timestamp)?;
    if constant_time_eq(expected.as_bytes(), digest.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::Signature)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_seatas_reference_signature() {
        // Seata's own test vector (core/src/test/.../RamSignAdapterTest.java).
        let sign = ram_sign("testGroup,127.0.0.1,1702564471650", "exampleEncryptKey");
        assert_eq!(sign.as_deref(), Some("6g9nMk6BRLFxl7bf5ZfWaEZvGdho3JBmwvx5rqgSUCE="));
        assert_eq!(date_yyyymmdd(0), "19700101");
        assert_eq!(date_yyyymmdd(1_702_564_471), "20231214");
        assert_eq!(ram_sign("a,b", "k"), None);
    }

    fn tm(extra: String) -> RegisterRequest {
        RegisterRequest { transaction_service_group: "g".into(), extra_data: extra, ..Default::default() }
    }

    #[test]
    fn checks_tm_registrations_only_when_configured() {
        let now = 1_702_564_471_650;
        let digest = ram_sign(&format!("g,10.0.0.1,{now}"), "s3cret").unwrap();
        let good = tm(format!("ak=key\ndigest={digest}\ntimestamp={now}\nauthVersion=V4\nvgroup=g\nip=10.0.0.1\n"));
        let open = AuthConfig { enabled: true, ..Default::default() };
        assert_eq!(check(&open, &tm(String::new()), false, now), Ok(()));
        let cfg = AuthConfig {
            enabled: true,
            access_key: Some("key".into()),
            secret_key: Some("s3cret".into()),
            max_clock_skew: Duration::from_secs(300),
        };
        assert_eq!(check(&cfg, &good, false, now), Ok(()));
        assert_eq!(check(&cfg, &good, false, now + 301_000), Err(AuthError::Timestamp));
        assert_eq!(check(&cfg, &tm(String::new()), false, now), Err(AuthError::Missing("ak")));
        assert_eq!(check(&cfg, &tm(String::new()), true, now), Ok(()), "RMs carry no auth data");
        let forged = tm(good.extra_data.replace("ip=10.0.0.1", "ip=10.0.0.2"));
        assert_eq!(check(&cfg, &forged, false, now), Err(AuthError::Signature));
        let wrong_ak = tm(good.extra_data.replace("ak=key", "ak=other"));
        assert_eq!(check(&cfg, &wrong_ak, false, now), Err(AuthError::AccessKey));
        let off = AuthConfig { enabled: false, ..cfg };
        assert_eq!(check(&off, &tm(String::new()), false, now), Ok(()));
    }
}
