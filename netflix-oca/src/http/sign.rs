//! Signed URLs: steering hands out URLs that an appliance serves only until they expire.
//!
//! Two forms:
//! - **One file**: `?exp=<unix seconds>&sig=<hex HMAC-SHA256(key, "<path>\n<exp>")>` in the
//!   query string ([`UrlSigner::sign`]).
//! - **A title**: a path prefix `/s/<exp>/<sig>/` before the title's directory, the MAC
//!   taken over `"<title>/\n<exp>"` ([`UrlSigner::sign_scope`]). Players resolve a
//!   playlist's relative segment URLs against it, so every segment of the title carries the
//!   token without the playlist being rewritten.
//!
//! The appliance recomputes the MAC, compares in constant time, and answers 403 when the
//! token is missing, forged, made for another path or expired. Keys rotate: a
//! [`UrlSigner`] signs with its first key and accepts any of its keys.
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

    /// The path prefix (`/s/<exp>/<sig>`) that lets every file under the directory `scope`
    /// (a title, `title-81`) be fetched until `expires`: the URL of a file is the prefix
    /// followed by the file's path (`/s/.../title-81/master.m3u8`).
    pub fn sign_scope(&self, scope: &str, expires: SystemTime) -> String {
        let exp = expires
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let scope = format!("{}/", scope.trim_matches('/'));
        let tag = Self::mac(&self.keys[0], &scope, exp)
            .finalize()
            .into_bytes();
        let sig: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("/s/{exp}/{sig}")
    }

    /// Checks a path that starts with a scope token (`/s/<exp>/<sig>/<scope>/...`).
    /// Returns `None` when the path has no such prefix; else the verdict and the path
    /// without the token (`/<scope>/...`).
    pub fn verify_scoped<'p>(&self, path: &'p str, now: SystemTime) -> Option<(Verdict, &'p str)> {
        let rest = path.strip_prefix("/s/")?;
        let (exp, rest) = rest.split_once('/')?;
        let (sig, rest) = rest.split_once('/')?;
        let inner = &path[path.len() - rest.len() - 1..];
        let (Ok(exp), Some(sig)) = (exp.parse::<u64>(), decode_hex(sig)) else {
            return Some((Verdict::BadSignature, inner));
        };
        let Some((scope, _)) = rest.split_once('/') else {
            return Some((Verdict::BadSignature, inner));
        };
        let scope = format!("{scope}/");
        let genuine = self
            .keys
            .iter()
            .any(|k| Self::mac(k, &scope, exp).verify_slice(&sig).is_ok());
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let verdict = match (genuine, now > exp) {
            (false, _) => Verdict::BadSignature,
            (true, true) => Verdict::Expired,
            (true, false) => Verdict::Valid,
        };
        Some((verdict, inner))
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

    #[test]
    fn scoped_tokens() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let s = UrlSigner::new(b"k".to_vec());
        let prefix = s.sign_scope("title-81", now + Duration::from_secs(10));
        let url = format!("{prefix}/title-81/video/seg-1.m4s");
        assert_eq!(
            s.verify_scoped(&url, now),
            Some((Verdict::Valid, "/title-81/video/seg-1.m4s"))
        );
        let other = format!("{prefix}/title-82/seg-1.m4s");
        assert_eq!(
            s.verify_scoped(&other, now).unwrap().0,
            Verdict::BadSignature
        );
        assert_eq!(
            s.verify_scoped(&url, now + Duration::from_secs(11))
                .unwrap()
                .0,
            Verdict::Expired
        );
        assert_eq!(s.verify_scoped("/title-81/seg.m4s", now), None);
        assert_eq!(
            s.verify_scoped("/s/x/y/title-81/a", now).unwrap().0,
            Verdict::BadSignature
        );
        assert_eq!(
            s.verify_scoped("/s/5/00/title-81", now).unwrap().0,
            Verdict::BadSignature
        );
    }
}
