//! attestations as referrers: signatures, SBOMs and provenance pushed with an image,
//! pulled and imported with `--key`, key rotation.

use super::*;

/// A signed image's signatures, SBOM and provenance go to the registry as a referrer of its
/// manifest (through the referrers tag: distribution 2.8 has no referrers API) and come back to
/// a host byte for byte; `pull --key` accepts it, `verify --key` passes on the host; an image
/// signed by another key, or not at all, is refused before any layer is put in place.
#[test]
fn signatures_travel_with_pushed_images_and_pull_with_keys_refuses_untrusted_ones() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let (a, a_pub, keyid_a) = signing_key(&ctx, "a.key");
    let (_b, b_pub, keyid_b) = signing_key(&ctx, "b.key");
    ctx.run(&["sign", "worker1", "--key", &a]).ok();
    let built_out = ctx.path().join("out");
    let id = crate::current_id_in(&built_out, "worker1");
    let repo = registry.repo("kubenet");
    let push = push_to(
        &ctx,
        &registry,
        &repo,
        &["--node", "worker1", "--node", "worker2", "--json"],
    )
    .ok()
    .json();
    let att = &push["nodes"][0]["attestations"];
    assert_eq!(
        att["files"],
        serde_json::json!([
            format!("image.{keyid_a}.dsse.json"),
            format!("provenance.{keyid_a}.dsse.json"),
            "sbom.spdx.json"
        ]),
        "{push}"
    );
    assert_eq!(att["referrers"], "tag", "{push}");
    let manifest_digest = push["nodes"][0]["manifest_digest"].as_str().unwrap();
    let tag = format!("sha256-{}", &manifest_digest[7..]);
    assert_eq!(att["referrers_tag_updated"], tag.as_str());
    // The referrers tag holds an OCI index listing the attestation manifest, whose subject is
    // the image's manifest (read with the registry's own API).
    let index: serde_json::Value = registry.get_json(&format!("kubenet/manifests/{tag}"));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"][0]["digest"], att["manifest_digest"]);
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.nodeforge.attestations.v1"
    );
    let am: serde_json::Value = registry.get_json(&format!(
        "kubenet/manifests/{}",
        att["manifest_digest"].as_str().unwrap()
    ));
    assert_eq!(am["subject"]["digest"], manifest_digest);
    assert_eq!(
        am["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let types: Vec<(&str, &str)> = am["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["annotations"]["org.opencontainers.image.title"]
                    .as_str()
                    .unwrap(),
                l["mediaType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(types[0].1, "application/vnd.dsse.envelope.v1+json");
    assert_eq!(types[2], ("sbom.spdx.json", "application/spdx+json"));
    // Read as oci-spec's typed manifest (what other OCI tools read): an artifact with its
    // subject, the image's manifest.
    let typed: oci_spec::image::ImageManifest =
        serde_json::from_value(am.clone()).expect("an OCI image manifest");
    assert_eq!(
        typed.artifact_type().as_ref().map(ToString::to_string),
        Some("application/vnd.nodeforge.attestations.v1".to_string())
    );
    assert_eq!(
        typed.subject().as_ref().map(|d| d.digest().to_string()),
        Some(manifest_digest.to_string())
    );
    assert_eq!(typed.layers().len(), types.len());
    // Pushed again, unchanged: nothing new.
    let again = push_to(&ctx, &registry, &repo, &["--node", "worker1", "--json"])
        .ok()
        .json();
    let att2 = &again["nodes"][0]["attestations"];
    assert_eq!(att2["manifest_digest"], att["manifest_digest"]);
    assert_eq!(att2["blobs_uploaded"], 0, "{again}");
    assert_eq!(att2["referrers_tag_updated"], serde_json::Value::Null);

    // A host that trusts key a: accepted, the files are the builder's, verify --key passes.
    let host = Host::new();
    let out = &host.out;
    let p = host
        .pull(
            &registry,
            &format!("{repo}:worker1"),
            &["--key", &a_pub, "--json"],
        )
        .ok()
        .json();
    assert_eq!(p["attestations"]["trust_checked"], true, "{p}");
    assert_eq!(p["attestations"]["signed_by"], serde_json::json!([keyid_a]));
    assert_eq!(p["attestations"]["manifests"][0], att["manifest_digest"]);
    assert_eq!(
        attestation_bytes(out, &id),
        attestation_bytes(&built_out, &id)
    );
    assert_eq!(attestation_bytes(out, &id).len(), 3);
    host.run(&registry, &["verify", "--key", &a_pub], &[]).ok();
    // Without keys: pulled as before, with a note that it came signed.
    let plain = Host::new();
    plain
        .pull(&registry, &format!("{repo}:worker1"), &[])
        .ok()
        .stderr_has(&format!(
            "note: worker1: the image came signed by key {}",
            &keyid_a[..16]
        ));

    // A host that trusts only key b: refused, naming the image, the repository and the key;
    // no layer in place, nothing switched.
    let other = Host::new();
    let other_out = &other.out;
    let r = other
        .pull(&registry, &format!("{repo}:worker1"), &["--key", &b_pub])
        .fails()
        .stderr_has(&format!("{repo}:worker1: image {id} is not trusted"))
        .stderr_has(&format!("signed by key {keyid_a}, not a trusted key"))
        .stderr_has(&format!(
            "(trusted keys: {keyid_b}); nothing was put in place"
        ))
        .stderr_has("hint: sign the image where it was built");
    assert!(nothing_installed(other_out, "worker1"), "{}", r.stderr);

    // An unsigned image (worker2: its SBOM only), with keys from NODEFORGE_TRUSTED_KEYS.
    let bundle = ctx.path().join("keys/trusted.pem");
    std::fs::copy(&a_pub, &bundle).unwrap();
    let bundle = bundle.display().to_string();
    other
        .run(
            &registry,
            &["pull", &format!("{repo}:worker2")],
            &[("NODEFORGE_TRUSTED_KEYS", &bundle)],
        )
        .fails()
        .stderr_has(&format!("{repo}:worker2: image"))
        .stderr_has("it is not signed");
    assert!(nothing_installed(other_out, "worker2"));
    other
        .pull(&registry, &format!("{repo}:worker2"), &[])
        .ok()
        .stderr_has("note: worker2: the image came unsigned");

    // The signature damaged in the registry's storage: refused by its digest.
    let sig = built_out
        .join("attestations")
        .join(&id)
        .join(format!("image.{keyid_a}.dsse.json"));
    let digest = format!(
        "sha256:{}",
        crate::sha256_hex(&std::fs::read(&sig).unwrap())
    );
    let file = registry.blob_file(&digest);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let third = Host::new();
    let third_out = &third.out;
    third
        .pull(&registry, &format!("{repo}:worker1"), &["--key", &a_pub])
        .fails()
        .stderr_has(&format!(
            "sent blob {digest} of repository kubenet with other bytes"
        ));
    assert!(nothing_installed(third_out, "worker1"));
}

/// Key rotation through a registry: signed with key a and pushed, signed with key b and pushed
/// again: the host gets both signatures (a host that pulled before gets the new one too),
/// `--key b` is accepted, and `rollback --key` on the host checks the older generation's.
#[test]
fn a_rotated_key_adds_its_signature_in_the_registry_and_rollback_checks_on_the_host() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let (a, a_pub, keyid_a) = signing_key(&ctx, "a.key");
    let (b, b_pub, keyid_b) = signing_key(&ctx, "b.key");
    let built_out = ctx.path().join("out");
    let id = crate::current_id_in(&built_out, "worker1");
    let repo = registry.repo("kubenet");
    ctx.run(&["sign", "worker1", "--key", &a]).ok();
    let first = push_to(&ctx, &registry, &repo, &["--node", "worker1", "--json"])
        .ok()
        .json();
    let host = Host::new();
    let out = &host.out;
    host.pull(&registry, &format!("{repo}:worker1"), &["--key", &a_pub])
        .ok();
    // Rotation: b signs too; the new attestation manifest carries both, and is added to the
    // referrers tag beside the first.
    ctx.run(&["sign", "worker1", "--key", &b]).ok();
    let second = push_to(&ctx, &registry, &repo, &["--node", "worker1", "--json"])
        .ok()
        .json();
    let (m1, m2) = (
        &first["nodes"][0]["attestations"]["manifest_digest"],
        &second["nodes"][0]["attestations"]["manifest_digest"],
    );
    assert_ne!(m1, m2);
    assert_eq!(
        second["nodes"][0]["attestations"]["files"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let tag = format!(
        "sha256-{}",
        &second["nodes"][0]["manifest_digest"].as_str().unwrap()[7..]
    );
    let index = registry.get_json(&format!("kubenet/manifests/{tag}"));
    let listed: Vec<&serde_json::Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["digest"])
        .collect();
    assert_eq!(listed, [m1, m2]);
    // A fresh host trusting only b gets both signatures.
    let fresh = Host::new();
    let fresh_out = &fresh.out;
    let p = fresh
        .pull(
            &registry,
            &format!("{repo}:worker1"),
            &["--key", &b_pub, "--json"],
        )
        .ok()
        .json();
    assert_eq!(p["attestations"]["signed_by"], serde_json::json!([keyid_b]));
    assert_eq!(
        p["attestations"]["signature_keys"],
        serde_json::json!(sorted(vec![keyid_a.clone(), keyid_b.clone()]))
    );
    assert_eq!(
        attestation_bytes(fresh_out, &id),
        attestation_bytes(&built_out, &id)
    );
    // The host that pulled before: the same image (nothing switched), b's files added.
    let again = host
        .pull(
            &registry,
            &format!("{repo}:worker1"),
            &["--key", &b_pub, "--json"],
        )
        .ok()
        .json();
    assert_eq!(again["switched"], false);
    let installed: Vec<&str> = again["attestations"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "installed")
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        installed,
        [
            format!("image.{keyid_b}.dsse.json"),
            format!("provenance.{keyid_b}.dsse.json")
        ]
    );
    assert_eq!(
        attestation_bytes(out, &id),
        attestation_bytes(&built_out, &id)
    );

    // A second generation, signed by b only: the host rolls back to the first with key a or b,
    // and refuses with a key that signed neither.
    crate::set_verbosity(&ctx, 5);
    ctx.net(&["build", "--node", "worker1", "--sign", &b]).ok();
    push_to(&ctx, &registry, &repo, &["--node", "worker1"]).ok();
    host.pull(&registry, &format!("{repo}:worker1"), &["--key", &b_pub])
        .ok();
    let (_c, c_pub, _) = signing_key(&ctx, "c.key");
    host.run(&registry, &["rollback", "worker1", "--key", &c_pub], &[])
        .fails()
        .stderr_has("is not trusted");
    assert_ne!(crate::current_id_in(out, "worker1"), id, "nothing switched");
    host.run(&registry, &["rollback", "worker1", "--key", &a_pub], &[])
        .ok();
    assert_eq!(crate::current_id_in(out, "worker1"), id);
    host.run(&registry, &["verify", "--key", &b_pub], &[]).ok();
}

/// `export --oci-layout` carries the attestations (index.json lists their manifest, untagged);
/// `import --key` accepts a signed image and refuses an unsigned one before anything is put in
/// place; skopeo still reads the layout.
#[test]
fn an_oci_layout_carries_signatures_and_import_with_keys_checks_them() {
    let ctx = built();
    let (a, a_pub, keyid_a) = signing_key(&ctx, "a.key");
    ctx.run(&["sign", "worker1", "--key", &a]).ok();
    let built_out = ctx.path().join("out");
    let id = crate::current_id_in(&built_out, "worker1");
    let layout = ctx.path().join("layout");
    let l = layout.display().to_string();
    let e = ctx
        .run(&[
            "export",
            "--oci-layout",
            &l,
            "--node",
            "worker1",
            "--node",
            "worker2",
            "--json",
        ])
        .ok()
        .json();
    let att = e["images"][0]["attestations_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == att.as_str())
        .unwrap();
    assert_eq!(
        entry["artifactType"],
        "application/vnd.nodeforge.attestations.v1"
    );
    assert!(entry["annotations"]
        .get("org.opencontainers.image.ref.name")
        .is_none());

    let host = Host::new();
    let (out, outs) = (&host.out, &host.outs);
    let i = run_env(
        host.path(),
        &[
            "--out", outs, "import", &l, "--tag", "worker1", "--key", &a_pub, "--json",
        ],
        &[],
        None,
    )
    .ok()
    .json();
    assert_eq!(
        i["images"][0]["attestations"]["signed_by"],
        serde_json::json!([keyid_a])
    );
    assert_eq!(
        attestation_bytes(out, &id),
        attestation_bytes(&built_out, &id)
    );
    run_env(
        host.path(),
        &["--out", outs, "verify", "--key", &a_pub],
        &[],
        None,
    )
    .ok();
    // worker2 is not signed: refused, nothing of it put in place.
    let r = run_env(
        host.path(),
        &[
            "--out", outs, "import", &l, "--tag", "worker2", "--key", &a_pub,
        ],
        &[],
        None,
    )
    .fails()
    .stderr_has(&format!("{l}:worker2: image"))
    .stderr_has("it is not signed");
    assert!(!out.join("nodes/worker2/current").exists(), "{}", r.stderr);

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
}
