//! How values are stored: compression, chunking of large values, hashed-key envelopes, and
//! the client flags that mark each.
//!
//! memcached keeps a 32-bit *client flags* word beside every item; it is how a reader knows
//! what the writer did to the bytes. The bits used here:
//!
//! | bit | meaning | compatible with |
//! |---|---|---|
//! | `1 << 1` ([`FLAG_COMPRESSED`]) | gzip-compressed | spymemcached's `SerializingTranscoder` (and so EVCache's Java client) |
//! | `1 << 16` ([`FLAG_JSON`]) | a serde value, as JSON | this crate |
//! | `1 << 17` ([`FLAG_CHUNKED`]) | a manifest: the value is in chunk items | this crate |
//! | `1 << 18` ([`FLAG_KEYED`]) | the value starts with the original key (hashed keys) | this crate |
//!
//! A value that is none of these is stored as is, with flags 0: a Java client reads it as a
//! UTF-8 `String`, as spymemcached writes one.
//!
//! **Chunking.** memcached refuses items above its item size (`-I`, 1 MiB by default). A
//! larger value is cut into chunks stored under derived keys, and the key itself holds a
//! small manifest: chunk count, total length, chunk size and a CRC-32 of the whole value.
//! Chunks are written before the manifest, so a reader that sees a manifest finds its
//! chunks; a reader that finds a chunk missing or the checksum wrong (a newer write's
//! chunks mixed with an older manifest) treats the value as a miss, never as data.

use crate::error::{Error, Result};
use bytes::{BufMut, Bytes, BytesMut};
use std::io::{Read, Write};

/// gzip-compressed: spymemcached's `SerializingTranscoder.COMPRESSED`.
pub const FLAG_COMPRESSED: u32 = 1 << 1;
/// A serde value encoded as JSON.
pub const FLAG_JSON: u32 = 1 << 16;
/// The item is a chunk manifest.
pub const FLAG_CHUNKED: u32 = 1 << 17;
/// The value starts with the original key: `u16` length, then the key.
pub const FLAG_KEYED: u32 = 1 << 18;

const MANIFEST_MAGIC: &[u8; 4] = b"EVC1";
const MANIFEST_LEN: usize = 4 + 4 + 8 + 4 + 4 + 4 + 8;

/// Value encoding settings.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct CodecConfig {
    /// Values at least this large are gzip-compressed (when that makes them smaller).
    /// Default 16 KiB, spymemcached's threshold. `None`: never.
    pub compress_above: Option<usize>,
    /// The largest item written; larger values are chunked. Default 1 MiB less 1 KiB
    /// (memcached's default item size, less room for the key and item header).
    pub max_item: usize,
    /// The largest value accepted at all, after compression. Default 64 MiB.
    pub max_value: usize,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            compress_above: Some(16 * 1024),
            max_item: 1024 * 1024 - 1024,
            max_value: 64 * 1024 * 1024,
        }
    }
}

/// Compresses `value` if the configuration says so and it helps; returns the bytes and
/// the flags to store.
pub(crate) fn encode(value: Bytes, flags: u32, cfg: &CodecConfig) -> Result<(Bytes, u32)> {
    let (data, flags) = match cfg.compress_above {
        Some(min) if value.len() >= min => {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(value.len() / 2),
                flate2::Compression::fast(),
            );
            gz.write_all(&value)
                .map_err(|e| Error::Codec(format!("gzip: {e}")))?;
            let z = gz
                .finish()
                .map_err(|e| Error::Codec(format!("gzip: {e}")))?;
            if z.len() < value.len() {
                (Bytes::from(z), flags | FLAG_COMPRESSED)
            } else {
                (value, flags)
            }
        }
        _ => (value, flags),
    };
    if data.len() > cfg.max_value {
        return Err(Error::ValueTooLarge {
            size: data.len(),
            max: cfg.max_value,
        });
    }
    Ok((data, flags))
}

/// Undoes [`encode`]: decompresses when the flags say so. At most `max` bytes come out.
pub(crate) fn decode(data: Bytes, flags: u32, max: usize) -> Result<Bytes> {
    if flags & FLAG_COMPRESSED == 0 {
        return Ok(data);
    }
    let mut out = Vec::with_capacity(data.len() * 3);
    flate2::read::GzDecoder::new(&data[..])
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Codec(format!("a value flagged gzip does not inflate: {e}")))?;
    if out.len() > max {
        return Err(Error::ValueTooLarge {
            size: out.len(),
            max,
        });
    }
    Ok(Bytes::from(out))
}

/// Prefixes `value` with the original key (for hashed keys).
pub(crate) fn wrap_keyed(key: &[u8], value: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + key.len() + value.len());
    b.put_u16(key.len() as u16);
    b.put_slice(key);
    b.put_slice(value);
    b.freeze()
}

/// Splits a keyed value: `Ok(Some(value))` if it was written for `key`, `Ok(None)` if for
/// another key (a hash collision).
pub(crate) fn unwrap_keyed(key: &[u8], mut data: Bytes) -> Result<Option<Bytes>> {
    if data.len() < 2 {
        return Err(Error::Codec("a keyed value shorter than its header".into()));
    }
    let n = usize::from(u16::from_be_bytes([data[0], data[1]]));
    if data.len() < 2 + n {
        return Err(Error::Codec("a keyed value shorter than its key".into()));
    }
    if &data[2..2 + n] != key {
        return Ok(None);
    }
    let _ = data.split_to(2 + n);
    Ok(Some(data))
}

/// A chunked value's manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub chunks: u32,
    pub len: u64,
    pub crc: u32,
    /// The flags of the whole value (compression, JSON).
    pub flags: u32,
    pub chunk_size: u32,
    /// This write's id: chunk keys carry it, so a write never overwrites the chunks of
    /// the value it replaces (or, for an `add` that loses, of the value that stays).
    pub id: u64,
}

impl Manifest {
    pub(crate) fn to_bytes(self) -> Bytes {
        let mut b = BytesMut::with_capacity(MANIFEST_LEN);
        b.put_slice(MANIFEST_MAGIC);
        b.put_u32(self.chunks);
        b.put_u64(self.len);
        b.put_u32(self.crc);
        b.put_u32(self.flags);
        b.put_u32(self.chunk_size);
        b.put_u64(self.id);
        b.freeze()
    }

    pub(crate) fn parse(b: &[u8]) -> Result<Manifest> {
        if b.len() != MANIFEST_LEN || &b[..4] != MANIFEST_MAGIC {
            return Err(Error::Codec("a chunk manifest that does not parse".into()));
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(v)
        };
        let m = Manifest {
            chunks: u32_at(4),
            len: u64_at(8),
            crc: u32_at(16),
            flags: u32_at(20),
            chunk_size: u32_at(24),
            id: u64_at(28),
        };
        let expect = m.len.div_ceil(u64::from(m.chunk_size.max(1)));
        if m.chunk_size == 0 || u64::from(m.chunks) != expect {
            return Err(Error::Codec("a chunk manifest that does not add up".into()));
        }
        Ok(m)
    }

    /// Cuts `data` into chunks of at most `chunk_size` bytes and describes them.
    pub(crate) fn split(data: &Bytes, flags: u32, chunk_size: usize) -> (Manifest, Vec<Bytes>) {
        let chunk_size = chunk_size.max(1);
        let chunks: Vec<Bytes> = (0..data.len())
            .step_by(chunk_size)
            .map(|at| data.slice(at..(at + chunk_size).min(data.len())))
            .collect();
        let m = Manifest {
            chunks: chunks.len() as u32,
            len: data.len() as u64,
            crc: crc32fast::hash(data),
            flags,
            chunk_size: chunk_size as u32,
            id: write_id(),
        };
        (m, chunks)
    }

    /// Joins chunks back; `None` if they do not match the manifest.
    pub(crate) fn join(&self, chunks: &[Bytes]) -> Option<Bytes> {
        if chunks.len() != self.chunks as usize {
            return None;
        }
        let total: usize = chunks.iter().map(Bytes::len).sum();
        if total as u64 != self.len {
            return None;
        }
        let mut out = BytesMut::with_capacity(total);
        for c in chunks {
            out.put_slice(c);
        }
        (crc32fast::hash(&out) == self.crc).then(|| out.freeze())
    }
}

/// A process-unique, time-salted id for one chunked write.
fn write_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // splitmix64 of (time, pid, counter): ids differ across processes and restarts.
    let mut z = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ NEXT
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of chunk `i` of write `id` of the item stored under `wire_key`.
pub(crate) fn chunk_key(wire_key: &[u8], id: u64, i: u32) -> Vec<u8> {
    let suffix = format!("#{id:016x}.{i}");
    let mut k = if wire_key.len() + suffix.len() <= crate::client::MAX_KEY_LEN {
        wire_key.to_vec()
    } else {
        hashed_key(wire_key).into_bytes()
    };
    k.extend_from_slice(suffix.as_bytes());
    k
}

/// A key hashed to fit memcached: the MD5 of the key, in URL-safe base64 (22 bytes).
pub(crate) fn hashed_key(key: &[u8]) -> String {
    use md5::Digest;
    let d = md5::Md5::digest(key);
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(22);
    for c in d.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        let chars = c.len() + 1;
        for j in 0..chars {
            s.push(A[(n >> (18 - 6 * j) & 63) as usize] as char);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_round_trips_and_only_when_it_helps() {
        let cfg = CodecConfig::default();
        let big = Bytes::from(vec![b'a'; 100_000]);
        let (z, f) = encode(big.clone(), 0, &cfg).unwrap();
        assert_eq!(f, FLAG_COMPRESSED);
        assert!(z.len() < 1000);
        assert_eq!(decode(z, f, cfg.max_value).unwrap(), big);
        let small = Bytes::from_static(b"hello");
        assert_eq!(encode(small.clone(), 0, &cfg).unwrap(), (small, 0));
        // Incompressible data stays as it is.
        let mut x = 0x9E37_79B9u32;
        let noise: Vec<u8> = (0..40_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let (d, f) = encode(Bytes::from(noise.clone()), 0, &cfg).unwrap();
        assert_eq!((d.len(), f), (noise.len(), 0));
    }

    #[test]
    fn bad_compressed_data_and_bombs_are_typed_errors() {
        assert!(matches!(
            decode(Bytes::from_static(b"not gzip"), FLAG_COMPRESSED, 1 << 20),
            Err(Error::Codec(_))
        ));
        let (z, f) = encode(Bytes::from(vec![0u8; 1 << 20]), 0, &CodecConfig::default()).unwrap();
        assert!(matches!(
            decode(z, f, 1000),
            Err(Error::ValueTooLarge { max: 1000, .. })
        ));
    }

    #[test]
    fn manifests_round_trip_and_catch_mixed_chunks() {
        let data = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let (m, chunks) = Manifest::split(&data, FLAG_COMPRESSED, 3000);
        assert_eq!((m.chunks, chunks.len()), (4, 4));
        let m2 = Manifest::parse(&m.to_bytes()).unwrap();
        assert_eq!(m, m2);
        assert_eq!(m2.join(&chunks).unwrap(), data);
        let mut mixed = chunks.clone();
        mixed[2] = Bytes::from(vec![0u8; 3000]);
        assert_eq!(m2.join(&mixed), None);
        assert_eq!(m2.join(&chunks[..3]), None);
        assert!(Manifest::parse(b"EVC1 short").is_err());
    }

    #[test]
    fn keyed_values_detect_collisions() {
        let v = wrap_keyed(b"app:title", b"payload");
        assert_eq!(
            unwrap_keyed(b"app:title", v.clone()).unwrap().as_deref(),
            Some(&b"payload"[..])
        );
        assert_eq!(unwrap_keyed(b"app:other", v).unwrap(), None);
        assert!(unwrap_keyed(b"k", Bytes::from_static(b"\x00")).is_err());
    }

    #[test]
    fn hashed_keys_are_short_and_safe() {
        let h = hashed_key("k".repeat(400).as_bytes());
        assert_eq!(h.len(), 22);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(hashed_key(b""), "1B2M2Y8AsgTpgAmY7PhCfg");
        let ck = chunk_key(&vec![b'x'; 250], 7, 3);
        assert!(ck.len() <= 250 && ck.ends_with(b"#0000000000000007.3"));
    }
}
