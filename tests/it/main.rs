//! Integration tests: the real `nodeforge` binary against fixture artifacts served from 127.0.0.1.
//! No test reaches the internet: every run passes `--mirrors-only` or `--offline`, or uses a
//! manifest whose URLs point at the loopback server.
// Tests plant files the way an attacker or a crash would: renames included.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::new_without_default,
    clippy::disallowed_methods
)]

mod architecture;
mod boot_script;
mod build;
mod cli;
mod cluster;
mod corpus;
mod crash;
mod erofs;
mod fetch;
mod freshness;
mod gc;
mod hardening;
mod history;
mod integrity;
mod json;
mod lock;
mod manifest_errors;
mod oci;
mod operator;
mod readme;
mod rollout;
mod secrets;
mod server;
mod sysext_vm;
mod systemd_vm;
mod terminal;
mod trust;
mod vm;
mod vmkit;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use server::Server;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// One isolated project: a temp dir with `manifests/`, `lockfiles/` and `out/`, and a fixture
/// server serving stand-in artifacts in upstream's layout.
pub struct TestContext {
    pub dir: tempfile::TempDir,
    pub server: Server,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self) -> Self {
        assert_eq!(
            self.code, 1,
            "expected exit 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

pub fn run_in(cwd: &Path, args: &[&str]) -> Run {
    run_env(cwd, args, &[], None)
}

/// Run with extra environment variables and, optionally, a umask (through `sh -c`).
pub fn run_env(cwd: &Path, args: &[&str], envs: &[(&str, &str)], umask: Option<&str>) -> Run {
    let bin = env!("CARGO_BIN_EXE_nodeforge");
    let mut cmd = match umask {
        Some(mask) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("umask {mask}; exec \"$0\" \"$@\""))
                .arg(bin)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
    };
    // The caller's NODEFORGE_* never leak in; the test's own are set after.
    let out: Output = cmd
        .current_dir(cwd)
        .env_remove("NODEFORGE_MIRROR")
        .env_remove("NODEFORGE_MANIFEST")
        .env_remove("NODEFORGE_LOCKFILE")
        .env_remove("NODEFORGE_OUT")
        .env_remove("NODEFORGE_OFFLINE")
        .env_remove("NODEFORGE_TRUSTED_KEYS")
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(envs.iter().copied())
        .output()
        .expect("run nodeforge");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl TestContext {
    /// A project holding a copy of the default manifest, and a server with its stand-ins.
    pub fn new() -> Self {
        let text = std::fs::read_to_string(Path::new(REPO).join("manifests/kubenet.toml")).unwrap();
        Self::with_manifest(&text)
    }

    pub fn with_manifest(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
        std::fs::write(dir.path().join("manifests/kubenet.toml"), text).unwrap();
        copy_tree(
            &Path::new(REPO).join("manifests/kubenet"),
            &dir.path().join("manifests/kubenet"),
        );
        let mirror = dir.path().join("served");
        std::fs::create_dir_all(&mirror).unwrap();
        let server = Server::start(mirror);
        let ctx = Self { dir, server };
        if let Ok(m) = nodeforge::manifest::Manifest::load(&ctx.manifest()) {
            nodeforge::standin::write_mirror(&m, ctx.server.root(), 8192).unwrap();
        }
        ctx
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest(&self) -> PathBuf {
        self.path().join("manifests/kubenet.toml")
    }

    pub fn lockfile(&self) -> PathBuf {
        self.path().join("lockfiles/kubenet.lock")
    }

    pub fn lock_text(&self) -> String {
        std::fs::read_to_string(self.lockfile()).unwrap()
    }

    pub fn set_manifest(&self, text: &str) {
        std::fs::write(self.manifest(), text).unwrap();
    }

    pub fn edit_manifest(&self, from: &str, to: &str) {
        let t = std::fs::read_to_string(self.manifest()).unwrap();
        assert!(t.contains(from), "manifest lacks {from:?}");
        self.set_manifest(&t.replacen(from, to, 1));
    }

    /// Run nodeforge in the project directory.
    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.path(), args)
    }

    /// Run a networked command against the fixture server only.
    pub fn net(&self, args: &[&str]) -> Run {
        let mirror = self.server.url();
        let mut all: Vec<&str> = args.to_vec();
        // The fixture server stands in for upstream, as a mirror: its checksum files pin.
        all.extend([
            "--mirrors-only",
            "--trust-mirror-checksums",
            "--mirror",
            &mirror,
            "--retries",
            "1",
        ]);
        self.run(&all)
    }

    /// The path of a served file, by its upstream URL.
    pub fn served(&self, url: &str) -> PathBuf {
        self.server
            .root()
            .join(nodeforge::fetch::mirror_path(url).unwrap())
    }

    /// The request path on the server for an upstream URL.
    pub fn served_path(&self, url: &str) -> String {
        format!("/{}", nodeforge::fetch::mirror_path(url).unwrap())
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("out/store")
    }

    /// Every object file in the store, with the blake3 its path names.
    pub fn store_objects(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let root = self.store().join("blake3");
        for a in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
                for c in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                    let name = format!(
                        "{}{}{}",
                        a.file_name().to_string_lossy(),
                        b.file_name().to_string_lossy(),
                        c.file_name().to_string_lossy()
                    );
                    out.push((c.path(), name));
                }
            }
        }
        out.sort();
        out
    }

    pub fn store_tmp_is_empty(&self) -> bool {
        std::fs::read_dir(self.store().join("tmp")).map_or(true, |mut d| d.next().is_none())
    }
}

/// Set `kubelet_verbosity` in the manifest's `[vars]` (a config change of every node).
/// A project with every node built (stand-in artifacts from the loopback server).
pub fn built() -> TestContext {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    ctx
}

/// The image id of `node`'s current generation in the output directory `out`.
/// The entry of `node` in a report's `nodes` array (build, push, pull `--json`).
pub fn node_in<'a>(report: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    report["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node"] == node))
        .unwrap_or_else(|| panic!("no node {node} in {report}"))
}

pub fn current_id_in(out: &Path, node: &str) -> String {
    let p = std::fs::canonicalize(out.join("nodes").join(node).join("current")).unwrap();
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The image id of `node`'s current generation in the project's `out/`.
pub fn current_id(ctx: &TestContext, node: &str) -> String {
    current_id_in(&ctx.path().join("out"), node)
}

pub fn set_verbosity(ctx: &TestContext, v: u32) {
    let t = std::fs::read_to_string(ctx.manifest()).unwrap();
    let t = match t.find("\n[vars]\n") {
        Some(at) => t[..at].to_string(),
        None => t,
    };
    ctx.set_manifest(&format!("{t}\n[vars]\nkubelet_verbosity = {v}\n"));
}

/// The URL of a component's artifact in the default manifest (amd64).
pub fn url_of(ctx: &TestContext, component: &str) -> String {
    let m = nodeforge::manifest::Manifest::load(&ctx.manifest()).unwrap();
    m.artifacts()
        .into_iter()
        .find(|a| a.component.as_str() == component)
        .map(|a| a.url)
        .unwrap()
}

pub fn checksum_url_of(ctx: &TestContext, component: &str) -> String {
    let m = nodeforge::manifest::Manifest::load(&ctx.manifest()).unwrap();
    m.artifacts()
        .into_iter()
        .find(|a| a.component.as_str() == component)
        .map(|a| a.checksum_url)
        .unwrap()
}

/// Whether `tool` (from the Debian package `package`) is on `PATH`, for tests that run it. When it
/// is missing the test is skipped with a note on stderr, except under `CI=true`, where it fails:
/// CI installs every tool (`.ci/run`) and must run every test.
pub fn requires(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()));
    requires_that(
        found,
        &format!("{tool} is not installed (Debian package {package})"),
        &format!("this test needs {tool} (Debian package {package})"),
    )
}

/// [`requires`] for what is not a tool on `PATH`: `found`, else a failure under `CI=true`
/// ("`missing`, and under CI=true every test runs") or a skip saying "skipped: `needs`".
pub fn requires_that(found: bool, missing: &str, needs: &str) -> bool {
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{missing}, and under CI=true every test runs"
        );
        eprintln!("skipped: {needs}");
    }
    found
}

pub fn sha256_hex(data: &[u8]) -> String {
    nodeforge::hash::Sha256::of(data).to_hex()
}

/// The whole image record (format 2: what registries carry and `show --json` prints) that the
/// `manifest.json` at `path` loads to: one kept without its entries (format 3) gets them from
/// its layers' records in the `out/` it lies in.
pub fn whole_record<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    use nodeforge::image::{LayerRecord, OnDisk};
    let bytes = std::fs::read(path).unwrap();
    let m = match OnDisk::parse(&bytes).unwrap() {
        OnDisk::Whole(m) => m,
        OnDisk::Stored(s) => {
            let real = path.canonicalize().unwrap();
            let out = real
                .ancestors()
                .find(|a| a.join("layers").is_dir())
                .unwrap();
            let lists = s
                .layers
                .iter()
                .map(|l| {
                    let rec = out.join("layers").join(&l.id).join("layer.json");
                    serde_json::from_slice::<LayerRecord>(&std::fs::read(rec).unwrap())
                        .unwrap()
                        .entries
                })
                .collect();
            s.into_full(lists).unwrap()
        }
    };
    serde_json::from_value(serde_json::to_value(m).unwrap()).unwrap()
}

/// The directory under `out/layers/` of the `role` layer ("payload" or "config") of the image
/// in `image_dir`, from the image's record (its files there are hard links to the layer's).
pub fn layer_of(image_dir: &Path, role: &str) -> PathBuf {
    let m: serde_json::Value = crate::whole_record(&image_dir.join("manifest.json"));
    let id = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["role"] == role)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    image_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("layers")
        .join(id)
}

/// Run a VM (QEMU with its console on stdout, spawned from `cmd`) until it powers off; killed
/// after `limit`. Returns its console (carriage returns removed), how long it ran, and whether
/// it had to be killed.
pub fn run_vm(
    cmd: &mut Command,
    limit: std::time::Duration,
) -> (String, std::time::Duration, bool) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 (install qemu-system-x86)");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let started = std::time::Instant::now();
    let mut killed = false;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            killed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let console = String::from_utf8_lossy(&reader.join().unwrap()).replace('\r', "");
    (console, started.elapsed(), killed)
}
