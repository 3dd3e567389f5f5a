//! The trust model, as tests: the inputs are trusted, everything under `out/` is derived and is
//! re-checked where it is used or by `verify`. Each test plants what an attacker (or an unlucky
//! disk) could, and checks that `verify` names it, and that `build`/`rollback` do not use it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::{built, current_id, node_in, TestContext};

fn relink(link: &Path, target: &str) {
    std::fs::remove_file(link).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn writable(p: &Path) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn a_generation_link_re_pointed_to_another_nodes_image_fails_verify_and_is_not_unchanged() {
    let ctx = built();
    let (w0, w1) = (current_id(&ctx, "worker0"), current_id(&ctx, "worker1"));
    let link = ctx.path().join("out/nodes/worker1/generations/1/image");
    relink(&link, &format!("../../../../images/{w0}"));
    for args in [&["verify"][..], &["verify", "--rebuild"][..]] {
        ctx.run(args).fails().stderr_has(&format!(
            "FAIL nodes/worker1/generations/1/image: points to ../../../../images/{w0}, but the generation is image {w1} (../../../../images/{w1} expected)"
        ));
    }
    // build does not call that unchanged: it records the node's real image again.
    let v = ctx.net(&["build", "--json"]).ok().json();
    let n = node_in(&v, "worker1");
    assert_ne!(n["status"], "unchanged", "{n}");
    assert_eq!(current_id(&ctx, "worker1"), w1);
}

#[test]
fn current_must_point_at_one_of_the_nodes_generations() {
    let ctx = built();
    let current = ctx.path().join("out/nodes/worker1/current");
    for (target, what) in [
        (
            "/",
            "points to /, not to generations/<n>/image of one of the node's generations (1)",
        ),
        (
            "../worker0/current",
            "points to ../worker0/current, not to generations/<n>/image",
        ),
        (
            "generations/1/image/../../../worker0/generations/1/image",
            "points to generations/1/image/../../../worker0/generations/1/image, not to",
        ),
        (
            "generations/7/image",
            "points to generations/7/image, not to",
        ),
    ] {
        relink(&current, target);
        ctx.run(&["verify"])
            .fails()
            .stderr_has(&format!("FAIL nodes/worker1/current: {what}"));
    }
    // Replaced by a directory: not skipped.
    std::fs::remove_file(&current).unwrap();
    std::fs::create_dir(&current).unwrap();
    ctx.run(&["verify", "--rebuild"]).fails().stderr_has(
        "FAIL nodes/worker1/current: not a symlink: it must point at generations/<n>/image",
    );
}

#[test]
fn a_node_of_the_manifest_never_built_is_reported() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1"]).ok();
    let r = ctx.run(&["verify", "--rebuild"]).ok();
    for n in ["control0", "control1", "control2", "worker0", "worker2"] {
        assert!(
            r.stderr.contains(&format!("note: node `{n}` of ")),
            "{n}: {}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("node `worker1`"), "{}", r.stderr);
    let v = ctx.run(&["verify", "--json"]).ok().json();
    assert_eq!(v["unbuilt"].as_array().unwrap().len(), 5);
    assert_eq!(v["nodes_checked"], 1);
}

#[test]
fn a_planted_layer_with_its_own_tree_and_edited_records_fails_verify_and_rollback_restores_the_pinned_one(
) {
    let ctx = built();
    let gen1 = current_id(&ctx, "worker1");
    crate::set_verbosity(&ctx, 3);
    ctx.net(&["build"]).ok();
    let gen2 = current_id(&ctx, "worker1");
    let layer = {
        let image = ctx.path().join("out/images").join(&gen1);
        crate::layer_of(&image, "config")
    };
    let raw = layer.join("nodeforge-config.raw");
    let original = std::fs::read(&raw).unwrap();
    let old_root = std::fs::read_to_string(layer.join("nodeforge-config.roothash"))
        .unwrap()
        .trim_end()
        .to_string();
    // Plant: the containerd config changed inside the EROFS file, a hash tree made for it by
    // veritysetup with the same salt and uuid, and every record under out/ edited to pin it.
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layer.join("layer.json")).unwrap()).unwrap();
    let mut planted = original.clone();
    let at = planted
        .windows(10)
        .position(|w| w == b"SystemdCgr")
        .expect("containerd's config in the layer");
    planted[at..at + 10].copy_from_slice(b"systemdCgr");
    for f in [
        "nodeforge-config.raw",
        "nodeforge-config.verity",
        "nodeforge-config.roothash",
        "layer.json",
    ] {
        writable(&layer.join(f));
    }
    std::fs::write(&raw, &planted).unwrap();
    let out = std::process::Command::new("veritysetup")
        .args(["format", "--salt", rec["verity"]["salt"].as_str().unwrap()])
        .args(["--uuid", rec["verity"]["uuid"].as_str().unwrap()])
        .arg(&raw)
        .arg(layer.join("nodeforge-config.verity"))
        .output()
        .expect("veritysetup (cryptsetup-bin)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let new_root = text
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap()
        .trim()
        .to_string();
    assert_ne!(new_root, old_root);
    std::fs::write(
        layer.join("nodeforge-config.roothash"),
        format!("{new_root}\n"),
    )
    .unwrap();
    // Each record replaced by an edited copy (a new file renamed over it).
    let edit = |p: &Path| {
        let t = std::fs::read_to_string(p).unwrap();
        let tmp = p.with_extension("edited");
        std::fs::write(&tmp, t.replace(&old_root, &new_root)).unwrap();
        std::fs::rename(&tmp, p).unwrap();
    };
    edit(&layer.join("layer.json"));
    edit(
        &ctx.path()
            .join("out/images")
            .join(&gen1)
            .join("manifest.json"),
    );
    let r = ctx.run(&["verify"]).fails();
    r.stderr_has("is not the EROFS file its entries make from the store")
        .stderr_has(&format!(
            "pins config layer {} with root hash {new_root}, but worker1@1's record pins",
            rec["id"].as_str().unwrap()
        ));
    // Rollback follows the generation's record: the planted layer is not used, the layer is
    // written again from the store and is the original, byte for byte.
    ctx.run(&["rollback", "worker1", "--to", &gen1]).ok();
    assert_eq!(current_id(&ctx, "worker1"), gen1);
    assert!(
        std::fs::read(&raw).unwrap() == original,
        "the pinned layer is back"
    );
    ctx.run(&["verify", "--rebuild"]).ok();
    // With the generation's own record edited to pin the planted layer too, rollback refuses:
    // the layer its entries make is not the one the record pins.
    ctx.run(&["rollback", "worker1", "--to", &gen2]).ok();
    writable(&raw);
    std::fs::write(&raw, &planted).unwrap();
    edit(
        &ctx.path()
            .join("out/nodes/worker1/generations/1/manifest.json"),
    );
    ctx.run(&["rollback", "worker1", "--to", &gen1])
        .fails()
        .stderr_has(&format!("image {gen1}: its record pins root hash {new_root} for its config layer, but the layer's entries make {old_root}: the record is damaged or was edited"));
    assert_ne!(current_id(&ctx, "worker1"), gen1, "nothing switched");
}

#[test]
fn an_index_entry_pointing_at_another_object_fails_verify() {
    let ctx = built();
    let index = ctx.store().join("sha256");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&index)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let (a, b) = (&entries[0], &entries[1]);
    let other = std::fs::read_to_string(b).unwrap();
    writable(a);
    std::fs::write(a, &other).unwrap();
    let sha = a.file_name().unwrap().to_string_lossy().into_owned();
    let obj = other.split_whitespace().next().unwrap();
    ctx.run(&["verify"]).fails().stderr_has(&format!(
        "/sha256/{sha}: says artifact sha256 {sha} is object {obj}, whose sha256 is"
    ));
}

#[test]
fn an_extraction_record_naming_another_object_fails_verify_rebuild() {
    let ctx = built();
    let dir = ctx.store().join("extract");
    let kubelet_b3 = {
        let m: serde_json::Value =
            crate::whole_record(&ctx.path().join("out/nodes/worker1/current/manifest.json"));
        m["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "/usr/local/bin/kubelet")
            .unwrap()
            .clone()
    };
    // containerd's record: /usr/bin/containerd is now kubelet's object.
    let mut planted = false;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let mut rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        for f in rec["files"].as_array_mut().unwrap() {
            if f["target"] == "/usr/bin/containerd" {
                f["blake3"] = kubelet_b3["blake3"].clone();
                f["size"] = kubelet_b3["size"].clone();
                planted = true;
            }
        }
        writable(&p);
        std::fs::write(&p, serde_json::to_vec(&rec).unwrap()).unwrap();
    }
    assert!(planted);
    ctx.run(&["verify", "--rebuild"])
        .fails()
        .stderr_has(&format!(
        "the extraction record of containerd 1.7.20 (amd64) says /usr/bin/containerd is object {}",
        kubelet_b3["blake3"].as_str().unwrap()
    ));
}

#[test]
fn templates_must_lie_inside_the_manifests_directory() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    // An absolute path is refused by the manifest itself.
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    crate::copy_tree(
        &ctx.path().join("manifests/kubenet"),
        &elsewhere.path().join("tree"),
    );
    let abs = elsewhere.path().join("tree");
    ctx.set_manifest(&format!(
        "{t}\n[image]\ntemplates = \"{}\"\n",
        abs.display()
    ));
    ctx.net(&["build"])
        .fails()
        .stderr_has("must be a directory below the manifest's own");
    // A relative path that a symlink takes elsewhere is refused after resolving it.
    std::os::unix::fs::symlink(&abs, ctx.path().join("manifests/elsewhere")).unwrap();
    ctx.set_manifest(&format!("{t}\n[image]\ntemplates = \"elsewhere\"\n"));
    ctx.net(&["build"])
        .fails()
        .stderr_has(&format!(
            "error: the template tree manifests/elsewhere is {}, outside the manifest's directory",
            std::fs::canonicalize(&abs).unwrap().display()
        ))
        .stderr_has("hint: move the templates below the manifest's directory, or pass --allow-outside-templates");
    assert!(!ctx.path().join("out/images").exists());
    // Said explicitly on the command line, it is taken.
    ctx.net(&["build", "--allow-outside-templates"]).ok();
    ctx.run(&["verify", "--rebuild", "--allow-outside-templates"])
        .ok();
}

#[test]
fn two_clusters_never_share_an_output_directory() {
    let ctx = built();
    let w1 = current_id(&ctx, "worker1");
    ctx.edit_manifest("name = \"kubenet\"", "name = \"othernet\"");
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"])
        .fails()
        .stderr_has("error: out holds the nodes of cluster `kubenet`, not of `othernet`: node names of two clusters would collide")
        .stderr_has("hint: give cluster `othernet` its own output directory with --out");
    assert_eq!(current_id(&ctx, "worker1"), w1, "nothing switched");
    ctx.net(&["build", "--out", "out-othernet"]).ok();
}

#[test]
fn vars_that_would_inject_lines_are_refused() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.edit_manifest(
        "name = \"worker1\"\nvmid = 5\nrole = \"worker\"\n",
        "name = \"worker1\"\nvmid = 5\nrole = \"worker\"\nvars = { kubelet_verbosity = \"2\\nExecStartPre=/bin/sh -c evil\" }\n",
    );
    ctx.net(&["build"]).fails().stderr_has(
        "kubenet.toml: node `worker1`: the node's vars `kubelet_verbosity` holds a line break or another control character",
    );
    assert!(!ctx.path().join("out/images").exists());
}

#[test]
fn demo_mirror_never_writes_over_files() {
    let ctx = TestContext::new();
    let dir = ctx.path().join("mirror");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("precious"), "mine").unwrap();
    ctx.run(&["demo-mirror", "mirror"])
        .fails()
        .stderr_has("error: mirror is not empty: demo-mirror writes stand-ins only into an empty or new directory");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    ctx.run(&["demo-mirror", "fresh"]).ok();
}

#[test]
fn a_fifo_in_a_file_mirror_is_refused_not_waited_on() {
    let ctx = TestContext::new();
    // The stand-in mirror as a file:// directory, with runc replaced by a FIFO.
    let mirror = ctx.server.root().to_path_buf();
    let runc = ctx.served(&crate::url_of(&ctx, "runc"));
    std::fs::remove_file(&runc).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&runc)
        .status()
        .unwrap();
    assert!(made.success());
    let url = format!("file://{}", mirror.display());
    ctx.run(&[
        "lock",
        "--offline",
        "--mirrors-only",
        "--trust-mirror-checksums",
        "--mirror",
        &url,
    ])
    .ok();
    let started = std::time::Instant::now();
    ctx.run(&["fetch", "--offline", "--mirror", &url])
        .fails()
        .stderr_has("not a regular file (a FIFO, socket or device): refused");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // A checksum file that is a FIFO: lock fails too, in bounded time.
    let sums = ctx.served(&crate::checksum_url_of(&ctx, "kubelet"));
    std::fs::remove_file(&sums).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&sums)
        .status()
        .unwrap()
        .success());
    std::fs::remove_file(ctx.lockfile()).unwrap();
    let started = std::time::Instant::now();
    ctx.run(&[
        "lock",
        "--offline",
        "--mirrors-only",
        "--trust-mirror-checksums",
        "--mirror",
        &url,
    ])
    .fails()
    .stderr_has("not a regular file");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn mirror_export_writes_only_upstreams_bytes_and_cleans_what_a_killed_export_left() {
    let ctx = built();
    let usb = ctx.path().join("usb");
    // What a killed export leaves: a temp file deep in the export directory.
    let deep = usb.join("dl.k8s.io/release");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join(".nodeforge-tmp-AbC123"), vec![0u8; 4096]).unwrap();
    ctx.run(&["mirror", "export", "usb"]).ok();
    assert!(!deep.join(".nodeforge-tmp-AbC123").exists());
    // An index entry re-pointed at another object: export refuses to write it under upstream's name.
    let index = ctx.store().join("sha256");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&index)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let other = std::fs::read_to_string(&entries[1]).unwrap();
    writable(&entries[0]);
    std::fs::write(&entries[0], &other).unwrap();
    let sha = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    ctx.run(&["mirror", "export", "usb2"])
        .fails()
        .stderr_has(&format!("for artifact sha256 {sha}, but its sha256 is"));
}

#[test]
fn build_never_extracts_from_an_index_entry_that_names_another_object() {
    let ctx = built();
    let index = ctx.store().join("sha256");
    // runc (a bare binary) and containerd (an archive): re-pointed at kubelet's and the CNI
    // plugins' objects, with the extraction records gone.
    let lock = ctx.lock_text();
    let sha_of = |component: &str| -> String {
        let at = lock.find(&format!("component = \"{component}\"")).unwrap();
        let rest = &lock[at..];
        let s = rest.find("sha256 = \"").unwrap() + 10;
        rest[s..s + 64].to_string()
    };
    for (victim, donor, msg) in [
        (
            "runc",
            "kubelet",
            "runc 1.1.13 (amd64): the store's index names object",
        ),
        (
            "containerd",
            "cni-plugins",
            "containerd 1.7.20 (amd64): the store's index names object",
        ),
    ] {
        std::fs::remove_dir_all(ctx.store().join("extract")).unwrap();
        let (v, d) = (index.join(sha_of(victim)), index.join(sha_of(donor)));
        let saved = std::fs::read(&v).unwrap();
        writable(&v);
        std::fs::write(&v, std::fs::read(&d).unwrap()).unwrap();
        crate::set_verbosity(&ctx, 7);
        ctx.net(&["build"])
            .fails()
            .stderr_has(msg)
            .stderr_has(&format!(
                "not the locked {}: run `nodeforge verify`",
                sha_of(victim)
            ));
        std::fs::write(&v, saved).unwrap();
    }
}

/// A build whose store objects were checked by an earlier one: the JSON report's counters.
fn verified_counts(json: &str) -> (u64, u64) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let n = |k: &str| v["verified"][k].as_u64().unwrap();
    (n("remembered"), n("rehashed"))
}

/// A build after a fresh one: every object remembered has a record entry; wait out the racy
/// window so that the objects the first build made count as checked.
fn built_and_remembered() -> TestContext {
    let ctx = built();
    std::thread::sleep(std::time::Duration::from_millis(2200));
    crate::set_verbosity(&ctx, 4);
    ctx.run(&["build", "--json"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(2200));
    ctx
}

#[test]
fn an_unchanged_store_is_not_read_again_by_the_next_build() {
    let ctx = built_and_remembered();
    crate::set_verbosity(&ctx, 5);
    let run = ctx.run(&["build", "--json"]).ok();
    let (remembered, rehashed) = verified_counts(&run.stdout);
    // Only what the change rendered is new; every binary's digests come from the record.
    assert!(remembered > 0, "nothing remembered: {}", run.stdout);
    assert!(
        rehashed < remembered,
        "re-read {rehashed} of {} files",
        remembered + rehashed
    );
}

#[test]
fn a_byte_flipped_in_place_with_its_mtime_restored_is_still_caught() {
    let ctx = built_and_remembered();
    let record = std::fs::read_to_string(ctx.path().join("out/verified-v1.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&record).unwrap();
    let hex = v["entries"]
        .as_object()
        .unwrap()
        .keys()
        .find_map(|k| k.strip_prefix("object:"))
        .unwrap()
        .to_string();
    let obj = ctx
        .store()
        .join("blake3")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(&hex[4..]);
    let mtime = std::fs::metadata(&obj).unwrap().modified().unwrap();
    writable(&obj);
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&obj, &bytes).unwrap();
    // touch -d: the mtime as it was; the kernel still moves ctime.
    std::fs::File::options()
        .write(true)
        .open(&obj)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o444)).unwrap();
    crate::set_verbosity(&ctx, 5);
    ctx.run(&["build"])
        .fails()
        .stderr_has(&format!("/{} holds other bytes", &hex[4..]));
}
