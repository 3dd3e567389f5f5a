//! A registry that moves tags cannot switch a node to another node's image, nor (with trusted
//! keys, or by what the host itself had) to an older image of the same node: `pull REF:TAG`
//! checks the record's node against the tag (or `--node`) before anything else is downloaded,
//! and `pull`/`import` refuse an image older than the node's current one unless
//! `--allow-downgrade`. Against Debian's docker-registry on 127.0.0.1 (`oci.rs`'s).

use std::io::{Read, Write};
use std::path::Path;

use crate::oci::LocalRegistry;
use crate::{built, Run, TestContext};

/// Run nodeforge in `cwd` against the registry over plain HTTP, with a `HOME` of its own.
fn reg(cwd: &Path, r: &LocalRegistry, args: &[&str]) -> Run {
    crate::oci::reg(cwd, r, args, &[])
}

/// One HTTP/1.0 exchange with the registry: the status line and the body.
fn http(r: &LocalRegistry, request: &[u8]) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    s.write_all(request).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&resp[..resp.iter().position(|b| *b == b'\r').unwrap()])
        .into_owned();
    (status, resp[at + 4..].to_vec())
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Point tag `to` of `repo` at the manifest tag `from` holds, byte for byte: what a registry
/// (or whoever can push to it) does to move a tag.
fn retag(r: &LocalRegistry, repo: &str, from: &str, to: &str) {
    let (status, body) = http(
        r,
        format!(
            "GET /v2/{repo}/manifests/{from} HTTP/1.0\r\nHost: {}\r\nAccept: {MANIFEST}\r\n\r\n",
            r.host()
        )
        .as_bytes(),
    );
    assert!(status.contains(" 200"), "{status}");
    let mut put = format!(
        "PUT /v2/{repo}/manifests/{to} HTTP/1.0\r\nHost: {}\r\nContent-Type: {MANIFEST}\r\nContent-Length: {}\r\n\r\n",
        r.host(),
        body.len()
    )
    .into_bytes();
    put.extend_from_slice(&body);
    let (status, _) = http(r, &put);
    assert!(status.contains(" 201"), "{status}");
}

fn signing_key(ctx: &TestContext) -> (String, String) {
    let (key, public, _) = crate::oci::signing_key(ctx, "a.key");
    (key, public)
}

/// Nothing of the image was put on the host: no layer, no pulled blob, no generation.
fn nothing_downloaded(out: &Path) -> bool {
    let empty = |d: &str| std::fs::read_dir(out.join(d)).map_or(true, |mut e| e.next().is_none());
    empty("layers") && empty("pulls") && empty("nodes")
}

#[test]
fn pull_refuses_a_tag_moved_to_another_nodes_image_before_downloading_its_layers() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "control0", "--node", "worker1"],
    )
    .ok();
    // The registry points worker1's tags at control0's manifest.
    retag(&registry, "kubenet", "control0", "worker1");
    retag(&registry, "kubenet", "control0", "worker1-gen1");
    let host = tempfile::tempdir().unwrap();
    let out = host.path().join("out");
    let outs = out.display().to_string();
    for tag in ["worker1", "worker1-gen1"] {
        reg(
            host.path(),
            &registry,
            &["--out", &outs, "pull", &format!("{repo}:{tag}")],
        )
        .fails()
        .stderr_has(&format!(
            "the tag `{tag}` names node worker1, but the image's record is node control0's"
        ))
        .stderr_has("nothing was downloaded beyond the record")
        .stderr_has("hint:");
        assert!(
            nothing_downloaded(&out),
            "{tag}: something was put in place"
        );
    }
    // --node says which node is wanted, whatever the tag: the wrong one is refused, the right
    // one taken.
    reg(
        host.path(),
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:worker1"),
            "--node",
            "worker1",
        ],
    )
    .fails()
    .stderr_has("--node worker1 names node worker1, but the image's record is node control0's");
    assert!(nothing_downloaded(&out));
    let p = reg(
        host.path(),
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:worker1"),
            "--node",
            "control0",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(p["node"], "control0");
    assert!(!out.join("nodes/worker1").exists());
    // The node's own tag is pulled as before.
    reg(
        host.path(),
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:control0")],
    )
    .ok();
}

#[test]
fn pull_refuses_an_older_image_of_the_node_unless_allow_downgrade_with_keys_and_by_the_hosts_history(
) {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let (key, public) = signing_key(&ctx);
    let repo = registry.repo("kubenet");
    ctx.run(&["sign", "worker1", "--key", &key]).ok();
    reg(ctx.path(), &registry, &["push", &repo, "--node", "worker1"]).ok();
    let gen1 = crate::current_id(&ctx, "worker1");
    crate::set_verbosity(&ctx, 4);
    ctx.net(&["build"]).ok();
    ctx.run(&["sign", "worker1", "--key", &key]).ok();
    reg(ctx.path(), &registry, &["push", &repo, "--node", "worker1"]).ok();
    let gen2 = crate::current_id(&ctx, "worker1");
    assert_ne!(gen1, gen2);

    // A host that trusts the key pulls generation 2: its signature says so.
    let host = tempfile::tempdir().unwrap();
    let out = host.path().join("out");
    let outs = out.display().to_string();
    let p = reg(
        host.path(),
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &public,
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(p["image_id"], gen2.as_str());
    assert_eq!(p["attestations"]["freshness"]["generation"], 2, "{p}");

    // The registry moves `worker1` back to generation 1 (validly signed, with known holes).
    retag(&registry, "kubenet", "worker1-gen1", "worker1");
    reg(
        host.path(),
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &public,
        ],
    )
    .fails()
    .stderr_has(&format!(
        "image {gen1} is older than node worker1's current image {gen2}: a trusted key signed it as generation 1 built"
    ))
    .stderr_has("the current one as generation 2 built")
    .stderr_has("nothing was put in place")
    .stderr_has("--allow-downgrade");
    assert_eq!(crate::current_id_in(&out, "worker1"), gen2);
    let gen1_config = crate::layer_of(&ctx.path().join("out/images").join(&gen1), "config");
    assert!(!out
        .join("layers")
        .join(gen1_config.file_name().unwrap())
        .exists());
    // Asked for: switched.
    let p = reg(
        host.path(),
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &public,
            "--allow-downgrade",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(p["switched"], true);
    assert_eq!(crate::current_id_in(&out, "worker1"), gen1);

    // Without keys nothing the registry says orders images, but the host's own history does: a
    // host that had generations 1 and 2 refuses 1 again, and `rollback` is the way back.
    let host2 = tempfile::tempdir().unwrap();
    let out2 = host2.path().join("out");
    let outs2 = out2.display().to_string();
    for tag in ["worker1-gen1", "worker1-gen2"] {
        reg(
            host2.path(),
            &registry,
            &["--out", &outs2, "pull", &format!("{repo}:{tag}")],
        )
        .ok();
    }
    reg(
        host2.path(),
        &registry,
        &["--out", &outs2, "pull", &format!("{repo}:worker1")],
    )
    .fails()
    .stderr_has("it is generation 1 of worker1 on this host, before the current generation 2");
    assert_eq!(crate::current_id_in(&out2, "worker1"), gen2);
    reg(
        host2.path(),
        &registry,
        &["--out", &outs2, "rollback", "worker1"],
    )
    .ok();
    assert_eq!(crate::current_id_in(&out2, "worker1"), gen1);
    // After the rollback, generation 2 is newer than the current one: pulled forward again.
    reg(
        host2.path(),
        &registry,
        &["--out", &outs2, "pull", &format!("{repo}:worker1-gen2")],
    )
    .ok();
    assert_eq!(crate::current_id_in(&out2, "worker1"), gen2);
}
