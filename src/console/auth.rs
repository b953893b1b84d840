//! Console login and tokens (TC-BEHAVIOR §9.1): `POST /api/v1/auth/login` checks `console.user.*`
//! and answers an HS256 JWT signed with `seata.security.secretKey`; every other path needs a
//! valid token unless `seata.security.ignore.urls` lists it.
//!
//! The token is the one Seata's console issues (`JwtTokenUtils`): header `{"alg":"HS256"}`,
//! claims `sub` (the user), `auth` (empty) and `exp` (seconds). It is accepted from
//! `Authorization: Bearer <jwt>` or the `access_token` query parameter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Where the signing key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `secretKey` decoded as base64 (Seata's rule).
    Base64,
    /// `secretKey` is not base64: its UTF-8 bytes are the key.
    Raw,
    /// No `secretKey`: a random key for this process (tokens end with it).
    Random,
}

/// The console's login and token rules.
#[derive(Clone)]
pub struct Auth {
    username: Option<String>,
    password: Option<Secret>,
    mac: HmacSha256,
    key_len: usize,
    key_source: KeySource,
    validity: Duration,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("key_source", &self.key_source)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused (logged, never sent: the client only learns "Unauthorized").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with JSON header and claims.
    #[error("malformed token")]
    Malformed,
    /// Another algorithm than HS256 (`none` included).
    #[error("unsupported token algorithm")]
    Algorithm,
    /// The signature does not match the key.
    #[error("invalid token signature")]
    Signature,
    /// Past its `exp`.
    #[error("expired token")]
    Expired,
    /// Signed for another user than the configured one.
    #[error("token of an unknown user")]
    Subject,
}

/// Decodes `seata.security.secretKey` as Seata does (base64, padding optional; URL-safe accepted);
/// a value that is not base64 is used as raw bytes.
pub fn decode_secret(secret: &str) -> (Vec<u8>, KeySource) {
    let trimmed = secret.trim();
    let indifferent = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    for engine in
        [GeneralPurpose::new(&alphabet::STANDARD, indifferent), GeneralPurpose::new(&alphabet::URL_SAFE, indifferent)]
    {
        if let Ok(bytes) = engine.decode(trimmed) {
            if !bytes.is_empty() {
                return (bytes, KeySource::Base64);
            }
        }
    }
    (secret.as_bytes().to_vec(), KeySource::Raw)
}

fn now_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Equal-time comparison of two byte strings (the time depends on the lengths only).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

impl Auth {
    /// The rules for a user (both `None` when not configured), a secret key (a random one when
    /// `None`) and a token lifetime.
    pub fn new(
        username: Option<String>,
        password: Option<Secret>,
        secret_key: Option<&Secret>,
        validity: Duration,
    ) -> Self {
        let (key, key_source) = match secret_key {
            Some(s) if !s.expose().trim().is_empty() => decode_secret(s.expose()),
            _ => (rand::random::<[u8; 32]>().to_vec(), KeySource::Random),
        };
        let username = username.filter(|u| !u.trim().is_empty());
        let password = password.filter(|p| !p.expose().is_empty());
        let mac = match HmacSha256::new_from_slice(&key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        Auth { username, password, mac, key_len: key.len(), key_source, validity }
    }

    /// True when a user and a password are configured: the only case where anyone can log in.
    pub fn login_enabled(&self) -> bool {
        self.username.is_some() && self.password.is_some()
    }

    /// Where the key came from.
    pub fn key_source(&self) -> KeySource {
        self.key_source
    }

    /// What an operator should know at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.login_enabled() {
            w.push(
                "console login is disabled: console.user.username and console.user.password are not both set, so \
                 the console API answers 401. Set them (application.yml, or CONSOLE_USER_USERNAME and \
                 CONSOLE_USER_PASSWORD), and seata.security.secretKey (base64; SEATA_SECURITY_SECRETKEY) to sign \
                 the console's tokens"
                    .to_owned(),
            );
        }
        match self.key_source {
            KeySource::Random if self.login_enabled() => w.push(
                "seata.security.secretKey is not set: console tokens are signed with a random key, so they end at \
                 restart and are not accepted by other nodes; set it to a base64 key of at least 32 bytes"
                    .to_owned(),
            ),
            KeySource::Raw => w.push(
                "seata.security.secretKey is not valid base64: its raw bytes are used as the signing key".to_owned(),
            ),
            _ => {}
        }
        if self.key_len < 32 && self.key_source != KeySource::Random {
            w.push(format!(
                "seata.security.secretKey gives a {}-byte key; HS256 wants at least 32 bytes",
                self.key_len
            ));
        }
        w
    }

    /// Checks a login; `Some(token)` when the user and password match the configured ones.
    pub fn login(&self, username: &str, password: &str) -> Option<String> {
        let (Some(user), Some(pass)) = (&self.username, &self.password) else {
            return None;
        };
        // Both compared, always, in time independent of where they differ.
        let ok_user = same_bytes(user.as_bytes(), username.as_bytes());
        let ok_pass = same_bytes(pass.expose().as_bytes(), password.as_bytes());
        (ok_user && ok_pass).then(|| self.issue(user, now_ms()))
    }

    /// A token for `subject`, issued at `now_ms`.
    pub fn issue(&self, subject: &str, now_ms: i64) -> String {
        let validity = i64::try_from(self.validity.as_millis()).unwrap_or(i64::MAX);
        let exp = now_ms.saturating_add(validity) / 1000;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let claims = URL_SAFE_NO_PAD.encode(json!({ "sub": subject, "auth": "", "exp": exp }).to_string());
        let signing_input = format!("{header}.{claims}");
        let signature = URL_SAFE_NO_PAD.encode(self.sign(signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// Verifies a token; the user it names.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        self.verify_at(token, now_ms())
    }

    /// Verifies a token at `now_ms`.
    pub fn verify_at(&self, token: &str, now_ms: i64) -> Result<String, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(h), Some(c), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header: Value = decode_json(h)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(TokenError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(c.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
        let claims: Value = decode_json(c)?;
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or(TokenError::Malformed)?;
        if now_ms / 1000 >= exp {
            return Err(TokenError::Expired);
        }
        let sub = claims.get("sub").and_then(Value::as_str).ok_or(TokenError::Malformed)?;
        match &self.username {
            Some(u) if u == sub => Ok(sub.to_owned()),
            _ => Err(TokenError::Subject),
        }
    }
}

fn decode_json(part: &str) -> Result<Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Spring's Ant path patterns, as in `seata.security.ignore.urls`: `?` one character, `*` any
/// characters within a segment, `**` any number of segments.
pub fn ant_match(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if pat.is_empty() {
        return segs.is_empty();
    }
    match_segments(&pat, &segs)
}

fn match_segments(pat: &[&str], segs: &[&str]) -> bool {
    match pat.split_first() {
        None => segs.is_empty(),
        Some((&"**", rest)) => (0..=segs.len()).any(|i| match_segments(rest, &segs[i..])),
        Some((p, rest)) => match segs.split_first() {
            Some((s, srest)) => match_segment(p.as_bytes(), s.as_bytes()) && match_segments(rest, srest),
            None => false,
        },
    }
}

fn match_segment(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| match_segment(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && match_segment(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && match_segment(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(key: &str) -> Auth {
        Auth::new(Some("admin".into()), Some(Secret::new("pw")), Some(&Secret::new(key)), Duration::from_secs(60))
    }

    #[test]
    fn keys_decode_like_seata_or_fall_back_to_raw_bytes() {
        assert_eq!(decode_secret("AAECAw=="), (vec![0, 1, 2, 3], KeySource::Base64));
        assert_eq!(decode_secret("AAECAw"), (vec![0, 1, 2, 3], KeySource::Base64));
        assert_eq!(decode_secret("not base64!"), (b"not base64!".to_vec(), KeySource::Raw));
    }

    #[test]
    fn tokens_round_trip_and_are_checked() {
        let a = auth("c2VjcmV0LWtleS1mb3ItdGhlLWNvbnNvbGUtdGVzdHMtMzJi");
        let t = a.issue("admin", 1_000_000);
        assert_eq!(a.verify_at(&t, 1_000_000), Ok("admin".to_owned()));
        assert_eq!(a.verify_at(&t, 1_060_000), Err(TokenError::Expired));
        let other = auth("b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktb3RoZXI");
        assert_eq!(other.verify_at(&t, 1_000_000), Err(TokenError::Signature));
        assert_eq!(a.verify_at("a.b", 0), Err(TokenError::Malformed));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), t.split('.').nth(1).unwrap_or(""));
        assert_eq!(a.verify_at(&none, 1_000_000), Err(TokenError::Algorithm));
        assert_eq!(a.verify_at(&a.issue("mallory", 1_000_000), 1_000_000), Err(TokenError::Subject));
    }

    #[test]
    fn login_needs_both_user_and_password() {
        let a = auth("AAECAw==");
        assert!(a.login("admin", "pw").is_some());
        assert!(a.login("admin", "PW").is_none());
        assert!(a.login("root", "pw").is_none());
        let closed = Auth::new(Some("admin".into()), None, None, Duration::from_secs(60));
        assert!(!closed.login_enabled());
        assert!(closed.login("admin", "").is_none());
        assert!(closed.warnings()[0].contains("console.user.password"));
    }

    #[test]
    fn ant_patterns_match_like_spring() {
        assert!(ant_match("/", "/"));
        assert!(!ant_match("/", "/api"));
        assert!(ant_match("/**/*.js", "/console.js"));
        assert!(ant_match("/**/*.js", "/a/b/c.js"));
        assert!(!ant_match("/**/*.js", "/a/b/c.json"));
        assert!(ant_match("/vgroup/v1/**", "/vgroup/v1/addVGroup"));
        assert!(ant_match("/api/v1/auth/login", "/api/v1/auth/login"));
        assert!(!ant_match("/api/v1/auth/login", "/api/v1/auth/login/x"));
        assert!(ant_match("/h?alth", "/health"));
    }
}
