//! Stage 6, the report: a summary in text (QoE per algorithm, rebuffering, hit ratios
//! per tier, circuit states, gateway latency) and a page of plots (every player's
//! bitrate and buffer over time, with the faults marked; QoE and rebuffering per
//! algorithm) written next to the work directory's other output.

use super::players::Outcome;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The figures of one algorithm over its players.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlgorithmSummary {
    /// Its name, as `netflix_abr::abr::by_name` knows it.
    pub algorithm: String,
    /// Players that ran it.
    pub players: usize,
    /// Mean QoE_lin per scored chunk, over its players.
    pub qoe_per_chunk: f64,
    /// Mean bitrate, kbit/s.
    pub bitrate_kbps: f64,
    /// Mean seconds of rebuffering per player (after start-up).
    pub rebuffer_s: f64,
    /// Mean start-up delay, seconds.
    pub startup_s: f64,
    /// Mean rung switches per player.
    pub switches: f64,
    /// OCA failovers, all its players together.
    pub failovers: usize,
    /// Chunks its players could not fetch.
    pub errors: usize,
}

/// Groups outcomes by algorithm, in the fleet's order.
pub(crate) fn by_algorithm(outcomes: &[Outcome]) -> Vec<AlgorithmSummary> {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        if !order.contains(&o.spec.algorithm) {
            order.push(o.spec.algorithm);
        }
        groups.entry(o.spec.algorithm).or_default().push(o);
    }
    order
        .into_iter()
        .map(|a| {
            let g = &groups[a];
            let n = g.len() as f64;
            let mean = |f: &dyn Fn(&Outcome) -> f64| g.iter().map(|o| f(o)).sum::<f64>() / n;
            AlgorithmSummary {
                algorithm: a.to_string(),
                players: g.len(),
                qoe_per_chunk: mean(&|o| o.qoe_per_chunk()),
                bitrate_kbps: mean(&|o| o.mean_bitrate_kbps()),
                rebuffer_s: mean(&|o| o.rebuffer_s),
                startup_s: mean(&|o| o.startup_s),
                switches: mean(&|o| o.switches as f64),
                failovers: g.iter().map(|o| o.failovers).sum(),
                errors: g.iter().map(|o| o.errors.len()).sum(),
            }
        })
        .collect()
}

/// The summary as text, from the algorithms' figures and the dashboard's state.
pub(crate) fn text(algorithms: &[AlgorithmSummary], state: &serde_json::Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "players, by algorithm (QoE_lin per chunk; means per player):\n  {:<11} {:>7} {:>9} {:>10} {:>11} {:>10} {:>9} {:>9} {:>6}",
        "algorithm",
        "players",
        "QoE",
        "kb/s",
        "rebuffer s",
        "startup s",
        "switches",
        "failovers",
        "errors"
    );
    for a in algorithms {
        let _ = writeln!(
            s,
            "  {:<11} {:>7} {:>9.3} {:>10.0} {:>11.2} {:>10.2} {:>9.1} {:>9} {:>6}",
            a.algorithm,
            a.players,
            a.qoe_per_chunk,
            a.bitrate_kbps,
            a.rebuffer_s,
            a.startup_s,
            a.switches,
            a.failovers,
            a.errors
        );
    }
    let _ = writeln!(
        s,
        "\nOCAs, while the players ran (chunk hit ratio of each tier's store):"
    );
    for (tier, hits, misses, requests) in tiers(state) {
        if hits + misses == 0 {
            let _ = writeln!(s, "  {tier:<9} no chunk lookups, {requests} requests");
        } else {
            let _ = writeln!(
                s,
                "  {tier:<9} {:>6.1}% of {} chunk lookups, {requests} requests",
                100.0 * super::dashboard::ratio(hits, misses),
                hits + misses
            );
        }
    }
    let _ = writeln!(s, "\ncircuits (netflix-hystrix):");
    for c in state["circuits"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  {:<9} {:<8} {} successes, {} failures, {} short-circuited",
            c["command"].as_str().unwrap_or("-"),
            c["state"].as_str().unwrap_or("-"),
            c["successes"],
            c["failures"],
            c["short_circuited"]
        );
    }
    let g = &state["gateway"];
    let _ = writeln!(
        s,
        "\ngateway (netflix-zuul): 2xx {} 4xx {} 5xx {}; /play {} answers, p50 {:.2} ms, p99 {:.2} ms; cache fallback reads {}",
        g["2xx"],
        g["4xx"],
        g["5xx"],
        g["play_answers"],
        g["play_p50_ms"].as_f64().unwrap_or(0.0),
        g["play_p99_ms"].as_f64().unwrap_or(0.0),
        state["cache"]["fallback_reads"]
    );
    s
}

/// (tier, hits, misses, requests) of the edge and regional tiers.
fn tiers(state: &serde_json::Value) -> Vec<(&'static str, u64, u64, u64)> {
    ["edge", "regional"]
        .into_iter()
        .map(|tier| {
            let (mut h, mut m, mut r) = (0, 0, 0);
            for o in state["ocas"].as_array().into_iter().flatten() {
                if o["tier"] == tier {
                    h += o["hits"].as_u64().unwrap_or(0);
                    m += o["misses"].as_u64().unwrap_or(0);
                    r += o["requests"].as_u64().unwrap_or(0);
                }
            }
            (tier, h, m, r)
        })
        .collect()
}

const COLORS: [&str; 9] = [
    "#e50914", "#46d369", "#2f80ed", "#f5c518", "#b36bff", "#ff8a3d", "#00c2c7", "#ff5fa2",
    "#9aa0a6",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line plot of one series per player, coloured by algorithm: `steps` holds each value
/// until the next (a chunk's bitrate), otherwise points are joined (the buffer).
fn lines(
    title: &str,
    unit: &str,
    steps: bool,
    outcomes: &[Outcome],
    colour: &dyn Fn(&str) -> &'static str,
    y: &dyn Fn(&super::players::ChunkRecord) -> f64,
    marks: &[(f64, String)],
) -> String {
    let (w, h, l, b) = (900.0, 270.0, 60.0, 40.0);
    let x_max = outcomes
        .iter()
        .flat_map(|o| o.chunks.iter().map(|c| c.at_s))
        .chain(marks.iter().map(|m| m.0))
        .fold(1.0_f64, f64::max);
    let y_max = outcomes
        .iter()
        .flat_map(|o| o.chunks.iter().map(y))
        .fold(1e-9_f64, f64::max)
        * 1.05;
    let px = |x: f64| l + x / x_max * (w - l - 10.0);
    let py = |v: f64| 10.0 + (1.0 - v / y_max) * (h - b - 10.0);
    let mut svg = format!(
        r##"<h2>{}</h2><svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-size="11">"##,
        esc(title)
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{l}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#333"/><text x="{}" y="{:.1}" text-anchor="end" fill="#999">{v:.0}</text>"##,
            w - 10.0,
            l - 4.0,
            py(v) + 4.0,
            y = py(v)
        );
    }
    let step = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| x_max / s <= 10.0)
        .unwrap_or(1200.0);
    for i in 0..=(x_max / step) as u32 {
        let t = step * f64::from(i);
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#999">{t:.0}</text>"##,
            px(t),
            h - b + 14.0
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" fill="#999" text-anchor="middle">player clock, s ({unit})</text>"##,
        (w + l) / 2.0,
        h - 4.0
    );
    for (t, text) in marks {
        let x = px(*t);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="10" y2="{}" stroke="#f5c518" stroke-dasharray="4 3"/><text x="{:.1}" y="22" fill="#f5c518">{}</text>"##,
            h - b,
            x + 3.0,
            esc(text),
        );
    }
    for o in outcomes {
        let mut d = String::new();
        for (i, c) in o.chunks.iter().enumerate() {
            let (x, v) = (px(c.at_s), py(y(c)));
            if i == 0 {
                let _ = write!(d, "M{x:.1},{v:.1} ");
            } else if steps {
                let _ = write!(d, "H{x:.1} V{v:.1} ");
            } else {
                let _ = write!(d, "L{x:.1},{v:.1} ");
            }
        }
        let _ = write!(
            svg,
            r##"<path d="{d}" fill="none" stroke="{}" stroke-width="1.5" opacity="0.85"><title>player {} ({}, {})</title></path>"##,
            colour(o.spec.algorithm),
            o.spec.id,
            o.spec.algorithm,
            esc(o.spec.trace.name())
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Bars of one figure per algorithm, from a zero line (negative values to its left).
fn bars(
    title: &str,
    algorithms: &[AlgorithmSummary],
    colour: &dyn Fn(&str) -> &'static str,
    v: &dyn Fn(&AlgorithmSummary) -> f64,
) -> String {
    let (w, row, label) = (440.0, 22.0, 96.0);
    let h = row * algorithms.len() as f64 + 10.0;
    let lo = algorithms.iter().map(v).fold(0.0_f64, f64::min);
    let hi = algorithms.iter().map(v).fold(0.0_f64, f64::max);
    let span = (hi - lo).max(1e-9);
    let width = w - label - 60.0;
    let px = |x: f64| label + (x - lo) / span * width;
    let mut svg = format!(
        r##"<div class="bars"><h2>{}</h2><svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-size="11">"##,
        esc(title)
    );
    for (i, a) in algorithms.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let (x0, x1) = (px(0.0), px(v(a)));
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#ccc">{}</text><rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{:.1}" fill="#ccc">{:.3}</text>"##,
            label - 6.0,
            y + 14.0,
            esc(&a.algorithm),
            x0.min(x1),
            (x1 - x0).abs().max(1.0),
            row - 6.0,
            colour(&a.algorithm),
            x0.max(x1) + 4.0,
            y + 14.0,
            v(a)
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{x:.1}" x2="{x:.1}" y1="2" y2="{:.1}" stroke="#777"/>"##,
        h - 2.0,
        x = px(0.0)
    );
    svg.push_str("</svg></div>");
    svg
}

/// The report page.
pub(crate) fn html(
    outcomes: &[Outcome],
    algorithms: &[AlgorithmSummary],
    summary: &str,
    marks: &[(f64, String)],
    speed: f64,
) -> String {
    let names: Vec<&str> = algorithms.iter().map(|a| a.algorithm.as_str()).collect();
    let colour = |a: &str| COLORS[names.iter().position(|n| *n == a).unwrap_or(0) % COLORS.len()];
    let legend: String = names
        .iter()
        .map(|n| {
            format!(
                r##"<span style="color:{}">&#9632; {}</span> "##,
                colour(n),
                esc(n)
            )
        })
        .collect();
    let clock = if (speed - 1.0).abs() < 1e-9 {
        "real time".to_string()
    } else {
        format!("{speed}× real time")
    };
    format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>full_stack report</title>
<style>body{{font:13px/1.4 system-ui,sans-serif;background:#141414;color:#e5e5e5;margin:20px}}
h1{{color:#e50914;font-size:20px}}h2{{font-size:14px;color:#bbb;margin:18px 0 4px}}
pre{{background:#1f1f1f;padding:10px;border-radius:6px}}td,th{{padding:2px 8px;text-align:left}}th{{color:#999;font-weight:normal}}.bars{{display:inline-block;margin-right:30px;vertical-align:top}}</style>
</head><body><h1>full_stack: {} simulated players</h1>
<p>{legend}</p>
{}
{}
{}
{}
{}
<h2>Summary</h2><pre>{}</pre>
<h2>Players</h2><table><tr><th>#</th><th>algorithm</th><th>trace</th><th>Mbit/s</th><th>first rung</th><th>startup s</th><th>rebuffer s</th><th>kb/s</th><th>QoE per chunk</th><th>failovers</th><th>OCAs</th></tr>{}</table>
</body></html>
"##,
        outcomes.len(),
        lines(
            "Bitrate of each chunk, kb/s",
            &clock,
            true,
            outcomes,
            &colour,
            &|c| c.bitrate_kbps,
            marks
        ),
        lines(
            "Buffer after each chunk, s",
            &clock,
            false,
            outcomes,
            &colour,
            &|c| c.buffer_s,
            marks
        ),
        bars(
            "QoE_lin per chunk, mean per player",
            algorithms,
            &colour,
            &|a| a.qoe_per_chunk
        ),
        bars("Rebuffering, s per player", algorithms, &colour, &|a| a
            .rebuffer_s),
        bars("Mean bitrate, kb/s", algorithms, &colour, &|a| a
            .bitrate_kbps),
        esc(summary),
        players_rows(outcomes)
    )
}

fn players_rows(outcomes: &[Outcome]) -> String {
    let mut rows = String::new();
    for o in outcomes {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.0}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            o.spec.id,
            esc(o.spec.algorithm),
            esc(o.spec.trace.name()),
            o.spec.trace.mean_mbps(),
            o.chunks
                .first()
                .map_or(String::from("-"), |c| c.quality.to_string()),
            o.startup_s,
            o.rebuffer_s,
            o.mean_bitrate_kbps(),
            o.qoe_per_chunk(),
            o.failovers,
            esc(&o.ocas.join(" → "))
        );
    }
    rows
}
