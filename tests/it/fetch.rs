//! `nodeforge fetch` and `mirror export`: verified parallel downloads into the store, faults,
//! mirrors, offline operation.

use crate::server::{Fault, Server};
use crate::{sha256_hex, url_of, TestContext};

fn locked() -> TestContext {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx
}

#[test]
fn fetch_stores_every_artifact_by_blake3_and_a_second_fetch_is_a_no_op() {
    let ctx = locked();
    let v = ctx.net(&["fetch", "--json"]).ok().json();
    let arts = v["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 6);
    assert!(arts.iter().all(|a| a["status"] == "fetched"), "{v}");
    let objects = ctx.store_objects();
    assert_eq!(objects.len(), 6);
    for (path, name) in &objects {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().to_string(),
            *name,
            "object hashes to its address"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }
    assert!(ctx.store_tmp_is_empty());
    ctx.server.clear_log();
    let r = ctx
        .net(&["fetch"])
        .ok()
        .stdout_has("fetched 0 artifacts (0 B), 6 already in the store, 0 failed");
    assert!(
        ctx.server.requests().is_empty(),
        "second fetch asked the server: {:?}\n{}",
        ctx.server.requests(),
        r.stdout
    );
}

#[test]
fn a_tampered_artifact_is_refused_and_the_others_still_land() {
    let ctx = locked();
    let url = url_of(&ctx, "containerd");
    let real = std::fs::read(ctx.served(&url)).unwrap();
    let mut evil = real.clone();
    evil[100] ^= 1;
    ctx.server
        .fault(&ctx.served_path(&url), Fault::Body(evil.clone()));
    let r = ctx.net(&["fetch"]).fails();
    r.stderr_has(&format!(
        "containerd 1.7.20 (amd64): {}{}: sha256 mismatch: expected {}, got {}",
        ctx.server.url(),
        ctx.served_path(&url),
        sha256_hex(&real),
        sha256_hex(&evil)
    ));
    let objects = ctx.store_objects();
    assert_eq!(objects.len(), 5, "the other downloads finished");
    let evil_b3 = blake3::hash(&evil).to_hex().to_string();
    assert!(
        objects.iter().all(|(_, n)| *n != evil_b3),
        "nothing of the tampered file is stored"
    );
    assert!(ctx.store_tmp_is_empty());
}

#[test]
fn an_html_page_with_status_200_is_a_mismatch_not_an_artifact() {
    let ctx = locked();
    let url = url_of(&ctx, "kubelet");
    ctx.server.fault(
        &ctx.served_path(&url),
        Fault::Body(b"<html>Sign in to continue</html>".to_vec()),
    );
    ctx.net(&["fetch"])
        .fails()
        .stderr_has("size mismatch: expected 8192 bytes, the source sent 32");
}

#[test]
fn a_truncated_download_is_retried_with_range_and_otherwise_refused() {
    let ctx = locked();
    let url = url_of(&ctx, "kubelet");
    let path = ctx.served_path(&url);
    // Always truncated: refused after the retries, nothing stored.
    ctx.server.fault(&path, Fault::Truncate(1000));
    ctx.net(&["fetch"])
        .fails()
        .stderr_has("kubelet 1.31.0 (amd64)")
        .stderr_has("the body ended after 1000 of 8192 bytes");
    assert_eq!(ctx.store_objects().len(), 5);
    assert!(ctx.store_tmp_is_empty());
    // Truncated once: the retry resumes at byte 1000 and the result is verified whole.
    ctx.server.fault(&path, Fault::TruncateOnce(1000));
    ctx.server.clear_log();
    ctx.net(&["fetch"]).ok().stdout_has("fetched 1 artifact (");
    let ranges: Vec<Option<String>> = ctx
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges, vec![None, Some("bytes=1000-".to_string())]);
    assert_eq!(ctx.store_objects().len(), 6);
}

#[test]
fn a_404_names_the_artifact_and_url() {
    let ctx = locked();
    let url = url_of(&ctx, "crictl");
    std::fs::remove_file(ctx.served(&url)).unwrap();
    ctx.net(&["fetch"]).fails().stderr_has(&format!(
        "error: crictl 1.31.1 (amd64): {}{}: not found (HTTP 404)",
        ctx.server.url(),
        ctx.served_path(&url)
    ));
}

#[test]
fn a_5xx_is_retried_and_redirects_are_followed() {
    let ctx = locked();
    let url = url_of(&ctx, "runc");
    let path = ctx.served_path(&url);
    ctx.server.fault(&path, Fault::Status(503));
    ctx.server.clear_log();
    ctx.net(&["fetch"]).fails().stderr_has("HTTP status 503");
    let tries = ctx
        .server
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .count();
    assert_eq!(tries, 2, "one retry with --retries 1");
    // GitHub-style redirect to another host path.
    let real = std::fs::read(ctx.served(&url)).unwrap();
    std::fs::create_dir_all(ctx.server.root().join("objects.example")).unwrap();
    std::fs::write(ctx.server.root().join("objects.example/runc-blob"), real).unwrap();
    ctx.server.fault(
        &path,
        Fault::Redirect(format!("{}/objects.example/runc-blob", ctx.server.url())),
    );
    ctx.net(&["fetch"]).ok().stdout_has("fetched 1 artifact (");
}

#[test]
fn mirrors_are_tried_in_order_before_upstream() {
    let ctx = locked();
    // An empty mirror first: every file falls back to the second one.
    let empty = tempfile::tempdir().unwrap();
    let first = Server::start(empty.path().to_path_buf());
    let (a, b) = (first.url(), ctx.server.url());
    let r = ctx
        .run(&[
            "fetch",
            "--mirrors-only",
            "--retries",
            "0",
            "--mirror",
            &a,
            "--mirror",
            &b,
            "--json",
        ])
        .ok();
    let v = r.json();
    for art in v["artifacts"].as_array().unwrap() {
        assert!(art["source"].as_str().unwrap().starts_with(&b), "{art}");
    }
    assert_eq!(
        first.requests().len(),
        6,
        "the first mirror was asked for each artifact"
    );
}

#[test]
fn a_mirror_miss_falls_back_to_the_upstream_url() {
    // "Upstream" is a loopback server here: the manifest overrides kubelet's URL template.
    let upstream_dir = tempfile::tempdir().unwrap();
    let upstream = Server::start(upstream_dir.path().to_path_buf());
    let base = std::fs::read_to_string(format!("{}/manifests/kubenet.toml", crate::REPO)).unwrap();
    let manifest = format!(
        "{base}\n[components.kubelet]\nurl = \"{}/release/v{{{{ version }}}}/{{{{ arch }}}}/kubelet\"\n",
        upstream.url()
    );
    let ctx = TestContext::with_manifest(&manifest);
    // Upstream holds kubelet and its checksum; the mirror (ctx.server) does not hold kubelet.
    let url = url_of(&ctx, "kubelet");
    let served = ctx.served(&url);
    let rel = url
        .trim_start_matches(&upstream.url())
        .trim_start_matches('/')
        .to_string();
    std::fs::create_dir_all(upstream_dir.path().join(&rel).parent().unwrap()).unwrap();
    std::fs::rename(&served, upstream_dir.path().join(&rel)).unwrap();
    std::fs::rename(
        format!("{}.sha256", served.display()),
        upstream_dir.path().join(format!("{rel}.sha256")),
    )
    .unwrap();
    let mirror = ctx.server.url();
    // Other components' upstream is the internet: don't let them reach it. Lock and fetch with
    // the mirror first; only kubelet's upstream is local.
    ctx.run(&[
        "lock",
        "--trust-mirror-checksums",
        "--mirror",
        &mirror,
        "--retries",
        "0",
    ])
    .ok();
    let v = ctx
        .run(&["fetch", "--mirror", &mirror, "--retries", "0", "--json"])
        .ok()
        .json();
    let kubelet = v["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["component"] == "kubelet")
        .unwrap()
        .clone();
    assert_eq!(kubelet["source"].as_str().unwrap(), url);
    assert!(
        ctx.server
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/kubelet")),
        "the mirror was tried first"
    );
}

#[test]
fn offline_fetch_says_what_is_missing_and_works_from_a_full_store() {
    let ctx = locked();
    ctx.server.clear_log();
    let r = ctx.run(&["fetch", "--offline"]).fails();
    for c in [
        "cni-plugins",
        "containerd",
        "crictl",
        "kube-proxy",
        "kubelet",
        "runc",
    ] {
        assert!(
            r.stderr.contains(&format!("error: {c} ")),
            "{c} not named:\n{}",
            r.stderr
        );
    }
    let r = r.stderr_has("not in the store, and offline nothing can provide https://dl.k8s.io/release/v1.31.0/bin/linux/amd64/kubelet");
    assert!(r.stderr.contains("hint: offline"));
    assert!(ctx.server.requests().is_empty());
    ctx.net(&["fetch"]).ok();
    ctx.server.clear_log();
    ctx.run(&["fetch", "--offline"])
        .ok()
        .stdout_has("6 already in the store");
    ctx.net(&["fetch", "--offline"]).ok();
    assert!(
        ctx.server.requests().is_empty(),
        "offline never touches the network, even an http mirror"
    );
}

#[test]
fn mirror_export_feeds_an_air_gapped_site() {
    let ctx = locked();
    ctx.net(&["fetch"]).ok();
    let usb = ctx.path().join("usb");
    let usb_s = usb.to_str().unwrap();
    let r = ctx.run(&["mirror", "export", usb_s]).ok();
    assert!(r.stdout.starts_with("exported 13 files ("), "{}", r.stdout);
    r.stdout_has(&format!(
        " to {usb_s}, the lockfile included as {usb_s}/kubenet.lock\nuse it with: nodeforge fetch --offline --mirror file://{usb_s} --lockfile {usb_s}/kubenet.lock\n"
    ));
    assert_eq!(
        std::fs::read_to_string(usb.join("kubenet.lock")).unwrap(),
        ctx.lock_text()
    );
    // The air-gapped site: a fresh project with the same manifest, no network at all.
    let site = TestContext::new();
    let mirror = format!("file://{usb_s}");
    site.run(&[
        "lock",
        "--offline",
        "--trust-mirror-checksums",
        "--mirror",
        &mirror,
    ])
    .ok();
    assert_eq!(
        site.lock_text(),
        ctx.lock_text(),
        "the same lock, from the stick"
    );
    let shipped = format!("{usb_s}/kubenet.lock");
    site.run(&["lock", "--check", "--lockfile", &shipped]).ok();
    site.run(&["fetch", "--offline", "--mirror", &mirror])
        .ok()
        .stdout_has("fetched 6 artifacts (");
    assert_eq!(
        site.store_objects()
            .iter()
            .map(|(_, n)| n.clone())
            .collect::<Vec<_>>(),
        ctx.store_objects()
            .iter()
            .map(|(_, n)| n.clone())
            .collect::<Vec<_>>()
    );
    assert!(site.server.requests().is_empty());
}

#[test]
fn export_refuses_when_the_store_lacks_artifacts() {
    let ctx = locked();
    let usb = ctx.path().join("usb");
    ctx.run(&["mirror", "export", usb.to_str().unwrap()])
        .fails()
        .stderr_has("error: cni-plugins 1.5.1 (amd64) is not in the store\nhint: run `nodeforge fetch` first\nerror: containerd 1.7.20 (amd64) is not in the store\nerror: crictl");
}

/// Unreachable sources are one line (one cause, one hint: the network, a mirror, or `make demo`
/// offline), first; an unresolved entry, moot until the network is there, after it.
#[test]
fn an_unreachable_source_is_one_error_line_first_with_its_hint() {
    let ctx = TestContext::new();
    std::fs::remove_file(ctx.served(&crate::checksum_url_of(&ctx, "kube-proxy"))).unwrap();
    ctx.net(&["lock", "--allow-unresolved"]).ok();
    // A port nobody listens on: connection refused, as with a host whose name does not resolve.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    // The default retries: a refused connection (or a name that does not resolve) is not
    // retried, and still one line.
    for cmd in ["build", "fetch"] {
        let r = ctx.run(&[cmd, "--mirrors-only", "--mirror", &dead]).fails();
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            4,
            "{cmd}: one line per cause, each hint once:\n{}",
            r.stderr
        );
        assert!(
            lines[0].starts_with(
                "error: upstream cannot be reached from here for 5 artifacts: cni-plugins 1.5.1 (amd64), containerd 1.7.20 (amd64), crictl 1.31.1 (amd64), kubelet 1.31.0 (amd64), runc 1.1.13 (amd64) (the first: cni-plugins 1.5.1 (amd64): "
            ),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains(&format!("{dead}/")), "{}", lines[0]);
        assert!(lines[0].contains(": cannot connect"), "{}", lines[0]);
        assert_eq!(lines[1], "hint: upstream cannot be reached from here (DNS or connection failure): pass --mirror URL for a mirror you can reach, or --offline --mirror file://DIR for a copy on disk (`nodeforge mirror export` makes one); `make demo` runs the whole pipeline offline against stand-in artifacts");
        assert_eq!(
            lines[2],
            "error: kube-proxy 1.31.0 (amd64) has no published sha256 in the lockfile"
        );
        assert_eq!(lines[3], "hint: run `nodeforge lock --update kube-proxy` where upstream is reachable, then commit the lockfile");
    }
}

#[test]
fn a_mirror_serving_other_bytes_is_named_even_when_another_source_succeeds() {
    let ctx = locked();
    let url = url_of(&ctx, "containerd");
    let real = std::fs::read(ctx.served(&url)).unwrap();
    let mut evil = real.clone();
    evil[10] ^= 1;
    // A second server over the same files, serving a tampered containerd.
    let bad = Server::start(ctx.server.root().clone());
    bad.fault(&ctx.served_path(&url), Fault::Body(evil.clone()));
    let (b, good) = (bad.url(), ctx.server.url());
    for cmd in ["fetch", "build"] {
        let r = ctx
            .run(&[
                cmd,
                "--mirrors-only",
                "--retries",
                "0",
                "--mirror",
                &b,
                "--mirror",
                &good,
            ])
            .ok();
        let path = ctx.served_path(&url);
        let expected = format!(
            "warning: containerd 1.7.20 (amd64): mirror {b} served other bytes than the lockfile pins ({b}{path}: sha256 mismatch: expected {}, got {} ({} bytes)); fetched from {good}{path} instead\n",
            sha256_hex(&real),
            sha256_hex(&evil),
            evil.len()
        );
        if cmd == "fetch" {
            assert_eq!(r.stderr, expected);
            // Stored: the right bytes.
            let b3 = blake3::hash(&real).to_hex().to_string();
            assert!(ctx.store_objects().iter().any(|(_, n)| *n == b3));
            std::fs::remove_dir_all(ctx.store()).unwrap();
        } else {
            r.stderr_has(&expected);
        }
    }
}

#[test]
fn offline_notes_skipped_http_mirrors_and_a_bare_path_suggests_file_url() {
    let ctx = locked();
    let url = ctx.server.url();
    ctx.server.clear_log();
    let r = ctx.run(&["fetch", "--offline", "--mirror", &url]).fails();
    assert!(
        r.stderr.starts_with(&format!(
            "note: --offline: mirror {url} is skipped (offline, only file:// mirrors are read)\n"
        )),
        "{}",
        r.stderr
    );
    assert!(
        ctx.server.requests().is_empty(),
        "the http mirror was skipped"
    );
    let usb = ctx.path().join("usb");
    let usb = usb.to_str().unwrap();
    let r = ctx.run(&["fetch", "--offline", "--mirror", usb]).fails();
    assert_eq!(
        r.stderr,
        format!("error: mirror `{usb}` is not an http(s):// URL or a file:// directory: for a directory, write `file://{usb}`\n")
    );
}

/// A tmpfs of `size` mounted at `dir` for a test, unmounted when dropped.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<SmallFs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallFs(dir.to_path_buf()))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_device_is_named_as_such() {
    let ctx = locked();
    let Some(_fs) = SmallFs::mount(&ctx.path().join("small"), "16k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let r = ctx
        .net(&["fetch", "--out", "small/out", "--jobs", "1"])
        .fails();
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert!(!errors.is_empty(), "{}", r.stderr);
    for e in &errors {
        assert!(
            e.contains("no space left on the device holding small/out/store")
                && e.contains("(ENOSPC)"),
            "{e}"
        );
    }
    let r = r.stderr_has(": no space left on the device holding small/out/store (ENOSPC) while downloading it\nhint: free space on that device, or pass --out DIR on a file system with room (the store holds every artifact once)\n");
    assert!(
        !r.stderr.contains("--mirror"),
        "no misleading hint: {}",
        r.stderr
    );
}

#[test]
fn a_link_across_file_systems_is_named_as_such() {
    let ctx = locked();
    ctx.net(&["fetch"]).ok();
    // Images hard-link their layers' files: out/images on another file system cannot.
    let Some(_fs) = SmallFs::mount(&ctx.path().join("out/images"), "64m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let r = ctx
        .run(&["build", "--offline", "--node", "worker1"])
        .fails();
    assert!(r.stderr.starts_with("error: cannot link "), "{}", r.stderr);
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "no misleading hint: {}",
        r.stderr
    );
    r.stderr_has("is on another file system than its source (EXDEV): a hard link or rename cannot cross file systems; keep the output directory on one file system");
}

/// The partial download of an artifact in the store's tmp/ (kept across runs).
fn partial_of(ctx: &TestContext, url: &str) -> std::path::PathBuf {
    let sha = sha256_hex(&std::fs::read(ctx.served(url)).unwrap());
    ctx.store().join("tmp").join(format!("partial-{sha}"))
}

/// Kill a fetch once the server sent 3000 bytes of kubelet (then hangs): its partial file
/// holds them. Kubelet's path on the server and its bytes.
fn kill_a_fetch_midway(ctx: &TestContext) -> (String, Vec<u8>) {
    let url = url_of(ctx, "kubelet");
    let path = ctx.served_path(&url);
    let real = std::fs::read(ctx.served(&url)).unwrap();
    // The server sends 3000 bytes, then hangs: the fetch is killed midway.
    ctx.server.fault(&path, crate::server::Fault::Hang(3000));
    let mirror = ctx.server.url();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nodeforge"))
        .args([
            "fetch",
            "--mirrors-only",
            "--mirror",
            &mirror,
            "--retries",
            "1",
        ])
        .current_dir(ctx.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = partial_of(ctx, &url);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) < 3000 {
        assert!(std::time::Instant::now() < deadline, "no partial download");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(std::fs::read(&partial).unwrap(), real[..3000]);

    (path, real)
}

#[test]
fn a_killed_fetch_is_resumed_from_its_partial_file_by_the_next_run() {
    let ctx = locked();
    let (path, real) = kill_a_fetch_midway(&ctx);
    // The next run (which cleans the store's temp files first) asks only for the rest, with
    // the validator the server gave.
    ctx.server.clear_faults();
    ctx.server.clear_log();
    let v = ctx.net(&["fetch", "--json"]).ok().json();
    let kubelet = v["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["component"] == "kubelet")
        .unwrap();
    assert_eq!(kubelet["status"], "fetched", "{v}");
    assert_eq!(kubelet["resumed_from"], 3000, "{v}");
    let asked: Vec<(Option<String>, Option<String>)> = ctx
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| (r.range, r.if_range))
        .collect();
    assert_eq!(
        asked,
        vec![(
            Some("bytes=3000-".to_string()),
            Some(crate::server::etag_of(&real))
        )]
    );
    let b3 = blake3::hash(&real).to_hex().to_string();
    let (obj, _) = ctx
        .store_objects()
        .into_iter()
        .find(|(_, n)| *n == b3)
        .expect("kubelet stored");
    assert_eq!(std::fs::read(obj).unwrap(), real);
    assert_eq!(ctx.store_objects().len(), 6);
    assert!(ctx.store_tmp_is_empty());
}

/// A fetch that resumed an earlier run's partial download says so, with the bytes it had.
#[test]
fn a_resumed_fetch_says_it_resumed_and_from_how_many_bytes() {
    let ctx = locked();
    kill_a_fetch_midway(&ctx);
    ctx.server.clear_faults();
    let r = ctx.net(&["fetch"]).ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("fetched kubelet"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        line.ends_with(", resumed: 3000 bytes were left by an earlier run"),
        "{line}"
    );
    // Counted as fetched, like any download (how many others the killed run finished
    // depends on timing).
    let summary = r.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("fetched ") && summary.contains(", 0 failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_wrong_partial_file_is_discarded_and_the_error_says_so() {
    let ctx = locked();
    let url = url_of(&ctx, "kubelet");
    let path = ctx.served_path(&url);
    ctx.net(&["fetch", "--jobs", "1"]).ok();
    // Leftovers of earlier runs: a partial of kubelet that holds other bytes, and one of an
    // artifact no lockfile pins.
    let kubelet = std::fs::read(ctx.served(&url)).unwrap();
    let o = ctx
        .store_objects()
        .into_iter()
        .find(|(_, n)| *n == blake3::hash(&kubelet).to_hex().to_string())
        .unwrap();
    let mut perms = std::fs::metadata(&o.0).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&o.0, perms).unwrap();
    std::fs::remove_file(&o.0).unwrap();
    let partial = partial_of(&ctx, &url);
    std::fs::write(&partial, vec![b'x'; 1000]).unwrap();
    let orphan = ctx
        .store()
        .join("tmp")
        .join(format!("partial-{}", "ab".repeat(32)));
    std::fs::write(&orphan, b"half").unwrap();
    ctx.server.clear_log();
    ctx.net(&["fetch"]).fails().stderr_has(
        "sha256 mismatch",
    ).stderr_has("(the download resumed 1000 bytes left by an earlier run; they are discarded, the next run starts from byte 0)");
    assert_eq!(
        ctx.server
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.range.clone())
            .collect::<Vec<_>>(),
        vec![Some("bytes=1000-".to_string())]
    );
    assert!(!partial.exists(), "the wrong partial is discarded");
    assert!(orphan.exists(), "fetch leaves other partials alone");
    ctx.net(&["fetch"]).ok().stdout_has("fetched 1 artifact (");
    // gc removes the partial download of an artifact no lockfile pins.
    ctx.run(&["gc"]).ok();
    assert!(!orphan.exists());
}
