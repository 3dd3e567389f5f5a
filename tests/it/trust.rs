//! Supply chain (issue 15): keys, image signatures, SBOMs, and what refuses unsigned images.

use std::path::{Path, PathBuf};

use crate::{TestContext, REPO};

fn built() -> TestContext {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    ctx
}

fn current_id(ctx: &TestContext, node: &str) -> String {
    let p = std::fs::canonicalize(ctx.path().join("out/nodes").join(node).join("current")).unwrap();
    p.file_name().unwrap().to_string_lossy().into_owned()
}

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
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                ctx.path()
                    .join("out/images")
                    .join(&id)
                    .join("manifest.json"),
            )
            .unwrap(),
        )
        .unwrap();
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
