//! push and pull of whole images: six nodes and a fresh host, mounts, concurrent pulls,
//! and an `oci://` artifact mirror that feeds fetch and build.

use super::*;
use crate::node_in;

/// Six nodes pushed: the shared payload is uploaded once; a fresh host pulls a node and gets the
/// same image id and bytes; a second node's pull transfers only its own layer; `list`, `show`,
/// `verify` and `rollback` work on the host, the last with the registry gone.
#[test]
fn push_six_nodes_pull_on_a_fresh_host_and_roll_back_offline() {
    let Some(mut registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("fleet/kubenet");
    let push = push_to(&ctx, &registry, &repo, &["--json"]).ok().json();
    assert_eq!(push["kind"], "push-report");
    let nodes = push["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6, "{push}");
    // Per node: record, payload (EROFS, verity), config (EROFS, verity). The payload's two
    // blobs are sent once, by the first node; the five others find them.
    let payload_uploads: usize = nodes
        .iter()
        .flat_map(|n| n["blobs"].as_array().unwrap())
        .filter(|b| b["layer_id"] == nodes[0]["blobs"][1]["layer_id"])
        .filter(|b| b["status"] == "uploaded")
        .count();
    assert_eq!(payload_uploads, 2, "{push}");
    assert_eq!(push["blobs_uploaded"], 2 + 6 * 3, "{push}");
    assert_eq!(push["blobs_present"], 5 * 2, "{push}");
    // The registry holds each distinct blob once, and one manifest per node; and what vouches
    // for each image (built without a key: its SBOM) as a referrer of it: the SBOM, the shared
    // empty config, the attestation manifest and the referrers tag's index.
    assert_eq!(registry.blob_count(), 2 + 6 * 3 + 6 + (6 + 1 + 6 + 6));
    assert!(nodes
        .iter()
        .all(|n| n["attestations"]["files"] == serde_json::json!(["sbom.spdx.json"])));
    for n in nodes {
        let tags: Vec<&str> = n["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let node = n["node"].as_str().unwrap();
        assert_eq!(tags[..2], [node.to_string(), format!("{node}-gen1")]);
        assert_eq!(tags[2], n["image_id"]);
    }
    // Pushed again: nothing is uploaded, and no node's manifest is sent again (its tags name
    // it already): 0 bytes sent, said so.
    let again = push_to(&ctx, &registry, &repo, &["--json"]).ok().json();
    assert_eq!(again["blobs_uploaded"], 0, "{again}");
    assert!(
        again["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["bytes_sent"] == 0),
        "{again}"
    );
    let text = push_to(&ctx, &registry, &repo, &[]).ok();
    assert!(
        text.stdout
            .lines()
            .filter(|l| l.contains(" tags "))
            .all(|l| l.contains("(0 blobs sent, 5 present, 0 mounted; 0 B)")),
        "{}",
        text.stdout
    );
    assert_eq!(
        again["nodes"][0]["manifest_digest"], push["nodes"][0]["manifest_digest"],
        "same image, same manifest"
    );

    // A fresh host: no manifest, no lockfile, no store.
    let host = Host::new();
    let out = &host.out;
    let w1 = host
        .pull(&registry, &format!("{repo}:worker1"), &["--json"])
        .ok()
        .json();
    assert_eq!(w1["kind"], "pull-report");
    assert_eq!(w1["node"], "worker1");
    assert_eq!(w1["generation"], 1);
    assert_eq!(w1["switched"], true);
    let built_out = ctx.path().join("out");
    let id = crate::current_id_in(&built_out, "worker1");
    assert_eq!(w1["image_id"], id.as_str());
    assert_eq!(crate::current_id_in(out, "worker1"), id);
    assert_eq!(
        layer_bytes(out, &id),
        layer_bytes(&built_out, &id),
        "the same bytes"
    );
    // The layer records are the builder's, byte for byte.
    for layer in ["payload", "config"] {
        let ours = crate::layer_of(&out.join("images").join(&id), layer);
        let theirs = crate::layer_of(&built_out.join("images").join(&id), layer);
        assert_eq!(
            std::fs::read(ours.join("layer.json")).unwrap(),
            std::fs::read(theirs.join("layer.json")).unwrap()
        );
    }
    let all_bytes: u64 = w1["bytes_downloaded"].as_u64().unwrap();

    // A second node: only its record and own layer travel.
    let w2 = host
        .pull(&registry, &format!("{repo}:worker2"), &["--json"])
        .ok()
        .json();
    let own: u64 = nodes.iter().find(|n| n["node"] == "worker2").unwrap()["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| {
            b["kind"] == "record"
                || b["kind"].get("erofs") == Some(&"config".into())
                || b["kind"].get("verity") == Some(&"config".into())
        })
        .map(|b| b["size"].as_u64().unwrap())
        .sum();
    assert_eq!(w2["bytes_downloaded"].as_u64().unwrap(), own, "{w2}");
    assert!(own < all_bytes / 2, "{own} of {all_bytes}");
    let present: Vec<&serde_json::Value> = w2["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "present")
        .collect();
    assert_eq!(present.len(), 2, "the payload's EROFS file and tree: {w2}");
    // The same pull again: nothing to switch.
    let w2b = host
        .pull(&registry, &format!("{repo}:worker2"), &["--json"])
        .ok()
        .json();
    assert_eq!(w2b["switched"], false);
    assert_eq!(w2b["generation"], 1);
    // Nothing downloaded: the record the host holds is not fetched again, every blob present.
    assert_eq!(w2b["bytes_downloaded"], 0, "{w2b}");
    assert!(
        w2b["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "present" && b["transferred"] == 0),
        "{w2b}"
    );
    let text = host.pull(&registry, &format!("{repo}:worker2"), &[]).ok();
    assert!(
        text.stdout
            .contains("(0 blobs downloaded, 0 resumed, 5 present; 0 B received), verified"),
        "{}",
        text.stdout
    );

    // By image id and by manifest digest: same image.
    let by_digest = format!(
        "{repo}@{}",
        push["nodes"][0]["manifest_digest"].as_str().unwrap()
    );
    let d = host.pull(&registry, &by_digest, &["--json"]).ok().json();
    assert_eq!(d["image_id"], push["nodes"][0]["image_id"]);

    // A second generation of worker1, pushed and pulled.
    crate::set_verbosity(&ctx, 5);
    ctx.net(&["build", "--node", "worker1"]).ok();
    let id2 = crate::current_id_in(&built_out, "worker1");
    let p2 = push_to(&ctx, &registry, &repo, &["--node", "worker1", "--json"])
        .ok()
        .json();
    assert_eq!(p2["nodes"][0]["tags"][1], "worker1-gen2");
    assert_eq!(
        p2["blobs_uploaded"], 3,
        "record and config layer only: {p2}"
    );
    let g2 = host
        .pull(&registry, &format!("{repo}:worker1"), &["--json"])
        .ok()
        .json();
    assert_eq!(
        (g2["generation"].as_u64(), g2["image_id"].as_str()),
        (Some(2), Some(id2.as_str()))
    );

    // The host's own commands work on its out/ alone.
    let list = host
        .run(&registry, &["list", "--node", "worker1", "--json"], &[])
        .ok()
        .json();
    assert_eq!(list["nodes"][0]["current"], 2);
    host.run(&registry, &["show", "worker1"], &[])
        .ok()
        .stdout_has(&id2[..12]);
    let v = host.run(&registry, &["verify", "--json"], &[]).ok().json();
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        !v["layers_root_hash_only"].as_array().unwrap().is_empty(),
        "{v}"
    );
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("no manifest")),
        "{v}"
    );

    // The registry gone: rollback to the first image, offline.
    registry.stop();
    let rb = host
        .run(&registry, &["rollback", "worker1", "--json"], &[])
        .ok()
        .json();
    assert_eq!(rb["rolled_back"][0]["to"], 1);
    assert_eq!(crate::current_id_in(out, "worker1"), id);
    let v = host
        .run(&registry, &["verify", "--rebuild", "--json"], &[])
        .ok()
        .json();
    assert_eq!(v["ok"], true, "{v}");
}

/// Blobs another repository of the registry has are mounted, not uploaded.
#[test]
fn push_mounts_blobs_from_another_repository() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    reg(
        ctx.path(),
        &registry,
        &["push", &registry.repo("a"), "--node", "worker1"],
        &[],
    )
    .ok();
    let r = reg(
        ctx.path(),
        &registry,
        &[
            "push",
            &registry.repo("b"),
            "--node",
            "worker1",
            "--mount-from",
            "a",
            "--json",
        ],
        &[],
    )
    .ok()
    .json();
    assert_eq!(r["blobs_mounted"], 5, "{r}");
    assert_eq!(r["blobs_uploaded"], 0, "{r}");
    assert_eq!(r["bytes_uploaded"], 0, "{r}");
}

/// Two pulls of two nodes at once into the same out/: both succeed, the shared payload lands
/// once.
#[test]
fn concurrent_pulls_share_the_payload() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    push_to(&ctx, &registry, &repo, &[]).ok();
    let h = Host::new();
    let outs = &h.outs;
    let threads: Vec<_> = ["worker1", "worker2", "control0"]
        .into_iter()
        .map(|n| {
            let (h, outs, reference) = (h.to_path_buf(), outs.clone(), format!("{repo}:{n}"));
            let host = registry.host();
            std::thread::spawn(move || {
                let home = h.join("home").display().to_string();
                run_env(
                    &h,
                    &[
                        "--out",
                        &outs,
                        "pull",
                        &reference,
                        "--insecure-registry",
                        &host,
                    ],
                    &[("HOME", &home)],
                    None,
                )
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().ok();
    }
    let layers = std::fs::read_dir(h.join("out/layers"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(layers, 1 + 3, "one payload, three config layers");
    let v = h.run(&registry, &["verify", "--json"], &[]).ok().json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["nodes_checked"], 3);
}

/// `mirror push oci://…` puts the store's locked artifacts in a registry; a second builder with
/// an empty store fetches every artifact from it (each checked against the lockfile's sha256)
/// and builds the same images; an artifact damaged in the registry is refused.
#[test]
fn an_oci_mirror_feeds_fetch_and_build() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let target = format!("oci+http://{}/artifacts", registry.host());
    let r = ctx.run(&["mirror", "push", &target, "--json"]).ok().json();
    assert_eq!(r["kind"], "mirror-push-report");
    let n = r["artifacts"].as_u64().unwrap();
    assert!(n > 0, "{r}");
    assert_eq!(
        r["blobs_uploaded"].as_u64().unwrap(),
        n + 1,
        "artifacts and the lockfile: {r}"
    );
    let again = ctx.run(&["mirror", "push", &target, "--json"]).ok().json();
    assert_eq!(again["blobs_uploaded"], 0);
    assert_eq!(again["manifest_digest"], r["manifest_digest"]);

    // A second builder: the same manifest and lockfile, an empty store, the registry only.
    let b = TestContext::new();
    std::fs::create_dir_all(b.lockfile().parent().unwrap()).unwrap();
    std::fs::copy(ctx.lockfile(), b.lockfile()).unwrap();
    let f = b
        .run(&["fetch", "--mirrors-only", "--mirror", &target, "--json"])
        .ok()
        .json();
    let prefix = format!("http://{}/v2/artifacts/blobs/sha256:", registry.host());
    let arts = f["artifacts"].as_array().unwrap();
    assert!(!arts.is_empty());
    for a in arts {
        assert_eq!(a["status"], "fetched", "{a}");
        assert!(a["source"].as_str().unwrap().starts_with(&prefix), "{a}");
    }
    b.run(&["build", "--offline"]).ok();
    assert_eq!(
        crate::current_id_in(&b.path().join("out"), "worker1"),
        crate::current_id_in(&ctx.path().join("out"), "worker1")
    );

    // A damaged artifact in the registry: refused by the lockfile's sha256.
    let c = TestContext::new();
    std::fs::create_dir_all(c.lockfile().parent().unwrap()).unwrap();
    std::fs::copy(ctx.lockfile(), c.lockfile()).unwrap();
    let victim = arts[0]["sha256"].as_str().unwrap();
    let file = registry.blob_file(victim);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let r = c.run(&[
        "fetch",
        "--mirrors-only",
        "--mirror",
        &target,
        "--retries",
        "0",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{prefix}{victim}: sha256 mismatch: expected {victim}"
        )),
        "{}",
        r.stderr
    );
}

/// Records an older nodeforge kept whole (format 2, every entry listed), written by hand in
/// place of the build's: show, verify (with --rebuild), a no-op build, rollback and push all work
/// on them, and push sends the very record the build's own form loads to (nothing uploaded
/// again).
#[test]
fn records_kept_whole_by_an_older_nodeforge_still_work() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("fleet/old");
    let first = push_to(&ctx, &registry, &repo, &["--json"]).ok().json();
    let id = crate::current_id(&ctx, "worker1");
    let shown = ctx.run(&["show", "worker1", "--json"]).ok().json();
    // Every record of worker1 (the image directory's and the generation's, one file by hard
    // link) replaced by its whole form.
    let image_record = ctx
        .path()
        .join("out/images")
        .join(&id)
        .join("manifest.json");
    let gen_record = ctx
        .path()
        .join("out/nodes/worker1/generations/1/manifest.json");
    let stored = std::fs::read(&image_record).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&stored).unwrap()["format"],
        3
    );
    let whole = crate::whole_record::<nodeforge::image::ImageManifest>(&image_record).to_json();
    assert!(whole.len() > stored.len());
    for p in [&image_record, &gen_record] {
        std::fs::remove_file(p).unwrap();
        std::fs::write(p, &whole).unwrap();
    }
    // And its layers' records in the indented form an older nodeforge wrote.
    let image_dir = image_record.parent().unwrap();
    for role in ["payload", "config"] {
        let p = crate::layer_of(image_dir, role).join("layer.json");
        let rec: nodeforge::image::LayerRecord =
            serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), rec.to_json());
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, rec.to_indented_json()).unwrap();
    }
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&gen_record).unwrap()).unwrap()
            ["format"],
        2
    );
    let mut again = ctx.run(&["show", "worker1", "--json"]).ok().json();
    for k in ["attestations", "signatures"] {
        again[k] = shown[k].clone();
    }
    assert_eq!(
        again, shown,
        "show reads the whole record as the stored one"
    );
    ctx.run(&["verify"]).ok();
    ctx.run(&["verify", "--rebuild"]).ok();
    // A build that changes nothing records nothing: the whole record says what the build's does.
    let b = ctx.net(&["build", "--json"]).ok().json();
    let w1 = node_in(&b, "worker1");
    assert_eq!(
        (w1["status"].as_str(), w1["generation"].as_u64()),
        (Some("unchanged"), Some(1)),
        "{w1}"
    );
    // Push: the same record blob (its digest is the whole record's), nothing uploaded again.
    let pushed = push_to(&ctx, &registry, &repo, &["--json", "--node", "worker1"])
        .ok()
        .json();
    assert_eq!(pushed["blobs_uploaded"], 0, "{pushed}");
    let record_blob = |r: &serde_json::Value| node_in(r, "worker1")["blobs"][0]["digest"].clone();
    assert_eq!(record_blob(&pushed), record_blob(&first));
    // Rollback to another generation and back.
    crate::set_verbosity(&ctx, 3);
    ctx.net(&["build"]).ok();
    assert_ne!(crate::current_id(&ctx, "worker1"), id);
    ctx.run(&["rollback", "worker1"]).ok();
    assert_eq!(crate::current_id(&ctx, "worker1"), id);
    ctx.run(&["verify"]).ok();
}
