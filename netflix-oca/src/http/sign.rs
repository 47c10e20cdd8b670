//! Signed URLs: steering hands out URLs that an appliance serves only until they expire.
//!
//! A token is `exp=<unix seconds>&sig=<hex HMAC-SHA256(key, "<path>\n<exp>")>` in the
//! query string. The appliance recomputes the MAC over the path it is asked for and the
//! expiry, compares in constant time, and answers 403 when the token is missing, forged,
//! made for another path or expired. Keys rotate: a [`UrlSigner`] signs with its first key
//! and accepts any of its keys.
//!
//! ```
//! use netflix_oca::http::sign::{UrlSigner, Verdict};
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! let signer = UrlSigner::new(b"a secret shared by steering and the OCAs".to_vec());
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let query = signer.sign("/title-81/seg-1.m4s", now + Duration::from_secs(3600));
//! assert_eq!(signer.verify("/title-81/seg-1.m4s", Some(&query), now), Verdict::Valid);
//! assert_eq!(signer.verify("/title-81/seg-2.m4s", Some(&query), now), Verdict::BadSignature);
//! assert_eq!(
//!     signer.verify("/title-81/seg-1.m4s", Some(&query), now + Duration::from_secs(7200)),
//!     Verdict::Expired
//! );
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Signs and verifies URL tokens with HMAC-SHA256.
#[derive(Clone)]
pub struct UrlSigner {
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSigner")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// The outcome of checking a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token is genuine, for this path, and not expired.
    Valid,
    /// There is no token.
    Missing,
    /// The token is malformed or its MAC does not match this path.
    BadSignature,
    /// The token was genuine but has expired.
    Expired,
}

impl UrlSigner {
    /// A signer with one key.
    pub fn new(key: Vec<u8>) -> Self {
        Self { keys: vec![key] }
    }

    /// Adds an older key that is still accepted (key rotation).
    #[must_use]
    pub fn accept(mut self, key: Vec<u8>) -> Self {
        self.keys.push(key);
        self
    }

    fn mac(key: &[u8], path: &str, exp: u64) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(exp.to_string().as_bytes());
        mac
    }

    /// The query string (`exp=...&sig=...`) that lets `path` be fetched until `expires`.
    pub fn sign(&self, path: &str, expires: SystemTime) -> String {
        let exp = expires
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tag = Self::mac(&self.keys[0], path, exp).finalize().into_bytes();
        let mut sig = String::with_capacity(64);
        for b in tag {
            sig.push_str(&format!("{b:02x}"));
        }
        format!("exp={exp}&sig={sig}")
    }

    /// Checks the token in `query` for `path` at time `now`.
    pub fn verify(&self, path: &str, query: Option<&str>, now: SystemTime) -> Verdict {
        let Some(query) = query else {
            return Verdict::Missing;
        };
        let mut exp = None;
        let mut sig = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("exp", v)) => exp = v.parse::<u64>().ok(),
                Some(("sig", v)) => sig = decode_hex(v),
                _ => {}
            }
        }
        let (Some(exp), Some(sig)) = (exp, sig) else {
            return if query.contains("sig=") {
                Verdict::BadSignature
            } else {
                Verdict::Missing
            };
        };
        let genuine = self
            .keys
            .iter()
            .any(|k| Self::mac(k, path, exp).verify_slice(&sig).is_ok());
        if !genuine {
            return Verdict::BadSignature;
        }
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now > exp {
            Verdict::Expired
        } else {
            Verdict::Valid
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let old = UrlSigner::new(b"old".to_vec());
        let new = UrlSigner::new(b"new".to_vec()).accept(b"old".to_vec());
        let q = old.sign("/a", now + Duration::from_secs(10));
        assert_eq!(
            new.verify("/a", Some(&q), now),
            Verdict::Valid,
            "rotated keys still accepted"
        );
        assert_eq!(
            UrlSigner::new(b"other".to_vec()).verify("/a", Some(&q), now),
            Verdict::BadSignature
        );
        assert_eq!(new.verify("/a", None, now), Verdict::Missing);
        assert_eq!(new.verify("/a", Some("foo=bar"), now), Verdict::Missing);
        assert_eq!(
            new.verify("/a", Some("exp=5&sig=zz"), now),
            Verdict::BadSignature
        );
        let tampered = q.replace("exp=1010", "exp=9999");
        assert_eq!(
            new.verify("/a", Some(&tampered), now),
            Verdict::BadSignature
        );
        assert_eq!(
            new.verify("/a", Some(&q), now + Duration::from_secs(11)),
            Verdict::Expired
        );
    }
}
