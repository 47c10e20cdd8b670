//! DASH media presentation descriptions (ISO/IEC 23009-1), static (VoD), one period.
//!
//! Two ways to address segments are supported:
//!
//! * [`SegmentTemplate`] with a `SegmentTimeline` (`isoff-live` profile): numbered or timed
//!   segment files and an initialization segment per representation. Runs of equal durations
//!   are written as one `S` with a repeat count.
//! * [`SegmentBase`] with `indexRange` (`isoff-on-demand` profile): one file per
//!   representation, whose `sidx` box indexes its subsegments.
//!
//! Rendering follows the schema's rules: the MPD namespace, `profiles` and `minBufferTime`
//! are always present, `frameRate` is written as a fraction (`30000/1001`, never `29.97`),
//! durations as `PT…S`, ranges with both ends included, and child elements in schema order.
//!
//! # Example
//!
//! ```
//! use netflix_abr::ladder::Ladder;
//! use netflix_abr::manifest::dash::{Mpd, SegmentTemplate};
//!
//! // Six renditions of 48 four-second segments (timescale 1000).
//! let template = SegmentTemplate::numbered(1000, &[4000; 48]);
//! let mpd = Mpd::from_ladder(&Ladder::envivio(), template, 192.0);
//! let xml = mpd.render();
//! assert!(xml.contains(r#"<S t="0" d="4000" r="47"/>"#));
//! assert!(xml.contains(r#"frameRate="30000/1001""#));
//! assert_eq!(Mpd::parse(&xml)?, mpd);
//! # Ok::<(), netflix_abr::Error>(())
//! ```

use super::xml::{self, Element};
use crate::error::{Error, Result};
use crate::ladder::{FrameRate, Ladder};

const NAMESPACE: &str = "urn:mpeg:dash:schema:mpd:2011";
/// The profile for [`SegmentTemplate`] addressing.
pub const PROFILE_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";
/// The profile for [`SegmentBase`] addressing.
pub const PROFILE_ON_DEMAND: &str = "urn:mpeg:dash:profile:isoff-on-demand:2011";

/// One `S` element of a segment timeline: `r + 1` segments of duration `d` from time `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TimelineEntry {
    /// Start time in timescale units; `None` continues from the previous entry.
    pub t: Option<u64>,
    /// Duration of each segment in timescale units.
    pub d: u64,
    /// How many more segments of the same duration follow.
    pub r: u64,
}

/// `SegmentTemplate` with a `SegmentTimeline`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SegmentTemplate {
    /// Units per second.
    pub timescale: u64,
    /// The initialization segment's URL template (`$RepresentationID$` allowed).
    pub initialization: String,
    /// The media segments' URL template (`$RepresentationID$` with `$Number$` or `$Time$`).
    pub media: String,
    /// The number of the first segment (`$Number$`).
    pub start_number: u64,
    /// The segments' durations.
    pub timeline: Vec<TimelineEntry>,
}

impl SegmentTemplate {
    /// Numbered segments `seg-$RepresentationID$-$Number%05d$.m4s` (from 1) with an
    /// `init-$RepresentationID$.mp4` initialization segment, of the given durations (in
    /// `timescale` units). Runs of equal durations are compressed with `r`.
    pub fn numbered(timescale: u64, durations: &[u64]) -> Self {
        let mut timeline: Vec<TimelineEntry> = Vec::new();
        for &d in durations {
            match timeline.last_mut() {
                Some(last) if last.d == d => last.r += 1,
                _ => timeline.push(TimelineEntry {
                    t: timeline.is_empty().then_some(0),
                    d,
                    r: 0,
                }),
            }
        }
        Self {
            timescale: timescale.max(1),
            initialization: "init-$RepresentationID$.mp4".into(),
            media: "seg-$RepresentationID$-$Number%05d$.m4s".into(),
            start_number: 1,
            timeline,
        }
    }

    /// Every segment's (start, duration) in timescale units.
    pub fn segments(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut t = 0;
        for e in &self.timeline {
            if let Some(start) = e.t {
                t = start;
            }
            for _ in 0..=e.r {
                out.push((t, e.d));
                t += e.d;
            }
        }
        out
    }

    fn element(&self) -> Element {
        let mut timeline = Element::new("SegmentTimeline");
        for e in &self.timeline {
            let mut s = Element::new("S").set_opt("t", e.t).set("d", e.d);
            if e.r > 0 {
                s = s.set("r", e.r);
            }
            timeline = timeline.child(s);
        }
        let mut t = Element::new("SegmentTemplate")
            .set("timescale", self.timescale)
            .set("initialization", &self.initialization)
            .set("media", &self.media);
        if self.media.contains("$Number") {
            t = t.set("startNumber", self.start_number);
        }
        t.child(timeline)
    }

    fn parse(e: &Element) -> Result<Self> {
        let timeline = e
            .first("SegmentTimeline")
            .map(|tl| {
                tl.children_named("S")
                    .map(|s| {
                        Ok(TimelineEntry {
                            t: opt_u64(s, "t")?,
                            d: opt_u64(s, "d")?.ok_or_else(|| missing("S", "d"))?,
                            r: opt_u64(s, "r")?.unwrap_or(0),
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .ok_or_else(|| missing("SegmentTemplate", "SegmentTimeline"))?;
        Ok(Self {
            timescale: opt_u64(e, "timescale")?.unwrap_or(1),
            initialization: e.attr("initialization").unwrap_or_default().to_string(),
            media: e
                .attr("media")
                .ok_or_else(|| missing("SegmentTemplate", "media"))?
                .to_string(),
            start_number: opt_u64(e, "startNumber")?.unwrap_or(1),
            timeline,
        })
    }
}

/// `SegmentBase`: one file, indexed by its `sidx` box.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SegmentBase {
    /// The file (`BaseURL`).
    pub url: String,
    /// The `sidx` box: first and last byte, both included.
    pub index_range: (u64, u64),
    /// The initialization (`ftyp` + `moov`): first and last byte, both included.
    pub initialization_range: (u64, u64),
}

impl SegmentBase {
    /// Finds the initialization (`ftyp` + `moov`) and index (`sidx`) ranges of a fragmented
    /// MP4 file (as written by `ffmpeg -movflags +frag_keyframe+empty_moov+global_sidx`) by
    /// walking its top-level boxes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Parse`](crate::ErrorKind::Parse) when a box header is cut short or a
    /// size runs past the end, or when there is no `moov` or no `sidx` box.
    ///
    /// # Example
    ///
    /// ```
    /// use netflix_abr::manifest::dash::SegmentBase;
    ///
    /// fn mp4_box(kind: &[u8; 4], body: usize) -> Vec<u8> {
    ///     let mut b = ((8 + body) as u32).to_be_bytes().to_vec();
    ///     b.extend_from_slice(kind);
    ///     b.resize(8 + body, 0);
    ///     b
    /// }
    /// let file = [mp4_box(b"ftyp", 16), mp4_box(b"moov", 100), mp4_box(b"sidx", 44), mp4_box(b"moof", 8)].concat();
    /// let base = SegmentBase::from_fmp4("video.mp4", &file)?;
    /// assert_eq!(base.initialization_range, (0, 131));
    /// assert_eq!(base.index_range, (132, 183));
    /// # Ok::<(), netflix_abr::Error>(())
    /// ```
    pub fn from_fmp4(url: impl Into<String>, bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::parse("fragmented MP4", None, reason);
        let (mut offset, mut moov_end, mut sidx) = (0u64, None, None);
        let len = bytes.len() as u64;
        while offset < len {
            let at = offset as usize;
            let header = bytes
                .get(at..at + 8)
                .ok_or_else(|| bad(format!("box header cut short at byte {offset}")))?;
            let mut size = u64::from(u32::from_be_bytes([
                header[0], header[1], header[2], header[3],
            ]));
            let kind = [header[4], header[5], header[6], header[7]];
            if size == 1 {
                let large = bytes
                    .get(at + 8..at + 16)
                    .ok_or_else(|| bad(format!("64-bit box size cut short at byte {offset}")))?;
                size = u64::from_be_bytes(large.try_into().unwrap_or([0; 8]));
            } else if size == 0 {
                size = len - offset;
            }
            if size < 8 || offset + size > len {
                return Err(bad(format!(
                    "box {:?} at byte {offset} has size {size}, past the end ({len} bytes)",
                    String::from_utf8_lossy(&kind)
                )));
            }
            match &kind {
                b"moov" => moov_end = Some(offset + size - 1),
                b"sidx" if sidx.is_none() => sidx = Some((offset, offset + size - 1)),
                _ => {}
            }
            offset += size;
        }
        let moov_end = moov_end.ok_or_else(|| bad("no moov box".into()))?;
        let index_range =
            sidx.ok_or_else(|| bad("no sidx box (write it with +global_sidx)".into()))?;
        Ok(Self {
            url: url.into(),
            index_range,
            initialization_range: (0, moov_end),
        })
    }
}

/// One representation of an adaptation set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Representation {
    /// `id`.
    pub id: String,
    /// `bandwidth`, bits per second.
    pub bandwidth: u32,
    /// `codecs`.
    pub codecs: String,
    /// `width` and `height`, for video.
    pub resolution: Option<(u32, u32)>,
    /// `frameRate`, for video.
    pub frame_rate: Option<FrameRate>,
    /// `audioSamplingRate`, for audio.
    pub audio_sampling_rate: Option<u32>,
    /// `SegmentBase` addressing, when the adaptation set has no template.
    pub segment_base: Option<SegmentBase>,
}

/// The media types of adaptation sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ContentType {
    /// `video/mp4`.
    Video,
    /// `audio/mp4`.
    Audio,
}

impl ContentType {
    fn name(self) -> &'static str {
        match self {
            ContentType::Video => "video",
            ContentType::Audio => "audio",
        }
    }
}

/// An adaptation set: interchangeable representations of one content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AdaptationSet {
    /// Video or audio.
    pub content_type: ContentType,
    /// `lang`, for audio.
    pub lang: Option<String>,
    /// Segment addressing shared by every representation.
    pub segment_template: Option<SegmentTemplate>,
    /// The representations, lowest bandwidth first.
    pub representations: Vec<Representation>,
}

/// A static (VoD) MPD with one period.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Mpd {
    /// `profiles`.
    pub profiles: String,
    /// `minBufferTime`, seconds.
    pub min_buffer_time: f64,
    /// `mediaPresentationDuration`, seconds.
    pub duration: f64,
    /// The adaptation sets.
    pub adaptation_sets: Vec<AdaptationSet>,
}

impl Mpd {
    /// One video adaptation set from `ladder`, addressed by `template`, lasting `duration` s.
    pub fn from_ladder(ladder: &Ladder, template: SegmentTemplate, duration: f64) -> Self {
        let representations = ladder
            .renditions()
            .iter()
            .enumerate()
            .map(|(i, r)| Representation {
                id: format!("v{i}"),
                bandwidth: r.bitrate,
                codecs: r.codecs.clone(),
                resolution: Some((r.width, r.height)),
                frame_rate: Some(r.frame_rate),
                audio_sampling_rate: None,
                segment_base: None,
            })
            .collect();
        Self {
            profiles: PROFILE_LIVE.into(),
            min_buffer_time: 2.0,
            duration,
            adaptation_sets: vec![AdaptationSet {
                content_type: ContentType::Video,
                lang: None,
                segment_template: Some(template),
                representations,
            }],
        }
    }

    /// Renders the MPD as XML.
    pub fn render(&self) -> String {
        let mut period = Element::new("Period").set("id", "0").set("start", "PT0S");
        for a in &self.adaptation_sets {
            let mut set = Element::new("AdaptationSet")
                .set("contentType", a.content_type.name())
                .set("mimeType", format!("{}/mp4", a.content_type.name()))
                .set_opt("lang", a.lang.as_ref());
            let on_demand = a.representations.iter().any(|r| r.segment_base.is_some());
            set = if on_demand {
                set.set("subsegmentAlignment", "true")
                    .set("subsegmentStartsWithSAP", "1")
            } else {
                set.set("segmentAlignment", "true").set("startWithSAP", "1")
            };
            if let Some(t) = &a.segment_template {
                set = set.child(t.element());
            }
            for r in &a.representations {
                let mut rep = Element::new("Representation")
                    .set("id", &r.id)
                    .set("bandwidth", r.bandwidth)
                    .set("codecs", &r.codecs)
                    .set_opt("width", r.resolution.map(|x| x.0))
                    .set_opt("height", r.resolution.map(|x| x.1))
                    .set_opt("frameRate", r.frame_rate.map(frame_rate))
                    .set_opt("audioSamplingRate", r.audio_sampling_rate);
                if let Some(b) = &r.segment_base {
                    rep = rep
                        .child(Element {
                            text: b.url.clone(),
                            ..Element::new("BaseURL")
                        })
                        .child(
                            Element::new("SegmentBase")
                                .set(
                                    "indexRange",
                                    format!("{}-{}", b.index_range.0, b.index_range.1),
                                )
                                .set("indexRangeExact", "true")
                                .child(Element::new("Initialization").set(
                                    "range",
                                    format!(
                                        "{}-{}",
                                        b.initialization_range.0, b.initialization_range.1
                                    ),
                                )),
                        );
                }
                set = set.child(rep);
            }
            period = period.child(set);
        }
        Element::new("MPD")
            .set("xmlns", NAMESPACE)
            .set("profiles", &self.profiles)
            .set("type", "static")
            .set("mediaPresentationDuration", duration(self.duration))
            .set("minBufferTime", duration(self.min_buffer_time))
            .child(period)
            .render_document()
    }

    /// Parses an MPD of the shape this module renders (static, one period).
    ///
    /// # Errors
    ///
    /// When the XML is malformed, the root is not a DASH `MPD`, or a required attribute is
    /// missing or malformed.
    pub fn parse(text: &str) -> Result<Self> {
        let root = xml::parse(text)?;
        if root.name != "MPD" || root.attr("xmlns") != Some(NAMESPACE) {
            return Err(Error::parse(
                "MPD",
                None,
                "the root must be <MPD> in the DASH namespace",
            ));
        }
        let period = root
            .first("Period")
            .ok_or_else(|| missing("MPD", "Period"))?;
        let mut sets = Vec::new();
        for a in period.children_named("AdaptationSet") {
            let content_type = match a.attr("contentType").or_else(|| a.attr("mimeType")) {
                Some(t) if t.starts_with("audio") => ContentType::Audio,
                _ => ContentType::Video,
            };
            let segment_template = a
                .first("SegmentTemplate")
                .map(SegmentTemplate::parse)
                .transpose()?;
            let mut reps = Vec::new();
            for r in a.children_named("Representation") {
                let bandwidth = opt_u64(r, "bandwidth")?
                    .ok_or_else(|| missing("Representation", "bandwidth"))?;
                let bandwidth = u32::try_from(bandwidth).map_err(|_| {
                    Error::parse(
                        "MPD",
                        None,
                        format!("bandwidth {bandwidth} exceeds 2^32 - 1"),
                    )
                })?;
                let resolution = match (opt_u64(r, "width")?, opt_u64(r, "height")?) {
                    (Some(w), Some(h)) => Some((w as u32, h as u32)),
                    _ => None,
                };
                let segment_base = match r.first("SegmentBase") {
                    None => None,
                    Some(b) => Some(SegmentBase {
                        url: r
                            .first("BaseURL")
                            .map(|u| u.text.clone())
                            .ok_or_else(|| missing("Representation", "BaseURL"))?,
                        index_range: range(
                            b.attr("indexRange")
                                .ok_or_else(|| missing("SegmentBase", "indexRange"))?,
                        )?,
                        initialization_range: range(
                            b.first("Initialization")
                                .and_then(|i| i.attr("range"))
                                .ok_or_else(|| missing("SegmentBase", "Initialization@range"))?,
                        )?,
                    }),
                };
                reps.push(Representation {
                    id: r
                        .attr("id")
                        .ok_or_else(|| missing("Representation", "id"))?
                        .to_string(),
                    bandwidth,
                    codecs: r.attr("codecs").unwrap_or_default().to_string(),
                    resolution,
                    frame_rate: r.attr("frameRate").map(parse_frame_rate).transpose()?,
                    audio_sampling_rate: opt_u64(r, "audioSamplingRate")?.map(|v| v as u32),
                    segment_base,
                });
            }
            sets.push(AdaptationSet {
                content_type,
                lang: a.attr("lang").map(str::to_string),
                segment_template,
                representations: reps,
            });
        }
        Ok(Self {
            profiles: root
                .attr("profiles")
                .ok_or_else(|| missing("MPD", "profiles"))?
                .to_string(),
            min_buffer_time: parse_duration(
                root.attr("minBufferTime")
                    .ok_or_else(|| missing("MPD", "minBufferTime"))?,
            )?,
            duration: parse_duration(
                root.attr("mediaPresentationDuration")
                    .ok_or_else(|| missing("MPD", "mediaPresentationDuration"))?,
            )?,
            adaptation_sets: sets,
        })
    }
}

fn missing(element: &str, attr: &str) -> Error {
    Error::parse("MPD", None, format!("{element} has no {attr}"))
}

fn opt_u64(e: &Element, name: &str) -> Result<Option<u64>> {
    e.attr(name)
        .map(|v| {
            v.parse().map_err(|_| {
                Error::parse(
                    "MPD",
                    None,
                    format!("{}@{name} `{v}` is not a number", e.name),
                )
            })
        })
        .transpose()
}

fn frame_rate(f: FrameRate) -> String {
    if f.den == 1 {
        f.num.to_string()
    } else {
        format!("{}/{}", f.num, f.den)
    }
}

fn parse_frame_rate(s: &str) -> Result<FrameRate> {
    let bad = || Error::parse("MPD", None, format!("frameRate `{s}` is not N or N/D"));
    match s.split_once('/') {
        Some((n, d)) => Ok(FrameRate::new(
            n.parse().map_err(|_| bad())?,
            d.parse().map_err(|_| bad())?,
        )),
        None => Ok(FrameRate::integer(s.parse().map_err(|_| bad())?)),
    }
}

fn range(s: &str) -> Result<(u64, u64)> {
    let bad = || Error::parse("MPD", None, format!("range `{s}` is not first-last"));
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// `PT{seconds}S` with millisecond precision.
fn duration(secs: f64) -> String {
    format!("PT{:.3}S", secs.max(0.0))
}

/// An `xs:duration` of days, hours, minutes and seconds, in seconds.
fn parse_duration(s: &str) -> Result<f64> {
    let bad = || Error::parse("MPD", None, format!("duration `{s}` is not an xs:duration"));
    let rest = s.strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    if rest.is_empty() || time == Some("") {
        return Err(bad());
    }
    let mut total = 0.0;
    let mut take = |part: &str, units: &[(char, f64)]| -> Result<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let (_, mult) = units.iter().find(|(u, _)| *u == c).ok_or_else(bad)?;
                total += num.parse::<f64>().map_err(|_| bad())? * mult;
                num.clear();
            }
        }
        if num.is_empty() { Ok(()) } else { Err(bad()) }
    };
    take(date, &[('D', 86_400.0)])?;
    if let Some(t) = time {
        take(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        for (s, v) in [
            ("PT4S", 4.0),
            ("PT4.000S", 4.0),
            ("PT0H1M4.5S", 64.5),
            ("P1DT1S", 86_401.0),
            ("P0D", 0.0),
        ] {
            assert_eq!(parse_duration(s).unwrap(), v, "{s}");
        }
        for s in ["PT", "P", "4.0", "PT4,5S", "PT4X"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert_eq!(duration(193.68), "PT193.680S");
    }

    #[test]
    fn timelines_compress_and_expand() {
        let t = SegmentTemplate::numbered(48000, &[47104, 48128, 48128, 48128, 512]);
        assert_eq!(t.timeline.len(), 3);
        assert_eq!(
            t.timeline[1],
            TimelineEntry {
                t: None,
                d: 48128,
                r: 2
            }
        );
        assert_eq!(t.segments().last(), Some(&(47104 + 3 * 48128, 512)));
    }

    #[test]
    fn segment_base_round_trips() {
        let mpd = Mpd {
            profiles: PROFILE_ON_DEMAND.into(),
            min_buffer_time: 1.5,
            duration: 4.0,
            adaptation_sets: vec![AdaptationSet {
                content_type: ContentType::Video,
                lang: None,
                segment_template: None,
                representations: vec![Representation {
                    id: "v0".into(),
                    bandwidth: 844_624,
                    codecs: "avc1.42c00d".into(),
                    resolution: Some((320, 240)),
                    frame_rate: Some(FrameRate::integer(30)),
                    audio_sampling_rate: None,
                    segment_base: Some(SegmentBase {
                        url: "video.mp4".into(),
                        index_range: (770, 857),
                        initialization_range: (0, 769),
                    }),
                }],
            }],
        };
        let xml = mpd.render();
        assert!(
            xml.contains(r#"<SegmentBase indexRange="770-857" indexRangeExact="true">"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<Initialization range="0-769"/>"#));
        assert_eq!(Mpd::parse(&xml).unwrap(), mpd);
    }

    #[test]
    fn bad_mpds_are_errors() {
        let good = Mpd::from_ladder(
            &Ladder::envivio(),
            SegmentTemplate::numbered(1000, &[4000; 3]),
            12.0,
        )
        .render();
        for (from, to, frag) in [
            ("urn:mpeg:dash:schema:mpd:2011", "urn:other", "namespace"),
            (
                r#"bandwidth="300000""#,
                r#"bandwidth="lots""#,
                "not a number",
            ),
            (r#"bandwidth="300000""#, r#"bandwidth="9999999999""#, "2^32"),
            ("30000/1001", "29.97", "frameRate"),
            (r#"d="4000""#, r#"x="4000""#, "no d"),
            (
                r#"minBufferTime="PT2.000S""#,
                r#"minBufferTime="2s""#,
                "xs:duration",
            ),
        ] {
            let bad = good.replacen(from, to, 1);
            let e = Mpd::parse(&bad).unwrap_err();
            assert!(e.to_string().contains(frag), "{from}->{to}: {e}");
        }
    }

    proptest! {
        #[test]
        fn template_mpds_round_trip(
            durations in proptest::collection::vec(1u64..20_000, 1..60),
            bitrates in proptest::collection::btree_set(1u32..50_000_000, 1..8),
            ts in 1u64..100_000,
        ) {
            let renditions = bitrates
                .iter()
                .map(|b| crate::ladder::Rendition::new(640, 360, *b, "avc1.64001f", FrameRate::new(30000, 1001)))
                .collect();
            let ladder = Ladder::new(renditions).unwrap();
            let total: u64 = durations.iter().sum();
            let secs = (total as f64 / ts as f64 * 1000.0).round() / 1000.0;
            let mpd = Mpd::from_ladder(&ladder, SegmentTemplate::numbered(ts, &durations), secs);
            let back = Mpd::parse(&mpd.render()).unwrap();
            prop_assert_eq!(&back, &mpd);
            let t = back.adaptation_sets[0].segment_template.as_ref().unwrap();
            prop_assert_eq!(t.segments().iter().map(|s| s.1).collect::<Vec<_>>(), durations);
        }
    }
}
