//! Proactive fill: an appliance fills exactly its share of the manifest, pinned, under its
//! rate cap; titles it already holds are pinned in place.

mod common;

use common::*;
use netflix_oca::fill::Upstream;
use netflix_oca::placement::{CopyPolicy, Node, Placement};
use netflix_oca::proactive::{FillManifest, ManifestTitle, ProactiveFill};
use netflix_oca::store::ChunkId;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fills_its_share_pinned_under_the_rate_cap() {
    const MIB: u64 = 1 << 20;
    let data = content(1, (4 * MIB) as usize);
    let up = Scripted::new("origin", "t1/v.m4s", data.clone(), Script::default());
    let store = store(MIB, None);
    let filler = filler(store.clone(), vec![up.clone() as Arc<dyn Upstream>]);
    // One node: it holds every title.
    let placement = Placement::new([Node::new("me", "h")]).unwrap();
    let fill = ProactiveFill::new(filler, placement, "me")
        .copies(CopyPolicy { min: 1, max: 1 })
        .rate(MIB);
    let manifest = FillManifest {
        cluster: "c".into(),
        day: "d".into(),
        titles: vec![ManifestTitle {
            title: "t1".into(),
            rank: 0,
            files: vec!["t1/v.m4s".into()],
        }],
    };
    let start = tokio::time::Instant::now();
    let report = fill.run(&manifest).await;
    let took = start.elapsed();
    assert_eq!(
        (report.files, report.already, report.failed, report.bytes),
        (1, 0, 0, 4 * MIB)
    );
    // 4 MiB at 1 MiB/s with a 1 MiB burst: at least 3 s.
    assert!(took >= Duration::from_secs(3), "{took:?}");
    for i in 0..4 {
        assert!(store.contains(ChunkId::new("t1/v.m4s", i)));
    }
    assert_eq!(store.stats().pinned_bytes, 4 * MIB);
    // A second pass finds it all held and fetches nothing.
    let again = fill.run(&manifest).await;
    assert_eq!((again.already, again.bytes), (1, 0));
    assert_eq!(up.gets.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[test]
fn each_node_takes_the_titles_placement_gives_it() {
    let placement =
        Placement::new((0..5).map(|i| Node::new(format!("n{i}"), format!("h{i}")))).unwrap();
    let manifest = FillManifest {
        cluster: "c".into(),
        day: "d".into(),
        titles: (0..40)
            .map(|t| ManifestTitle {
                title: format!("t{t}"),
                rank: t,
                files: vec![format!("t{t}/a.m4s"), format!("t{t}/b.m4s")],
            })
            .collect(),
    };
    let copies = CopyPolicy { min: 1, max: 3 };
    let mut held = std::collections::HashMap::<String, usize>::new();
    for n in 0..5 {
        let f = ProactiveFill::new(
            filler(store(1 << 20, None), Vec::new()),
            placement.clone(),
            format!("n{n}"),
        )
        .copies(copies);
        for file in f.share(&manifest) {
            *held.entry(file).or_default() += 1;
        }
    }
    for (rank, t) in manifest.titles.iter().enumerate() {
        for file in &t.files {
            assert_eq!(
                held.get(file).copied().unwrap_or(0),
                copies.copies(rank),
                "{file}"
            );
        }
    }
}
