//! Supply chain (issue 15): keys, image signatures, SBOMs, and what refuses unsigned images.

use std::path::{Path, PathBuf};

use crate::{built, current_id, TestContext, REPO};

/// A new key pair under the test's `keys/` directory: (private, public).
fn key(ctx: &TestContext, name: &str) -> (String, String) {
    let p = ctx.path().join("keys").join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let s = p.to_str().unwrap().to_string();
    ctx.run(&["key", "generate", &s]).ok();
    (s.clone(), format!("{s}.pub"))
}

/// The Python tools the SBOM tests run, from `.ci/run`'s venv (target/pytools) or PATH.
fn pytool(name: &str) -> Option<PathBuf> {
    let venv = Path::new(REPO).join("target/pytools/bin").join(name);
    if venv.is_file() {
        return Some(venv);
    }
    crate::requires(
        name,
        "PyPI spdx-tools / check-jsonschema (.ci/run installs them)",
    )
    .then(|| PathBuf::from(name))
}

#[test]
fn the_sboms_validate_with_the_formats_own_tools_and_are_deterministic() {
    let ctx = built();
    let spdx = ctx.run(&["sbom", "worker1"]).ok().stdout;
    assert_eq!(
        ctx.run(&["sbom", "worker1"]).ok().stdout,
        spdx,
        "same image, same bytes"
    );
    let id = current_id(&ctx, "worker1");
    // The one beside the image is the same document.
    assert_eq!(
        std::fs::read_to_string(
            ctx.path()
                .join("out/attestations")
                .join(&id)
                .join("sbom.spdx.json")
        )
        .unwrap(),
        spdx
    );
    let v: serde_json::Value = serde_json::from_str(&spdx).unwrap();
    assert_eq!(v["creationInfo"]["created"], "1970-01-01T00:00:00Z");
    let containerd = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "containerd")
        .unwrap();
    assert_eq!(
        containerd["externalRefs"][0]["referenceLocator"],
        "pkg:github/containerd/containerd@v1.7.20"
    );
    assert_eq!(
        containerd["downloadLocation"],
        crate::url_of(&ctx, "containerd")
    );
    let lock = ctx.lock_text();
    assert!(lock.contains(
        containerd["checksums"][0]["checksumValue"]
            .as_str()
            .unwrap()
    ));
    // /usr/bin/containerd: its sha256 is the file's, and it came from containerd's package.
    let file = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fileName"] == "./usr/bin/containerd")
        .unwrap();
    let on_disk = {
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
            .find(|e| e["path"] == "/usr/bin/containerd")
            .unwrap()["blake3"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, obj) = ctx
            .store_objects()
            .into_iter()
            .map(|(p, n)| (n, p))
            .find(|(n, _)| *n == b3)
            .unwrap();
        crate::sha256_hex(&std::fs::read(obj).unwrap())
    };
    assert_eq!(file["checksums"][1]["checksumValue"], on_disk.as_str());
    assert!(v["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["spdxElementId"] == file["SPDXID"]
            && r["relationshipType"] == "GENERATED_FROM"
            && r["relatedSpdxElement"] == containerd["SPDXID"]));
    // A rendered file names its template.
    assert!(v["files"].as_array().unwrap().iter().any(|f| f["fileName"]
        == "./etc/containerd/config.toml"
        && f["comment"]
            .as_str()
            .unwrap()
            .starts_with("rendered by nodeforge from template")));
    // SOURCE_DATE_EPOCH / --created fill `created`.
    let dated = ctx
        .run(&["sbom", "worker1", "--created", "1700000000"])
        .ok()
        .stdout;
    assert!(dated.contains("\"created\": \"2023-11-14T22:13:20Z\""));

    let cdx = ctx
        .run(&["sbom", "worker1", "--format", "cyclonedx-json"])
        .ok()
        .stdout;
    let (spdx_file, cdx_file) = (
        ctx.path().join("sbom.spdx.json"),
        ctx.path().join("sbom.cdx.json"),
    );
    std::fs::write(&spdx_file, &spdx).unwrap();
    std::fs::write(&cdx_file, &cdx).unwrap();
    if let Some(tool) = pytool("pyspdxtools") {
        let out = std::process::Command::new(tool)
            .arg("--infile")
            .arg(&spdx_file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pyspdxtools: {text}");
        assert!(
            !text.to_lowercase().contains("invalid"),
            "pyspdxtools: {text}"
        );
    }
    if let Some(tool) = pytool("check-jsonschema") {
        let out = std::process::Command::new(tool)
            .arg("--schemafile")
            .arg(Path::new(REPO).join("tests/schemas/cyclonedx-1.5/bom-1.5.schema.json"))
            .arg(&cdx_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "check-jsonschema: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_generate_writes_standard_pem_with_a_private_mode_and_refuses_unsafe_places() {
    let ctx = built();
    let (private, public) = key(&ctx, "signing.key");
    assert_eq!(mode(Path::new(&private)), 0o600);
    assert_eq!(mode(Path::new(&public)), 0o644);
    let text = std::fs::read_to_string(&private).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
    // Never overwritten.
    ctx.run(&["key", "generate", &private])
        .fails()
        .stderr_has("exists already");
    assert_eq!(std::fs::read_to_string(&private).unwrap(), text);
    // Not inside out/ (images, attestations) nor the template tree, even through `..`.
    for place in [
        "out/signing.key",
        "out/images/k",
        "manifests/kubenet/etc/k",
        "keys/../out/k",
    ] {
        ctx.run(&["key", "generate", &ctx.path().join(place).to_string_lossy()])
            .fails()
            .stderr_has("a private key must not be written inside");
        assert!(!ctx.path().join(place).exists(), "{place}");
    }
    // openssl reads both, and the key id is the sha256 of the public key's DER SPKI.
    if crate::requires("openssl", "openssl") {
        let der = std::process::Command::new("openssl")
            .args(["pkey", "-in", &private, "-pubout", "-outform", "DER"])
            .output()
            .unwrap();
        assert!(
            der.status.success(),
            "{}",
            String::from_utf8_lossy(&der.stderr)
        );
        let der_pub = std::process::Command::new("openssl")
            .args(["pkey", "-pubin", "-in", &public, "-outform", "DER"])
            .output()
            .unwrap();
        assert_eq!(der.stdout, der_pub.stdout, "KEY.pub is KEY's public key");
        let r = ctx
            .run(&["key", "generate", &format!("{private}2"), "--json"])
            .ok();
        let v = r.json();
        let der2 = std::process::Command::new("openssl")
            .args([
                "pkey",
                "-pubin",
                "-in",
                v["public_key"].as_str().unwrap(),
                "-outform",
                "DER",
            ])
            .output()
            .unwrap();
        assert!(der2.status.success());
        assert_eq!(v["keyid"], crate::sha256_hex(&der2.stdout).as_str());
        assert_ne!(der.stdout, der2.stdout);
    }
}

fn signatures_of(ctx: &TestContext, id: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ctx.path().join("out/attestations").join(id))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.starts_with("image.") && name.ends_with(".dsse.json")
    });
    v.sort();
    v
}

#[test]
fn verify_with_a_key_refuses_unsigned_and_untrusted_images_and_accepts_rotation() {
    let ctx = built();
    let (a, a_pub) = key(&ctx, "a.key");
    let (b, b_pub) = key(&ctx, "b.key");
    let id = current_id(&ctx, "worker1");
    // Built without --sign: every image is refused.
    ctx.run(&["verify", "--key", &a_pub])
        .fails()
        .stderr_has(&format!(
            "FAIL image {id} (worker1@1): not signed by a trusted key: it is not signed"
        ));
    ctx.run(&["verify"]).ok();
    // Signed with a: trusted; the envelope is DSSE over an in-toto statement naming the image.
    let r = ctx.run(&["sign", "--key", &a, "--json"]).ok().json();
    let keyid_a = r["keyid"].as_str().unwrap().to_string();
    assert_eq!(r["signed"].as_array().unwrap().len(), 6);
    ctx.run(&["verify", "--key", &a_pub])
        .ok()
        .stdout_has(", 6 of 6 images a node is on or can roll back to signed by a trusted key");
    let v = ctx.run(&["verify", "--key", &a_pub, "--json"]).ok().json();
    let w1 = v["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["image_id"] == id.as_str())
        .unwrap();
    assert_eq!(w1["signed_by"], serde_json::json!([keyid_a]));
    assert_eq!(w1["used_by"], serde_json::json!(["worker1@1"]));
    let sig = &signatures_of(&ctx, &id)[0];
    assert!(sig.ends_with(format!("image.{keyid_a}.dsse.json")));
    let env: serde_json::Value = serde_json::from_slice(&std::fs::read(sig).unwrap()).unwrap();
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    let statement: serde_json::Value =
        serde_json::from_slice(&base64_decode(env["payload"].as_str().unwrap())).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicate"]["image"], id.as_str());
    let sbom_sha = crate::sha256_hex(
        &std::fs::read(
            ctx.path()
                .join("out/attestations")
                .join(&id)
                .join("sbom.spdx.json"),
        )
        .unwrap(),
    );
    assert!(statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "sbom.spdx.json" && s["digest"]["sha256"] == sbom_sha.as_str()));
    // openssl checks the signature over DSSE's PAE with the public key alone.
    if crate::requires("openssl", "openssl") {
        let payload = base64_decode(env["payload"].as_str().unwrap());
        let mut pae =
            format!("DSSEv1 28 application/vnd.in-toto+json {} ", payload.len()).into_bytes();
        pae.extend_from_slice(&payload);
        let dir = ctx.path();
        std::fs::write(dir.join("pae"), &pae).unwrap();
        std::fs::write(
            dir.join("sig"),
            base64_decode(env["signatures"][0]["sig"].as_str().unwrap()),
        )
        .unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-inkey", &a_pub, "-rawin"])
            .arg("-in")
            .arg(dir.join("pae"))
            .arg("-sigfile")
            .arg(dir.join("sig"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // The SBOM it signs, edited: refused.
    let sbom = ctx
        .path()
        .join("out/attestations")
        .join(&id)
        .join("sbom.spdx.json");
    let original = std::fs::read(&sbom).unwrap();
    std::fs::write(
        &sbom,
        String::from_utf8(original.clone())
            .unwrap()
            .replace("containerd", "c0ntainerd"),
    )
    .unwrap();
    ctx.run(&["verify", "--key", &a_pub])
        .fails()
        .stderr_has(&format!(
            "it signs SBOM sha256 {sbom_sha}, sbom.spdx.json hashes to"
        ));
    std::fs::write(&sbom, &original).unwrap();
    // Re-signed by an untrusted key (a's signature removed): refused, the signer named.
    let keyid_b = ctx
        .run(&["sign", "worker1", "--key", &b, "--json"])
        .ok()
        .json()["keyid"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(sig).unwrap();
    ctx.run(&["verify", "--key", &a_pub])
        .fails()
        .stderr_has(&format!(
            "image.{keyid_b}.dsse.json: signed by key {keyid_b}, not a trusted key"
        ));
    // Rotation: a and b trusted together (a trusted-keys file, or both --key), and the other
    // nodes are still signed by a only.
    let bundle = ctx.path().join("trusted.pem");
    std::fs::write(
        &bundle,
        format!(
            "# old key\n{}# new key\n{}",
            std::fs::read_to_string(&a_pub).unwrap(),
            std::fs::read_to_string(&b_pub).unwrap()
        ),
    )
    .unwrap();
    ctx.run(&["verify", "--trusted-keys", &bundle.to_string_lossy()])
        .ok();
    ctx.run(&["verify", "--key", &a_pub, "--key", &b_pub]).ok();
    crate::run_env(
        ctx.path(),
        &["verify"],
        &[("NODEFORGE_TRUSTED_KEYS", &bundle.to_string_lossy())],
        None,
    )
    .ok();
    ctx.run(&["verify", "--key", &b_pub]).fails();
    // show names the signer.
    let s = ctx
        .run(&["show", "worker1", "--key", &b_pub, "--json"])
        .ok()
        .json();
    assert_eq!(s["signatures"]["signed_by"], serde_json::json!([keyid_b]));
    ctx.run(&["show", "worker1"])
        .ok()
        .stdout_has(&format!("signed by key {keyid_b}"));
}

fn base64_decode(s: &str) -> Vec<u8> {
    // The test's own decoder (standard alphabet, padded), independent of nodeforge's.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = alphabet.iter().position(|&a| a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn a_planted_rollback_target_is_refused_with_keys_before_anything_switches() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let (a, a_pub) = key(&ctx, "a.key");
    ctx.net(&["build", "--sign", &a]).ok();
    let good = current_id(&ctx, "worker1");
    ctx.run(&["verify", "--key", &a_pub]).ok();
    // The attacker (write access to out/ and the templates, no key) builds an image of their own:
    // a consistent record, EROFS file and hash tree, made by nodeforge itself, so that `verify`
    // without keys passes; then puts the node back on the good image, leaving theirs as the
    // rollback target, with the good image's signature copied beside theirs.
    let tpl = ctx
        .path()
        .join("manifests/kubenet/etc/containerd/config.toml");
    let t = std::fs::read_to_string(&tpl).unwrap();
    std::fs::write(
        &tpl,
        t.replacen("SystemdCgroup = true", "SystemdCgroup = false", 1),
    )
    .unwrap();
    ctx.net(&["build", "--node", "worker1"]).ok();
    let planted = current_id(&ctx, "worker1");
    assert_ne!(planted, good);
    std::fs::write(&tpl, &t).unwrap();
    ctx.run(&["rollback", "worker1", "--to", &good]).ok();
    let keyid = ctx.run(&["--json", "show", &good]).ok().json()["signatures"]["signatures"][0]
        ["keyids"][0]
        .as_str()
        .unwrap()
        .to_string();
    let sig = format!("image.{keyid}.dsse.json");
    let att = ctx.path().join("out/attestations");
    std::fs::copy(att.join(&good).join(&sig), att.join(&planted).join(&sig)).unwrap();
    ctx.run(&["verify"]).ok();
    ctx.run(&["verify", "--key", &a_pub]).fails().stderr_has(&format!(
        "FAIL image {planted} (worker1@2): not signed by a trusted key: no valid signature by a trusted key ({sig}: it signs image {good}, not {planted})"
    ));
    // The operator's rollback with keys configured refuses it; nothing is switched.
    let env = [("NODEFORGE_TRUSTED_KEYS", a_pub.as_str())];
    let r = crate::run_env(
        ctx.path(),
        &["rollback", "worker1", "--to", &planted],
        &env,
        None,
    )
    .fails();
    r.stderr_has(&format!(
        "rollback of worker1 to generation 2: image {planted} is not trusted"
    ))
    .stderr_has("hint: sign it with one of the trusted keys");
    assert_eq!(current_id(&ctx, "worker1"), good);

    // The issue's form: the good generation's record edited to pin another root hash for its
    // config layer (as a rebuilt EROFS file and hash tree would make), in the generation and in
    // the image directory: the signature binds the root hashes, so the rollback is refused
    // before any layer is written.
    ctx.run(&["rollback", "worker1", "--to", &planted]).ok(); // without keys: allowed
    let gen_record = ctx
        .path()
        .join("out/nodes/worker1/generations/1/manifest.json");
    let text = std::fs::read_to_string(&gen_record).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let old_root = m["layers"][1]["verity"]["root_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let new_root = "ab".repeat(32);
    for p in [
        gen_record.clone(),
        ctx.path()
            .join("out/images")
            .join(&good)
            .join("manifest.json"),
    ] {
        let t = std::fs::read_to_string(&p).unwrap();
        let tmp = p.with_extension("edited");
        std::fs::write(&tmp, t.replace(&old_root, &new_root)).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
    let layers_before = std::fs::read_dir(ctx.path().join("out/layers"))
        .unwrap()
        .count();
    crate::run_env(
        ctx.path(),
        &["rollback", "worker1", "--to", &good],
        &env,
        None,
    )
    .fails()
    .stderr_has("it signs root hashes payload ")
    .stderr_has(&format!(
        "config {old_root}, the image's record pins payload "
    ))
    .stderr_has(&format!("config {new_root}"));
    assert_eq!(current_id(&ctx, "worker1"), planted, "nothing switched");
    assert_eq!(
        std::fs::read_dir(ctx.path().join("out/layers"))
            .unwrap()
            .count(),
        layers_before,
        "nothing written"
    );
}

#[test]
fn signatures_survive_gc_with_their_images_and_go_with_removed_ones() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let (a, a_pub) = key(&ctx, "a.key");
    ctx.net(&["build", "--sign", &a]).ok();
    let first = current_id(&ctx, "worker1");
    crate::set_verbosity(&ctx, 3);
    ctx.net(&["build", "--sign", &a]).ok();
    let second = current_id(&ctx, "worker1");
    let att = ctx.path().join("out/attestations");
    assert!(att.join(&first).is_dir());
    let r = ctx
        .run(&["gc", "--keep-generations", "1", "--json"])
        .ok()
        .json();
    assert!(r["removed_attestations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == first.as_str()));
    assert!(!att.join(&first).exists());
    assert_eq!(signatures_of(&ctx, &second).len(), 1);
    assert!(att.join(&second).join("sbom.spdx.json").is_file());
    assert_eq!(
        std::fs::read_dir(att.join(&second)).unwrap().count(),
        3,
        "the image signature, the provenance and the SBOM"
    );
    ctx.run(&["verify", "--key", &a_pub]).ok();
    // The library calls push/pull use: the files that go with an image, and who signed it.
    let out = ctx.path().join("out");
    let files = nodeforge::ops::attestation_files(&out, &second);
    assert_eq!(files.len(), 3, "{files:?}");
    let keys = nodeforge::trust::TrustedKeys::load(&[PathBuf::from(&a_pub)], &[]).unwrap();
    let image = nodeforge::ops::find_image(&out, &second).unwrap();
    let status = nodeforge::ops::image_signatures(&out, &image, &keys);
    assert!(status.trusted());
    assert_eq!(status.signed_by, vec![keys.keys[0].keyid().to_string()]);
    let nobody = nodeforge::trust::TrustedKeys::default();
    assert!(!nodeforge::ops::image_signatures(&out, &image, &nobody).trusted());
}

/// Checks an in-toto Statement v1 with a SLSA Provenance v1 predicate with the in-toto
/// attestation framework's own Python bindings (PyPI in-toto-attestation): the statement
/// through `Statement.validate()`, the predicate parsed strictly into SLSA's `Provenance` message.
const VALIDATE_PROVENANCE: &str = r#"
import json, sys
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
d = json.load(open(sys.argv[1]))
Statement.copy_from_pb(json_format.ParseDict(d, statement_pb2.Statement())).validate()
assert d["predicateType"] == "https://slsa.dev/provenance/v1", d["predicateType"]
p = json_format.ParseDict(d["predicate"], provenance_pb2.Provenance())
assert p.build_definition.build_type and p.run_details.builder.id
for dep in p.build_definition.resolved_dependencies:
    assert dep.uri and dep.digest["sha256"], dep
print("valid")
"#;

#[test]
fn the_provenance_is_slsa_v1_signed_beside_the_image_and_validates() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let (a, _) = key(&ctx, "a.key");
    ctx.net(&["build", "--sign", &a]).ok();
    let id = current_id(&ctx, "worker1");
    let text = ctx.run(&["provenance", "worker1"]).ok().stdout;
    assert_eq!(
        ctx.run(&["provenance", &id]).ok().stdout,
        text,
        "deterministic"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Subjects: the image's files with their sha256.
    let image_dir = ctx.path().join("out/images").join(&id);
    let subjects = v["subject"].as_array().unwrap();
    assert_eq!(subjects.len(), 7, "manifest.json and three files per layer");
    for s in subjects {
        let f = image_dir.join(s["name"].as_str().unwrap());
        // The record as registries carry it (whole), not as out/ keeps it (without entries).
        let bytes = if s["name"] == "manifest.json" {
            crate::whole_record::<nodeforge::image::ImageManifest>(&f).to_json()
        } else {
            std::fs::read(f).unwrap()
        };
        assert_eq!(s["digest"]["sha256"], crate::sha256_hex(&bytes).as_str());
    }
    // The lockfile's artifacts, its lock-id and the manifest hash it records.
    let lock = ctx.lock_text();
    let bd = &v["predicate"]["buildDefinition"];
    let deps = bd["resolvedDependencies"].as_array().unwrap();
    assert!(deps
        .iter()
        .any(|d| d["uri"] == crate::url_of(&ctx, "containerd").as_str()));
    for d in deps {
        assert!(lock.contains(d["digest"]["sha256"].as_str().unwrap()));
    }
    let lock_id = bd["externalParameters"]["lockId"].as_str().unwrap();
    assert!(
        lock.contains(&format!("lock-id = \"{lock_id}\"")),
        "{lock_id}"
    );
    let mh = bd["externalParameters"]["manifestHash"].as_str().unwrap();
    assert!(lock.contains(&format!("manifest-hash = \"{mh}\"")), "{mh}");
    // Signed beside the image: the same statement.
    let signed: Vec<PathBuf> = std::fs::read_dir(ctx.path().join("out/attestations").join(&id))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("provenance.")
        })
        .collect();
    assert_eq!(signed.len(), 1);
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&signed[0]).unwrap()).unwrap();
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    let payload: serde_json::Value =
        serde_json::from_slice(&base64_decode(env["payload"].as_str().unwrap())).unwrap();
    assert_eq!(payload, v);
    let python = pytool("python3").filter(|p| p.starts_with(REPO));
    if crate::requires_that(
        python.is_some(),
        "the venv target/pytools (in-toto-attestation) is missing",
        "the in-toto-attestation check needs target/pytools (.ci/run)",
    ) {
        let python = python.unwrap();
        let file = ctx.path().join("provenance.json");
        std::fs::write(&file, &text).unwrap();
        let out = std::process::Command::new(python)
            .args(["-c", VALIDATE_PROVENANCE])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
            "in-toto-attestation: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `openssl cms -verify` of a detached DER signature over `content` against `cert` (as trust
/// anchor and signer certificate).
fn cms_verifies(dir: &Path, p7s: &Path, content: &[u8], cert: &Path) -> bool {
    let file = dir.join("roothash-content");
    std::fs::write(&file, content).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
        ])
        .arg("-in")
        .arg(p7s)
        .arg("-content")
        .arg(&file)
        .arg("-certfile")
        .arg(cert)
        .arg("-CAfile")
        .arg(cert)
        .args(["-out", "/dev/null"])
        .output()
        .unwrap();
    out.status.success()
}

#[test]
fn roothash_p7s_is_a_detached_pkcs7_signature_of_the_hex_root_hash_that_openssl_verifies() {
    if !crate::requires("openssl", "openssl") {
        return;
    }
    let ctx = built();
    let dir = ctx.path().join("x509");
    std::fs::create_dir_all(&dir).unwrap();
    let id = current_id(&ctx, "worker1");
    let m: serde_json::Value = crate::whole_record(
        &ctx.path()
            .join("out/images")
            .join(&id)
            .join("manifest.json"),
    );
    // An RSA certificate (what the kernel keyring and /etc/verity.d hold most often) and an
    // ECDSA P-256 one, each with its key as openssl writes it.
    for (name, newkey) in [("rsa", "rsa:2048"), ("ec", "ec")] {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        let mut cmd = std::process::Command::new("openssl");
        cmd.args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=nodeforge test",
        ])
        .args(["-newkey", newkey]);
        if name == "ec" {
            cmd.args(["-pkeyopt", "ec_paramgen_curve:P-256"]);
        }
        let out = cmd
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = ctx
            .run(&[
                "sign",
                "worker1",
                "--x509-cert",
                &cert.to_string_lossy(),
                "--x509-key",
                &key.to_string_lossy(),
                "--json",
            ])
            .ok()
            .json();
        let sigs = r["signed"][0]["roothash_signatures"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(sigs.len(), 2);
        for layer in m["layers"].as_array().unwrap() {
            let layer_name = layer["name"].as_str().unwrap();
            let root = layer["verity"]["root_hash"].as_str().unwrap();
            let p7s = ctx
                .path()
                .join("out/attestations")
                .join(&id)
                .join(format!("{layer_name}.roothash.p7s"));
            assert!(sigs.iter().any(|s| p7s.ends_with(s.as_str().unwrap())));
            assert!(
                cms_verifies(&dir, &p7s, root.as_bytes(), &cert),
                "{name} {layer_name}"
            );
            // Exactly the hex string: not with a newline, not another root hash.
            assert!(!cms_verifies(
                &dir,
                &p7s,
                format!("{root}\n").as_bytes(),
                &cert
            ));
            assert!(!cms_verifies(&dir, &p7s, "00".repeat(32).as_bytes(), &cert));
        }
    }
    ctx.run(&["show", "worker1"])
        .ok()
        .stdout_has("systemd signed root hash: ")
        .stdout_has("nodeforge-payload.roothash.p7s");
    // A key that is not the certificate's is refused, naming both.
    let r = ctx
        .run(&[
            "sign",
            "worker1",
            "--x509-cert",
            &dir.join("rsa.crt").to_string_lossy(),
            "--x509-key",
            &dir.join("ec.key").to_string_lossy(),
        ])
        .fails();
    r.stderr_has("ec.key is not the key of certificate");
}

#[test]
fn sign_refuses_an_image_whose_layer_is_not_what_its_entries_make() {
    let ctx = built();
    let (a, _) = key(&ctx, "a.key");
    let id = current_id(&ctx, "worker1");
    tamper_config_layer(&ctx, "worker1");
    ctx.run(&["sign", "worker1", "--key", &a])
        .fails()
        .stderr_has(&format!("refusing to sign image {id}: layer "))
        .stderr_has("is not the EROFS file its entries make from the store");
    assert!(signatures_of(&ctx, &id).is_empty(), "nothing signed");
}

/// Set the first artifact's provenance in a record (JSON) to kubelet 1.24.0 from evil.example.
fn forge_provenance(record: &mut serde_json::Value) {
    let prov = record["provenance"].as_object_mut().unwrap();
    let artifact = prov
        .values_mut()
        .find(|p| p.get("url").is_some())
        .expect("an artifact's provenance");
    artifact["url"] = "https://evil.example/kubelet".into();
    artifact["version"] = "1.24.0".into();
}

/// Replace blob `old` (hex) of OCI layout `layout` by `bytes`, and every descriptor that names
/// it (in index.json and in the manifests, which are then replaced the same way): what a
/// hostile registry or layout serves with digests that all check out.
fn swap_blob(layout: &Path, old: &str, bytes: &[u8]) {
    fn walk(v: &mut serde_json::Value, old: &str, new: &str, size: usize) -> bool {
        match v {
            serde_json::Value::Object(m) => {
                let mut hit = false;
                if m.get("digest").and_then(|d| d.as_str()) == Some(&format!("sha256:{old}")) {
                    m.insert("digest".into(), format!("sha256:{new}").into());
                    m.insert("size".into(), size.into());
                    hit = true;
                }
                for x in m.values_mut() {
                    hit |= walk(x, old, new, size);
                }
                hit
            }
            serde_json::Value::Array(a) => a
                .iter_mut()
                .fold(false, |hit, x| walk(x, old, new, size) | hit),
            _ => false,
        }
    }
    let blobs = layout.join("blobs/sha256");
    let new = crate::sha256_hex(bytes);
    std::fs::write(blobs.join(&new), bytes).unwrap();
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    if walk(&mut index, old, &new, bytes.len()) {
        std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    }
    for e in std::fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&p).unwrap())
        else {
            continue;
        };
        if name != new && walk(&mut v, old, &new, bytes.len()) {
            swap_blob(layout, &name, &serde_json::to_vec(&v).unwrap());
        }
    }
}

/// The record (config blob) of the manifest tagged `tag` in an OCI layout: (its digest, JSON).
fn layout_record(layout: &Path, tag: &str) -> (String, serde_json::Value) {
    let (_, manifest) = layout_manifest(layout, tag);
    let config = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let v =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&config)).unwrap())
            .unwrap();
    (config, v)
}

/// Issue 25: unsigned record fields. A forged provenance (the image id, layers and root hashes
/// unchanged, every digest recomputed) is refused by `import --key` (the signature covers the
/// record's canonical bytes), and an unsigned import of it never replaces the record the host
/// already holds for that id.
#[test]
fn a_forged_provenance_is_refused_with_keys_and_never_replaces_the_hosts_record() {
    let ctx = built();
    let (a, a_pub) = key(&ctx, "a.key");
    ctx.run(&["sign", "worker1", "--key", &a]).ok();
    let id = current_id(&ctx, "worker1");
    let layout = ctx.path().join("layout");
    let l = layout.display().to_string();
    ctx.run(&["export", "--oci-layout", &l, "--node", "worker1"])
        .ok();
    let host = tempfile::tempdir().unwrap();
    let out = host.path().join("out");
    let outs = out.display().to_string();
    let import = |args: &[&str]| {
        let mut all = vec!["--out", &outs, "import", &l, "--tag", "worker1"];
        all.extend_from_slice(args);
        crate::run_in(host.path(), &all)
    };
    import(&["--key", &a_pub]).ok();
    let genuine = std::fs::read(out.join("images").join(&id).join("manifest.json")).unwrap();

    let (old, mut record) = layout_record(&layout, "worker1");
    forge_provenance(&mut record);
    swap_blob(&layout, &old, &serde_json::to_vec(&record).unwrap());
    assert_eq!(layout_record(&layout, "worker1").1["id"], id.as_str());

    // With the key: the signature names the record's sha256, so it does not vouch for this one.
    import(&["--key", &a_pub])
        .fails()
        .stderr_has("it signs record sha256");
    // Without keys: the host holds image `id` with another record, which is never replaced.
    import(&[])
        .fails()
        .stderr_has(&format!("this host holds image {id} with another record"))
        .stderr_has("evil.example");
    assert_eq!(
        std::fs::read(out.join("images").join(&id).join("manifest.json")).unwrap(),
        genuine
    );
    crate::run_in(host.path(), &["--out", &outs, "verify", "--key", &a_pub]).ok();
    let show = crate::run_in(host.path(), &["--out", &outs, "show", "worker1"]).ok();
    assert!(!show.stdout.contains("evil.example"), "{}", show.stdout);

    // A fresh host with the key refuses it too, before any layer is put in place.
    let fresh = tempfile::tempdir().unwrap();
    let fouts = fresh.path().join("out").display().to_string();
    crate::run_in(
        fresh.path(),
        &[
            "--out", &fouts, "import", &l, "--tag", "worker1", "--key", &a_pub,
        ],
    )
    .fails()
    .stderr_has("it signs record sha256");
    assert!(!fresh.path().join("out/nodes/worker1/current").exists());
}

/// Issue 25: edited records passed the builder's checks. The provenance edited in place in
/// `out/images/<id>/manifest.json` (the same inode as the generation's record) fails
/// `verify --rebuild`, which compares the record with the one the inputs make, and `sign`
/// refuses it.
#[test]
fn a_provenance_edited_in_place_fails_verify_rebuild_and_sign_refuses_it() {
    let ctx = built();
    let (a, _) = key(&ctx, "a.key");
    let id = current_id(&ctx, "worker1");
    let path = ctx
        .path()
        .join("out/images")
        .join(&id)
        .join("manifest.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    forge_provenance(&mut record);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    let generation = ctx
        .path()
        .join("out/nodes/worker1/generations/1/manifest.json");
    assert_eq!(
        std::fs::read(&generation).unwrap(),
        std::fs::read(&path).unwrap(),
        "the generation's record is the same file"
    );
    ctx.run(&["verify", "--rebuild"])
        .fails()
        .stderr_has(&format!(
            "worker1: the record of its current image {id} is not the one the manifest, lockfile and templates make: its provenance differs"
        ))
        .stderr_has("from https://evil.example/kubelet");
    ctx.run(&["sign", "worker1", "--key", &a])
        .fails()
        .stderr_has(&format!(
            "refusing to sign image {id} (node worker1): its provenance differs"
        ))
        .stderr_has("from https://evil.example/kubelet");
    assert!(signatures_of(&ctx, &id).is_empty(), "nothing signed");
}

/// Flip a byte of the config layer's EROFS file of `node`'s current image in place (containerd's
/// `SystemdCgroup` setting): the file keeps its name, size and hash tree.
fn tamper_config_layer(ctx: &TestContext, node: &str) {
    let id = current_id(ctx, node);
    let layer = crate::layer_of(&ctx.path().join("out/images").join(&id), "config");
    let raw = layer.join("nodeforge-config.raw");
    let mut bytes = std::fs::read(&raw).unwrap();
    let at = bytes
        .windows(10)
        .position(|w| w == b"SystemdCgr")
        .expect("containerd's config in the layer");
    bytes[at..at + 10].copy_from_slice(b"systemdCgr");
    std::fs::set_permissions(&raw, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&raw, &bytes).unwrap();
}

/// Issue 25: a no-op `build` over a tampered layer, then `push` uploaded it. `push` and
/// `export` check every layer they send against what its entries make from the store first,
/// whatever the build said (and after a first, remembered, successful check).
#[test]
fn push_and_export_refuse_a_layer_tampered_after_a_no_op_build() {
    let ctx = built();
    let id = current_id(&ctx, "worker1");
    let layout = ctx.path().join("layout");
    let l = layout.display().to_string();
    // A first export checks and remembers the layers (out/verified-v1.json).
    ctx.run(&["export", "--oci-layout", &l, "--node", "worker1"])
        .ok();
    tamper_config_layer(&ctx, "worker1");
    // build notices the damaged layer (issue 27); push and export check on their own anyway.
    ctx.run(&["build"])
        .fails()
        .stderr_has("nodeforge-config.raw: the layer is damaged (layer ");
    let again = ctx.path().join("layout2").display().to_string();
    ctx.run(&["export", "--oci-layout", &again, "--node", "worker1"])
        .fails()
        .stderr_has(&format!("refusing to publish image {id}: layer "))
        .stderr_has("is not the EROFS file its entries make from the store");
    let Some(registry) = crate::oci::LocalRegistry::start() else {
        return;
    };
    let repo = registry.repo("kubenet");
    crate::oci::reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[],
    )
    .fails()
    .stderr_has(&format!("refusing to publish image {id}: layer "));
}

/// Issue 25: a private key dropped into `out/attestations/<id>/` (under a name nodeforge
/// publishes) was exported and pushed without a scan. Both refuse, naming the file.
#[test]
fn a_private_key_dropped_into_attestations_is_refused_by_export_and_push() {
    let ctx = built();
    let (a, _) = key(&ctx, "a.key");
    ctx.run(&["sign", "worker1", "--key", &a]).ok();
    let id = current_id(&ctx, "worker1");
    let dropped = ctx
        .path()
        .join("out/attestations")
        .join(&id)
        .join("image.backup.dsse.json");
    std::fs::copy(&a, &dropped).unwrap();
    let l = ctx.path().join("layout").display().to_string();
    ctx.run(&["export", "--oci-layout", &l, "--node", "worker1"])
        .fails()
        .stderr_has(&format!(
            "out/attestations/{id}/image.backup.dsse.json: holds a private key (at byte 0); refusing to publish image {id}'s attestations, nothing was sent"
        ));
    assert!(
        !ctx.path().join("layout/index.json").exists(),
        "nothing exported"
    );
    if let Some(registry) = crate::oci::LocalRegistry::start() {
        let repo = registry.repo("kubenet");
        crate::oci::reg(
            ctx.path(),
            &registry,
            &["push", &repo, "--node", "worker1"],
            &[],
        )
        .fails()
        .stderr_has("holds a private key");
    }
    // Gone: both go through.
    std::fs::remove_file(&dropped).unwrap();
    ctx.run(&["export", "--oci-layout", &l, "--node", "worker1"])
        .ok();
}

/// The manifest (JSON, with its digest) tagged `tag` in an OCI layout.
fn layout_manifest(layout: &Path, tag: &str) -> (String, serde_json::Value) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let d = m["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let v = serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&d)).unwrap())
        .unwrap();
    (d, v)
}

/// `nodeforge` on a fresh host: (its directory, `--out`).
fn fresh() -> (tempfile::TempDir, String) {
    let host = tempfile::tempdir().unwrap();
    let outs = host.path().join("out").display().to_string();
    (host, outs)
}

/// No pulled bytes under `out/pulls/` (its per-layer lock files aside).
fn pulls_empty(host: &Path) -> bool {
    std::fs::read_dir(host.join("out/pulls")).map_or(true, |d| {
        d.flatten()
            .all(|e| e.file_name().to_string_lossy().ends_with(".lock"))
    })
}

/// Issue 25: a manifest's blob size was trusted (a 1 TiB claim filled out/pulls with zeros). The
/// size of each layer blob is the one the record's verity parameters imply, checked before any
/// byte is written.
#[test]
fn a_blob_size_the_record_does_not_imply_is_refused_before_any_byte_is_written() {
    let ctx = built();
    let layout = ctx.path().join("layout");
    let l = layout.display().to_string();
    ctx.run(&["export", "--oci-layout", &l, "--node", "worker1"])
        .ok();
    let (old, mut manifest) = layout_manifest(&layout, "worker1");
    manifest["layers"][0]["size"] = (1u64 << 40).into();
    swap_blob(&layout, &old, &serde_json::to_vec(&manifest).unwrap());
    let (host, outs) = fresh();
    crate::run_in(
        host.path(),
        &["--out", &outs, "import", &l, "--tag", "worker1"],
    )
    .fails()
    .stderr_has("bytes, its record's verity parameters make it")
    .stderr_has("nothing was downloaded");
    assert!(pulls_empty(host.path()));
    assert!(!host.path().join("out/nodes/worker1/current").exists());
}

/// Issue 25: an import whose blob is a symlink to /dev/zero wrote 1 GiB, and one whose
/// index.json or blob is a FIFO hung forever. Layout files are opened without following a
/// symlink at their name and without blocking, and only regular files are read.
#[test]
fn layout_files_that_are_symlinks_or_fifos_are_refused_without_blocking() {
    let ctx = built();
    let layout = ctx.path().join("layout");
    let l = layout.display().to_string();
    ctx.run(&["export", "--oci-layout", &l, "--node", "worker1"])
        .ok();
    let (_, manifest) = layout_manifest(&layout, "worker1");
    let blob = layout.join("blobs/sha256").join(
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let saved = blob.with_extension("saved");
    std::fs::rename(&blob, &saved).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &blob).unwrap();
    let (host, outs) = fresh();
    let import = || {
        crate::run_in(
            host.path(),
            &["--out", &outs, "import", &l, "--tag", "worker1"],
        )
    };
    import().fails().stderr_has("a symlink: refused");
    assert!(
        pulls_empty(host.path()),
        "{:?}",
        std::fs::read_dir(host.path().join("out/pulls"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect::<Vec<_>>()
    );
    // A FIFO as the blob, then as index.json: refused at once.
    std::fs::remove_file(&blob).unwrap();
    let mkfifo = |p: &Path| {
        assert!(std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success())
    };
    mkfifo(&blob);
    import().fails().stderr_has("not a regular file");
    std::fs::remove_file(&blob).unwrap();
    std::fs::rename(&saved, &blob).unwrap();
    let index = layout.join("index.json");
    std::fs::rename(&index, layout.join("index.saved")).unwrap();
    mkfifo(&index);
    import().fails().stderr_has("not a regular file");
    assert!(!host.path().join("out/nodes/worker1/current").exists());
}

/// Issue 25: an unsigned import with an odd `arch` rewrote a shared payload's layer.json, after
/// which every genuine signed import of another node failed; an unsigned import planted a junk
/// SBOM that made every later genuine `import --key` of that image fail. The host's copy wins
/// only when it is itself trusted: a signed image's layer record and attestation files replace
/// what an unsigned one left, and an unsigned import does not change a layer another image's
/// record implies.
#[test]
fn an_unsigned_import_cannot_change_what_a_signed_image_relies_on() {
    let ctx = built();
    let (a, a_pub) = key(&ctx, "a.key");
    ctx.run(&["sign", "worker1", "--key", &a]).ok();
    ctx.run(&["sign", "worker2", "--key", &a]).ok();
    let w1 = current_id(&ctx, "worker1");
    let good = ctx.path().join("good");
    let g = good.display().to_string();
    ctx.run(&[
        "export",
        "--oci-layout",
        &g,
        "--node",
        "worker1",
        "--node",
        "worker2",
    ])
    .ok();
    // A forged copy of worker1: another arch in its record (the id is the same), and a junk SBOM.
    let bad = ctx.path().join("bad");
    let b = bad.display().to_string();
    crate::copy_tree(&good, &bad);
    let (old, mut record) = layout_record(&bad, "worker1");
    record["arch"] = "riscv64".into();
    swap_blob(&bad, &old, &serde_json::to_vec(&record).unwrap());
    let sbom = ctx
        .path()
        .join("out/attestations")
        .join(&w1)
        .join("sbom.spdx.json");
    let sbom_digest = crate::sha256_hex(&std::fs::read(&sbom).unwrap());
    swap_blob(&bad, &sbom_digest, b"{\"junk\": true}");

    let (host, outs) = fresh();
    let run = |args: &[&str]| {
        let mut all = vec!["--out", outs.as_str()];
        all.extend_from_slice(args);
        crate::run_in(host.path(), &all)
    };
    run(&["import", &b, "--tag", "worker1"]).ok();
    // worker2 shares the payload layer: an unsigned import does not change its record...
    run(&["import", &g, "--tag", "worker2"])
        .fails()
        .stderr_has("is on this host with another record (it says arch riscv64");
    // ... a signed one does.
    run(&["import", &g, "--tag", "worker2", "--key", &a_pub]).ok();
    // The junk SBOM the unsigned import left does not make the genuine signed worker1 fail: it
    // is replaced (the record of an id the host holds is never replaced, so a fresh host).
    let (host2, outs2) = fresh();
    let run2 = |args: &[&str]| {
        let mut all = vec!["--out", outs2.as_str()];
        all.extend_from_slice(args);
        crate::run_in(host2.path(), &all)
    };
    let junk_only = ctx.path().join("junk");
    crate::copy_tree(&good, &junk_only);
    swap_blob(&junk_only, &sbom_digest, b"{\"junk\": true}");
    let j = junk_only.display().to_string();
    run2(&["import", &j, "--tag", "worker1"]).ok();
    let installed = host2
        .path()
        .join("out/attestations")
        .join(&w1)
        .join("sbom.spdx.json");
    assert_eq!(std::fs::read(&installed).unwrap(), b"{\"junk\": true}");
    let r = run2(&["import", &g, "--tag", "worker1", "--key", &a_pub, "--json"])
        .ok()
        .json();
    let files = r["images"][0]["attestations"]["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["name"] == "sbom.spdx.json" && f["status"] == "replaced"),
        "{r}"
    );
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&sbom).unwrap()
    );
    run2(&["verify", "--key", &a_pub]).ok();
}

/// `sign NODE@GEN` (a rollback target, signed again after a key rotation) signs an image the
/// inputs no longer make: its provenance is then checked against the lockfile (each artifact by
/// sha256, component, version and URL), so a genuine one is signed and a forged one refused.
#[test]
fn sign_of_an_older_generation_checks_its_provenance_against_the_lockfile() {
    let ctx = built();
    let (a, _) = key(&ctx, "a.key");
    let gen1 = current_id(&ctx, "worker1");
    crate::set_verbosity(&ctx, 4);
    ctx.net(&["build"]).ok();
    assert_ne!(current_id(&ctx, "worker1"), gen1);
    ctx.run(&["sign", "worker1@1", "--key", &a]).ok();
    assert_eq!(signatures_of(&ctx, &gen1).len(), 1);
    let path = ctx
        .path()
        .join("out/nodes/worker1/generations/1/manifest.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    forge_provenance(&mut record);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    ctx.run(&["sign", "worker1@1", "--key", &a])
        .fails()
        .stderr_has(&format!("refusing to sign image {gen1} (node worker1): it is not what the inputs make now, and its provenance is not the lockfile's"))
        .stderr_has("from https://evil.example/kubelet");
}
