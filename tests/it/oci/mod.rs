//! push and pull through a real OCI registry: Debian's `docker-registry` (the CNCF distribution
//! server) on 127.0.0.1 with its filesystem storage in a temp dir, anonymous or with htpasswd
//! auth. This module holds the fixture (the registry, running nodeforge against it, a fresh
//! host, keys); the tests are in one module per concern.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{built, run_env, Run, TestContext};

mod attestations;
mod auth;
mod faults;
mod layout;
mod push_pull;

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
pub(crate) fn layer_bytes(out: &Path, image: &str) -> Vec<(String, Vec<u8>)> {
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
pub(crate) fn fresh_host() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A fresh host (see [`fresh_host`]) and its `out/`, to run nodeforge on.
pub(crate) struct Host {
    dir: tempfile::TempDir,
    pub out: PathBuf,
    /// `out`, as an argument.
    pub outs: String,
}

impl Host {
    pub(crate) fn new() -> Self {
        let dir = fresh_host();
        let out = dir.path().join("out");
        Self {
            dir,
            outs: out.display().to_string(),
            out,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// nodeforge on this host (`--out` its `out/`) against registry `r`, as [`reg`] runs it.
    pub(crate) fn run(&self, r: &LocalRegistry, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut all = vec!["--out", self.outs.as_str()];
        all.extend_from_slice(args);
        reg(self.path(), r, &all, envs)
    }

    /// `pull REFERENCE ARGS…` on this host.
    pub(crate) fn pull(&self, r: &LocalRegistry, reference: &str, args: &[&str]) -> Run {
        let mut all = vec!["pull", reference];
        all.extend_from_slice(args);
        self.run(r, &all, &[])
    }
}

/// A host is its directory (as the `PathBuf` tests used before it had a type).
impl std::ops::Deref for Host {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.dir.path()
    }
}

/// `push REPO ARGS…` of project `ctx` to `repo` of registry `r`.
pub(crate) fn push_to(ctx: &TestContext, r: &LocalRegistry, repo: &str, args: &[&str]) -> Run {
    let mut all = vec!["push", repo];
    all.extend_from_slice(args);
    reg(ctx.path(), r, &all, &[])
}

/// A built project with `nodes` pushed to repository `kubenet` of `r`: the project, the
/// repository (`HOST:PORT/kubenet`) and push's JSON report.
pub(crate) fn pushed(
    r: &LocalRegistry,
    nodes: &[&str],
) -> (TestContext, String, serde_json::Value) {
    let ctx = built();
    let repo = r.repo("kubenet");
    let mut args = vec!["push", repo.as_str()];
    for n in nodes {
        args.extend(["--node", n]);
    }
    args.push("--json");
    let report = reg(ctx.path(), r, &args, &[]).ok().json();
    (ctx, repo, report)
}

/// The entry of blob `digest` (`sha256:…`) in a push or pull report's `blobs`.
pub(crate) fn blob_in<'a>(blobs: &'a serde_json::Value, digest: &str) -> &'a serde_json::Value {
    blobs
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["digest"] == digest)
        .unwrap_or_else(|| panic!("no blob {digest} in {blobs}"))
}

/// The entry of the blob of `kind` (`"record"`, `{"erofs": "payload"}` …) in a push report's
/// `blobs` of node `node` (its index in the report).
pub(crate) fn blob_of(
    push: &serde_json::Value,
    node: usize,
    kind: &serde_json::Value,
) -> serde_json::Value {
    push["nodes"][node]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == *kind)
        .unwrap_or_else(|| panic!("no {kind} blob in {push}"))
        .clone()
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

pub(crate) fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The attestation files of image `id` in `out`, by name, as bytes.
pub(crate) fn attestation_bytes(out: &Path, id: &str) -> Vec<(String, Vec<u8>)> {
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
pub(crate) fn nothing_installed(out: &Path, node: &str) -> bool {
    let layers = std::fs::read_dir(out.join("layers"))
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    layers == 0 && !out.join("nodes").join(node).join("current").exists()
}

/// Run nodeforge in `cwd` with `HOME` (and so `~/.docker/config.json`) in `home` and nothing of
/// the caller's credentials.
pub(crate) fn run_home(cwd: &Path, home: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    std::fs::create_dir_all(home).unwrap();
    let home = home.display().to_string();
    let mut env: Vec<(&str, &str)> = vec![("HOME", &home), ("XDG_RUNTIME_DIR", &home)];
    env.extend_from_slice(envs);
    run_env(cwd, args, &env, None)
}

/// A second builder: the same manifest and lockfile as `ctx`, an empty store.
pub(crate) fn second_builder(ctx: &TestContext) -> TestContext {
    let b = TestContext::new();
    std::fs::create_dir_all(b.lockfile().parent().unwrap()).unwrap();
    std::fs::copy(ctx.lockfile(), b.lockfile()).unwrap();
    b
}

/// Write an executable `docker-credential-<name>` into `dir`: the docker-credential-helpers
/// protocol's `get`, reading the server's address on stdin (logged to `dir/asked`), answering
/// `{"Username", "Secret"}` for `server`, "credentials not found" for any other.
pub(crate) fn credential_helper(
    dir: &Path,
    name: &str,
    server: &str,
    username: &str,
    secret: &str,
) {
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
