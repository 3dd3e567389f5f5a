//! what goes wrong: damaged and swapped blobs, forged manifests, wrong references,
//! registries that go away midway (a cutting proxy) or take no pushes.

use super::*;

/// A blob damaged in the registry's storage is refused by its digest, and the node is not
/// switched; nothing damaged is left in out/layers.
#[test]
fn a_corrupted_blob_is_refused_and_nothing_is_switched() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    let push = push_to(&ctx, &registry, &repo, &["--node", "worker1", "--json"])
        .ok()
        .json();
    // The config layer's EROFS file: a byte flipped in the registry's copy.
    let blob = push["nodes"][0]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"].get("erofs") == Some(&"config".into()))
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let file = registry.blob_file(&blob);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1024] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let host = Host::new();
    let r = host
        .pull(&registry, &format!("{repo}:worker1"), &[])
        .fails()
        .stderr_has(&format!(
            "sent blob {blob} of repository kubenet with other bytes"
        ))
        .stderr_has("hint: push the image again");
    assert!(r.stderr.contains(&registry.host()), "{}", r.stderr);
    assert!(
        !host.join("out/nodes/worker1/current").exists(),
        "nothing switched"
    );
    assert!(
        !host
            .join("out/pulls")
            .join(format!("{}.partial", &blob[7..]))
            .exists(),
        "the bad bytes are not kept"
    );
    // Again: still refused, still not switched.
    host.pull(&registry, &format!("{repo}:worker1"), &[])
        .fails();
    assert!(!host.join("out/nodes/worker1/current").exists());
}

/// A TCP proxy in front of the registry that passes `budget` bytes of responses in all, then
/// cuts every connection: the registry going away in the middle of a transfer, at a byte the test
/// chooses.
struct CuttingProxy {
    port: u16,
}

impl CuttingProxy {
    fn start(to: u16, budget: u64) -> Self {
        Self::start_with(to, budget, false)
    }

    /// Cut the one connection that exhausts `budget`, then pass everything: a connection that
    /// drops once in the middle of a transfer.
    fn start_once(to: u16, budget: u64) -> Self {
        Self::start_with(to, budget, true)
    }

    fn start_with(to: u16, budget: u64, once: bool) -> Self {
        Self::start_dir(to, budget, once, false)
    }

    /// Cut the one connection whose request bodies exhaust `budget` (what the client sends),
    /// then pass everything: an upload that breaks off once.
    fn start_upload_once(to: u16, budget: u64) -> Self {
        Self::start_dir(to, budget, true, true)
    }

    fn start_dir(to: u16, budget: u64, once: bool, uploads: bool) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        // Copy `from` to `to`, `left` (when counted) bytes in all; cut both ends when it runs out.
        fn pump(
            mut from: std::net::TcpStream,
            mut to: std::net::TcpStream,
            left: Option<Arc<AtomicU64>>,
            once: bool,
        ) {
            let mut buf = [0u8; 4096];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let pass = match &left {
                    None => n,
                    Some(left) => {
                        let allowed = left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| {
                                Some(l.saturating_sub(n as u64))
                            })
                            .unwrap();
                        usize::try_from(allowed.min(n as u64)).unwrap()
                    }
                };
                if to.write_all(&buf[..pass]).is_err() || pass < n {
                    if let (true, Some(left)) = (once, &left) {
                        left.store(u64::MAX, Ordering::SeqCst);
                    }
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
            let _ = from.shutdown(std::net::Shutdown::Both);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let left = Arc::new(AtomicU64::new(budget));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                    return;
                };
                let (c_in, s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (up, down) = if uploads {
                    (Some(left.clone()), None)
                } else {
                    (None, Some(left.clone()))
                };
                std::thread::spawn(move || pump(c_in, s_out, up, once));
                std::thread::spawn(move || pump(server, client, down, once));
            }
        });
        Self { port }
    }
}

/// The payload EROFS file (the first layer blob) of worker1 in push report `push`: its digest
/// and size, and the bytes of responses a pull gets up to its middle (the manifest and the
/// record with their headers, under 4 KiB of headers in all, then half of it).
fn half_the_payload(push: &serde_json::Value) -> (String, u64, u64) {
    let record = blob_of(push, 0, &"record".into());
    let payload = blob_of(push, 0, &serde_json::json!({"erofs": "payload"}));
    let size = payload["size"].as_u64().unwrap();
    let budget = 4096 + 2048 + record["size"].as_u64().unwrap() + size / 2;
    (
        payload["digest"].as_str().unwrap().to_string(),
        size,
        budget,
    )
}

/// The registry gone in the middle of a blob: the pull fails saying it can resume, keeps what
/// arrived in out/pulls/ and switches nothing; with the registry restarted, the next pull
/// resumes with Range instead of starting over.
#[test]
fn a_pull_interrupted_by_the_registry_resumes() {
    let Some(mut registry) = LocalRegistry::start() else {
        return;
    };
    let (ctx, repo, push) = pushed(&registry, &["worker1"]);
    let (digest, size, budget) = half_the_payload(&push);
    let proxy = CuttingProxy::start(registry.port, budget);
    let via = format!("127.0.0.1:{}", proxy.port);
    let host = Host::new();
    let (out, outs) = (&host.out, &host.outs);
    let home = host.path().join("home").display().to_string();
    let r = run_env(
        host.path(),
        &[
            "--out",
            outs,
            "pull",
            &format!("{via}/kubenet:worker1"),
            "--insecure-registry",
            &via,
            // One blob at a time: the proxy's byte budget ends in the payload's EROFS file.
            "--jobs",
            "1",
        ],
        &[("HOME", &home)],
        None,
    )
    .fails()
    .stderr_has("run the pull again to resume");
    assert!(r.stderr.contains(&format!("blob {digest}")), "{}", r.stderr);
    assert!(
        !out.join("nodes/worker1/current").exists(),
        "nothing switched"
    );
    let partial = out.join("pulls").join(format!("{}.partial", &digest[7..]));
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < size, "kept {kept} of {size}");

    // The registry restarted: the pull resumes where it broke off.
    registry.stop();
    registry.resume();
    let r = host
        .pull(&registry, &format!("{repo}:worker1"), &["--json"])
        .ok()
        .json();
    let b = blob_in(&r["blobs"], &digest);
    assert_eq!(b["status"], "resumed", "{r}");
    assert_eq!(
        b["transferred"].as_u64().unwrap(),
        size - kept,
        "only the rest travels"
    );
    assert_eq!(
        crate::current_id_in(out, "worker1"),
        crate::current_id_in(&ctx.path().join("out"), "worker1")
    );
    assert!(!partial.exists());
}

/// Wrong tags, wrong repositories and HTTPS to a plain-HTTP registry are said plainly.
#[test]
fn pull_errors_name_what_to_do() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    push_to(&ctx, &registry, &repo, &["--node", "worker1"]).ok();
    let h = Host::new();
    let outs = &h.outs;
    h.pull(&registry, &format!("{repo}:worker9"), &[])
        .fails()
        .stderr_has(&format!(
            "registry {} has no manifest `worker9` in repository kubenet",
            registry.host()
        ))
        .stderr_has("hint: check the repository and the tag");
    // Without --insecure-registry: HTTPS, which the registry does not speak.
    run_env(
        &h,
        &["--out", outs, "pull", &format!("{repo}:worker1")],
        &[],
        None,
    )
    .fails()
    .stderr_has(&format!("--insecure-registry {}", registry.host()));
    h.pull(&registry, "kubenet:worker1", &[])
        .fails()
        .stderr_has("is not an image reference");
    reg(ctx.path(), &registry, &["push", &format!("{repo}:x")], &[])
        .fails()
        .stderr_has("without a tag");
}

/// A manifest whose blobs are all intact, but whose config layer is another node's (a registry
/// or a person re-pointing a tag): every digest checks out, the layer does not hash to the root
/// hash the image record pins, so the pull is refused and nothing is switched.
#[test]
fn a_layer_that_is_not_the_records_is_refused() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let (_ctx, repo, push) = pushed(&registry, &["worker1", "worker2"]);
    let config =
        |part: &str, node: usize| blob_of(&push, node, &serde_json::json!({ part: "config" }));
    let ours = config("erofs", 0);
    let layer = ours["layer_id"].as_str().unwrap();
    // worker1's manifest with its config layer's EROFS file, or only its hash tree, worker2's.
    retag_with(&registry, "swapped", &ours, &config("erofs", 1));
    retag_with(
        &registry,
        "swapped-tree",
        &config("verity", 0),
        &config("verity", 1),
    );
    let host = Host::new();
    // Tags that are no node's name: --node says which node it must be.
    let pull = |tag: &str| host.pull(&registry, &format!("{repo}:{tag}"), &["--node", "worker1"]);
    pull("swapped")
        .fails()
        .stderr_has(&format!(
            "layer {layer} is not what the image record pins, nothing was switched"
        ))
        .stderr_has("hint: the registry's copy of the image is damaged or was replaced");
    pull("swapped-tree")
        .fails()
        .stderr_has("config.verity is not the hash tree of its EROFS file");
    assert!(!host.out.join("nodes/worker1/current").exists());
    assert!(!host.out.join("layers").join(layer).exists());
    // The real tag still pulls.
    pull("worker1").ok();
}

/// Tag `tag` of repository `kubenet` as worker1's manifest with blob `ours` (a push report's
/// entry) replaced by `theirs`.
fn retag_with(
    registry: &LocalRegistry,
    tag: &str,
    ours: &serde_json::Value,
    theirs: &serde_json::Value,
) {
    let mut m = registry.get_json("kubenet/manifests/worker1");
    for l in m["layers"].as_array_mut().unwrap() {
        if l["digest"] == ours["digest"] {
            l["digest"] = theirs["digest"].clone();
            l["size"] = theirs["size"].clone();
        }
    }
    let put = reqwest::blocking::Client::new()
        .put(format!(
            "http://{}/v2/kubenet/manifests/{tag}",
            registry.host()
        ))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&m).unwrap())
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text());
}

/// A pull whose connection drops in the middle of a blob retries by itself, resuming from the
/// bytes received (so the blob's bytes travel once), says so on stderr, and completes.
#[test]
fn a_pull_cut_midway_retries_and_completes() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let (ctx, _, push) = pushed(&registry, &["worker1"]);
    let (digest, size, budget) = half_the_payload(&push);
    let proxy = CuttingProxy::start_once(registry.port, budget);
    let via = format!("127.0.0.1:{}", proxy.port);
    let host = Host::new();
    let (out, outs) = (&host.out, &host.outs);
    let r = run_home(
        host.path(),
        &host.path().join("home"),
        &[
            "--out",
            outs,
            "pull",
            &format!("{via}/kubenet:worker1"),
            "--insecure-registry",
            &via,
            "--json",
            // One blob at a time: the proxy's byte budget ends in the payload's EROFS file.
            "--jobs",
            "1",
        ],
        &[],
    )
    .ok();
    assert!(
        r.stderr.contains(&format!(
            "note: registry {via}: the transfer of blob {digest} (repository kubenet) broke off after"
        )) && r.stderr.contains("retrying in")
            && !r.stderr.contains("run the pull again"),
        "{}",
        r.stderr
    );
    let j = r.json();
    let b = blob_in(&j["blobs"], &digest);
    assert_eq!(b["status"], "downloaded", "{j}");
    assert_eq!(
        b["transferred"].as_u64().unwrap(),
        size,
        "the bytes before the cut are kept, not downloaded again"
    );
    assert_eq!(
        crate::current_id_in(out, "worker1"),
        crate::current_id_in(&ctx.path().join("out"), "worker1")
    );
    assert!(!out
        .join("pulls")
        .join(format!("{}.partial", &digest[7..]))
        .exists());
}

/// A real registry that refuses pushes: distribution as a pull-through cache (`proxy:` in its
/// config) answers UNSUPPORTED to a blob upload. The error names the registry, repository and
/// blob, and the hint says that it takes no pushes (not that it refused the media types, which
/// is the hint for a manifest refused with MANIFEST_INVALID or UNSUPPORTED).
#[test]
fn a_registry_that_takes_no_pushes_says_so() {
    let Some(upstream) = LocalRegistry::start() else {
        return;
    };
    let cache = LocalRegistry::start_in(
        tempfile::tempdir().unwrap(),
        &format!("proxy:\n  remoteurl: http://{}\n", upstream.host()),
    );
    let ctx = built();
    let host = cache.host();
    let r = reg(
        ctx.path(),
        &cache,
        &["push", &cache.repo("kubenet"), "--node", "worker1"],
        &[],
    )
    .fails()
    .stderr_has(&format!(
        "registry {host} answered 405 to uploading blob sha256:"
    ))
    .stderr_has("in repository kubenet: UNSUPPORTED")
    .stderr_has(&format!(
        "hint: {host} takes no pushes to this repository (a pull-through cache"
    ));
    assert!(!r.stderr.contains("media types"), "{}", r.stderr);
}

/// An upload that breaks off is sent again in the same run: a push through a connection cut
/// once in the middle of the payload's EROFS file completes, says so, and the registry then
/// serves the image a fresh host pulls with the builder's id.
#[test]
fn a_push_cut_midway_retries_and_completes() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let erofs = std::fs::read_dir(ctx.path().join("out/layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("nodeforge-payload.raw"))
        .find(|p| p.exists())
        .unwrap();
    let size = std::fs::metadata(&erofs).unwrap().len();
    // Past the record and the first requests, into the payload's EROFS file.
    let proxy = CuttingProxy::start_upload_once(registry.port, 16 * 1024 + size / 2);
    let via = format!("127.0.0.1:{}", proxy.port);
    let r = run_home(
        ctx.path(),
        &ctx.path().join("home"),
        &[
            "push",
            &format!("{via}/kubenet"),
            "--node",
            "worker1",
            "--insecure-registry",
            &via,
            "--json",
        ],
        &[],
    )
    .ok();
    assert!(
        r.stderr.contains("note: ") && r.stderr.contains("trying the upload of blob sha256:"),
        "{}",
        r.stderr
    );
    let host = Host::new();
    let p = host
        .pull(&registry, &registry.repo("kubenet:worker1"), &["--json"])
        .ok()
        .json();
    assert_eq!(
        p["image_id"].as_str().unwrap(),
        crate::current_id_in(&ctx.path().join("out"), "worker1")
    );
}

/// A layout (or registry) whose manifest names a lock id nodeforge never writes (here with a
/// terminal escape, which `history` would print) is refused before anything is installed.
#[test]
fn a_manifest_with_a_forged_lock_id_is_refused() {
    let ctx = built();
    let layout = ctx.path().join("layout");
    let l = layout.display().to_string();
    ctx.run(&["export", "--oci-layout", &l, "--node", "worker1"])
        .ok();
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "worker1")
        .unwrap();
    let digest = index["manifests"][entry]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&digest)).unwrap())
            .unwrap();
    manifest["annotations"]["dev.nodeforge.lock-id"] = "blake3:\u{1b}[2Jgotcha".into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let forged = crate::sha256_hex(&bytes);
    std::fs::write(layout.join("blobs/sha256").join(&forged), &bytes).unwrap();
    index["manifests"][entry]["digest"] = format!("sha256:{forged}").into();
    index["manifests"][entry]["size"] = bytes.len().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let host = Host::new();
    let outs = &host.outs;
    run_env(
        host.path(),
        &["--out", outs, "import", &l, "--tag", "worker1"],
        &[],
        None,
    )
    .fails()
    .stderr_has("names lock id `blake3:\\u{1b}[2Jgotcha`, not blake3:<64 hex digits>");
    assert!(nothing_installed(&host.path().join("out"), "worker1"));
}
