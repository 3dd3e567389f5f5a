//! What the VM tests share (tests/it/systemd_vm.rs, tests/it/cluster.rs): the cache of Debian
//! packages and root filesystems, commands that must succeed, Debian's containerd, runc and CNI
//! plugins repacked into upstream's archive names as a `file://` mirror, one-layer OCI image
//! archives for `ctr images import`, and the layers of a built image as a VM gets them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{sha256_hex, REPO};

/// `$NODEFORGE_VM_CACHE`, default target/nodeforge-vm-cache.
pub fn cache_dir() -> PathBuf {
    let d = std::env::var_os("NODEFORGE_VM_CACHE").map_or_else(
        || Path::new(REPO).join("target/nodeforge-vm-cache"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run a command; its stdout, or a panic with everything it said.
#[track_caller]
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One of the repository's scripts/.
pub fn script(name: &str) -> Command {
    Command::new(Path::new(REPO).join("scripts").join(name))
}

/// A Debian package from the cache, downloaded once with `apt-get download` (bounded in time).
pub fn deb(pkg: &str) -> PathBuf {
    let dir = cache_dir().join("debs");
    std::fs::create_dir_all(&dir).unwrap();
    let find = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with(&format!("{pkg}_")) && n.ends_with("_amd64.deb")
            })
    };
    if let Some(p) = find() {
        return p;
    }
    let tmp = tempfile::tempdir_in(&dir).unwrap();
    let out = Command::new("timeout")
        .args([
            "300",
            "apt-get",
            "download",
            "-q",
            "-o",
            "Acquire::Retries=2",
        ])
        .args(["-o", "Acquire::http::Timeout=30", pkg])
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .output()
        .expect("timeout/apt-get");
    assert!(
        out.status.success(),
        "could not download the Debian package {pkg} with `apt-get download` ({}); the Debian \
         archive must be reachable once to fill {}:\n{}",
        out.status,
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let p = e.unwrap().path();
        std::fs::rename(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    find().unwrap_or_else(|| panic!("apt-get download {pkg} left no {pkg}_*_amd64.deb"))
}

/// Upstream's version of a Debian package file: `containerd_1.6.20~ds1-1+deb12u3_amd64.deb` → 1.6.20.
pub fn upstream_version(deb: &Path) -> String {
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    let v = name.split('_').nth(1).unwrap();
    let v = v.rsplit("%3a").next().unwrap();
    v.split(['~', '+', '-']).next().unwrap().to_string()
}

pub fn extract_deb(deb: &Path, dir: &Path) -> PathBuf {
    let d = dir.join(deb.file_stem().unwrap());
    std::fs::create_dir_all(&d).unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&d));
    d
}

/// A reproducible .tar.gz of `members` of `dir` (owner root, mtime 0); its bytes.
pub fn targz(out: &Path, dir: &Path, members: &[&str]) -> Vec<u8> {
    run(Command::new("tar")
        .args([
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-czf",
        ])
        .arg(out)
        .arg("-C")
        .arg(dir)
        .args(members));
    std::fs::read(out).unwrap()
}

/// Debian bookworm's containerd, runc and containernetworking-plugins (real binaries), unpacked
/// under a scratch directory, ready to be repacked into upstream's archive names and layouts.
pub struct DebianRuntime {
    pub containerd_deb: PathBuf,
    pub runc_deb: PathBuf,
    pub cni_deb: PathBuf,
    pub containerd_dir: PathBuf,
    pub runc_dir: PathBuf,
    pub cni_dir: PathBuf,
}

impl DebianRuntime {
    /// The three packages (downloaded once into the cache), unpacked under `scratch/debs`.
    pub fn unpack(scratch: &Path) -> Self {
        let containerd_deb = deb("containerd");
        let runc_deb = deb("runc");
        let cni_deb = deb("containernetworking-plugins");
        let x = scratch.join("debs");
        Self {
            containerd_dir: extract_deb(&containerd_deb, &x),
            runc_dir: extract_deb(&runc_deb, &x),
            cni_dir: extract_deb(&cni_deb, &x),
            containerd_deb,
            runc_deb,
            cni_deb,
        }
    }

    /// The names of the three packages (what a cache of their repacking is keyed by).
    pub fn package_files() -> [PathBuf; 3] {
        ["containerd", "runc", "containernetworking-plugins"].map(deb)
    }

    /// `manifest` with the `containerd`, `runc` and `cni-plugins` versions set to Debian's.
    pub fn pin_versions(&self, manifest: &str) -> String {
        let mut out = String::new();
        for line in manifest.lines() {
            let line = match line.split_once(" = ").map(|(k, _)| k) {
                Some("containerd") => format!(
                    "containerd = \"{}\"",
                    upstream_version(&self.containerd_deb)
                ),
                Some("runc") => format!("runc = \"{}\"", upstream_version(&self.runc_deb)),
                Some("cni-plugins") => {
                    format!("cni-plugins = \"{}\"", upstream_version(&self.cni_deb))
                }
                _ => line.to_string(),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    pub fn runc(&self) -> Vec<u8> {
        std::fs::read(self.runc_dir.join("usr/sbin/runc")).unwrap()
    }

    pub fn containerd(&self) -> Vec<u8> {
        std::fs::read(self.containerd_dir.join("usr/bin/containerd")).unwrap()
    }

    /// The artifact of `component` in upstream's layout (the containerd tarball's `bin/`, the
    /// CNI tarball's flat plugins, runc's bare binary), packed under `tmp`; None for the others.
    pub fn artifact(&self, component: &str, tmp: &Path) -> Option<Vec<u8>> {
        Some(match component {
            "runc" => self.runc(),
            "containerd" => targz(tmp, &self.containerd_dir.join("usr"), &["bin"]),
            "cni-plugins" => targz(tmp, &self.cni_dir.join("usr/lib/cni"), &["."]),
            _ => return None,
        })
    }
}

/// Put an artifact's bytes and its upstream-style checksum file into a `file://` mirror.
pub fn put_in_mirror(mirror: &Path, a: &nodeforge::manifest::ArtifactSpec, bytes: &[u8]) {
    let at = mirror.join(nodeforge::fetch::mirror_path(&a.url).unwrap());
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::write(&at, bytes).unwrap();
    let sums = mirror.join(nodeforge::fetch::mirror_path(&a.checksum_url).unwrap());
    std::fs::create_dir_all(sums.parent().unwrap()).unwrap();
    std::fs::write(
        &sums,
        format!("{}  {}\n", sha256_hex(bytes), a.checksum_name),
    )
    .unwrap();
}

/// A one-layer OCI image archive for `ctr images import`: `files` (source on the host, path in
/// the image) as its root, `config` as the image config's `config`, named `name` (e.g.
/// `localhost/nf-busybox:1`). Reproducible: fixed owners and mtimes.
pub fn oci_archive(
    scratch: &Path,
    out: &Path,
    name: &str,
    files: &[(&Path, &str)],
    config: serde_json::Value,
) {
    let work = tempfile::tempdir_in(scratch).unwrap();
    let stage = work.path().join("rootfs");
    let mut members = Vec::new();
    for (src, dest) in files {
        let to = stage.join(dest.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src, &to).unwrap();
        let top = dest.trim_start_matches('/').split('/').next().unwrap();
        if !members.contains(&top) {
            members.push(top);
        }
    }
    let layer_path = work.path().join("layer.tar");
    run(Command::new("tar")
        .args([
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "--sort=name",
            "-cf",
        ])
        .arg(&layer_path)
        .arg("-C")
        .arg(&stage)
        .args(&members));
    let layer = std::fs::read(&layer_path).unwrap();
    let oci = work.path().join("oci");
    let blobs = oci.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let h = sha256_hex(data);
        std::fs::write(blobs.join(&h), data).unwrap();
        (format!("sha256:{h}"), data.len())
    };
    let (layer_digest, layer_size) = put(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size }],
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let tag = name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": { "architecture": "amd64", "os": "linux" },
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    std::fs::write(oci.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(oci.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    run(Command::new("tar")
        .args([
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-cf",
        ])
        .arg(out)
        .arg("-C")
        .arg(&oci)
        .args(["oci-layout", "index.json", "blobs"]));
}

/// A node image's two layers, as the VM gets them.
pub struct Layers {
    pub dir: PathBuf,
    pub payload: String,
    pub config: String,
}

/// The layers of an image directory: its `nodeforge-*` files, with the root hashes its record
/// pins (what a VM host puts on the kernel command line; `nodeforge show NODE --boot` prints them).
pub fn layers(image_dir: &Path) -> Layers {
    let dir = image_dir.to_path_buf();
    let record: serde_json::Value = crate::whole_record(&dir.join("manifest.json"));
    let hash = |l: &str| {
        record["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["role"] == l)
            .unwrap()["verity"]["root_hash"]
            .as_str()
            .unwrap()
            .to_string()
    };
    Layers {
        payload: hash("payload"),
        config: hash("config"),
        dir,
    }
}

/// The `-drive`/`-device` arguments that attach a node's layers by serial (nf-payload,
/// nf-payload-verity, nf-config, nf-config-verity), read-only; `payload` replaces the payload's
/// data file (a test's corrupted copy).
pub fn layer_disks(layers: &Layers, payload: &Path) -> Vec<String> {
    let files = [
        ("nf-payload", payload.to_path_buf()),
        (
            "nf-payload-verity",
            layers.dir.join("nodeforge-payload.verity"),
        ),
        ("nf-config", layers.dir.join("nodeforge-config.raw")),
        (
            "nf-config-verity",
            layers.dir.join("nodeforge-config.verity"),
        ),
    ];
    let mut args = Vec::new();
    for (serial, file) in files {
        args.push("-drive".to_string());
        args.push(format!(
            "file={},format=raw,if=none,readonly=on,id={serial}",
            file.display()
        ));
        args.push("-device".to_string());
        args.push(format!("virtio-blk-pci,drive={serial},serial={serial}"));
    }
    args
}

/// The newest kernel under /lib/modules (the one scripts/vm-initramfs packs modules of).
pub fn kernel_version() -> String {
    let kver = run(Command::new("sh").args(["-c", "ls /lib/modules | sort -V | tail -1"]));
    kver.trim().to_string()
}
