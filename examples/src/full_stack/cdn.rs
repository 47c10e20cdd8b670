//! Stage 2, the CDN: an Open Connect topology from `netflix-oca` on loopback over the
//! origin directory (a regional OCA filling from it; two ISP clusters of three edge OCAs
//! each, placing every file on its nodes by consistent hashing; the control plane with
//! health reports and steering), and the title filled proactively onto its edges.

use netflix_oca::local::{ClusterSpec, LocalCdn, LocalCdnConfig};
use netflix_oca::proactive::{FillManifest, ManifestTitle};
use std::path::Path;
use std::time::Duration;

/// The ISP clusters and the client networks each serves.
pub(crate) const CLUSTERS: [(&str, &str); 2] = [("isp-a", "10.1.0.0/16"), ("isp-b", "10.2.0.0/16")];

/// Starts the topology and fills `files` of `title` onto the edges that hold them.
pub(crate) async fn start(
    origin: &Path,
    title: &str,
    files: &[String],
) -> Result<LocalCdn, String> {
    let cdn = LocalCdn::start(LocalCdnConfig {
        origin_dir: origin.to_path_buf(),
        clusters: CLUSTERS
            .iter()
            .map(|(name, net)| ClusterSpec::new(name, 3, [*net]))
            .collect(),
        report_interval: Duration::from_millis(200),
        lost_after: Duration::from_secs(1),
        // The page's hls.js player fetches from the edges, another origin than the page's.
        cors: Some(http::HeaderValue::from_static("*")),
        ..LocalCdnConfig::default()
    })
    .await
    .map_err(|e| format!("starting the CDN: {e}"))?;
    tracing::info!(
        target: "full_stack",
        "cdn: origin {}, regional {}, {} edges, control plane {}",
        cdn.origin.url(),
        cdn.regional.url(),
        cdn.edges.len(),
        cdn.control_addr
    );
    for (cluster, _) in CLUSTERS {
        cdn.publish(FillManifest {
            cluster: cluster.into(),
            day: "today".into(),
            titles: vec![ManifestTitle {
                title: title.into(),
                rank: 0,
                files: files.to_vec(),
            }],
        });
    }
    if !cdn.wait_live(title, Duration::from_secs(60)).await {
        return Err(format!("{title} was not live on the edges within 60 s"));
    }
    tracing::info!(target: "full_stack", "cdn: {title} filled proactively and live on every cluster");
    Ok(cdn)
}
