//! The `abr_sim` example as users drive it: its flags, its JSON, its plot and its errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn abr_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
        .args([
            "run",
            "-q",
            "-p",
            "netflix-abr",
            "--example",
            "abr_sim",
            "--",
        ])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo run")
}

/// `abr_sim --traces TRACES --video-sizes <the envivio sizes> --algorithm ALGORITHM EXTRA...`
fn abr_sim_on(traces: &Path, algorithm: &str, extra: &[&str]) -> Output {
    let sizes = data("video_sizes");
    let mut args = vec![
        "--traces",
        traces.to_str().unwrap(),
        "--video-sizes",
        sizes.to_str().unwrap(),
        "--algorithm",
        algorithm,
    ];
    args.extend_from_slice(extra);
    abr_sim(&args)
}

#[test]
fn json_has_exactly_the_documented_fields() {
    let traces = data("pensieve/synth/traces");
    let out = abr_sim_on(&traces, "robust-mpc", &["--pensieve-compat", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "algorithm",
            "chunks",
            "mean_bitrate_kbps",
            "mean_qoe_per_chunk",
            "mean_rebuffer_s",
            "mean_total_qoe",
            "n_traces",
            "wall_s"
        ]
    );
    assert_eq!(obj["algorithm"], "robust-mpc");
    assert_eq!(obj["n_traces"], 3);
    assert_eq!(obj["chunks"], 144);
    let total = obj["mean_total_qoe"].as_f64().unwrap();
    let per = obj["mean_qoe_per_chunk"].as_f64().unwrap();
    assert!((total / 47.0 - per).abs() < 1e-12);
    // The reference's totals over chunks 1..47 of these three traces.
    let golden = std::fs::read_to_string(data("pensieve/synth/robust-mpc.tsv")).unwrap();
    let want: f64 = golden
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f[1] != "0")
        .map(|f| f[9].parse::<f64>().unwrap())
        .sum::<f64>()
        / 3.0;
    assert!((total - want).abs() < 1e-9, "{total} vs {want}");
}

#[test]
fn default_is_ours_and_the_list_names_every_algorithm() {
    let out = abr_sim(&["--list-algorithms"]);
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for want in [
        "bb",
        "rb",
        "bola",
        "bola-e",
        "mpc",
        "robust-mpc",
        "dynamic",
        "sage",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let traces = data("pensieve/synth/traces");
    let plot = std::env::temp_dir().join(format!("abr_sim_plot_{}.svg", std::process::id()));
    let out = abr_sim_on(
        &traces,
        "default",
        &[
            "--json",
            "--plot",
            plot.to_str().unwrap(),
            "--trace-name",
            "synthB_irregular",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["algorithm"], "sage");
    let svg = std::fs::read_to_string(&plot).unwrap();
    let _ = std::fs::remove_file(&plot);
    assert!(
        svg.starts_with("<svg") && svg.contains("synthB_irregular") && svg.ends_with("</svg>\n")
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = abr_sim_on(Path::new("/nonexistent"), "bb", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
    let traces = data("traces");
    let out = abr_sim_on(&traces, "nope", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown algorithm"));
    let out = abr_sim(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let out = abr_sim_on(
        &traces,
        "bb",
        &["--plot", "x.svg", "--trace-name", "missing"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such trace"));
}
