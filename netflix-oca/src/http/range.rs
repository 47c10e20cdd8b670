//! Byte ranges and conditional requests, as RFC 9110 §13-14 define them.
//!
//! Pure functions over header values, so every case is tested without a server: the server
//! asks [`evaluate`] what to answer and streams that.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One satisfiable byte range, resolved against a representation's length: `start..end`
/// (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// The number of bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty (never true of a resolved range).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The `Content-Range` value for this range of a `total`-byte representation.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end - 1, total)
    }
}

/// A range as the client wrote it, before the length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-`.
    From { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

/// The most ranges honoured in one request; more is treated as no Range at all (a defence
/// against the many-small-ranges attack RFC 9110 §14.2 warns of).
pub const MAX_RANGES: usize = 16;

/// A `Range` header resolved against a representation's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeSet {
    /// Not a valid `bytes` range set: the server ignores it and sends the whole
    /// representation, as RFC 9110 allows.
    Invalid,
    /// Valid, but no range overlaps the representation (416).
    Unsatisfiable,
    /// The satisfiable ranges in request order, overlapping and adjacent ones coalesced.
    Ranges(Vec<ByteRange>),
}

/// Parses a `Range` header value (`bytes=0-99,200-,-50`) and resolves it against `total`.
///
/// ```
/// use netflix_oca::http::range::{parse_range, ByteRange, RangeSet};
///
/// assert_eq!(
///     parse_range("bytes=-500", 10_000),
///     RangeSet::Ranges(vec![ByteRange { start: 9_500, end: 10_000 }])
/// );
/// assert_eq!(parse_range("bytes=10000-", 10_000), RangeSet::Unsatisfiable);
/// assert_eq!(parse_range("bytes=5-1", 10_000), RangeSet::Invalid);
/// ```
pub fn parse_range(header: &str, total: u64) -> RangeSet {
    parse(header, total).unwrap_or(RangeSet::Invalid)
}

fn parse(header: &str, total: u64) -> Option<RangeSet> {
    let rest = header.trim();
    let (unit, set) = rest.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for part in set.split(',') {
        let part = part.trim();
        if part.is_empty() {
            // RFC 9110 allows empty list elements.
            continue;
        }
        let (a, b) = part.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        let spec = if a.is_empty() {
            Spec::Suffix(digits(b)?)
        } else {
            let first = digits(a)?;
            let last = if b.is_empty() { None } else { Some(digits(b)?) };
            if last.is_some_and(|l| l < first) {
                // An invalid range-spec makes the whole header invalid.
                return None;
            }
            Spec::From { first, last }
        };
        specs.push(spec);
    }
    if specs.is_empty() || specs.len() > MAX_RANGES {
        return None;
    }
    let mut ranges: Vec<ByteRange> = specs
        .into_iter()
        .filter_map(|s| resolve(s, total))
        .collect();
    if ranges.is_empty() {
        return Some(RangeSet::Unsatisfiable);
    }
    coalesce(&mut ranges);
    Some(RangeSet::Ranges(ranges))
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Absurdly large positions saturate: they are simply beyond the end.
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

fn resolve(spec: Spec, total: u64) -> Option<ByteRange> {
    match spec {
        Spec::From { first, last } => {
            if first >= total {
                return None;
            }
            let end = last.map_or(total, |l| l.saturating_add(1).min(total));
            Some(ByteRange { start: first, end })
        }
        Spec::Suffix(0) => None,
        Spec::Suffix(n) => {
            if total == 0 {
                return None;
            }
            Some(ByteRange {
                start: total.saturating_sub(n),
                end: total,
            })
        }
    }
}

/// Merges ranges that overlap or touch, keeping the order of first appearance otherwise
/// (RFC 9110 §14.2 lets a server coalesce; it keeps multipart responses small).
fn coalesce(ranges: &mut Vec<ByteRange>) {
    if ranges.len() < 2 {
        return;
    }
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| r.start);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match merged.last_mut() {
            Some(m) if r.start <= m.end => m.end = m.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.len() < ranges.len() {
        *ranges = merged;
    }
}

/// What a representation offers for validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// The strong entity tag, quoted (`"abc"`).
    pub etag: String,
    /// The last modification time, whole seconds.
    pub last_modified: SystemTime,
}

/// The request headers that decide the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
}

/// What to answer a GET or HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the whole representation.
    Full,
    /// 206 with one range.
    Partial(ByteRange),
    /// 206 `multipart/byteranges` with several ranges.
    Multipart(Vec<ByteRange>),
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
    /// 416 Range Not Satisfiable.
    NotSatisfiable,
}

/// Decides the answer to a GET or HEAD in RFC 9110 §13.2.2's order: If-Match, then
/// If-Unmodified-Since, then If-None-Match, then If-Modified-Since, then Range with
/// If-Range.
pub fn evaluate(c: &Conditions<'_>, v: &Validators, total: u64) -> Answer {
    if let Some(im) = c.if_match {
        if !etag_list_matches(im, &v.etag, false) {
            return Answer::PreconditionFailed;
        }
    } else if let Some(ius) = c.if_unmodified_since.and_then(parse_http_date) {
        if secs(v.last_modified) > secs(ius) {
            return Answer::PreconditionFailed;
        }
    }
    if let Some(inm) = c.if_none_match {
        if etag_list_matches(inm, &v.etag, true) {
            return Answer::NotModified;
        }
    } else if let Some(ims) = c.if_modified_since.and_then(parse_http_date) {
        if secs(v.last_modified) <= secs(ims) {
            return Answer::NotModified;
        }
    }
    let Some(range) = c.range else {
        return Answer::Full;
    };
    if let Some(ir) = c.if_range {
        if !if_range_holds(ir, v) {
            return Answer::Full;
        }
    }
    match parse_range(range, total) {
        RangeSet::Invalid => Answer::Full,
        RangeSet::Unsatisfiable => Answer::NotSatisfiable,
        RangeSet::Ranges(mut r) if r.len() == 1 => Answer::Partial(r.remove(0)),
        RangeSet::Ranges(r) => Answer::Multipart(r),
    }
}

/// If-Range holds when its strong entity tag equals ours, or its date equals our
/// Last-Modified exactly (§13.1.5: a weak tag never matches).
fn if_range_holds(value: &str, v: &Validators) -> bool {
    let value = value.trim();
    if value.starts_with('"') {
        value == v.etag
    } else if value.starts_with("W/") {
        false
    } else {
        parse_http_date(value).is_some_and(|d| secs(d) == secs(v.last_modified))
    }
}

/// Whether `ours` is in the entity-tag list `list` (or the list is `*`). `weak` selects the
/// weak comparison (If-None-Match) over the strong one (If-Match).
fn etag_list_matches(list: &str, ours: &str, weak: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let ours_opaque = ours.trim_start_matches("W/");
    list.split(',').map(str::trim).any(|t| {
        if weak {
            t.trim_start_matches("W/") == ours_opaque
        } else {
            !t.starts_with("W/") && !ours.starts_with("W/") && t == ours
        }
    })
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats a time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(t: SystemTime) -> String {
    let s = secs(t);
    let days = s / 86_400;
    let rem = s % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an IMF-fixdate; the obsolete RFC 850 and asctime forms are not accepted (a
/// recipient treats an unparsable date as absent, RFC 9110 §13.1.3).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (_, rest) = s.split_once(", ")?;
    let mut f = rest.split(' ');
    let day: u32 = f.next()?.parse().ok()?;
    let name = f.next()?;
    let month = MONTHS.iter().position(|&m| m == name)? as u32 + 1;
    let year: i64 = f.next()?.parse().ok()?;
    let mut hms = f.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let mi: u64 = hms.next()?.parse().ok()?;
    let se: u64 = hms.next()?.parse().ok()?;
    if f.next()? != "GMT"
        || f.next().is_some()
        || day == 0
        || day > 31
        || h > 23
        || mi > 59
        || se > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if days < 0 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(days as u64 * 86_400 + h * 3600 + mi * 60 + se))
}

// Howard Hinnant's civil-date algorithms.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(header: &str, total: u64, want: Option<Result<Vec<(u64, u64)>, ()>>) {
        let got = match parse_range(header, total) {
            RangeSet::Invalid => None,
            RangeSet::Unsatisfiable => Some(Err(())),
            RangeSet::Ranges(v) => Some(Ok(v
                .into_iter()
                .map(|r| (r.start, r.end))
                .collect::<Vec<_>>())),
        };
        assert_eq!(got, want, "{header:?} of {total}");
    }

    #[test]
    fn rfc_9110_range_examples() {
        // §14.1.2's examples, on a 10000-byte representation.
        check("bytes=0-499", 10_000, Some(Ok(vec![(0, 500)])));
        check("bytes=500-999", 10_000, Some(Ok(vec![(500, 1000)])));
        check("bytes=-500", 10_000, Some(Ok(vec![(9500, 10_000)])));
        check("bytes=9500-", 10_000, Some(Ok(vec![(9500, 10_000)])));
        check(
            "bytes=0-0,-1",
            10_000,
            Some(Ok(vec![(0, 1), (9999, 10_000)])),
        );
        // Overlapping and adjacent ranges coalesce.
        check("bytes=500-600,601-999", 10_000, Some(Ok(vec![(500, 1000)])));
        check("bytes=500-700,601-999", 10_000, Some(Ok(vec![(500, 1000)])));
        // Non-overlapping stay in request order.
        check(
            "bytes=900-999, 0-9",
            10_000,
            Some(Ok(vec![(900, 1000), (0, 10)])),
        );
    }

    #[test]
    fn edges() {
        check("bytes=0-", 0, Some(Err(())));
        check("bytes=-5", 0, Some(Err(())));
        check("bytes=-0", 100, Some(Err(())));
        check("bytes=100-", 100, Some(Err(())));
        check("bytes=99-", 100, Some(Ok(vec![(99, 100)])));
        check("bytes=0-1000", 100, Some(Ok(vec![(0, 100)])));
        check("bytes=-1000", 100, Some(Ok(vec![(0, 100)])));
        check("bytes=200-300,5-9", 100, Some(Ok(vec![(5, 10)])));
        check(
            "bytes=0-99999999999999999999999",
            100,
            Some(Ok(vec![(0, 100)])),
        );
        check("BYTES = 1-2", 100, Some(Ok(vec![(1, 3)])));
        check("bytes=1-2,,", 100, Some(Ok(vec![(1, 3)])));
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for h in [
            "bytes=5-1",
            "bytes=abc",
            "bytes=1-2-3",
            "items=0-5",
            "bytes=",
            "bytes",
            "bytes=+1-2",
            "bytes=1 -2x",
            "bytes=--5",
        ] {
            check(h, 100, None);
        }
        let many = format!(
            "bytes={}",
            (0..17)
                .map(|i| format!("{}-{}", i * 2, i * 2))
                .collect::<Vec<_>>()
                .join(",")
        );
        check(&many, 100, None);
    }

    fn v() -> Validators {
        Validators {
            etag: "\"v1\"".into(),
            last_modified: UNIX_EPOCH + Duration::from_secs(784_111_777),
        }
    }

    #[test]
    fn conditionals_in_rfc_order() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let later = "Mon, 07 Nov 1994 08:49:37 GMT";
        let earlier = "Sat, 05 Nov 1994 08:49:37 GMT";
        let e = |c: Conditions<'_>| evaluate(&c, &v(), 1000);
        assert_eq!(e(Conditions::default()), Answer::Full);
        assert_eq!(
            e(Conditions {
                if_none_match: Some("\"v1\""),
                ..Default::default()
            }),
            Answer::NotModified
        );
        assert_eq!(
            e(Conditions {
                if_none_match: Some("W/\"v1\""),
                ..Default::default()
            }),
            Answer::NotModified
        );
        assert_eq!(
            e(Conditions {
                if_none_match: Some("\"x\", \"v1\""),
                ..Default::default()
            }),
            Answer::NotModified
        );
        assert_eq!(
            e(Conditions {
                if_none_match: Some("*"),
                ..Default::default()
            }),
            Answer::NotModified
        );
        assert_eq!(
            e(Conditions {
                if_none_match: Some("\"v2\""),
                ..Default::default()
            }),
            Answer::Full
        );
        assert_eq!(
            e(Conditions {
                if_modified_since: Some(date),
                ..Default::default()
            }),
            Answer::NotModified
        );
        assert_eq!(
            e(Conditions {
                if_modified_since: Some(later),
                ..Default::default()
            }),
            Answer::NotModified
        );
        assert_eq!(
            e(Conditions {
                if_modified_since: Some(earlier),
                ..Default::default()
            }),
            Answer::Full
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            e(Conditions {
                if_none_match: Some("\"v2\""),
                if_modified_since: Some(date),
                ..Default::default()
            }),
            Answer::Full
        );
        assert_eq!(
            e(Conditions {
                if_match: Some("\"v2\""),
                ..Default::default()
            }),
            Answer::PreconditionFailed
        );
        assert_eq!(
            e(Conditions {
                if_match: Some("W/\"v1\""),
                ..Default::default()
            }),
            Answer::PreconditionFailed
        );
        assert_eq!(
            e(Conditions {
                if_match: Some("\"v1\""),
                range: Some("bytes=0-9"),
                ..Default::default()
            }),
            Answer::Partial(ByteRange { start: 0, end: 10 })
        );
        assert_eq!(
            e(Conditions {
                if_unmodified_since: Some(earlier),
                ..Default::default()
            }),
            Answer::PreconditionFailed
        );
        assert_eq!(
            e(Conditions {
                if_unmodified_since: Some(date),
                ..Default::default()
            }),
            Answer::Full
        );
        // Garbage dates are ignored.
        assert_eq!(
            e(Conditions {
                if_modified_since: Some("yesterday"),
                ..Default::default()
            }),
            Answer::Full
        );
    }

    #[test]
    fn if_range() {
        let e = |ir: &str| {
            evaluate(
                &Conditions {
                    if_range: Some(ir),
                    range: Some("bytes=0-9"),
                    ..Default::default()
                },
                &v(),
                1000,
            )
        };
        let partial = Answer::Partial(ByteRange { start: 0, end: 10 });
        assert_eq!(e("\"v1\""), partial);
        assert_eq!(e("\"v0\""), Answer::Full);
        assert_eq!(e("W/\"v1\""), Answer::Full);
        assert_eq!(e("Sun, 06 Nov 1994 08:49:37 GMT"), partial);
        assert_eq!(e("Sun, 06 Nov 1994 08:49:38 GMT"), Answer::Full);
        assert_eq!(
            evaluate(
                &Conditions {
                    range: Some("bytes=0-0,5-5"),
                    ..Default::default()
                },
                &v(),
                1000
            ),
            Answer::Multipart(vec![
                ByteRange { start: 0, end: 1 },
                ByteRange { start: 5, end: 6 }
            ])
        );
        assert_eq!(
            evaluate(
                &Conditions {
                    range: Some("bytes=2000-"),
                    ..Default::default()
                },
                &v(),
                1000
            ),
            Answer::NotSatisfiable
        );
    }

    #[test]
    fn dates_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        for s in [0u64, 951_782_400, 1_700_000_000, 4_102_444_800] {
            let t = UNIX_EPOCH + Duration::from_secs(s);
            assert_eq!(parse_http_date(&http_date(t)), Some(t), "{s}");
        }
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }
}
