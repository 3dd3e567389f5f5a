//! Mountable images: independent readers (erofs-utils, cryptsetup) agree with the builder.
//! Needs Debian's erofs-utils and cryptsetup-bin (installed by .ci/run): without them these
//! tests are skipped with a note, or fail under `CI=true` (see `requires`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{built, requires, TestContext};

fn image_dir(ctx: &TestContext, node: &str) -> PathBuf {
    std::fs::canonicalize(ctx.path().join("out/nodes").join(node).join("current")).unwrap()
}

fn manifest(dir: &Path) -> serde_json::Value {
    crate::whole_record(&dir.join("manifest.json"))
}

/// A layer of a node's current image: (label, its EROFS file, its layer record).
fn layers(ctx: &TestContext, node: &str) -> Vec<(String, PathBuf, serde_json::Value)> {
    ["payload", "config"]
        .iter()
        .map(|role| {
            let dir = crate::layer_of(&image_dir(ctx, node), role);
            let raw = dir.join(format!("nodeforge-{role}.raw"));
            let rec =
                serde_json::from_slice(&std::fs::read(dir.join("layer.json")).unwrap()).unwrap();
            (format!("{node}/{role}"), raw, rec)
        })
        .collect()
}

fn tool(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install erofs-utils and cryptsetup-bin)"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn fsck_erofs_accepts_every_image_and_extracts_exactly_its_entries() {
    if !requires("fsck.erofs", "erofs-utils") {
        return;
    }
    let ctx = built();
    let all: Vec<_> = [
        "control0", "control1", "control2", "worker0", "worker1", "worker2",
    ]
    .iter()
    .flat_map(|n| layers(&ctx, n))
    .collect();
    for (node, img, m) in &all {
        let (ok, text) = tool(Command::new("fsck.erofs").arg(img));
        assert!(ok, "{node}: fsck.erofs: {text}");
        let x = ctx.path().join(format!("x-{}", node.replace('/', "-")));
        let (ok, text) = tool(
            Command::new("fsck.erofs")
                .arg(format!("--extract={}", x.display()))
                .arg(img),
        );
        assert!(ok, "{node}: extract: {text}");
        let mut listed = BTreeMap::new();
        for e in m["entries"].as_array().unwrap() {
            let path = e["path"].as_str().unwrap().to_string();
            let p = x.join(path.trim_start_matches('/'));
            let meta =
                std::fs::symlink_metadata(&p).unwrap_or_else(|err| panic!("{node}: {path}: {err}"));
            match e["kind"].as_str().unwrap() {
                "file" => {
                    let data = std::fs::read(&p).unwrap();
                    assert_eq!(
                        blake3::hash(&data).to_hex().as_str(),
                        e["blake3"].as_str().unwrap(),
                        "{node}: {path}"
                    );
                    assert_eq!(data.len() as u64, e["size"].as_u64().unwrap());
                    assert_eq!(
                        u64::from(meta.permissions().mode() & 0o7777),
                        e["mode"].as_u64().unwrap(),
                        "{node}: {path} mode"
                    );
                }
                "dir" => assert!(meta.is_dir(), "{node}: {path}"),
                "symlink" => assert_eq!(
                    std::fs::read_link(&p).unwrap().to_str(),
                    e["target"].as_str(),
                    "{node}: {path}"
                ),
                k => panic!("{k}"),
            }
            listed.insert(path, ());
        }
        // Nothing more than the entries.
        let mut stack = vec![x.clone()];
        while let Some(d) = stack.pop() {
            for f in std::fs::read_dir(&d).unwrap() {
                let f = f.unwrap().path();
                let rel = format!("/{}", f.strip_prefix(&x).unwrap().display());
                assert!(
                    listed.contains_key(&rel),
                    "{node}: {rel} is in the layer but not in its layer.json"
                );
                if f.is_dir() && !f.is_symlink() {
                    stack.push(f);
                }
            }
        }
    }
}

#[test]
fn dump_erofs_lists_the_same_modes_and_sizes() {
    if !requires("dump.erofs", "erofs-utils") {
        return;
    }
    let ctx = built();
    for (node, img, rec) in ["control0", "worker1"].iter().flat_map(|n| layers(&ctx, n)) {
        for e in rec["entries"].as_array().unwrap() {
            let path = e["path"].as_str().unwrap();
            let (ok, text) = tool(
                Command::new("dump.erofs")
                    .arg(format!("--path={path}"))
                    .arg(&img),
            );
            assert!(ok, "{node}: dump.erofs {path}: {text}");
            let mode = format!("Access: {:04o}/", e["mode"].as_u64().unwrap());
            assert!(
                text.contains(&mode),
                "{node}: {path}: expected {mode} in\n{text}"
            );
            assert!(
                text.contains("Uid: 0   Gid: 0"),
                "{node}: {path}: owner\n{text}"
            );
            let kind = match e["kind"].as_str().unwrap() {
                "file" => "regular file",
                "dir" => "directory",
                _ => "symlink",
            };
            assert!(
                text.contains(kind),
                "{node}: {path}: expected {kind}\n{text}"
            );
            if e["kind"] != "dir" {
                let size = format!("Size: {} ", e["size"].as_u64().unwrap());
                assert!(
                    text.contains(&size),
                    "{node}: {path}: expected {size}\n{text}"
                );
            }
        }
    }
}

#[test]
fn veritysetup_accepts_the_recorded_root_hash_and_rejects_a_flipped_byte() {
    if !requires("veritysetup", "cryptsetup-bin") {
        return;
    }
    let ctx = built();
    let v = ctx.net(&["build", "--json"]).ok().json();
    for n in v["nodes"].as_array().unwrap() {
        let image = manifest(&ctx.path().join(n["image_dir"].as_str().unwrap()));
        for (i, l) in n["layers"].as_array().unwrap().iter().enumerate() {
            let root = l["root_hash"].as_str().unwrap();
            let (ok, text) = tool(
                Command::new("veritysetup")
                    .arg("verify")
                    .arg(ctx.path().join(l["raw"].as_str().unwrap()))
                    .arg(ctx.path().join(l["verity"].as_str().unwrap()))
                    .arg(root),
            );
            assert!(ok, "{} {}: {text}", n["node"], l["role"]);
            // The image record pins the same root hash.
            assert_eq!(image["layers"][i]["verity"]["root_hash"], root);
        }
    }
    // One flipped byte in a copy of the payload: veritysetup and nodeforge verify refuse it.
    let dir = image_dir(&ctx, "worker1");
    let root = std::fs::read_to_string(dir.join("nodeforge-payload.roothash")).unwrap();
    let copy = ctx.path().join("flipped.raw");
    let img = crate::layer_of(&dir, "payload").join("nodeforge-payload.raw");
    let mut bytes = std::fs::read(&img).unwrap();
    let at = bytes.len() - 5000;
    bytes[at] ^= 0x40;
    std::fs::write(&copy, &bytes).unwrap();
    let (ok, _) = tool(
        Command::new("veritysetup")
            .arg("verify")
            .arg(&copy)
            .arg(dir.join("nodeforge-payload.verity"))
            .arg(root.trim_end()),
    );
    assert!(!ok, "a flipped byte passed veritysetup verify");
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&img, &bytes).unwrap();
    // Shared by all six nodes, checked (and reported) once.
    let r = ctx
        .run(&["verify"])
        .fails()
        .stderr_has("is not the EROFS file its entries make from the store")
        .stderr_has("hashes to verity root");
    assert_eq!(
        r.stderr.matches("hashes to verity root").count(),
        1,
        "{}",
        r.stderr
    );
}
