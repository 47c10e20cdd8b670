//! Reading RFC 6381 codec strings out of an fMP4 initialization segment.
//!
//! The string players need in `CODECS` / `codecs` comes from the sample entry's
//! configuration box: `avcC` (H.264), `hvcC` (HEVC), `vpcC` (VP9), `av1C` (AV1) or `esds`
//! (AAC). Reading it from the encoded file, not from the ladder, keeps the manifest true
//! to what the encoder actually produced (profile and level included).

use std::fmt::Write as _;

/// Iterates over the boxes in `data`: (type, payload).
fn boxes(mut data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 8 {
            return None;
        }
        let size32 = u32::from_be_bytes(data[0..4].try_into().ok()?) as usize;
        let kind: [u8; 4] = data[4..8].try_into().ok()?;
        let (header, size) = match size32 {
            1 => {
                let s = u64::from_be_bytes(data.get(8..16)?.try_into().ok()?) as usize;
                (16, s)
            }
            0 => (8, data.len()),
            s => (8, s),
        };
        if size < header || size > data.len() {
            return None;
        }
        let payload = &data[header..size];
        data = &data[size..];
        Some((kind, payload))
    })
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| k == kind).map(|(_, p)| p)
}

fn path<'a>(data: &'a [u8], kinds: &[&[u8; 4]]) -> Option<&'a [u8]> {
    kinds.iter().try_fold(data, |d, k| child(d, k))
}

/// The first track's RFC 6381 codec string, such as `avc1.64001f`, `hvc1.1.6.L93.B0`,
/// `vp09.00.21.08`, `av01.0.04M.08` or `mp4a.40.2`; `None` when the file has no
/// recognised sample entry.
///
/// ```
/// // A hand-made moov/trak/mdia/minf/stbl/stsd with an avc1 entry whose avcC says
/// // High profile (100 = 0x64), no constraints, level 3.1 (31 = 0x1f).
/// # fn bx(kind: &[u8], body: &[u8]) -> Vec<u8> {
/// #     let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
/// #     v.extend_from_slice(kind); v.extend_from_slice(body); v }
/// let avcc = bx(b"avcC", &[1, 0x64, 0x00, 0x1f, 0xff]);
/// let mut entry = vec![0u8; 78];
/// entry.extend(avcc);
/// let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
/// stsd.extend(bx(b"avc1", &entry));
/// let moov = bx(b"moov", &bx(b"trak", &bx(b"mdia", &bx(b"minf", &bx(b"stbl", &bx(b"stsd", &stsd))))));
/// assert_eq!(netflix_transcode::mp4::codec_string(&moov).as_deref(), Some("avc1.64001f"));
/// ```
pub fn codec_string(init: &[u8]) -> Option<String> {
    let stsd = path(
        init,
        &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
    )?;
    let entries = stsd.get(8..)?;
    let (kind, entry) = boxes(entries).next()?;
    match &kind {
        b"avc1" | b"avc3" => {
            let c = child(entry.get(78..)?, b"avcC")?;
            Some(format!(
                "{}.{:02x}{:02x}{:02x}",
                std::str::from_utf8(&kind).ok()?,
                c.get(1)?,
                c.get(2)?,
                c.get(3)?
            ))
        }
        b"hvc1" | b"hev1" => {
            let c = child(entry.get(78..)?, b"hvcC")?;
            hevc(std::str::from_utf8(&kind).ok()?, c)
        }
        b"vp09" => {
            let c = child(entry.get(78..)?, b"vpcC")?;
            // FullBox header (4 bytes), then profile, level, bitDepth(4) | chroma(3) | range(1).
            Some(format!(
                "vp09.{:02}.{:02}.{:02}",
                c.get(4)?,
                c.get(5)?,
                c.get(6)? >> 4
            ))
        }
        b"av01" => {
            let c = child(entry.get(78..)?, b"av1C")?;
            let (b1, b2) = (*c.get(1)?, *c.get(2)?);
            let profile = b1 >> 5;
            let level = b1 & 0x1f;
            let tier = if b2 & 0x80 != 0 { 'H' } else { 'M' };
            let high = b2 & 0x40 != 0;
            let twelve = b2 & 0x20 != 0;
            let depth = match (high, twelve) {
                (true, true) => 12,
                (true, false) => 10,
                _ => 8,
            };
            Some(format!("av01.{profile}.{level:02}{tier}.{depth:02}"))
        }
        b"mp4a" => {
            // AudioSampleEntry: 28 bytes of fields, then esds.
            let esds = child(entry.get(28..)?, b"esds")?;
            Some(format!("mp4a.40.{}", aac_object_type(esds).unwrap_or(2)))
        }
        _ => None,
    }
}

fn hevc(kind: &str, c: &[u8]) -> Option<String> {
    let b1 = *c.get(1)?;
    let space = match b1 >> 6 {
        0 => "",
        1 => "A",
        2 => "B",
        _ => "C",
    };
    let tier = if b1 & 0x20 != 0 { 'H' } else { 'L' };
    let profile = b1 & 0x1f;
    let compat = u32::from_be_bytes(c.get(2..6)?.try_into().ok()?).reverse_bits();
    let constraints = c.get(6..12)?;
    let level = *c.get(12)?;
    let mut s = format!("{kind}.{space}{profile}.{compat:X}.{tier}{level}");
    let last = constraints.iter().rposition(|&b| b != 0);
    if let Some(last) = last {
        for b in &constraints[..=last] {
            let _ = write!(s, ".{b:X}");
        }
    }
    Some(s)
}

/// The audio object type from an `esds` box's DecoderSpecificInfo.
fn aac_object_type(esds: &[u8]) -> Option<u8> {
    // Find the DecoderSpecificInfo tag (0x05) and read its first 5 bits.
    let body = esds.get(4..)?;
    let mut i = 0;
    while i < body.len() {
        let tag = body[i];
        i += 1;
        let mut len = 0usize;
        for _ in 0..4 {
            let b = *body.get(i)?;
            i += 1;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        match tag {
            0x03 => i += 3,  // ES_Descriptor: ES_ID(2) + flags(1), then nested descriptors
            0x04 => i += 13, // DecoderConfigDescriptor fixed fields
            0x05 => return Some(body.get(i)? >> 3),
            _ => i += len,
        }
    }
    None
}

/// The segment sizes and the bitrates HLS asks for: `AVERAGE-BANDWIDTH` is all media bits
/// over the whole duration; `BANDWIDTH` is the highest bitrate of any run of consecutive
/// segments lasting between half and one and a half target durations (RFC 8216 §4.3.4.2),
/// or of the single largest segment when no run qualifies.
///
/// `segments` are (bytes, seconds).
///
/// ```
/// let segs = [(500_000u64, 4.0), (1_000_000, 4.0), (500_000, 4.0)];
/// let (avg, peak) = netflix_transcode::mp4::bandwidth(&segs, 4);
/// assert_eq!(avg, 1_333_333);
/// assert_eq!(peak, 2_000_000);
/// ```
pub fn bandwidth(segments: &[(u64, f64)], target_duration: u64) -> (u64, u64) {
    let total_bytes: u64 = segments.iter().map(|s| s.0).sum();
    let total_secs: f64 = segments.iter().map(|s| s.1).sum();
    if segments.is_empty() || total_secs <= 0.0 {
        return (0, 0);
    }
    let avg = (total_bytes as f64 * 8.0 / total_secs).round() as u64;
    let (lo, hi) = (0.5 * target_duration as f64, 1.5 * target_duration as f64);
    let mut peak = 0.0f64;
    for i in 0..segments.len() {
        let (mut bytes, mut secs) = (0u64, 0.0f64);
        for s in &segments[i..] {
            bytes += s.0;
            secs += s.1;
            if secs > hi + 1e-9 {
                break;
            }
            if secs >= lo - 1e-9 {
                peak = peak.max(bytes as f64 * 8.0 / secs);
            }
        }
    }
    if peak == 0.0 {
        peak = segments
            .iter()
            .filter(|s| s.1 > 0.0)
            .map(|s| s.0 as f64 * 8.0 / s.1)
            .fold(0.0, f64::max);
    }
    (avg, (peak.round() as u64).max(avg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hevc_string_matches_the_spec_example() {
        // Main profile, compat flags 0x60000000 (bits 1 and 2), level 93, constraint B0.
        let mut c = vec![1u8, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93];
        c.extend([0; 10]);
        assert_eq!(hevc("hvc1", &c).unwrap(), "hvc1.1.6.L93.B0");
    }

    #[test]
    fn truncated_boxes_are_none_not_panics() {
        assert_eq!(codec_string(&[]), None);
        assert_eq!(codec_string(&[0, 0, 0, 50, b'm', b'o', b'o', b'v']), None);
        assert_eq!(codec_string(&[0, 0, 0, 1, b'm', b'o', b'o', b'v', 0]), None);
    }

    #[test]
    fn peak_falls_back_to_the_largest_segment() {
        // One 1-second segment against a target of 6: no window qualifies.
        let (avg, peak) = bandwidth(&[(100_000, 1.0)], 6);
        assert_eq!((avg, peak), (800_000, 800_000));
    }
}

/// The first track of a progressive MP4, as read from its `moov`: what validation needs
/// without running ffprobe.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Track {
    /// Ticks per second.
    pub timescale: u32,
    /// The sample entry's width and height.
    pub size: (u32, u32),
    /// Every sample in decode order: pts and dts in ticks, and whether it is a sync sample.
    pub packets: Vec<crate::probe::Packet>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads the first track's sample table (`stsz`, `stts`, `ctts`, `stss`) and size.
pub(crate) fn track(file: &[u8]) -> Option<Track> {
    let moov = child(file, b"moov")?;
    let trak = child(moov, b"trak")?;
    let mdia = child(trak, b"mdia")?;
    let mdhd = child(mdia, b"mdhd")?;
    let timescale = if mdhd.first()? == &1 {
        be32(mdhd, 20)?
    } else {
        be32(mdhd, 12)?
    };
    let stbl = path(mdia, &[b"minf", b"stbl"])?;
    let stsd = child(stbl, b"stsd")?;
    let (_, entry) = boxes(stsd.get(8..)?).next()?;
    let size = (
        u32::from(u16::from_be_bytes(entry.get(24..26)?.try_into().ok()?)),
        u32::from(u16::from_be_bytes(entry.get(26..28)?.try_into().ok()?)),
    );
    let stsz = child(stbl, b"stsz")?;
    let count = be32(stsz, 8)? as usize;
    // Decode times from stts runs.
    let stts = child(stbl, b"stts")?;
    let mut dts = Vec::with_capacity(count);
    let mut t: i64 = 0;
    for i in 0..be32(stts, 4)? as usize {
        let n = be32(stts, 8 + i * 8)?;
        let d = be32(stts, 12 + i * 8)?;
        for _ in 0..n {
            dts.push(t);
            t += i64::from(d);
        }
    }
    if dts.len() != count {
        return None;
    }
    // Composition offsets (signed in version 1).
    let mut cts = vec![0i64; count];
    if let Some(ctts) = child(stbl, b"ctts") {
        let v1 = ctts.first()? == &1;
        let mut k = 0;
        for i in 0..be32(ctts, 4)? as usize {
            let n = be32(ctts, 8 + i * 8)?;
            let raw = be32(ctts, 12 + i * 8)?;
            let off = if v1 {
                i64::from(raw as i32)
            } else {
                i64::from(raw)
            };
            for _ in 0..n {
                *cts.get_mut(k)? = off;
                k += 1;
            }
        }
    }
    let sync: Option<Vec<u32>> = child(stbl, b"stss").map(|stss| {
        (0..be32(stss, 4).unwrap_or(0) as usize)
            .filter_map(|i| be32(stss, 8 + i * 4))
            .collect()
    });
    let packets = (0..count)
        .map(|i| crate::probe::Packet {
            pts: Some(dts[i] + cts[i]),
            dts: Some(dts[i]),
            key: sync
                .as_ref()
                .is_none_or(|s| s.binary_search(&(i as u32 + 1)).is_ok()),
        })
        .collect();
    Some(Track {
        timescale,
        size,
        packets,
    })
}
