//! HLS playlists (RFC 8216): multivariant (master) and media playlists.
//!
//! Rendering follows the RFC's rules so that players and validators accept the result:
//! the `EXT-X-VERSION` is the lowest the playlist's features need (3 for decimal
//! durations, 4 for byte ranges, 6 for `EXT-X-MAP`); `EXT-X-TARGETDURATION` is the longest
//! segment duration rounded to the nearest integer (never less than it); attributes are
//! quoted exactly where the RFC says (`CODECS`, `AUDIO`, `URI`, `BYTERANGE` in
//! `EXT-X-MAP`) and `FRAME-RATE` has three decimals.
//!
//! Parsing is strict where a silent mistake would hurt: it rejects a missing `#EXTM3U`, a
//! variant without `BANDWIDTH`, a malformed attribute list, or a segment longer than the
//! target duration, with the line number in the error.
//!
//! # Example
//!
//! ```
//! use netflix_abr::manifest::hls::{MediaPlaylist, Segment};
//!
//! let mut playlist = MediaPlaylist::vod(vec![
//!     Segment::new("seg0.m4s", 4.004),
//!     Segment::new("seg1.m4s", 4.004),
//!     Segment::new("seg2.m4s", 1.5),
//! ]);
//! playlist.map = Some(netflix_abr::manifest::hls::Map::new("init.mp4"));
//! let text = playlist.render();
//! assert!(text.contains("#EXT-X-VERSION:6\n"));
//! assert!(text.contains("#EXT-X-TARGETDURATION:4\n"));
//! assert_eq!(MediaPlaylist::parse(&text)?, playlist);
//! # Ok::<(), netflix_abr::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::ladder::{Ladder, Rendition};
use std::fmt::Write as _;

/// A byte range: `length` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ByteRange {
    /// How many bytes.
    pub length: u64,
    /// The first byte; `None` continues right after the previous segment's range.
    pub offset: Option<u64>,
}

impl ByteRange {
    /// `length` bytes from `offset`.
    pub const fn new(length: u64, offset: u64) -> Self {
        Self {
            length,
            offset: Some(offset),
        }
    }

    fn render(&self) -> String {
        match self.offset {
            Some(o) => format!("{}@{}", self.length, o),
            None => self.length.to_string(),
        }
    }

    fn parse(s: &str, line: usize) -> Result<Self> {
        let bad = || {
            Error::parse(
                "HLS byte range",
                Some(line),
                format!("`{s}` is not length[@offset]"),
            )
        };
        let (len, off) = match s.split_once('@') {
            Some((l, o)) => (l, Some(o.parse().map_err(|_| bad())?)),
            None => (s, None),
        };
        Ok(Self {
            length: len.parse().map_err(|_| bad())?,
            offset: off,
        })
    }
}

/// The media initialization section (`EXT-X-MAP`): for fMP4, the `ftyp` and `moov` boxes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Map {
    /// Where it is.
    pub uri: String,
    /// Which bytes of it, if not the whole resource.
    pub byte_range: Option<ByteRange>,
}

impl Map {
    /// The whole resource at `uri`.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            byte_range: None,
        }
    }
}

/// One media segment.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Segment {
    /// Where it is.
    pub uri: String,
    /// Its duration in seconds (`EXTINF`).
    pub duration: f64,
    /// Which bytes of the resource, when segments share a file.
    pub byte_range: Option<ByteRange>,
}

impl Segment {
    /// A whole-file segment.
    pub fn new(uri: impl Into<String>, duration: f64) -> Self {
        Self {
            uri: uri.into(),
            duration,
            byte_range: None,
        }
    }
}

/// A media playlist: the segments of one rendition.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MediaPlaylist {
    /// `EXT-X-MEDIA-SEQUENCE`: the number of the first segment. Default 0.
    pub media_sequence: u64,
    /// `EXT-X-PLAYLIST-TYPE:VOD` (the playlist never changes). Default true.
    pub vod: bool,
    /// `EXT-X-INDEPENDENT-SEGMENTS`: every segment starts with a key frame. Default true.
    pub independent_segments: bool,
    /// `EXT-X-MAP`, applying to every segment.
    pub map: Option<Map>,
    /// The segments.
    pub segments: Vec<Segment>,
    /// `EXT-X-ENDLIST`. Default true.
    pub end_list: bool,
}

impl MediaPlaylist {
    /// A complete VoD playlist of `segments`.
    pub fn vod(segments: Vec<Segment>) -> Self {
        Self {
            media_sequence: 0,
            vod: true,
            independent_segments: true,
            map: None,
            segments,
            end_list: true,
        }
    }

    /// `EXT-X-TARGETDURATION`: the longest segment, rounded to the nearest integer (at least 1).
    pub fn target_duration(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| round_half_up(s.duration))
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// The lowest protocol version the playlist's features need.
    pub fn required_version(&self) -> u8 {
        let mut v = 1;
        if self.segments.iter().any(|s| s.duration.fract() != 0.0) {
            v = 3;
        }
        if self.segments.iter().any(|s| s.byte_range.is_some())
            || self.map.as_ref().is_some_and(|m| m.byte_range.is_some())
        {
            v = 4;
        }
        if self.map.is_some() {
            v = 6;
        }
        v
    }

    /// Renders the playlist.
    pub fn render(&self) -> String {
        let mut out = String::from("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", self.required_version());
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration());
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.vod {
            out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if let Some(m) = &self.map {
            let _ = write!(out, "#EXT-X-MAP:URI=\"{}\"", m.uri);
            if let Some(r) = &m.byte_range {
                let _ = write!(out, ",BYTERANGE=\"{}\"", r.render());
            }
            out.push('\n');
        }
        for s in &self.segments {
            let _ = writeln!(out, "#EXTINF:{},", s.duration);
            if let Some(r) = &s.byte_range {
                let _ = writeln!(out, "#EXT-X-BYTERANGE:{}", r.render());
            }
            out.push_str(&s.uri);
            out.push('\n');
        }
        if self.end_list {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }

    /// Parses a media playlist.
    ///
    /// # Errors
    ///
    /// When the text is not a media playlist, a tag or attribute is malformed, a segment has
    /// no duration, or a segment is longer than the target duration.
    pub fn parse(text: &str) -> Result<Self> {
        let lines = lines(text)?;
        let mut p = MediaPlaylist {
            media_sequence: 0,
            vod: false,
            independent_segments: false,
            map: None,
            segments: Vec::new(),
            end_list: false,
        };
        let mut target: Option<(u64, usize)> = None;
        let mut pending: Option<(f64, Option<ByteRange>)> = None;
        let mut version: Option<u8> = None;
        for (n, line) in lines {
            if let Some(rest) = line.strip_prefix("#EXT-X-VERSION:") {
                if version.is_some() {
                    return Err(Error::parse(
                        "HLS playlist",
                        Some(n),
                        "EXT-X-VERSION appears twice",
                    ));
                }
                version = Some(rest.parse().map_err(|_| int_err(n, rest))?);
            } else if let Some(rest) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                target = Some((rest.parse().map_err(|_| int_err(n, rest))?, n));
            } else if let Some(rest) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                p.media_sequence = rest.parse().map_err(|_| int_err(n, rest))?;
            } else if let Some(rest) = line.strip_prefix("#EXT-X-PLAYLIST-TYPE:") {
                p.vod = rest == "VOD";
            } else if line == "#EXT-X-INDEPENDENT-SEGMENTS" {
                p.independent_segments = true;
            } else if line == "#EXT-X-ENDLIST" {
                p.end_list = true;
            } else if let Some(rest) = line.strip_prefix("#EXT-X-MAP:") {
                let attrs = attributes(rest, n)?;
                let uri = attrs.quoted("URI", n)?.ok_or_else(|| missing(n, "URI"))?;
                let byte_range = attrs
                    .quoted("BYTERANGE", n)?
                    .map(|r| ByteRange::parse(&r, n))
                    .transpose()?;
                p.map = Some(Map { uri, byte_range });
            } else if let Some(rest) = line.strip_prefix("#EXTINF:") {
                let d = rest.split(',').next().unwrap_or_default();
                let duration: f64 = d.parse().map_err(|_| {
                    Error::parse(
                        "HLS playlist",
                        Some(n),
                        format!("EXTINF duration `{d}` is not a number"),
                    )
                })?;
                if !(duration.is_finite() && duration >= 0.0) {
                    return Err(Error::parse(
                        "HLS playlist",
                        Some(n),
                        "EXTINF duration is negative",
                    ));
                }
                pending = Some((duration, None));
            } else if let Some(rest) = line.strip_prefix("#EXT-X-BYTERANGE:") {
                let r = ByteRange::parse(rest, n)?;
                match pending.as_mut() {
                    Some(p) => p.1 = Some(r),
                    None => {
                        return Err(Error::parse(
                            "HLS playlist",
                            Some(n),
                            "EXT-X-BYTERANGE before EXTINF",
                        ));
                    }
                }
            } else if line.starts_with("#EXT-X-STREAM-INF") {
                return Err(Error::parse(
                    "HLS playlist",
                    Some(n),
                    "a multivariant tag in a media playlist",
                ));
            } else if line.starts_with('#') {
                // Other tags and comments are not part of this model.
            } else {
                let (duration, byte_range) = pending.take().ok_or_else(|| {
                    Error::parse("HLS playlist", Some(n), "a segment URI without EXTINF")
                })?;
                p.segments.push(Segment {
                    uri: line.to_string(),
                    duration,
                    byte_range,
                });
            }
        }
        let (target, at) =
            target.ok_or_else(|| Error::parse("HLS playlist", None, "no EXT-X-TARGETDURATION"))?;
        if let Some(s) = p
            .segments
            .iter()
            .find(|s| round_half_up(s.duration) > target)
        {
            return Err(Error::parse(
                "HLS playlist",
                Some(at),
                format!(
                    "segment {} lasts {} s, longer than the target duration {target}",
                    s.uri, s.duration
                ),
            ));
        }
        if let Some(v) = version {
            if v < p.required_version() {
                return Err(Error::parse(
                    "HLS playlist",
                    None,
                    format!(
                        "EXT-X-VERSION {v} is below the {} its features need",
                        p.required_version()
                    ),
                ));
            }
        }
        Ok(p)
    }
}

/// An audio rendition (`EXT-X-MEDIA:TYPE=AUDIO`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AudioRendition {
    /// `GROUP-ID`, which variants name in `AUDIO`.
    pub group_id: String,
    /// `NAME`, shown to users.
    pub name: String,
    /// `LANGUAGE` (RFC 5646).
    pub language: Option<String>,
    /// `DEFAULT=YES`.
    pub default: bool,
    /// `AUTOSELECT=YES`.
    pub autoselect: bool,
    /// `CHANNELS`, such as `"2"`.
    pub channels: Option<String>,
    /// `URI` of its media playlist.
    pub uri: Option<String>,
}

/// A variant stream (`EXT-X-STREAM-INF` and its playlist URI).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Variant {
    /// Its media playlist.
    pub uri: String,
    /// `BANDWIDTH`: the peak segment bitrate, bits per second (audio included).
    pub bandwidth: u64,
    /// `AVERAGE-BANDWIDTH`: the average segment bitrate.
    pub average_bandwidth: Option<u64>,
    /// `CODECS`, every codec in the variant (audio included).
    pub codecs: Option<String>,
    /// `RESOLUTION` as (width, height).
    pub resolution: Option<(u32, u32)>,
    /// `FRAME-RATE`.
    pub frame_rate: Option<f64>,
    /// `AUDIO`: the audio group.
    pub audio: Option<String>,
}

impl Variant {
    /// A variant for `rendition` with its average bitrate as both peak and average (use
    /// [`Variant::peak`] when the measured peak is known).
    pub fn from_rendition(uri: impl Into<String>, rendition: &Rendition) -> Self {
        Self {
            uri: uri.into(),
            bandwidth: u64::from(rendition.bitrate),
            average_bandwidth: Some(u64::from(rendition.bitrate)),
            codecs: Some(rendition.codecs.clone()),
            resolution: Some((rendition.width, rendition.height)),
            frame_rate: Some(rendition.frame_rate.as_f64()),
            audio: None,
        }
    }

    /// Sets the peak bitrate (`BANDWIDTH`).
    pub fn peak(mut self, bandwidth: u64) -> Self {
        self.bandwidth = bandwidth;
        self
    }
}

/// A multivariant (master) playlist: the renditions a player chooses between.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MultivariantPlaylist {
    /// `EXT-X-INDEPENDENT-SEGMENTS`.
    pub independent_segments: bool,
    /// Audio renditions.
    pub audio: Vec<AudioRendition>,
    /// Variant streams.
    pub variants: Vec<Variant>,
}

impl MultivariantPlaylist {
    /// One variant per rung of `ladder`, with playlists at `uri(i, rendition)`.
    pub fn from_ladder(ladder: &Ladder, uri: impl Fn(usize, &Rendition) -> String) -> Self {
        Self {
            independent_segments: true,
            audio: Vec::new(),
            variants: ladder
                .renditions()
                .iter()
                .enumerate()
                .map(|(i, r)| Variant::from_rendition(uri(i, r), r))
                .collect(),
        }
    }

    /// Renders the playlist, highest bandwidth first (the first variant is where players
    /// without a bandwidth estimate start, so put the one you want there if different).
    pub fn render(&self) -> String {
        let mut out = String::from("#EXTM3U\n");
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        for a in &self.audio {
            let _ = write!(
                out,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{}\",NAME=\"{}\"",
                a.group_id, a.name
            );
            if let Some(l) = &a.language {
                let _ = write!(out, ",LANGUAGE=\"{l}\"");
            }
            let _ = write!(out, ",DEFAULT={}", yes_no(a.default));
            let _ = write!(out, ",AUTOSELECT={}", yes_no(a.autoselect || a.default));
            if let Some(c) = &a.channels {
                let _ = write!(out, ",CHANNELS=\"{c}\"");
            }
            if let Some(u) = &a.uri {
                let _ = write!(out, ",URI=\"{u}\"");
            }
            out.push('\n');
        }
        for v in &self.variants {
            let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
            if let Some(a) = v.average_bandwidth {
                let _ = write!(out, ",AVERAGE-BANDWIDTH={a}");
            }
            if let Some(c) = &v.codecs {
                let _ = write!(out, ",CODECS=\"{c}\"");
            }
            if let Some((w, h)) = v.resolution {
                let _ = write!(out, ",RESOLUTION={w}x{h}");
            }
            if let Some(f) = v.frame_rate {
                let _ = write!(out, ",FRAME-RATE={f:.3}");
            }
            if let Some(a) = &v.audio {
                let _ = write!(out, ",AUDIO=\"{a}\"");
            }
            out.push('\n');
            out.push_str(&v.uri);
            out.push('\n');
        }
        out
    }

    /// Parses a multivariant playlist.
    ///
    /// # Errors
    ///
    /// When the text is not a multivariant playlist, an attribute list is malformed, a
    /// variant has no `BANDWIDTH` or no URI, or a variant names an audio group that does
    /// not exist.
    pub fn parse(text: &str) -> Result<Self> {
        let mut p = MultivariantPlaylist::default();
        let mut pending: Option<Variant> = None;
        for (n, line) in lines(text)? {
            if line == "#EXT-X-INDEPENDENT-SEGMENTS" {
                p.independent_segments = true;
            } else if let Some(rest) = line.strip_prefix("#EXT-X-MEDIA:") {
                let a = attributes(rest, n)?;
                if a.enumerated("TYPE", n)?.as_deref() != Some("AUDIO") {
                    continue;
                }
                p.audio.push(AudioRendition {
                    group_id: a
                        .quoted("GROUP-ID", n)?
                        .ok_or_else(|| missing(n, "GROUP-ID"))?,
                    name: a.quoted("NAME", n)?.ok_or_else(|| missing(n, "NAME"))?,
                    language: a.quoted("LANGUAGE", n)?,
                    default: a.enumerated("DEFAULT", n)?.as_deref() == Some("YES"),
                    autoselect: a.enumerated("AUTOSELECT", n)?.as_deref() == Some("YES"),
                    channels: a.quoted("CHANNELS", n)?,
                    uri: a.quoted("URI", n)?,
                });
            } else if let Some(rest) = line.strip_prefix("#EXT-X-STREAM-INF:") {
                let a = attributes(rest, n)?;
                let bandwidth = a
                    .integer("BANDWIDTH", n)?
                    .ok_or_else(|| missing(n, "BANDWIDTH"))?;
                let resolution = match a.enumerated("RESOLUTION", n)? {
                    None => None,
                    Some(r) => {
                        let (w, h) = r.split_once('x').ok_or_else(|| {
                            Error::parse(
                                "HLS playlist",
                                Some(n),
                                format!("RESOLUTION `{r}` is not WxH"),
                            )
                        })?;
                        Some((
                            w.parse().map_err(|_| int_err(n, w))?,
                            h.parse().map_err(|_| int_err(n, h))?,
                        ))
                    }
                };
                let frame_rate = match a.enumerated("FRAME-RATE", n)? {
                    None => None,
                    Some(f) => Some(f.parse::<f64>().map_err(|_| {
                        Error::parse(
                            "HLS playlist",
                            Some(n),
                            format!("FRAME-RATE `{f}` is not a number"),
                        )
                    })?),
                };
                pending = Some(Variant {
                    uri: String::new(),
                    bandwidth,
                    average_bandwidth: a.integer("AVERAGE-BANDWIDTH", n)?,
                    codecs: a.quoted("CODECS", n)?,
                    resolution,
                    frame_rate,
                    audio: a.quoted("AUDIO", n)?,
                });
            } else if line.starts_with("#EXTINF") || line.starts_with("#EXT-X-TARGETDURATION") {
                return Err(Error::parse(
                    "HLS playlist",
                    Some(n),
                    "a media playlist tag in a multivariant playlist",
                ));
            } else if line.starts_with('#') {
            } else {
                let mut v = pending.take().ok_or_else(|| {
                    Error::parse("HLS playlist", Some(n), "a URI without EXT-X-STREAM-INF")
                })?;
                v.uri = line.to_string();
                p.variants.push(v);
            }
        }
        if pending.is_some() {
            return Err(Error::parse(
                "HLS playlist",
                None,
                "EXT-X-STREAM-INF without a URI",
            ));
        }
        for v in &p.variants {
            if let Some(g) = &v.audio {
                if !p.audio.iter().any(|a| &a.group_id == g) {
                    return Err(Error::parse(
                        "HLS playlist",
                        None,
                        format!(
                            "variant {} names audio group `{g}`, which no EXT-X-MEDIA defines",
                            v.uri
                        ),
                    ));
                }
            }
        }
        Ok(p)
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "YES" } else { "NO" }
}

fn round_half_up(d: f64) -> u64 {
    (d + 0.5).floor().max(0.0) as u64
}

fn int_err(line: usize, s: &str) -> Error {
    Error::parse(
        "HLS playlist",
        Some(line),
        format!("`{s}` is not an integer"),
    )
}

fn missing(line: usize, name: &str) -> Error {
    Error::parse(
        "HLS playlist",
        Some(line),
        format!("required attribute {name} is missing"),
    )
}

/// The playlist's non-blank lines with their numbers, after checking the header.
fn lines(text: &str) -> Result<Vec<(usize, &str)>> {
    if text.starts_with('\u{feff}') {
        return Err(Error::parse(
            "HLS playlist",
            Some(1),
            "a byte-order mark is not allowed",
        ));
    }
    let mut it = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r').trim()))
        .filter(|(_, l)| !l.is_empty());
    match it.next() {
        Some((_, "#EXTM3U")) => Ok(it.collect()),
        _ => Err(Error::parse(
            "HLS playlist",
            Some(1),
            "the first line must be #EXTM3U",
        )),
    }
}

/// An attribute list: NAME=VALUE pairs, values quoted or not.
struct Attributes(Vec<(String, String, bool)>);

fn attributes(s: &str, line: usize) -> Result<Attributes> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let eq = s[i..].find('=').map(|p| p + i).ok_or_else(|| {
            Error::parse(
                "HLS playlist",
                Some(line),
                format!("attribute without `=` in `{s}`"),
            )
        })?;
        let name = &s[i..eq];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::parse(
                "HLS playlist",
                Some(line),
                format!("bad attribute name `{name}`"),
            ));
        }
        let (value, quoted, next) = if bytes.get(eq + 1) == Some(&b'"') {
            let close = s[eq + 2..].find('"').map(|p| p + eq + 2).ok_or_else(|| {
                Error::parse(
                    "HLS playlist",
                    Some(line),
                    format!("unterminated quote in {name}"),
                )
            })?;
            (&s[eq + 2..close], true, close + 1)
        } else {
            let end = s[eq + 1..].find(',').map_or(s.len(), |p| p + eq + 1);
            (&s[eq + 1..end], false, end)
        };
        if out
            .iter()
            .any(|(n, _, _): &(String, String, bool)| n == name)
        {
            return Err(Error::parse(
                "HLS playlist",
                Some(line),
                format!("attribute {name} appears twice"),
            ));
        }
        out.push((name.to_string(), value.to_string(), quoted));
        i = next;
        match bytes.get(i) {
            None => {}
            Some(b',') => i += 1,
            Some(_) => {
                return Err(Error::parse(
                    "HLS playlist",
                    Some(line),
                    format!("expected `,` after {name}"),
                ));
            }
        }
    }
    Ok(Attributes(out))
}

impl Attributes {
    fn get(&self, name: &str) -> Option<&(String, String, bool)> {
        self.0.iter().find(|(n, _, _)| n == name)
    }

    fn quoted(&self, name: &str, line: usize) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some((_, v, true)) => Ok(Some(v.clone())),
            Some(_) => Err(Error::parse(
                "HLS playlist",
                Some(line),
                format!("{name} must be a quoted string"),
            )),
        }
    }

    fn enumerated(&self, name: &str, line: usize) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some((_, v, false)) => Ok(Some(v.clone())),
            Some(_) => Err(Error::parse(
                "HLS playlist",
                Some(line),
                format!("{name} must not be quoted"),
            )),
        }
    }

    fn integer(&self, name: &str, line: usize) -> Result<Option<u64>> {
        self.enumerated(name, line)?
            .map(|v| v.parse().map_err(|_| int_err(line, &v)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn versions_and_target_duration() {
        let mut p = MediaPlaylist::vod(vec![Segment::new("a.ts", 4.0), Segment::new("b.ts", 3.0)]);
        assert_eq!(p.required_version(), 1);
        p.segments[1].duration = 4.5; // rounds up to 5
        assert_eq!((p.required_version(), p.target_duration()), (3, 5));
        p.segments[0].byte_range = Some(ByteRange::new(1000, 0));
        assert_eq!(p.required_version(), 4);
        p.map = Some(Map::new("init.mp4"));
        assert_eq!(p.required_version(), 6);
        p.segments[1].duration = 4.49; // rounds to 4
        assert_eq!(p.target_duration(), 4);
    }

    #[track_caller]
    fn check_err(text: &str, fragment: &str) {
        let e = MediaPlaylist::parse(text)
            .err()
            .or_else(|| MultivariantPlaylist::parse(text).err());
        let e = e.unwrap_or_else(|| panic!("accepted: {text}"));
        assert!(e.is_parse(), "{e}");
        assert!(e.to_string().contains(fragment), "{e} lacks {fragment}");
    }

    #[test]
    fn malformed_playlists_are_errors() {
        check_err("#EXT-X-TARGETDURATION:4\n", "#EXTM3U");
        check_err("\u{feff}#EXTM3U\n", "byte-order mark");
        check_err(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:5.6,\na.ts\n",
            "longer than the target",
        );
        check_err("#EXTM3U\n#EXT-X-TARGETDURATION:4\na.ts\n", "without EXTINF");
        check_err(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:x,\na.ts\n",
            "not a number",
        );
        check_err(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n",
            "twice",
        );
        check_err(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:4,\na.m4s\n",
            "below the 6",
        );
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=1\nv.m3u8\n";
        assert!(
            MultivariantPlaylist::parse(master)
                .unwrap_err()
                .to_string()
                .contains("BANDWIDTH is missing")
        );
        let quoted_res = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=\"1x1\"\nv.m3u8\n";
        assert!(
            MultivariantPlaylist::parse(quoted_res)
                .unwrap_err()
                .to_string()
                .contains("must not be quoted")
        );
        let bad_group = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nv.m3u8\n";
        assert!(
            MultivariantPlaylist::parse(bad_group)
                .unwrap_err()
                .to_string()
                .contains("audio group")
        );
        let dangling = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n";
        assert!(
            MultivariantPlaylist::parse(dangling)
                .unwrap_err()
                .to_string()
                .contains("without a URI")
        );
    }

    #[test]
    fn renders_the_ladder_as_a_multivariant_playlist() {
        let mut p = MultivariantPlaylist::from_ladder(&Ladder::envivio(), |i, _| {
            format!("v{i}/index.m3u8")
        });
        p.audio.push(AudioRendition {
            group_id: "aud".into(),
            name: "English".into(),
            language: Some("en".into()),
            default: true,
            autoselect: true,
            channels: Some("2".into()),
            uri: Some("audio/index.m3u8".into()),
        });
        for v in p.variants.iter_mut() {
            v.audio = Some("aud".into());
        }
        let text = p.render();
        assert!(text.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=300000,CODECS=\"avc1.4d401e\",RESOLUTION=320x180,FRAME-RATE=29.970,AUDIO=\"aud\"\nv0/index.m3u8\n"
        ), "{text}");
        let back = MultivariantPlaylist::parse(&text).unwrap();
        assert_eq!(back.variants.len(), 6);
        assert_eq!(back.audio, p.audio);
        assert_eq!(back.variants[5].resolution, Some((1920, 1080)));
    }

    fn segment() -> impl Strategy<Value = Segment> {
        (
            "[a-z0-9_]{1,12}\\.m4s",
            (1u32..100_000).prop_map(|ms| f64::from(ms) / 1000.0),
            proptest::option::of((1u64..1_000_000, 0u64..1_000_000_000)),
        )
            .prop_map(|(uri, duration, br)| Segment {
                uri,
                duration,
                byte_range: br.map(|(l, o)| ByteRange::new(l, o)),
            })
    }

    proptest! {
        #[test]
        fn media_playlists_round_trip(
            segments in proptest::collection::vec(segment(), 0..20),
            seq in 0u64..1000,
            map in proptest::option::of("[a-z]{1,8}\\.mp4"),
            vod in any::<bool>(),
        ) {
            let mut p = MediaPlaylist::vod(segments);
            p.media_sequence = seq;
            p.vod = vod;
            p.map = map.map(Map::new);
            let text = p.render();
            prop_assert_eq!(MediaPlaylist::parse(&text).unwrap(), p);
        }

        #[test]
        fn multivariant_playlists_round_trip(
            variants in proptest::collection::vec((1u64..100_000_000, 1u32..4000, 1u32..3000, 1u32..120_000), 1..10),
        ) {
            let p = MultivariantPlaylist {
                independent_segments: true,
                audio: Vec::new(),
                variants: variants
                    .iter()
                    .enumerate()
                    .map(|(i, (bw, w, h, fps_milli))| Variant {
                        uri: format!("v{i}.m3u8"),
                        bandwidth: *bw,
                        average_bandwidth: Some(bw / 2),
                        codecs: Some("avc1.64001f,mp4a.40.2".into()),
                        resolution: Some((*w, *h)),
                        frame_rate: Some(f64::from(*fps_milli) / 1000.0),
                        audio: None,
                    })
                    .collect(),
            };
            prop_assert_eq!(MultivariantPlaylist::parse(&p.render()).unwrap(), p);
        }
    }
}
