//! push and pull through a real OCI registry: Debian's `docker-registry` (the CNCF distribution
//! server) on 127.0.0.1 with its filesystem storage in a temp dir, anonymous or with htpasswd
//! auth.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{built, run_env, Run, TestContext};

/// A `docker-registry` process on 127.0.0.1, its config, storage and htpasswd in a temp dir.
pub struct LocalRegistry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl LocalRegistry {
    /// Start an anonymous registry (`None` when docker-registry is not installed, outside CI).
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// Start a registry that requires `user`/`password` (basic auth from an htpasswd file).
    pub fn start_with(login: Option<(&str, &str)>) -> Option<Self> {
        if !crate::requires("docker-registry", "docker-registry") {
            return None;
        }
        if login.is_some() && !crate::requires("htpasswd", "apache2-utils") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let auth = match login {
            Some((user, password)) => {
                let htpasswd = dir.path().join("htpasswd");
                let st = Command::new("htpasswd")
                    .args(["-Bbc"])
                    .arg(&htpasswd)
                    .args([user, password])
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(st.success());
                format!(
                    "auth:\n  htpasswd:\n    realm: nodeforge-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            None => String::new(),
        };
        Some(Self::start_in(dir, &auth))
    }

    /// Start a registry with the `auth:` section `auth` of its config, in `dir`.
    pub fn start_in(dir: tempfile::TempDir, auth: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: nodeforge-test\n{auth}",
            dir.path().join("storage").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut r = Self {
            dir,
            port,
            child: None,
        };
        r.resume();
        r
    }

    /// (Re)start the process on the same port and storage, and wait until it answers.
    pub fn resume(&mut self) {
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "docker-registry did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stop the process (the storage stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/<repo>`.
    pub fn repo(&self, repo: &str) -> String {
        format!("{}/{repo}", self.host())
    }

    /// Where the registry keeps blob `digest` (`sha256:<hex>`).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// `GET /v2/<path>` as JSON (a manifest or index, by the registry's own API), over plain
    /// HTTP/1.0.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "GET /v2/{path} HTTP/1.0\r\nHost: {}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json\r\n\r\n",
            self.host()
        )
        .unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        assert!(
            resp.starts_with(b"HTTP/1.1 200") || resp.starts_with(b"HTTP/1.0 200"),
            "{}",
            String::from_utf8_lossy(&resp)
        );
        serde_json::from_slice(&resp[at + 4..]).unwrap()
    }

    /// Every blob in the registry's storage.
    pub fn blob_count(&self) -> usize {
        let root = self
            .dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256");
        std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|d| std::fs::read_dir(d.path()).map_or(0, Iterator::count))
            .sum()
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Run nodeforge in `cwd` (push and pull against the registry, over plain HTTP), with a `HOME` of
/// its own: no credentials of the caller's.
pub(crate) fn reg(cwd: &Path, r: &LocalRegistry, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let host = r.host();
    let mut all: Vec<&str> = args.to_vec();
    if args.iter().any(|a| *a == "push" || *a == "pull") {
        all.extend(["--insecure-registry", &host]);
    }
    let home = cwd.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let home = home.display().to_string();
    let mut env: Vec<(&str, &str)> = vec![("HOME", &home), ("XDG_RUNTIME_DIR", &home)];
    env.extend_from_slice(envs);
    run_env(cwd, &all, &env, None)
}

/// The files of every layer of an image, by name, as bytes.
fn layer_bytes(out: &Path, image: &str) -> Vec<(String, Vec<u8>)> {
    let dir = out.join("images").join(image);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A VM host: a directory outside any project (no manifest, lockfile or store).
fn fresh_host() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

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
    let push = reg(ctx.path(), &registry, &["push", &repo, "--json"], &[])
        .ok()
        .json();
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
    // Pushed again: nothing is uploaded.
    let again = reg(ctx.path(), &registry, &["push", &repo, "--json"], &[])
        .ok()
        .json();
    assert_eq!(again["blobs_uploaded"], 0, "{again}");
    assert_eq!(
        again["nodes"][0]["manifest_digest"], push["nodes"][0]["manifest_digest"],
        "same image, same manifest"
    );

    // A fresh host: no manifest, no lockfile, no store.
    let host_tmp = fresh_host();
    let host = host_tmp.path().to_path_buf();
    let out = host.join("out");
    let outs = out.display().to_string();
    let w1 = reg(
        &host,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1"), "--json"],
        &[],
    )
    .ok()
    .json();
    assert_eq!(w1["kind"], "pull-report");
    assert_eq!(w1["node"], "worker1");
    assert_eq!(w1["generation"], 1);
    assert_eq!(w1["switched"], true);
    let built_out = ctx.path().join("out");
    let id = crate::current_id_in(&built_out, "worker1");
    assert_eq!(w1["image_id"], id.as_str());
    assert_eq!(crate::current_id_in(&out, "worker1"), id);
    assert_eq!(
        layer_bytes(&out, &id),
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
    let w2 = reg(
        &host,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker2"), "--json"],
        &[],
    )
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
    let w2b = reg(
        &host,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker2"), "--json"],
        &[],
    )
    .ok()
    .json();
    assert_eq!(w2b["switched"], false);
    assert_eq!(w2b["generation"], 1);

    // By image id and by manifest digest: same image.
    let by_digest = format!(
        "{repo}@{}",
        push["nodes"][0]["manifest_digest"].as_str().unwrap()
    );
    let d = reg(
        &host,
        &registry,
        &["--out", &outs, "pull", &by_digest, "--json"],
        &[],
    )
    .ok()
    .json();
    assert_eq!(d["image_id"], push["nodes"][0]["image_id"]);

    // A second generation of worker1, pushed and pulled.
    crate::set_verbosity(&ctx, 5);
    ctx.net(&["build", "--node", "worker1"]).ok();
    let id2 = crate::current_id_in(&built_out, "worker1");
    let p2 = reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1", "--json"],
        &[],
    )
    .ok()
    .json();
    assert_eq!(p2["nodes"][0]["tags"][1], "worker1-gen2");
    assert_eq!(
        p2["blobs_uploaded"], 3,
        "record and config layer only: {p2}"
    );
    let g2 = reg(
        &host,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1"), "--json"],
        &[],
    )
    .ok()
    .json();
    assert_eq!(
        (g2["generation"].as_u64(), g2["image_id"].as_str()),
        (Some(2), Some(id2.as_str()))
    );

    // The host's own commands work on its out/ alone.
    let list = reg(
        &host,
        &registry,
        &["--out", &outs, "list", "--node", "worker1", "--json"],
        &[],
    )
    .ok()
    .json();
    assert_eq!(list["nodes"][0]["current"], 2);
    reg(&host, &registry, &["--out", &outs, "show", "worker1"], &[])
        .ok()
        .stdout_has(&id2[..12]);
    let v = reg(&host, &registry, &["--out", &outs, "verify", "--json"], &[])
        .ok()
        .json();
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
    let rb = reg(
        &host,
        &registry,
        &["--out", &outs, "rollback", "worker1", "--json"],
        &[],
    )
    .ok()
    .json();
    assert_eq!(rb["rolled_back"][0]["to"], 1);
    assert_eq!(crate::current_id_in(&out, "worker1"), id);
    let v = reg(
        &host,
        &registry,
        &["--out", &outs, "verify", "--rebuild", "--json"],
        &[],
    )
    .ok()
    .json();
    assert_eq!(v["ok"], true, "{v}");
}

/// A blob damaged in the registry's storage is refused by its digest, and the node is not
/// switched; nothing damaged is left in out/layers.
#[test]
fn a_corrupted_blob_is_refused_and_nothing_is_switched() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    let push = reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1", "--json"],
        &[],
    )
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

    let host_tmp = fresh_host();
    let host = host_tmp.path().to_path_buf();
    let outs = host.join("out").display().to_string();
    let r = reg(
        &host,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1")],
        &[],
    )
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
    reg(
        &host,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1")],
        &[],
    )
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

/// The registry gone in the middle of a blob: the pull fails saying it can resume, keeps what
/// arrived in out/pulls/ and switches nothing; with the registry restarted, the next pull
/// resumes with Range instead of starting over.
#[test]
fn a_pull_interrupted_by_the_registry_resumes() {
    let Some(mut registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    let push = reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1", "--json"],
        &[],
    )
    .ok()
    .json();
    let blobs = push["nodes"][0]["blobs"].as_array().unwrap().clone();
    let blob = |kind: serde_json::Value| blobs.iter().find(|b| b["kind"] == kind).unwrap().clone();
    let record = blob("record".into());
    let payload = blob(serde_json::json!({"erofs": "payload"}));
    let size = payload["size"].as_u64().unwrap();
    let digest = payload["digest"].as_str().unwrap().to_string();
    // Responses up to the middle of the payload's EROFS file (the first layer blob): the
    // manifest and record with their headers (under 4 KiB of headers in all), then half of it.
    let budget = 4096 + 2048 + record["size"].as_u64().unwrap() + size / 2;
    let proxy = CuttingProxy::start(registry.port, budget);
    let via = format!("127.0.0.1:{}", proxy.port);
    let host_tmp = fresh_host();
    let host = host_tmp.path().to_path_buf();
    let out = host.join("out");
    let outs = out.display().to_string();
    let home = host.join("home").display().to_string();
    let r = run_env(
        &host,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{via}/kubenet:worker1"),
            "--insecure-registry",
            &via,
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
    let r = reg(
        &host,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1"), "--json"],
        &[],
    )
    .ok()
    .json();
    let b = r["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["digest"] == digest.as_str())
        .unwrap();
    assert_eq!(b["status"], "resumed", "{r}");
    assert_eq!(
        b["transferred"].as_u64().unwrap(),
        size - kept,
        "only the rest travels"
    );
    assert_eq!(
        crate::current_id_in(&out, "worker1"),
        crate::current_id_in(&ctx.path().join("out"), "worker1")
    );
    assert!(!partial.exists());
}

/// With htpasswd auth: no credentials, or wrong ones, give a clear error naming the registry and
/// what to do; the right ones (from an auth file, or the environment) work.
#[test]
fn registry_logins() {
    let Some(registry) = LocalRegistry::start_with(Some(("fleet", "s3cret"))) else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    let host = registry.host();
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[],
    )
    .fails()
    .stderr_has(&format!("registry {host} refused"))
    .stderr_has("it requires a login (no credentials were sent)")
    .stderr_has(&format!("hint: log in with `docker login {host}`"));
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[
            ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
            ("NODEFORGE_REGISTRY_PASSWORD", "wrong"),
        ],
    )
    .fails()
    .stderr_has("the user name or password is wrong")
    .stderr_has("credentials from $NODEFORGE_REGISTRY_USERNAME");
    // docker's config.json under $HOME.
    let docker = ctx.path().join("home/.docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "ZmxlZXQ6czNjcmV0"}}}}}}"#),
    )
    .unwrap();
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[],
    )
    .ok();
    // podman's auth file named by REGISTRY_AUTH_FILE, on a host.
    let host_tmp = fresh_host();
    let h = host_tmp.path().to_path_buf();
    let auth = h.join("auth.json");
    std::fs::write(
        &auth,
        format!(r#"{{"auths": {{"{host}": {{"username": "fleet", "password": "s3cret"}}}}}}"#),
    )
    .unwrap();
    let outs = h.join("out").display().to_string();
    let auth_s = auth.display().to_string();
    reg(
        &h,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1")],
        &[],
    )
    .fails()
    .stderr_has("it requires a login");
    reg(
        &h,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1")],
        &[("REGISTRY_AUTH_FILE", &auth_s)],
    )
    .ok();
}

/// Wrong tags, wrong repositories and HTTPS to a plain-HTTP registry are said plainly.
#[test]
fn pull_errors_name_what_to_do() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[],
    )
    .ok();
    let host_tmp = fresh_host();
    let h = host_tmp.path().to_path_buf();
    let outs = h.join("out").display().to_string();
    reg(
        &h,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker9")],
        &[],
    )
    .fails()
    .stderr_has(&format!(
        "registry {} has no manifest `worker9` in repository kubenet",
        registry.host()
    ))
    .stderr_has("hint: check the repository and the tag");
    // Without --insecure-registry: HTTPS, which the registry does not speak.
    run_env(
        &h,
        &["--out", &outs, "pull", &format!("{repo}:worker1")],
        &[],
        None,
    )
    .fails()
    .stderr_has(&format!("--insecure-registry {}", registry.host()));
    reg(
        &h,
        &registry,
        &["--out", &outs, "pull", "kubenet:worker1"],
        &[],
    )
    .fails()
    .stderr_has("is not an image reference");
    reg(ctx.path(), &registry, &["push", &format!("{repo}:x")], &[])
        .fails()
        .stderr_has("without a tag");
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
    reg(ctx.path(), &registry, &["push", &repo], &[]).ok();
    let host_tmp = fresh_host();
    let h = host_tmp.path().to_path_buf();
    let outs = h.join("out").display().to_string();
    let threads: Vec<_> = ["worker1", "worker2", "control0"]
        .into_iter()
        .map(|n| {
            let (h, outs, reference) = (h.clone(), outs.clone(), format!("{repo}:{n}"));
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
    let v = reg(&h, &registry, &["--out", &outs, "verify", "--json"], &[])
        .ok()
        .json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["nodes_checked"], 3);
}

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

    let host_tmp = fresh_host();
    let host = host_tmp.path().to_path_buf();
    let outs = host.join("out").display().to_string();
    let i = run_env(
        &host,
        &["--out", &outs, "import", &l, "--tag", "worker1", "--json"],
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
    let all = run_env(&host, &["--out", &outs, "import", &l, "--json"], &[], None)
        .ok()
        .json();
    assert_eq!(all["images"].as_array().unwrap().len(), 6);
    run_env(&host, &["--out", &outs, "verify"], &[], None).ok();
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
    let host3 = fresh_host();
    let outs3 = host3.path().join("out").display().to_string();
    let d = damaged.display().to_string();
    run_env(
        host3.path(),
        &["--out", &outs3, "import", &d, "--tag", "worker1"],
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
    let host2 = fresh_host();
    let outs2 = host2.path().join("out").display().to_string();
    let p = reg(
        host2.path(),
        &registry,
        &[
            "--out",
            &outs2,
            "pull",
            &format!("{}:worker1", registry.repo("copied")),
            "--json",
        ],
        &[],
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

/// The distribution spec's bearer-token flow against a registry configured for token auth: the
/// registry's challenge names a token service (a loopback server here, handing out a JWT signed
/// with a key the registry trusts, only for the right user and password); push and pull get a
/// token with their credentials and use it; wrong credentials are refused by the token service.
#[test]
fn bearer_token_flow() {
    use base64::Engine as _;
    if !crate::requires("docker-registry", "docker-registry")
        || !crate::requires("openssl", "openssl")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=nodeforge-test-token",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .output()
        .unwrap()
        .stdout;
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [b64.encode(&der)]});
    let claims = serde_json::json!({
        "iss": "nodeforge-test-issuer", "sub": "fleet", "aud": "nodeforge-test",
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "nodeforge-test",
        "access": [{"type": "repository", "name": "kubenet", "actions": ["pull", "push"]}],
    });
    let input = format!(
        "{}.{}",
        url.encode(header.to_string()),
        url.encode(claims.to_string())
    );
    std::fs::write(dir.path().join("input"), &input).unwrap();
    let sig = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .arg(dir.path().join("input"))
        .output()
        .unwrap()
        .stdout;
    let token = format!("{input}.{}", url.encode(sig));

    // The token service: a token for fleet:s3cret, 401 for anyone else.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let token_port = listener.local_addr().unwrap().port();
    let want = format!("Basic {}", b64.encode("fleet:s3cret"));
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let asked_by_server = asked.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            let mut auth = String::new();
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if request.is_empty() {
                    request = line.trim().to_string();
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                if let Some(v) = line
                    .strip_prefix("authorization: ")
                    .or_else(|| line.strip_prefix("Authorization: "))
                {
                    auth = v.trim().to_string();
                }
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            // OAuth2's refresh-token grant: a form in the body of a POST.
            let mut form = vec![0u8; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut form);
            let form = String::from_utf8_lossy(&form).into_owned();
            let refresh = request.starts_with("POST ")
                && form.split('&').any(|p| p == "grant_type=refresh_token")
                && form.split('&').any(|p| p == "refresh_token=idtok-fleet");
            asked_by_server
                .lock()
                .unwrap()
                .push(format!("{request} {form}"));
            let (status, body) = if refresh {
                ("200 OK", format!("{{\"access_token\": \"{token}\"}}"))
            } else if auth == want {
                ("200 OK", format!("{{\"token\": \"{token}\"}}"))
            } else {
                ("401 Unauthorized", "{}".to_string())
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let auth = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: nodeforge-test\n    issuer: nodeforge-test-issuer\n    rootcertbundle: {}\n",
        cert.display()
    );
    let registry = LocalRegistry::start_in(dir, &auth);
    let ctx = built();
    let repo = registry.repo("kubenet");
    let login = [
        ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
        ("NODEFORGE_REGISTRY_PASSWORD", "s3cret"),
    ];
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[],
    )
    .fails()
    .stderr_has("its token service requires a login")
    .stderr_has("hint: log in with");
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[
            ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
            ("NODEFORGE_REGISTRY_PASSWORD", "nope"),
        ],
    )
    .fails()
    .stderr_has("its token service refused the user name or password");
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &login,
    )
    .ok();
    let requests = asked.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.contains("service=nodeforge-test")
            && r.contains("scope=repository%3Akubenet%3Apull%2Cpush")),
        "{requests:?}"
    );
    let host_tmp = fresh_host();
    let outs = host_tmp.path().join("out").display().to_string();
    let r = reg(
        host_tmp.path(),
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1"), "--json"],
        &login,
    )
    .ok()
    .json();
    assert_eq!(
        r["image_id"],
        crate::current_id_in(&ctx.path().join("out"), "worker1").as_str()
    );

    // `login` against the token service: a token for the user and password, or a refusal.
    let auth = host_tmp.path().join("auth.json");
    let auth_s = auth.display().to_string();
    let login_env = |password: &'static str| {
        [
            ("REGISTRY_AUTH_FILE", auth_s.clone()),
            ("NODEFORGE_REGISTRY_PASSWORD", password.to_string()),
        ]
    };
    let login_args = [
        "login",
        &registry.host(),
        "--username",
        "fleet",
        "--insecure-registry",
        &registry.host(),
        "--json",
    ];
    let env = login_env("nope");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_env(host_tmp.path(), &login_args, &env, None)
        .fails()
        .stderr_has("its token service refused the user name or password");
    assert!(!auth.exists());
    let env = login_env("s3cret");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = run_env(host_tmp.path(), &login_args, &env, None)
        .ok()
        .json();
    assert_eq!(r["verified"], true, "{r}");
    assert!(auth.exists());

    // An identity token from a credential helper (user `<token>`): traded at the token service
    // with OAuth2's refresh-token grant, then used as any token.
    let host_tmp = fresh_host();
    let h = host_tmp.path();
    let bin = h.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    credential_helper(&bin, "nfidt", &registry.host(), "<token>", "idtok-fleet");
    std::fs::write(
        h.join("config.json"),
        format!(r#"{{"credHelpers": {{"{}": "nfidt"}}}}"#, registry.host()),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let config_dir = h.display().to_string();
    let outs = h.join("out").display().to_string();
    let r = reg(
        h,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1"), "--json"],
        &[("PATH", &path), ("DOCKER_CONFIG", &config_dir)],
    )
    .ok()
    .json();
    assert_eq!(
        r["image_id"],
        crate::current_id_in(&ctx.path().join("out"), "worker1").as_str()
    );
    let requests = asked.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.starts_with("POST /token")
            && r.contains("grant_type=refresh_token")
            && r.contains("scope=repository%3Akubenet%3Apull")
            && r.contains("service=nodeforge-test")),
        "{requests:?}"
    );
}

/// A manifest whose blobs are all intact, but whose config layer is another node's (a registry
/// or a person re-pointing a tag): every digest checks out, the layer does not hash to the root
/// hash the image record pins, so the pull is refused and nothing is switched.
#[test]
fn a_layer_that_is_not_the_records_is_refused() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    let push = reg(
        ctx.path(),
        &registry,
        &[
            "push", &repo, "--node", "worker1", "--node", "worker2", "--json",
        ],
        &[],
    )
    .ok()
    .json();
    let config_erofs = |node: usize| {
        push["nodes"][node]["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["kind"].get("erofs") == Some(&"config".into()))
            .unwrap()
            .clone()
    };
    let (ours, theirs) = (config_erofs(0), config_erofs(1));
    let base = format!("http://{}/v2/kubenet/manifests", registry.host());
    let client = reqwest::blocking::Client::new();
    let mut m: serde_json::Value = serde_json::from_slice(
        &client
            .get(format!("{base}/worker1"))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
    )
    .unwrap();
    for l in m["layers"].as_array_mut().unwrap() {
        if l["digest"] == ours["digest"] {
            l["digest"] = theirs["digest"].clone();
            l["size"] = theirs["size"].clone();
        }
    }
    let put = client
        .put(format!("{base}/swapped"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&m).unwrap())
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text());

    let host_tmp = fresh_host();
    let out = host_tmp.path().join("out");
    let outs = out.display().to_string();
    reg(
        host_tmp.path(),
        &registry,
        // A tag that is no node's name: --node says which node it must be.
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:swapped"),
            "--node",
            "worker1",
        ],
        &[],
    )
    .fails()
    .stderr_has(&format!(
        "layer {} is not what the image record pins, nothing was switched",
        ours["layer_id"].as_str().unwrap()
    ))
    .stderr_has("hint: the registry's copy of the image is damaged or was replaced");
    assert!(!out.join("nodes/worker1/current").exists());
    assert!(!out
        .join("layers")
        .join(ours["layer_id"].as_str().unwrap())
        .exists());
    // The real tag still pulls.
    reg(
        host_tmp.path(),
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1")],
        &[],
    )
    .ok();
}

/// A new key pair under the builder's `keys/`: (private, public, key id).
pub(crate) fn signing_key(ctx: &TestContext, name: &str) -> (String, String, String) {
    let p = ctx.path().join("keys").join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let s = p.to_str().unwrap().to_string();
    let keyid = ctx.run(&["key", "generate", &s, "--json"]).ok().json()["keyid"]
        .as_str()
        .unwrap()
        .to_string();
    (s.clone(), format!("{s}.pub"), keyid)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The attestation files of image `id` in `out`, by name, as bytes.
fn attestation_bytes(out: &Path, id: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(out.join("attestations").join(id))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether a pull or import put anything in place on the host: a layer or a node.
fn nothing_installed(out: &Path, node: &str) -> bool {
    let layers = std::fs::read_dir(out.join("layers"))
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    layers == 0 && !out.join("nodes").join(node).join("current").exists()
}

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
    let push = reg(
        ctx.path(),
        &registry,
        &[
            "push", &repo, "--node", "worker1", "--node", "worker2", "--json",
        ],
        &[],
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
    // Pushed again, unchanged: nothing new.
    let again = reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1", "--json"],
        &[],
    )
    .ok()
    .json();
    let att2 = &again["nodes"][0]["attestations"];
    assert_eq!(att2["manifest_digest"], att["manifest_digest"]);
    assert_eq!(att2["blobs_uploaded"], 0, "{again}");
    assert_eq!(att2["referrers_tag_updated"], serde_json::Value::Null);

    // A host that trusts key a: accepted, the files are the builder's, verify --key passes.
    let host_tmp = fresh_host();
    let host = host_tmp.path().to_path_buf();
    let out = host.join("out");
    let outs = out.display().to_string();
    let p = reg(
        &host,
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &a_pub,
            "--json",
        ],
        &[],
    )
    .ok()
    .json();
    assert_eq!(p["attestations"]["trust_checked"], true, "{p}");
    assert_eq!(p["attestations"]["signed_by"], serde_json::json!([keyid_a]));
    assert_eq!(p["attestations"]["manifests"][0], att["manifest_digest"]);
    assert_eq!(
        attestation_bytes(&out, &id),
        attestation_bytes(&built_out, &id)
    );
    assert_eq!(attestation_bytes(&out, &id).len(), 3);
    reg(
        &host,
        &registry,
        &["--out", &outs, "verify", "--key", &a_pub],
        &[],
    )
    .ok();
    // Without keys: pulled as before, with a note that it came signed.
    let plain = fresh_host();
    let plain_out = plain.path().join("out").display().to_string();
    reg(
        plain.path(),
        &registry,
        &["--out", &plain_out, "pull", &format!("{repo}:worker1")],
        &[],
    )
    .ok()
    .stderr_has(&format!(
        "note: worker1: the image came signed by key {}",
        &keyid_a[..16]
    ));

    // A host that trusts only key b: refused, naming the image, the repository and the key;
    // no layer in place, nothing switched.
    let other = fresh_host();
    let other_out = other.path().join("out");
    let o = other_out.display().to_string();
    let r = reg(
        other.path(),
        &registry,
        &[
            "--out",
            &o,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &b_pub,
        ],
        &[],
    )
    .fails()
    .stderr_has(&format!("{repo}:worker1: image {id} is not trusted"))
    .stderr_has(&format!("signed by key {keyid_a}, not a trusted key"))
    .stderr_has(&format!(
        "(trusted keys: {keyid_b}); nothing was put in place"
    ))
    .stderr_has("hint: sign the image where it was built");
    assert!(nothing_installed(&other_out, "worker1"), "{}", r.stderr);

    // An unsigned image (worker2: its SBOM only), with keys from NODEFORGE_TRUSTED_KEYS.
    let bundle = ctx.path().join("keys/trusted.pem");
    std::fs::copy(&a_pub, &bundle).unwrap();
    let bundle = bundle.display().to_string();
    reg(
        other.path(),
        &registry,
        &["--out", &o, "pull", &format!("{repo}:worker2")],
        &[("NODEFORGE_TRUSTED_KEYS", &bundle)],
    )
    .fails()
    .stderr_has(&format!("{repo}:worker2: image"))
    .stderr_has("it is not signed");
    assert!(nothing_installed(&other_out, "worker2"));
    reg(
        other.path(),
        &registry,
        &["--out", &o, "pull", &format!("{repo}:worker2")],
        &[],
    )
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
    let third = fresh_host();
    let third_out = third.path().join("out");
    let t = third_out.display().to_string();
    reg(
        third.path(),
        &registry,
        &[
            "--out",
            &t,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &a_pub,
        ],
        &[],
    )
    .fails()
    .stderr_has(&format!(
        "sent blob {digest} of repository kubenet with other bytes"
    ));
    assert!(nothing_installed(&third_out, "worker1"));
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
    let first = reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1", "--json"],
        &[],
    )
    .ok()
    .json();
    let host_tmp = fresh_host();
    let host = host_tmp.path().to_path_buf();
    let out = host.join("out");
    let outs = out.display().to_string();
    reg(
        &host,
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &a_pub,
        ],
        &[],
    )
    .ok();
    // Rotation: b signs too; the new attestation manifest carries both, and is added to the
    // referrers tag beside the first.
    ctx.run(&["sign", "worker1", "--key", &b]).ok();
    let second = reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1", "--json"],
        &[],
    )
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
    let fresh = fresh_host();
    let fresh_out = fresh.path().join("out");
    let f = fresh_out.display().to_string();
    let p = reg(
        fresh.path(),
        &registry,
        &[
            "--out",
            &f,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &b_pub,
            "--json",
        ],
        &[],
    )
    .ok()
    .json();
    assert_eq!(p["attestations"]["signed_by"], serde_json::json!([keyid_b]));
    assert_eq!(
        p["attestations"]["signature_keys"],
        serde_json::json!(sorted(vec![keyid_a.clone(), keyid_b.clone()]))
    );
    assert_eq!(
        attestation_bytes(&fresh_out, &id),
        attestation_bytes(&built_out, &id)
    );
    // The host that pulled before: the same image (nothing switched), b's files added.
    let again = reg(
        &host,
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &b_pub,
            "--json",
        ],
        &[],
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
        attestation_bytes(&out, &id),
        attestation_bytes(&built_out, &id)
    );

    // A second generation, signed by b only: the host rolls back to the first with key a or b,
    // and refuses with a key that signed neither.
    crate::set_verbosity(&ctx, 5);
    ctx.net(&["build", "--node", "worker1", "--sign", &b]).ok();
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[],
    )
    .ok();
    reg(
        &host,
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &format!("{repo}:worker1"),
            "--key",
            &b_pub,
        ],
        &[],
    )
    .ok();
    let (_c, c_pub, _) = signing_key(&ctx, "c.key");
    reg(
        &host,
        &registry,
        &["--out", &outs, "rollback", "worker1", "--key", &c_pub],
        &[],
    )
    .fails()
    .stderr_has("is not trusted");
    assert_ne!(
        crate::current_id_in(&out, "worker1"),
        id,
        "nothing switched"
    );
    reg(
        &host,
        &registry,
        &["--out", &outs, "rollback", "worker1", "--key", &a_pub],
        &[],
    )
    .ok();
    assert_eq!(crate::current_id_in(&out, "worker1"), id);
    reg(
        &host,
        &registry,
        &["--out", &outs, "verify", "--key", &b_pub],
        &[],
    )
    .ok();
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

    let host = fresh_host();
    let out = host.path().join("out");
    let outs = out.display().to_string();
    let i = run_env(
        host.path(),
        &[
            "--out", &outs, "import", &l, "--tag", "worker1", "--key", &a_pub, "--json",
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
        attestation_bytes(&out, &id),
        attestation_bytes(&built_out, &id)
    );
    run_env(
        host.path(),
        &["--out", &outs, "verify", "--key", &a_pub],
        &[],
        None,
    )
    .ok();
    // worker2 is not signed: refused, nothing of it put in place.
    let r = run_env(
        host.path(),
        &[
            "--out", &outs, "import", &l, "--tag", "worker2", "--key", &a_pub,
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

/// Run nodeforge in `cwd` with `HOME` (and so `~/.docker/config.json`) in `home` and nothing of
/// the caller's credentials.
fn run_home(cwd: &Path, home: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    std::fs::create_dir_all(home).unwrap();
    let home = home.display().to_string();
    let mut env: Vec<(&str, &str)> = vec![("HOME", &home), ("XDG_RUNTIME_DIR", &home)];
    env.extend_from_slice(envs);
    run_env(cwd, args, &env, None)
}

/// A second builder: the same manifest and lockfile as `ctx`, an empty store.
fn second_builder(ctx: &TestContext) -> TestContext {
    let b = TestContext::new();
    std::fs::create_dir_all(b.lockfile().parent().unwrap()).unwrap();
    std::fs::copy(ctx.lockfile(), b.lockfile()).unwrap();
    b
}

/// An OCI mirror behind htpasswd auth is read with the credentials push and pull use: without
/// any, fetch fails naming the registry, repository, artifact and digest and says to log in; a
/// repository `mirror push` did not fill says so and gives the command that fills it; with the
/// login in docker's config.json (and `--insecure-registry` as push and pull take it), every
/// artifact comes from the mirror and the build matches the first builder's.
#[test]
fn a_protected_oci_mirror_is_read_with_the_registry_login() {
    use base64::Engine as _;
    let Some(registry) = LocalRegistry::start_with(Some(("fleet", "s3cret"))) else {
        return;
    };
    let host = registry.host();
    let ctx = built();
    let login = [
        ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
        ("NODEFORGE_REGISTRY_PASSWORD", "s3cret"),
    ];
    let home = ctx.path().join("home");
    let target = format!("oci://{host}/artifacts");
    run_home(
        ctx.path(),
        &home,
        &["mirror", "push", &target, "--insecure-registry", &host],
        &[],
    )
    .fails()
    .stderr_has("it requires a login");
    run_home(
        ctx.path(),
        &home,
        &["mirror", "push", &target, "--insecure-registry", &host],
        &login,
    )
    .ok();

    let b = second_builder(&ctx);
    let bhome = b.path().join("home");
    let fetch = |mirror: &str, envs: &[(&str, &str)]| {
        run_home(
            b.path(),
            &bhome,
            &[
                "fetch",
                "--mirrors-only",
                "--mirror",
                mirror,
                "--insecure-registry",
                &host,
                "--retries",
                "0",
            ],
            envs,
        )
    };
    // No credentials: refused, said with the registry, repository, artifact and digest.
    let r = fetch(&target, &[])
        .fails()
        .stderr_has(&format!(
            "registry {host} refused reading the mirrored artifact sha256:"
        ))
        .stderr_has("in repository artifacts: it requires a login (no credentials were sent)")
        .stderr_has(&format!("hint: log in with `docker login {host}`"));
    let lock = std::fs::read_to_string(b.lockfile()).unwrap();
    let some_sha = lock
        .lines()
        .find_map(|l| l.trim().strip_prefix("sha256 = \""))
        .map(|l| l.trim_end_matches('"').to_string())
        .unwrap();
    assert!(
        r.stderr
            .contains(&format!("sha256:{some_sha} in repository artifacts")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("kubelet "),
        "names the artifact: {}",
        r.stderr
    );
    // The wrong repository: the mirror lacks the artifacts; the hint fills it.
    fetch(&format!("oci://{host}/nosuch"), &login)
        .fails()
        .stderr_has(&format!(
            "registry {host} has no blob sha256:{some_sha} in repository nosuch"
        ))
        .stderr_has(&format!(
            "hint: the mirror lacks this artifact: fill it with `nodeforge mirror push oci://{host}/nosuch --insecure-registry {host}`"
        ));
    // With another mirror after it: the artifacts come from that one, and each says that the
    // registry's copy was bypassed, and why.
    let fixture = b.server.url();
    let r = run_home(
        b.path(),
        &bhome,
        &[
            "fetch",
            "--mirrors-only",
            "--mirror",
            &target,
            "--mirror",
            &fixture,
            "--insecure-registry",
            &host,
            "--out",
            "out-fallback",
        ],
        &[],
    )
    .ok();
    assert!(
        r.stderr.contains(&format!(
            "could not give it (registry {host} refused reading the mirrored artifact sha256:{some_sha}"
        )) && r.stderr.contains(&format!("fetched from {fixture}/")),
        "{}",
        r.stderr
    );
    // Wrong credentials in the environment: said as such.
    fetch(
        &target,
        &[
            ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
            ("NODEFORGE_REGISTRY_PASSWORD", "wrong"),
        ],
    )
    .fails()
    .stderr_has("the user name or password is wrong")
    .stderr_has("credentials from $NODEFORGE_REGISTRY_USERNAME");
    // docker's config.json, as `docker login` writes it: every artifact from the mirror.
    std::fs::create_dir_all(bhome.join(".docker")).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("fleet:s3cret");
    std::fs::write(
        bhome.join(".docker/config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let r = run_home(
        b.path(),
        &bhome,
        &[
            "fetch",
            "--mirrors-only",
            "--mirror",
            &target,
            "--insecure-registry",
            &host,
            "--json",
        ],
        &[],
    )
    .ok()
    .json();
    let prefix = format!("http://{host}/v2/artifacts/blobs/sha256:");
    let arts = r["artifacts"].as_array().unwrap();
    assert!(!arts.is_empty());
    for a in arts {
        assert_eq!(a["status"], "fetched", "{a}");
        assert!(a["source"].as_str().unwrap().starts_with(&prefix), "{a}");
    }
    run_home(b.path(), &bhome, &["build", "--offline"], &[]).ok();
    assert_eq!(
        crate::current_id_in(&b.path().join("out"), "worker1"),
        crate::current_id_in(&ctx.path().join("out"), "worker1")
    );
}

/// Write an executable `docker-credential-<name>` into `dir`: the docker-credential-helpers
/// protocol's `get`, reading the server's address on stdin (logged to `dir/asked`), answering
/// `{"Username", "Secret"}` for `server`, "credentials not found" for any other.
fn credential_helper(dir: &Path, name: &str, server: &str, username: &str, secret: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("docker-credential-{name}"));
    let script = format!(
        r#"#!/bin/sh
[ "$1" = get ] || {{ echo "unsupported: $1" >&2; exit 1; }}
server=$(cat)
echo "{name} $server" >> "{log}"
if [ "$server" = "{server}" ]; then
  printf '{{"ServerURL":"%s","Username":"{username}","Secret":"{secret}"}}\n' "$server"
else
  echo "credentials not found in native keychain"
  exit 1
fi
"#,
        log = dir.join("asked").display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// docker's credential helpers, run as docker's CLI runs them: `credsStore` is asked before the
/// `auths` entries (which hold a wrong password here), `credHelpers` for the registry before
/// `credsStore`; a helper that is missing or fails stops the pull with its name, the registry
/// and what to do, never an anonymous attempt.
#[test]
fn docker_credential_helpers() {
    use base64::Engine as _;
    let Some(registry) = LocalRegistry::start_with(Some(("fleet", "s3cret"))) else {
        return;
    };
    let host = registry.host();
    let ctx = built();
    let repo = registry.repo("kubenet");
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[
            ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
            ("NODEFORGE_REGISTRY_PASSWORD", "s3cret"),
        ],
    )
    .ok();

    let host_tmp = fresh_host();
    let h = host_tmp.path().to_path_buf();
    let bin = h.join("bin");
    let docker = h.join("docker");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&docker).unwrap();
    credential_helper(&bin, "nftest", &host, "fleet", "s3cret");
    let mut fail = std::fs::File::create(bin.join("docker-credential-nffail")).unwrap();
    std::io::Write::write_all(
        &mut fail,
        b"#!/bin/sh\necho 'the keychain is locked' >&2\nexit 3\n",
    )
    .unwrap();
    drop(fail);
    std::fs::set_permissions(
        bin.join("docker-credential-nffail"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let docker_s = docker.display().to_string();
    let outs = h.join("out").display().to_string();
    let wrong = base64::engine::general_purpose::STANDARD.encode("fleet:wrong");
    let pull = |config: String| {
        std::fs::write(docker.join("config.json"), config).unwrap();
        reg(
            &h,
            &registry,
            &["--out", &outs, "pull", &format!("{repo}:worker1"), "--json"],
            &[("PATH", &path), ("DOCKER_CONFIG", &docker_s)],
        )
    };
    // credsStore before auths.
    let r = pull(format!(
        r#"{{"auths": {{"{host}": {{"auth": "{wrong}"}}}}, "credsStore": "nftest"}}"#
    ))
    .ok()
    .json();
    assert_eq!(
        r["image_id"],
        crate::current_id_in(&ctx.path().join("out"), "worker1").as_str()
    );
    let asked = std::fs::read_to_string(bin.join("asked")).unwrap();
    assert!(
        asked.lines().all(|l| l == format!("nftest {host}")),
        "{asked}"
    );
    // credHelpers for this registry before credsStore: a missing helper is an error naming it.
    pull(format!(
        r#"{{"credsStore": "nftest", "credHelpers": {{"{host}": "nfmissing"}}}}"#
    ))
    .fails()
    .stderr_has(&format!(
        "credential helper docker-credential-nfmissing (named by `credHelpers.{host}` in {docker_s}/config.json) for registry {host} is not installed (not found in $PATH)"
    ))
    .stderr_has("hint: install docker-credential-nfmissing in $PATH");
    // A helper that fails: its words, its name.
    pull(r#"{"credsStore": "nffail"}"#.to_string())
        .fails()
        .stderr_has(&format!(
            "credential helper docker-credential-nffail (named by `credsStore` in {docker_s}/config.json) for registry {host} failed"
        ))
        .stderr_has("the keychain is locked");
    // A helper with nothing for this registry: anonymous, which the registry refuses.
    pull(
        r#"{"credHelpers": {"elsewhere.example": "nffail"}, "credsStore": "nftest2"}"#.to_string(),
    )
    .fails()
    .stderr_has("docker-credential-nftest2");
    credential_helper(&bin, "nftest2", "other.example", "x", "y");
    pull(r#"{"credsStore": "nftest2"}"#.to_string())
        .fails()
        .stderr_has("it requires a login (no credentials were sent)");
    // credHelpers for the registry wins over a broken credsStore.
    pull(format!(
        r#"{{"credsStore": "nffail", "credHelpers": {{"http://{host}/v1/": "nftest"}}}}"#
    ))
    .ok();
}

/// A pull whose connection drops in the middle of a blob retries by itself, resuming from the
/// bytes received (so the blob's bytes travel once), says so on stderr, and completes.
#[test]
fn a_pull_cut_midway_retries_and_completes() {
    let Some(registry) = LocalRegistry::start() else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    let push = reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1", "--json"],
        &[],
    )
    .ok()
    .json();
    let blobs = push["nodes"][0]["blobs"].as_array().unwrap().clone();
    let blob = |kind: serde_json::Value| blobs.iter().find(|b| b["kind"] == kind).unwrap().clone();
    let record = blob("record".into());
    let payload = blob(serde_json::json!({"erofs": "payload"}));
    let size = payload["size"].as_u64().unwrap();
    let digest = payload["digest"].as_str().unwrap().to_string();
    let budget = 4096 + 2048 + record["size"].as_u64().unwrap() + size / 2;
    let proxy = CuttingProxy::start_once(registry.port, budget);
    let via = format!("127.0.0.1:{}", proxy.port);
    let host_tmp = fresh_host();
    let host = host_tmp.path().to_path_buf();
    let out = host.join("out");
    let outs = out.display().to_string();
    let r = run_home(
        &host,
        &host.join("home"),
        &[
            "--out",
            &outs,
            "pull",
            &format!("{via}/kubenet:worker1"),
            "--insecure-registry",
            &via,
            "--json",
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
    let b = j["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["digest"] == digest.as_str())
        .unwrap();
    assert_eq!(b["status"], "downloaded", "{j}");
    assert_eq!(
        b["transferred"].as_u64().unwrap(),
        size,
        "the bytes before the cut are kept, not downloaded again"
    );
    assert_eq!(
        crate::current_id_in(&out, "worker1"),
        crate::current_id_in(&ctx.path().join("out"), "worker1")
    );
    assert!(!out
        .join("pulls")
        .join(format!("{}.partial", &digest[7..]))
        .exists());
}

/// `nodeforge login` with the password on stdin: wrong credentials are refused by the registry
/// and nothing is written; right ones go into `$REGISTRY_AUTH_FILE` (mode 0600, other entries
/// kept) where pull finds them; `logout` removes them again. A file that keeps logins in a
/// credential helper is not written.
#[test]
fn login_and_logout() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let Some(registry) = LocalRegistry::start_with(Some(("fleet", "s3cret"))) else {
        return;
    };
    let host = registry.host();
    let tmp = fresh_host();
    let h = tmp.path();
    let auth = h.join("containers/auth.json");
    let auth_s = auth.display().to_string();
    let login = |password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nodeforge"))
            .current_dir(h)
            .args(["login", &host, "--username", "fleet", "--password-stdin"])
            .args(["--insecure-registry", &host, "--json"])
            .env("HOME", h)
            .env("REGISTRY_AUTH_FILE", &auth)
            .env_remove("NODEFORGE_REGISTRY_USERNAME")
            .env_remove("NODEFORGE_REGISTRY_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let outs = h.join("out").display().to_string();
    let pull = || {
        reg(
            h,
            &registry,
            &["--out", &outs, "pull", &format!("{host}/kubenet:nosuch")],
            &[("REGISTRY_AUTH_FILE", &auth_s)],
        )
    };
    login("wrong").fails().stderr_has(&format!(
        "registry {host} refused the login: the user name or password is wrong"
    ));
    assert!(!auth.exists(), "nothing written for a refused login");
    pull().fails().stderr_has("it requires a login");

    std::fs::create_dir_all(auth.parent().unwrap()).unwrap();
    std::fs::write(&auth, r#"{"auths": {"other.example": {"auth": "eDp5"}}}"#).unwrap();
    let r = login("s3cret").ok().json();
    assert_eq!(r["kind"], "login-report");
    assert_eq!(r["verified"], true);
    assert_eq!(r["file"], auth_s.as_str());
    let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert_eq!(v["auths"][&host]["auth"], "ZmxlZXQ6czNjcmV0", "{v}");
    assert_eq!(v["auths"]["other.example"]["auth"], "eDp5", "kept: {v}");
    // Authenticated: the registry answers that the tag does not exist.
    pull()
        .fails()
        .stderr_has(&format!("registry {host} has no manifest `nosuch`"));

    let r = reg(
        h,
        &registry,
        &["logout", &host, "--json"],
        &[("REGISTRY_AUTH_FILE", &auth_s)],
    )
    .ok()
    .json();
    assert_eq!(r["removed"], true);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert!(v["auths"].get(&host).is_none(), "{v}");
    assert!(v["auths"].get("other.example").is_some(), "{v}");
    assert_eq!(
        std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777,
        0o600
    );
    pull().fails().stderr_has("it requires a login");
    let r = reg(
        h,
        &registry,
        &["logout", &host, "--json"],
        &[("REGISTRY_AUTH_FILE", &auth_s)],
    )
    .ok()
    .json();
    assert_eq!(r["removed"], false);

    // Logins kept by a credential helper: not written where they would never be read.
    std::fs::write(&auth, r#"{"credsStore": "desktop"}"#).unwrap();
    login("s3cret")
        .fails()
        .stderr_has("keeps the login for")
        .stderr_has("docker-credential-desktop");
    assert_eq!(
        std::fs::read_to_string(&auth).unwrap(),
        r#"{"credsStore": "desktop"}"#
    );
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
    let host_tmp = fresh_host();
    let host = host_tmp.path().to_path_buf();
    let out = host.join("out");
    let outs = out.display().to_string();
    let p = reg(
        &host,
        &registry,
        &[
            "--out",
            &outs,
            "pull",
            &registry.repo("kubenet:worker1"),
            "--json",
        ],
        &[],
    )
    .ok()
    .json();
    assert_eq!(
        p["image_id"].as_str().unwrap(),
        crate::current_id_in(&ctx.path().join("out"), "worker1")
    );
}

/// Logins to many registries at once each keep their entry in the auth file: it is read,
/// changed and written back under a lock, so no login writes the file without another's entry.
#[test]
fn concurrent_logins_keep_every_entry() {
    use std::io::{Read, Write};
    let host = fresh_host();
    let auth = host.path().join("auth.json");
    // Registries that ask for no login: `GET /v2/` answers 200.
    let addrs: Vec<String> = (0..12)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { return };
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf);
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            });
            addr
        })
        .collect();
    let children: Vec<_> = addrs
        .iter()
        .map(|a| {
            Command::new(env!("CARGO_BIN_EXE_nodeforge"))
                .args(["login", a, "--username", "fleet", "--insecure-registry", a])
                .current_dir(host.path())
                .env("HOME", host.path())
                .env("REGISTRY_AUTH_FILE", &auth)
                .env("NODEFORGE_REGISTRY_PASSWORD", "s3cret")
                .env_remove("NODEFORGE_REGISTRY_USERNAME")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    let mut kept: Vec<String> = file["auths"].as_object().unwrap().keys().cloned().collect();
    kept.sort();
    let mut want = addrs.clone();
    want.sort();
    assert_eq!(kept, want);
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

    let host = fresh_host();
    let outs = host.path().join("out").display().to_string();
    run_env(
        host.path(),
        &["--out", &outs, "import", &l, "--tag", "worker1"],
        &[],
        None,
    )
    .fails()
    .stderr_has("names lock id `blake3:\\u{1b}[2Jgotcha`, not blake3:<64 hex digits>");
    assert!(nothing_installed(&host.path().join("out"), "worker1"));
}
