//! Per-route counters and latency histograms, and their Prometheus text.

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The histogram's bucket bounds, in seconds (Prometheus' `le`).
pub const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with fixed buckets and atomic counters (no lock on the data path).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Counts per bucket (not cumulative), the last for values beyond every bound.
    counts: [AtomicU64; 15],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BOUNDS.iter().position(|&b| s <= b).unwrap_or(BOUNDS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0 to 1), linearly interpolated inside its bucket.
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let want = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut seen = 0.0;
        for (i, c) in self.counts.iter().enumerate() {
            let c = c.load(Ordering::Relaxed) as f64;
            if seen + c >= want {
                let lo = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
                let hi = BOUNDS.get(i).copied().unwrap_or(lo * 2.0);
                let frac = if c > 0.0 { (want - seen) / c } else { 1.0 };
                return Duration::from_secs_f64(lo + (hi - lo) * frac);
            }
            seen += c;
        }
        Duration::from_secs_f64(BOUNDS[BOUNDS.len() - 1])
    }
}

/// One route's counters.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    /// Answers by status class: indices 1 to 5 for 1xx to 5xx.
    pub by_class: [AtomicU64; 6],
    /// Latency from arrival to response headers.
    pub latency: Histogram,
}

impl RouteMetrics {
    /// Records one answer.
    pub fn record(&self, status: u16, elapsed: Duration) {
        self.by_class[usize::from(status / 100).min(5)].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(elapsed);
    }
}

/// Every route's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: RwLock<BTreeMap<String, Arc<RouteMetrics>>>,
}

impl Metrics {
    /// The counters of `route` (created on first use).
    pub fn route(&self, route: &str) -> Arc<RouteMetrics> {
        if let Some(m) = self.routes.read().get(route) {
            return m.clone();
        }
        self.routes
            .write()
            .entry(route.to_string())
            .or_default()
            .clone()
    }

    /// Records one answer.
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        self.route(route).record(status, elapsed);
    }

    /// Appends the routes' counters and histograms in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let routes = self.routes.read();
        out.push_str("# HELP zuul_requests_total Requests answered, by route and status class.\n# TYPE zuul_requests_total counter\n");
        for (name, m) in routes.iter() {
            for (class, c) in m.by_class.iter().enumerate().skip(1) {
                let _ = writeln!(
                    out,
                    "zuul_requests_total{{route=\"{}\",class=\"{class}xx\"}} {}",
                    escape(name),
                    c.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str("# HELP zuul_request_duration_seconds Time from a request's arrival to its response, by route.\n# TYPE zuul_request_duration_seconds histogram\n");
        for (name, m) in routes.iter() {
            let name = escape(name);
            let mut cumulative = 0;
            for (i, b) in BOUNDS.iter().enumerate() {
                cumulative += m.latency.counts[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "zuul_request_duration_seconds_bucket{{route=\"{name}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "zuul_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {}",
                m.latency.count()
            );
            let _ = writeln!(
                out,
                "zuul_request_duration_seconds_sum{{route=\"{name}\"}} {}",
                m.latency.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "zuul_request_duration_seconds_count{{route=\"{name}\"}} {}",
                m.latency.count()
            );
        }
    }
}

/// Escapes a Prometheus label value.
pub(crate) fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_text() {
        let m = Metrics::default();
        for i in 0..100 {
            m.record(
                "api",
                if i < 90 { 200 } else { 503 },
                Duration::from_micros(300 + i * 10),
            );
        }
        let h = &m.route("api").latency;
        assert_eq!(h.count(), 100);
        let p50 = h.quantile(0.5);
        assert!(
            p50 > Duration::from_micros(0) && p50 <= Duration::from_micros(1000),
            "{p50:?}"
        );
        assert!(h.quantile(0.99) <= Duration::from_micros(2500));
        let mut text = String::new();
        m.render(&mut text);
        assert!(
            text.contains("zuul_requests_total{route=\"api\",class=\"2xx\"} 90"),
            "{text}"
        );
        assert!(text.contains("zuul_requests_total{route=\"api\",class=\"5xx\"} 10"));
        assert!(
            text.contains("zuul_request_duration_seconds_bucket{route=\"api\",le=\"+Inf\"} 100")
        );
        assert!(text.contains("zuul_request_duration_seconds_count{route=\"api\"} 100"));
    }
}
