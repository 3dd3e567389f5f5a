//! OCI layouts: `export --oci-layout`, `import`, skopeo reading them, and a layout that
//! never ends.

use super::*;

/// `export --oci-layout` and `import`: the same artifacts as a directory. A fresh host imports
/// and gets the builder's image; skopeo (a standard OCI tool) reads the layout and copies it into
/// a registry, from which `pull` gets the same image.
#[test]
fn oci_layout_export_import_and_skopeo() {
    let ctx = built();
    let layout = ctx.path().join("layout");
    let l = layout.display().to_string();
    let e = ctx
        .run(&["export", "--oci-layout", &l, "--json"])
        .ok()
        .json();
    assert_eq!(e["kind"], "export-report");
    assert_eq!(e["images"].as_array().unwrap().len(), 6);
    // Each image's blobs and manifest, and its SBOM as a referrer: the SBOM, the empty config
    // (shared) and the attestation manifest.
    assert_eq!(e["blobs_written"], 2 + 6 * 3 + 6 + (6 + 1 + 6), "{e}");
    assert!(layout.join("oci-layout").is_file() && layout.join("index.json").is_file());
    // Again: nothing new.
    let again = ctx
        .run(&["export", "--oci-layout", &l, "--json"])
        .ok()
        .json();
    assert_eq!(again["blobs_written"], 0);

    let host = Host::new();
    let outs = &host.outs;
    let i = run_env(
        &host,
        &["--out", outs, "import", &l, "--tag", "worker1", "--json"],
        &[],
        None,
    )
    .ok()
    .json();
    assert_eq!(i["kind"], "import-report");
    let id = crate::current_id_in(&ctx.path().join("out"), "worker1");
    assert_eq!(i["images"][0]["image_id"], id.as_str());
    assert_eq!(
        layer_bytes(&host.join("out"), &id),
        layer_bytes(&ctx.path().join("out"), &id)
    );
    // Every node's newest; worker1 is there already.
    let all = run_env(&host, &["--out", outs, "import", &l, "--json"], &[], None)
        .ok()
        .json();
    assert_eq!(all["images"].as_array().unwrap().len(), 6);
    run_env(&host, &["--out", outs, "verify"], &[], None).ok();
    // A damaged layout blob is refused: the payload's EROFS file replaced by one that never
    // ends (a device) is read no further than the size its manifest gives, and nothing is
    // installed or switched.
    let damaged = ctx.path().join("damaged");
    let copied = Command::new("cp")
        .args(["-a", &l, &damaged.display().to_string()])
        .status()
        .unwrap();
    assert!(copied.success());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(damaged.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "worker1")
        .unwrap()
        .clone();
    let blob = |d: &serde_json::Value| {
        damaged
            .join("blobs/sha256")
            .join(d.as_str().unwrap().strip_prefix("sha256:").unwrap())
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&entry["digest"])).unwrap()).unwrap();
    let erofs = blob(&manifest["layers"][0]["digest"]);
    std::fs::remove_file(&erofs).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &erofs).unwrap();
    let host3 = Host::new();
    let outs3 = &host3.outs;
    let d = damaged.display().to_string();
    run_env(
        host3.path(),
        &["--out", outs3, "import", &d, "--tag", "worker1"],
        &[],
        None,
    )
    .fails()
    .stderr_has("a symlink: refused");
    assert!(nothing_installed(&host3.path().join("out"), "worker1"));

    if !crate::requires("skopeo", "skopeo") {
        return;
    }
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", &format!("oci:{l}:worker1")])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(m["artifactType"], "application/vnd.nodeforge.node-image.v1");
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let copy = Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{l}:worker1"),
            &format!("docker://{}:worker1", registry.repo("copied")),
        ])
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let host2 = Host::new();
    let p = host2
        .pull(
            &registry,
            &format!("{}:worker1", registry.repo("copied")),
            &["--json"],
        )
        .ok()
        .json();
    assert_eq!(p["image_id"], id.as_str());
}

/// A layout whose `index.json` names a manifest that never ends (a device where the blob
/// should be) is refused after the manifest's limit, not read until memory runs out.
#[test]
fn a_layout_manifest_that_never_ends_is_refused() {
    let host = fresh_host();
    let layout = host.path().join("layout");
    let digest = "a".repeat(64);
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{digest}","size":100,"annotations":{{"org.opencontainers.image.ref.name":"worker1"}}}}]}}"#
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", layout.join("blobs/sha256").join(&digest)).unwrap();
    let outs = host.path().join("out").display().to_string();
    let l = layout.display().to_string();
    run_env(
        host.path(),
        &["--out", &outs, "import", &l, "--tag", "worker1"],
        &[],
        None,
    )
    .fails()
    .stderr_has("a symlink: refused");
    assert!(nothing_installed(&host.path().join("out"), "worker1"));
}
