//! What we render, read back by independent parsers: `m3u8-rs` for HLS and `dash-mpd-core`
//! for DASH. Both are lax (they file what they do not understand under "unknown" rather
//! than fail), so every test checks the parsed values and that nothing was left unknown.

use netflix_abr::ladder::{FrameRate, Ladder, Rendition};
use netflix_abr::manifest::dash::{
    AdaptationSet, ContentType, Mpd, PROFILE_ON_DEMAND, Representation, SegmentBase,
    SegmentTemplate,
};
use netflix_abr::manifest::hls::{
    AudioRendition, ByteRange, Map, MediaPlaylist, MultivariantPlaylist, Segment, Variant,
};
use proptest::prelude::*;

fn m3u8_master(text: &str) -> m3u8_rs::MasterPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => m,
        other => panic!("not a multivariant playlist: {other:?}\n{text}"),
    }
}

fn m3u8_media(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
        other => panic!("not a media playlist: {other:?}\n{text}"),
    }
}

#[test]
fn multivariant_playlist_reads_back_in_m3u8_rs() {
    let ladder = Ladder::apple_hls();
    let mut playlist =
        MultivariantPlaylist::from_ladder(&ladder, |i, _| format!("v{i}/index.m3u8"));
    playlist.audio.push(AudioRendition {
        group_id: "aud".into(),
        name: "English".into(),
        language: Some("en".into()),
        default: true,
        autoselect: true,
        channels: Some("2".into()),
        uri: Some("audio/en.m3u8".into()),
    });
    for v in &mut playlist.variants {
        v.audio = Some("aud".into());
        v.bandwidth = v.bandwidth * 11 / 10; // a measured peak above the average
        v.codecs = Some(format!(
            "{},mp4a.40.2",
            v.codecs.as_deref().unwrap_or_default()
        ));
    }
    let text = playlist.render();
    let m = m3u8_master(&text);
    assert!(m.unknown_tags.is_empty(), "{:?}", m.unknown_tags);
    assert!(m.independent_segments);
    assert_eq!(m.variants.len(), ladder.len());
    for (ours, theirs) in playlist.variants.iter().zip(&m.variants) {
        assert_eq!(theirs.uri, ours.uri);
        assert_eq!(theirs.bandwidth, ours.bandwidth);
        assert_eq!(theirs.average_bandwidth, ours.average_bandwidth);
        assert_eq!(theirs.codecs, ours.codecs);
        let (w, h) = ours.resolution.unwrap();
        let r = theirs.resolution.unwrap();
        assert_eq!((r.width, r.height), (u64::from(w), u64::from(h)));
        assert!((theirs.frame_rate.unwrap() - ours.frame_rate.unwrap()).abs() < 1e-3);
        assert_eq!(theirs.audio.as_deref(), Some("aud"));
        assert!(
            theirs
                .other_attributes
                .as_ref()
                .is_none_or(|o| o.is_empty())
        );
    }
    assert_eq!(m.alternatives.len(), 1);
    let a = &m.alternatives[0];
    assert_eq!(a.media_type, m3u8_rs::AlternativeMediaType::Audio);
    assert_eq!((a.group_id.as_str(), a.name.as_str()), ("aud", "English"));
    assert!(a.default && a.autoselect);
    assert_eq!(a.language.as_deref(), Some("en"));
    assert_eq!(a.channels.as_deref(), Some("2"));
    assert_eq!(a.uri.as_deref(), Some("audio/en.m3u8"));
    // FRAME-RATE is written with three decimals, as the RFC's examples do.
    assert!(text.contains("FRAME-RATE=30.000,"), "{text}");
}

#[test]
fn fmp4_media_playlist_reads_back_in_m3u8_rs() {
    let mut p = MediaPlaylist::vod(
        (0..10)
            .map(|i| Segment::new(format!("seg{i:03}.m4s"), if i == 9 { 2.5 } else { 4.004 }))
            .collect(),
    );
    p.map = Some(Map::new("init.mp4"));
    let text = p.render();
    let m = m3u8_media(&text);
    assert!(m.unknown_tags.is_empty(), "{:?}", m.unknown_tags);
    assert_eq!(m.version, Some(6));
    assert_eq!(m.target_duration, 4);
    assert!(m.end_list && m.independent_segments);
    assert_eq!(m.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    assert_eq!(m.segments.len(), 10);
    assert_eq!(
        m.segments[0].map.as_ref().map(|m| m.uri.as_str()),
        Some("init.mp4")
    );
    for (ours, theirs) in p.segments.iter().zip(&m.segments) {
        assert!(theirs.unknown_tags.is_empty());
        assert_eq!(theirs.uri, ours.uri);
        assert!((f64::from(theirs.duration) - ours.duration).abs() < 1e-3);
    }
}

#[test]
fn byte_range_playlist_reads_back_in_m3u8_rs() {
    let mut offset = 900;
    let mut p = MediaPlaylist::vod(
        (0..5)
            .map(|i| {
                let len = 100_000 + 1_000 * i;
                let mut s = Segment::new("all.mp4", 2.0);
                s.byte_range = Some(ByteRange {
                    length: len,
                    offset: Some(offset),
                });
                offset += len;
                s
            })
            .collect(),
    );
    p.map = Some(Map {
        uri: "all.mp4".into(),
        byte_range: Some(ByteRange {
            length: 900,
            offset: Some(0),
        }),
    });
    let text = p.render();
    let m = m3u8_media(&text);
    assert!(m.unknown_tags.is_empty());
    let map = m.segments[0].map.as_ref().expect("EXT-X-MAP");
    let br = map.byte_range.as_ref().expect("map byte range");
    assert_eq!((br.length, br.offset), (900, Some(0)));
    for (ours, theirs) in p.segments.iter().zip(&m.segments) {
        assert!(theirs.unknown_tags.is_empty());
        let want = ours.byte_range.unwrap();
        let got = theirs.byte_range.as_ref().expect("EXT-X-BYTERANGE");
        assert_eq!((got.length, got.offset), (want.length, want.offset));
    }
}

fn dash_parse(xml: &str) -> dash_mpd_core::MPD {
    let mpd = dash_mpd_core::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let problems = dash_mpd_core::check_conformity(&mpd);
    assert!(problems.is_empty(), "{problems:?}\n{xml}");
    mpd
}

#[test]
fn segment_template_mpd_reads_back_in_dash_mpd_core() {
    let mut durations = vec![4004u64; 47];
    durations.push(2500);
    let template = SegmentTemplate::numbered(1000, &durations);
    let total_s = durations.iter().sum::<u64>() as f64 / 1000.0;
    let ladder = Ladder::netflix_fixed();
    let mpd = Mpd::from_ladder(&ladder, template, total_s);
    let xml = mpd.render();
    let parsed = dash_parse(&xml);
    assert_eq!(parsed.mpdtype.as_deref(), Some("static"));
    let dur = parsed.mediaPresentationDuration.expect("duration");
    assert!((dur.as_secs_f64() - total_s).abs() < 1e-3);
    assert!(parsed.minBufferTime.is_some());
    assert_eq!(parsed.periods.len(), 1);
    let set = &parsed.periods[0].adaptations[0];
    let st = set.SegmentTemplate.as_ref().expect("SegmentTemplate");
    assert_eq!(st.timescale, Some(1000));
    assert_eq!(st.startNumber, Some(1));
    let timeline = st.SegmentTimeline.as_ref().expect("SegmentTimeline");
    let (mut count, mut sum) = (0u64, 0u64);
    for s in &timeline.segments {
        let n = 1 + s.r.unwrap_or(0) as u64;
        count += n;
        sum += n * s.d;
    }
    assert_eq!(count, 48);
    assert_eq!(sum, durations.iter().sum::<u64>());
    assert_eq!(set.representations.len(), ladder.len());
    for (r, ours) in set.representations.iter().zip(ladder.renditions()) {
        assert_eq!(r.bandwidth, Some(u64::from(ours.bitrate)));
        assert_eq!(r.width, Some(u64::from(ours.width)));
        assert_eq!(r.height, Some(u64::from(ours.height)));
        assert_eq!(r.codecs.as_deref(), Some(ours.codecs.as_str()));
        let fr = r.frameRate.as_deref().expect("frameRate");
        assert!(fr.bytes().all(|b| b.is_ascii_digit() || b == b'/'), "{fr}");
    }
}

#[test]
fn segment_base_mpd_reads_back_in_dash_mpd_core() {
    let rendition = Rendition::new(
        1280,
        720,
        3_000_000,
        "avc1.64001f",
        FrameRate::new(30000, 1001),
    );
    let mpd = Mpd {
        profiles: PROFILE_ON_DEMAND.into(),
        min_buffer_time: 2.0,
        duration: 60.0,
        adaptation_sets: vec![
            AdaptationSet {
                content_type: ContentType::Video,
                lang: None,
                segment_template: None,
                representations: vec![Representation {
                    id: "v720".into(),
                    bandwidth: rendition.bitrate,
                    codecs: rendition.codecs.clone(),
                    resolution: Some((rendition.width, rendition.height)),
                    frame_rate: Some(rendition.frame_rate),
                    audio_sampling_rate: None,
                    segment_base: Some(SegmentBase {
                        url: "v720.mp4".into(),
                        index_range: (1012, 1155),
                        initialization_range: (0, 1011),
                    }),
                }],
            },
            AdaptationSet {
                content_type: ContentType::Audio,
                lang: Some("en".into()),
                segment_template: None,
                representations: vec![Representation {
                    id: "a128".into(),
                    bandwidth: 128_000,
                    codecs: "mp4a.40.2".into(),
                    resolution: None,
                    frame_rate: None,
                    audio_sampling_rate: Some(48_000),
                    segment_base: Some(SegmentBase {
                        url: "a128.mp4".into(),
                        index_range: (700, 799),
                        initialization_range: (0, 699),
                    }),
                }],
            },
        ],
    };
    let xml = mpd.render();
    let parsed = dash_parse(&xml);
    let sets = &parsed.periods[0].adaptations;
    assert_eq!(sets.len(), 2);
    let v = &sets[0].representations[0];
    assert_eq!(v.frameRate.as_deref(), Some("30000/1001"));
    assert_eq!(v.BaseURL[0].base, "v720.mp4");
    let sb = v.SegmentBase.as_ref().expect("SegmentBase");
    assert_eq!(sb.indexRange.as_deref(), Some("1012-1155"));
    let init = sb.Initialization.as_ref().expect("Initialization");
    assert_eq!(init.range.as_deref(), Some("0-1011"));
    let a = &sets[1].representations[0];
    assert_eq!(sets[1].lang.as_deref(), Some("en"));
    assert_eq!(a.audioSamplingRate.as_deref(), Some("48000"));
    assert_eq!(
        a.SegmentBase.as_ref().and_then(|s| s.indexRange.as_deref()),
        Some("700-799")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any media playlist we render reads back in m3u8-rs with the same segments and a
    /// target duration no shorter than any rounded segment duration.
    #[test]
    fn any_media_playlist_reads_back(
        durations in prop::collection::vec(0.5f64..12.0, 1..40),
        fmp4 in any::<bool>(),
        ranged in any::<bool>(),
    ) {
        let mut offset = 1000u64;
        let segments = durations
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                let mut s = Segment::new(format!("s{i}.ts"), (d * 1000.0).round() / 1000.0);
                if ranged {
                    s.uri = "all.bin".into();
                    s.byte_range = Some(ByteRange { length: 500 + i as u64, offset: Some(offset) });
                    offset += 500 + i as u64;
                }
                s
            })
            .collect();
        let mut p = MediaPlaylist::vod(segments);
        if fmp4 {
            p.map = Some(Map::new("init.mp4"));
        }
        let text = p.render();
        let m = m3u8_media(&text);
        prop_assert!(m.unknown_tags.is_empty());
        prop_assert_eq!(m.segments.len(), p.segments.len());
        for (ours, theirs) in p.segments.iter().zip(&m.segments) {
            prop_assert!(theirs.unknown_tags.is_empty());
            prop_assert_eq!(&theirs.uri, &ours.uri);
            prop_assert!((f64::from(theirs.duration) - ours.duration).abs() < 1e-3);
            prop_assert!((ours.duration + 0.5).floor() as u64 <= m.target_duration);
            prop_assert_eq!(theirs.byte_range.as_ref().map(|b| (b.length, b.offset)),
                ours.byte_range.map(|b| (b.length, b.offset)));
        }
        let need = if fmp4 { 6 } else if ranged { 4 } else { 3 };
        prop_assert_eq!(m.version, Some(need));
    }

    /// Any variant set we render reads back in m3u8-rs, value for value.
    #[test]
    fn any_multivariant_playlist_reads_back(
        rungs in prop::collection::vec((64u32..4000, 36u32..2160, 100_000u32..20_000_000, 1u32..=120), 1..12),
    ) {
        let variants: Vec<Variant> = rungs
            .iter()
            .enumerate()
            .map(|(i, &(w, h, b, fps))| {
                let r = Rendition::new(w * 2, h, b, "avc1.64001f", FrameRate::integer(fps));
                Variant::from_rendition(format!("r{i}.m3u8"), &r).peak(u64::from(b) * 2)
            })
            .collect();
        let p = MultivariantPlaylist { independent_segments: true, audio: vec![], variants };
        let m = m3u8_master(&p.render());
        prop_assert!(m.unknown_tags.is_empty());
        prop_assert_eq!(m.variants.len(), p.variants.len());
        for (ours, theirs) in p.variants.iter().zip(&m.variants) {
            prop_assert_eq!(&theirs.uri, &ours.uri);
            prop_assert_eq!(theirs.bandwidth, ours.bandwidth);
            prop_assert_eq!(theirs.average_bandwidth, ours.average_bandwidth);
            prop_assert!((theirs.frame_rate.unwrap() - ours.frame_rate.unwrap()).abs() < 1e-3);
        }
    }
}
