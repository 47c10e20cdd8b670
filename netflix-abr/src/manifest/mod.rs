//! Manifests: how renditions are described to players.
//!
//! [`hls`] renders and parses HLS multivariant and media playlists (RFC 8216); [`dash`]
//! renders and parses DASH MPDs (ISO/IEC 23009-1) with `SegmentTemplate` + `SegmentTimeline`
//! or `SegmentBase` addressing. Both round-trip (property-tested), and the tests check that
//! independent parsers (`m3u8-rs`, `dash-mpd-core`) and ffprobe accept what is rendered.

pub mod dash;
pub mod hls;
mod xml;
