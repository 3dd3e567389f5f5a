//! Generations, rollback, diff, gc and verify.

use std::path::PathBuf;

use crate::{current_id, set_verbosity, TestContext};

/// Three generations: the seed (v=2), a config upgrade (v=3), and runc 1.1.13 → 1.1.14 (v=3).
fn three_generations() -> (TestContext, Vec<String>) {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    let mut ids = vec![current_id(&ctx, "worker1")];
    set_verbosity(&ctx, 3);
    ctx.net(&["build"]).ok();
    ids.push(current_id(&ctx, "worker1"));
    ctx.edit_manifest("runc = \"1.1.13\"", "runc = \"1.1.14\"");
    let m = nodeforge::manifest::Manifest::load(&ctx.manifest()).unwrap();
    nodeforge::standin::write_mirror(&m, ctx.server.root(), 8192).unwrap();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    ids.push(current_id(&ctx, "worker1"));
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3,
        "{ids:?}"
    );
    (ctx, ids)
}

fn kubelet_unit(ctx: &TestContext, node: &str) -> String {
    let id = current_id(ctx, node);
    let m: serde_json::Value = crate::whole_record(
        &ctx.path()
            .join("out/images")
            .join(&id)
            .join("manifest.json"),
    );
    let b3 = m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/etc/systemd/system/kubelet.service")
        .unwrap()["blake3"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::read_to_string(
        ctx.store()
            .join("blake3")
            .join(&b3[..2])
            .join(&b3[2..4])
            .join(&b3[4..]),
    )
    .unwrap()
}

#[test]
fn rollback_after_two_upgrades() {
    let (ctx, ids) = three_generations();
    let v = ctx
        .run(&["list", "--node", "worker1", "--json"])
        .ok()
        .json();
    assert_eq!(v["nodes"][0]["current"], 3);
    let listed: Vec<&str> = v["nodes"][0]["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["image_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    ctx.run(&["rollback", "worker1"])
        .ok()
        .stdout_has("worker1: generation 3 → 2");
    assert_eq!(current_id(&ctx, "worker1"), ids[1]);
    ctx.run(&["rollback", "worker1"])
        .ok()
        .stdout_has("worker1: generation 2 → 1");
    assert_eq!(current_id(&ctx, "worker1"), ids[0]);
    assert!(kubelet_unit(&ctx, "worker1").contains("--v=2"));
    ctx.run(&["rollback", "worker1"])
        .fails()
        .stderr_has("node `worker1` has no generation before 1");
    // Other nodes were not touched; --all moves every node back one generation.
    assert_ne!(current_id(&ctx, "worker0"), current_id(&ctx, "worker1"));
    ctx.run(&["list"]).ok().stdout_has("worker1\n  *   1  ");
    let before: Vec<String> = ["control0", "worker0", "worker1"]
        .iter()
        .map(|n| current_id(&ctx, n))
        .collect();
    // --all moves back every node that can go back, and names the one that cannot.
    let r = ctx.run(&["rollback", "--all"]).ok();
    assert_eq!(
        r.stderr,
        "note: worker1 was not rolled back: node `worker1` has no generation before 1\n"
    );
    let r = r.stdout_has("worker0: generation 3 → 2 (image ");
    assert!(!r.stdout.contains("worker1"), "{}", r.stdout);
    let after: Vec<String> = ["control0", "worker0", "worker1"]
        .iter()
        .map(|n| current_id(&ctx, n))
        .collect();
    assert_eq!(before[2], after[2], "worker1 stays on generation 1");
    assert_ne!(before[1], after[1], "worker0 went back");
    // Once every node has a generation to go back to, --all moves each back one.
    ctx.run(&["rollback", "worker1", "--to", &ids[2]]).ok();
    let v = ctx.run(&["rollback", "--all", "--json"]).ok().json();
    assert_eq!(v["skipped"].as_array().map(Vec::len), Some(0), "{v}");
    let v = &v["rolled_back"];
    assert_eq!(v.as_array().map(Vec::len), Some(6), "{v}");
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|r| r["to"].as_u64() == r["from"].as_u64().map(|f| f - 1)),
        "{v}"
    );
    assert_eq!(
        current_id(&ctx, "worker1"),
        ids[1],
        "worker1: generation 3 → 2"
    );
    assert_ne!(
        current_id(&ctx, "worker0"),
        before[1],
        "worker0 moved back as well"
    );
}

#[test]
fn rollback_to_an_id_prefix_and_ambiguity() {
    let (ctx, ids) = three_generations();
    ctx.run(&["rollback", "worker1", "--to", &ids[0][..8]])
        .ok()
        .stdout_has(&format!("generation 3 → 1 (image {})", ids[0]));
    ctx.run(&["rollback", "worker1", "--to", &ids[2][..12]])
        .ok();
    assert_eq!(current_id(&ctx, "worker1"), ids[2]);
    // A generation number: `@N`, or `NODE@N` as `show` and `diff` take it.
    ctx.run(&["rollback", "worker1", "--to", "@2"])
        .ok()
        .stdout_has(&format!("generation 3 → 2 (image {})", ids[1]));
    ctx.run(&["rollback", "worker1", "--to", "worker1@1"])
        .ok()
        .stdout_has(&format!("generation 2 → 1 (image {})", ids[0]));
    ctx.run(&["rollback", "worker1", "--to", "worker1@3"]).ok();
    assert_eq!(current_id(&ctx, "worker1"), ids[2]);
    ctx.run(&["rollback", "worker1", "--to", "zzzz"])
        .fails()
        .stderr_has("`--to zzzz` is neither a generation of node `worker1` nor the start of an image id it had\nhint: `nodeforge list --node worker1` shows");
    // Two images sharing a prefix: made directly, so the prefix is certain.
    let out = tempfile::tempdir().unwrap();
    for id in ["abc1", "abc2"] {
        nodeforge::generations::record(
            out.path(),
            "n",
            &format!("{id}{}", "0".repeat(60)),
            "l",
            b"{}",
        )
        .unwrap();
    }
    crate::run_in(out.path(), &["--out", ".", "rollback", "n", "--to", "abc"])
        .fails()
        .stderr_has(
            "`abc` is ambiguous for node `n`: it starts abc1000000000000, abc2000000000000",
        );
}

#[test]
fn rolling_back_to_a_collected_image_rebuilds_it_from_the_store() {
    let (ctx, ids) = three_generations();
    let dir = ctx.path().join("out/images").join(&ids[0]);
    let layer = crate::layer_of(&dir, "config");
    // An image's directory and its own config layer's files gone (the layer's record, which
    // holds the entries the generation's record does not repeat, kept: gc keeps the layers of
    // every generation it keeps).
    let collect = || {
        for f in [
            "nodeforge-config.raw",
            "nodeforge-config.verity",
            "nodeforge-config.roothash",
        ] {
            std::fs::remove_file(layer.join(f)).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    };
    let before = std::fs::read(dir.join("nodeforge-config.raw")).unwrap();
    let record = std::fs::read(dir.join("manifest.json")).unwrap();
    collect();
    ctx.run(&["rollback", "worker1", "--to", &ids[0]])
        .ok()
        .stdout_has("its files rebuilt from the store");
    assert_eq!(
        std::fs::read(dir.join("nodeforge-config.raw")).unwrap(),
        before,
        "the same bytes again"
    );
    assert_eq!(std::fs::read(dir.join("manifest.json")).unwrap(), record);
    ctx.run(&["verify"]).ok();
    // Without the store objects it cannot, and says what is missing.
    collect();
    for (path, _) in ctx.store_objects() {
        let content = std::fs::read(&path).unwrap();
        if content.windows(6).any(|w| w == b"--v=2\n") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    ctx.run(&["rollback", "worker1", "--to", &ids[1]]).ok();
    ctx.run(&["rollback", "worker1", "--to", &ids[0]])
        .fails()
        .stderr_has(&format!("image {} cannot be written: the store lacks /etc/systemd/system/kubelet.service (from template etc/systemd/system/kubelet.service)", ids[0]));
    assert_eq!(
        current_id(&ctx, "worker1"),
        ids[1],
        "a failed rollback switches nothing"
    );
}

#[test]
fn an_edited_generation_record_is_refused_not_rebuilt() {
    let (ctx, ids) = three_generations();
    std::fs::remove_dir_all(ctx.path().join("out/images").join(&ids[0])).unwrap();
    // Generation 1's record, edited: its config layer swapped for one its id does not cover,
    // and the id pointed out of images/.
    let record = ctx
        .path()
        .join("out/nodes/worker1/generations/1/manifest.json");
    let text = std::fs::read_to_string(&record).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], 3, "kept without its entries");
    let config = v["layers"][1]["id"].as_str().unwrap();
    let edited = text.replacen(config, &"f".repeat(64), 1);
    assert_ne!(edited, text);
    std::fs::write(&record, edited).unwrap();
    ctx.run(&["rollback", "worker1", "--to", &ids[0]])
        .fails()
        .stderr_has("the record is damaged or was edited\nhint: `nodeforge verify` lists what is damaged; `nodeforge repair` writes layers and images again from the store and the generations' records\n");
    std::fs::write(&record, text.replace(&ids[0], "../../escape")).unwrap();
    ctx.run(&["rollback", "worker1", "--to", &ids[0]])
        .fails()
        .stderr_has("not to the id it records (../../escape)");
    ctx.run(&["show", "worker1@1"])
        .fails()
        .stderr_has("the record is damaged or was edited");
    assert!(!ctx.path().join("out/escape").exists());
    assert_eq!(current_id(&ctx, "worker1"), ids[2], "nothing switched");
}

#[test]
fn diff_shows_files_versions_and_text() {
    let (ctx, ids) = three_generations();
    let r = ctx.run(&["diff", "worker1@1", "worker1"]).ok();
    r.stdout_has(&format!("--- {}\n+++ {}", ids[0], ids[2]))
        .stdout_has("version runc: 1.1.13 → 1.1.14")
        .stdout_has("changed /usr/local/bin/runc")
        .stdout_has("changed /etc/systemd/system/kubelet.service")
        .stdout_has("-  --v=2\n    +  --v=3");
    let v = ctx
        .run(&["diff", &ids[1][..10], &ids[2][..10], "--json"])
        .ok()
        .json();
    let changed: Vec<&str> = v["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed, vec!["/usr/local/bin/runc"]);
    assert_eq!(v["versions"][0]["from"], "1.1.13");
    ctx.run(&["diff", "worker0", "worker0"])
        .ok()
        .stdout_has("identical");
    let v = ctx
        .run(&["diff", "worker0", "worker1", "--json"])
        .ok()
        .json();
    assert!(v["changed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["path"] == "/etc/cni/net.d/10-bridge.conf"));
}

#[test]
fn gc_keeps_current_and_kept_generations_and_frees_the_rest() {
    let (ctx, ids) = three_generations();
    ctx.run(&["rollback", "worker1"]).ok(); // worker1 now on generation 2
    let count = |p: PathBuf| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
    let objects_before = ctx.store_objects().len();
    let images_before = count(ctx.path().join("out/images"));
    let v = ctx
        .run(&["gc", "--keep-generations", "1", "--dry-run", "--json"])
        .ok()
        .json();
    assert!(v["freed_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        ctx.store_objects().len(),
        objects_before,
        "dry run removes nothing"
    );
    assert_eq!(count(ctx.path().join("out/images")), images_before);
    let v = ctx
        .run(&["gc", "--keep-generations", "1", "--json"])
        .ok()
        .json();
    let removed: Vec<&str> = v["removed_generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert!(
        removed.contains(&"worker1@1")
            && removed.contains(&"worker0@1")
            && removed.contains(&"worker0@2"),
        "{removed:?}"
    );
    assert!(
        !removed.contains(&"worker1@2"),
        "the current generation stays"
    );
    assert!(
        !removed.contains(&"worker1@3"),
        "the newest generation stays"
    );
    assert!(v["removed_objects"].as_u64().unwrap() > 0, "{v}");
    // What is left still verifies, and the kept generations still roll back without a rebuild.
    assert!(!ctx.path().join("out/images").join(&ids[0]).exists());
    ctx.run(&["verify", "--rebuild"]).ok();
    // Every kept record loads: gc kept the layers whose records hold its entries.
    for g in ["worker1@2", "worker1@3"] {
        let shown = ctx.run(&["show", g, "--json"]).ok().json();
        assert!(
            shown["entries"].as_array().unwrap().len() > 30,
            "{g}: {shown}"
        );
    }
    ctx.run(&["rollback", "worker1", "--to", &ids[2]]).ok();
    assert!(
        ctx.run(&["list", "--node", "worker1"])
            .ok()
            .stdout
            .lines()
            .count()
            == 3
    );
    // The v=2 unit is gone with generation 1; runc 1.1.13 (no longer locked, no longer used) too.
    assert!(ctx.store_objects().iter().all(|(p, _)| !std::fs::read(p)
        .unwrap()
        .windows(6)
        .any(|w| w == b"--v=2\n")));
}

#[test]
fn verify_passes_on_an_untouched_tree_and_rebuilds_byte_for_byte() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    let v = ctx.run(&["verify", "--rebuild", "--json"]).ok().json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["images_rebuilt"], 6);
    assert_eq!(v["images_from_inputs"], 6, "{v}");
    assert_eq!(v["drift"].as_array().map(Vec::len), Some(0), "{v}");
    assert!(v["objects_checked"].as_u64().unwrap() > 30);

    // The same record, written differently (compact JSON): it still checks out against its id,
    // only the rebuild sees that manifest.json is not the bytes the build makes.
    let record = ctx
        .path()
        .join("out/images")
        .join(current_id(&ctx, "worker0"))
        .join("manifest.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    std::fs::set_permissions(&record, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&record, serde_json::to_vec(&v).unwrap()).unwrap();
    ctx.run(&["verify"]).ok();
    ctx.run(&["verify", "--rebuild"])
        .fails()
        .stderr_has(&format!(
            "FAIL worker0: rebuilding image {} gives a different manifest.json",
            current_id(&ctx, "worker0")
        ));
}

#[test]
fn verify_rebuild_says_which_nodes_are_not_what_the_inputs_build() {
    let (ctx, ids) = three_generations();
    ctx.run(&["rollback", "worker1", "--to", &ids[0]]).ok();
    let r = ctx.run(&["verify", "--rebuild", "--json"]).ok();
    let v = r.json();
    assert_eq!(v["images_rebuilt"], 6);
    assert_eq!(v["images_from_inputs"], 5, "{v}");
    let drift: Vec<String> = serde_json::from_value(v["drift"].clone()).unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(
        drift[0].starts_with(&format!(
            "worker1: its current image {} is not what",
            ids[0]
        )),
        "{drift:?}"
    );
    ctx.run(&["verify", "--rebuild"])
        .ok()
        .stderr_has("note: worker1: its current image");
}

fn flip(path: &std::path::Path, at: usize) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut b = std::fs::read(path).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn verify_reports_every_failure() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    // A flipped byte in a store object.
    let (obj, name) = ctx
        .store_objects()
        .into_iter()
        .find(|(p, _)| std::fs::metadata(p).unwrap().len() > 1000)
        .unwrap();
    flip(&obj, 500);
    // A flipped byte in worker2's config layer.
    let layer_dir = crate::layer_of(
        &ctx.path()
            .join("out/images")
            .join(current_id(&ctx, "worker2")),
        "config",
    );
    let img = layer_dir.join("nodeforge-config.raw");
    let layer = layer_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let len = std::fs::metadata(&img).unwrap().len() as usize;
    flip(&img, len / 2);
    // An edited lockfile.
    let lock = ctx.lock_text();
    std::fs::write(
        ctx.lockfile(),
        lock.replacen("size = 8192", "size = 8193", 1),
    )
    .unwrap();
    let r = ctx.run(&["verify"]).fails();
    let rel = obj.strip_prefix(ctx.path()).unwrap().display().to_string();
    r.stderr_has(&format!("FAIL store object {rel} is corrupt"))
        .stderr_has(&format!("FAIL layer {layer}: "))
        .stderr_has("FAIL ")
        .stderr_has("the lockfile was edited by hand");
    // Reading instead of mapping finds the same damage.
    ctx.run(&["verify", "--no-mmap"])
        .fails()
        .stderr_has(&format!("FAIL store object {rel} is corrupt"));
    let _ = name;
    // A stale lockfile is a failure too.
    std::fs::write(ctx.lockfile(), lock).unwrap();
    ctx.edit_manifest("containerd = \"1.7.20\"", "containerd = \"1.7.21\"");
    ctx.run(&["verify", "--json"])
        .fails()
        .stderr_has("FAIL lockfile is stale: containerd 1.7.20 → 1.7.21 (amd64)");
}

#[test]
fn gc_waits_for_a_process_using_the_store() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    // Hold the store the way a running fetch or build does (a shared lock).
    let guard = std::fs::File::options()
        .write(true)
        .open(ctx.store().join(".lock"))
        .unwrap();
    guard.lock_shared().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nodeforge"))
        .args(["gc", "--keep-generations", "1"])
        .current_dir(ctx.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "gc must wait while the store is in use"
    );
    guard.unlock().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn verify_on_an_empty_out_says_it_checked_only_the_lockfile() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.run(&["verify"])
        .ok()
        .stderr_has("holds no store objects and no images: only the lockfile was checked");
    ctx.net(&["build"]).ok();
    let r = ctx.run(&["verify"]).ok();
    assert!(!r.stderr.contains("holds no store objects"), "{}", r.stderr);
}

/// The payload layer directory of an image (from its record).
fn payload_of(ctx: &TestContext, id: &str) -> PathBuf {
    crate::layer_of(&ctx.path().join("out/images").join(id), "payload")
}

#[test]
fn gc_keeps_a_shared_payload_while_any_kept_generation_uses_it() {
    let (ctx, ids) = three_generations();
    // Generations 1 and 2 share the runc 1.1.13 payload; generation 3 has runc 1.1.14's.
    let (old, new) = (payload_of(&ctx, &ids[1]), payload_of(&ctx, &ids[2]));
    assert_eq!(payload_of(&ctx, &ids[0]), old);
    assert_ne!(old, new);
    ctx.run(&["rollback", "worker1"]).ok(); // worker1 on generation 2: the old payload is live
    let v = ctx
        .run(&["gc", "--keep-generations", "1", "--json"])
        .ok()
        .json();
    assert!(old.is_dir() && new.is_dir(), "{v}");
    assert!(
        v["removed_layers"].as_array().unwrap().len() >= 6,
        "old config layers go: {v}"
    );
    // Once no kept generation uses it, it goes.
    ctx.run(&["rollback", "worker1", "--to", &ids[2]]).ok();
    let v = ctx
        .run(&["gc", "--keep-generations", "1", "--json"])
        .ok()
        .json();
    assert!(!old.exists(), "{v}");
    assert!(new.is_dir());
    let old_id = old.file_name().unwrap().to_string_lossy().into_owned();
    assert!(v["removed_layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == old_id.as_str()));
    ctx.run(&["verify", "--rebuild"]).ok();
}

#[test]
fn a_whole_root_generation_from_before_layers_is_listed_and_refused_with_the_reason() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1"]).ok();
    let layered = current_id(&ctx, "worker1");
    // A generation as nodeforge recorded it before layers: format 1, one whole-root entry list
    // with the kubelet config under /var, and its id the hash of that list.
    let entries = vec![
        nodeforge::image::Entry::dir("/var"),
        nodeforge::image::Entry::dir("/var/lib"),
        nodeforge::image::Entry::dir("/var/lib/kubelet"),
        nodeforge::image::Entry::file(
            "/var/lib/kubelet/kubelet-config.yaml",
            0o644,
            4,
            nodeforge::hash::Blake3::of(b"old\n"),
        ),
    ];
    let id = nodeforge::image::image_id(&entries).to_hex();
    let old = nodeforge::image::ImageManifest {
        format: 1,
        id: id.clone(),
        node: "worker1".into(),
        arch: "amd64".into(),
        layers: Vec::new(),
        entries,
        provenance: Default::default(),
        verity: None,
    };
    let out = ctx.path().join("out");
    nodeforge::generations::record(&out, "worker1", &id, "lock", &old.to_json()).unwrap();
    nodeforge::generations::switch(&out, "worker1", 1).unwrap();
    ctx.run(&["list", "--node", "worker1"])
        .ok()
        .stdout_has("(whole-root, format 1: cannot be switched to)");
    ctx.run(&["rollback", "worker1", "--to", &id[..12]])
        .fails()
        .stderr_has(&format!("image {id} of node `worker1` is a whole-root image (format 1, from before layered images): its config lived under /var, which layers cannot hold"))
        .stderr_has("hint: roll back to a generation built with layers");
    assert_eq!(current_id(&ctx, "worker1"), layered, "nothing switched");
    // show and diff still read it; gc and verify keep working around it.
    ctx.run(&["show", "worker1@2"])
        .ok()
        .stdout_has("whole-root format 1");
    ctx.run(&["diff", "worker1@2", "worker1@1"])
        .ok()
        .stdout_has("removed /var/lib/kubelet/kubelet-config.yaml");
    ctx.run(&["gc"]).ok();
    ctx.run(&["verify"]).ok();
}

/// A record kept without its entries takes them from its layers' records: a layer record that
/// is edited (kubelet made setuid) or missing is refused with an error naming the layer, and
/// nothing is switched or written.
#[test]
fn a_record_whose_layer_record_is_edited_or_missing_is_refused_naming_the_layer() {
    let (ctx, ids) = three_generations();
    let image = ctx.path().join("out/images").join(&ids[0]);
    let payload = crate::layer_of(&image, "payload");
    let layer = payload.file_name().unwrap().to_string_lossy().into_owned();
    let rec = payload.join("layer.json");
    let text = std::fs::read_to_string(&rec).unwrap();
    let edited = text.replacen("\"mode\":493", "\"mode\":2541", 1);
    assert_ne!(edited, text);
    std::fs::set_permissions(&rec, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&rec, &edited).unwrap();
    let r = ctx.run(&["rollback", "worker1", "--to", &ids[0]]).fails();
    r.stderr_has("its entries are in its payload layer's record, which cannot give them")
        .stderr_has(&format!("layers/{layer}/layer.json"))
        .stderr_has(&format!(
            "hint: `nodeforge build` writes layer {}",
            &layer[..16]
        ));
    ctx.run(&["show", "worker1@1"])
        .fails()
        .stderr_has("its payload layer's record");
    assert_eq!(current_id(&ctx, "worker1"), ids[2], "nothing switched");
    let v = ctx.run(&["verify", "--json"]).fails().json();
    assert!(
        v["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("payload layer's record")),
        "{v}"
    );
    // repair cannot write a layer whose only list of entries is damaged: it says so, and how
    // to get it again.
    let v = ctx.run(&["repair", "--json"]).fails().json();
    assert!(
        v["unrepaired"].as_array().unwrap().iter().any(|f| f
            .as_str()
            .unwrap()
            .contains("payload layer's record")
            && f.as_str()
                .unwrap()
                .contains("`nodeforge build` writes layer")),
        "{v}"
    );
    // Missing: the same, named.
    std::fs::remove_dir_all(&payload).unwrap();
    ctx.run(&["show", "worker1@1"])
        .fails()
        .stderr_has("its payload layer's record")
        .stderr_has(&layer);
}
