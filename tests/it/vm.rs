//! The proof that a VM can use a layered image: boot a Debian cloud kernel under QEMU (software
//! emulation) with a busybox initramfs this test builds, attach each layer's EROFS file and hash
//! tree as read-only virtio disks found by serial, open both through dm-verity with the root hashes
//! the image record pins, mount them as read-only overlays on `/usr` and `/opt` (payload) and `/etc`
//! (config) over a small usr-merged root whose `/var` stays its own, and have the VM print the
//! sha256 of every file it sees. A flipped byte in either layer must make that read fail.
//! (The real systemd node, with the shipped guest integration, is `systemd_vm.rs`.)
//!
//! Needs Debian's qemu-system-x86, linux-image-cloud-amd64, busybox-static and dmsetup (.ci/run
//! installs them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::TestContext;

/// A newc cpio archive (what the kernel unpacks as the initramfs).
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Self {
        Self {
            out: Vec::new(),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            u32::try_from(data.len()).unwrap(),
            0,
            0,
            0,
            0,
            u32::try_from(name.len() + 1).unwrap(),
            0,
        ];
        self.ino += 1;
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, b"");
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | mode, data);
    }

    /// A host file at the same path, with every parent directory.
    fn host_file(&mut self, path: &Path, dirs: &mut std::collections::BTreeSet<String>) {
        let real =
            std::fs::canonicalize(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let rel = path.to_str().unwrap().trim_start_matches('/').to_string();
        let mut acc = String::new();
        for part in rel.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            acc = if acc.is_empty() {
                (*part).to_string()
            } else {
                format!("{acc}/{part}")
            };
            if dirs.insert(acc.clone()) {
                self.dir(&acc);
            }
        }
        self.file(&rel, 0o755, &std::fs::read(real).unwrap());
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, b"");
        self.out
    }
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /modules/$m.ko || echo "NF-ERROR insmod $m"; done
# The disks by their virtio serial, as the guest integration finds them.
disk() { for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = "$1" ] && { echo /dev/${d##*/}; return; }; done; }
for i in $(seq 1 100); do [ -n "$(disk nf-config-verity)" ] && break; sleep 0.1; done
# A small usr-merged root: what the VM's own disk would hold.
mkdir -p /base/usr/bin /base/usr/sbin /base/usr/lib /base/opt /base/etc /base/var /merged /l
ln -s usr/bin /base/bin; ln -s usr/sbin /base/sbin; ln -s usr/lib /base/lib
echo base > /base/etc/hostname
for role in payload config; do
  spec=$(for kv in $(cat /proc/cmdline); do case "$kv" in nf.$role=*) echo ${kv#*=};; esac; done)
  root=${spec%%,*}; rest=${spec#*,}; salt=${rest%%,*}; blocks=${rest#*,}
  DM_DISABLE_UDEV=1 dmsetup create nf-$role --readonly --table "0 $((blocks * 8)) verity 1 $(disk nf-$role) $(disk nf-$role-verity) 4096 4096 $blocks 1 sha256 $root $salt" || echo "NF-ERROR dmsetup $role"
  mkdir -p /l/$role
  mount -t erofs -o ro /dev/mapper/nf-$role /l/$role || echo "NF-ERROR mount $role"
done
# Read-only overlays: /usr and /opt from the payload, /etc from the config layer, each over the
# root's own; /var stays the root's.
cp -a /base/. /merged/
for d in usr opt; do
  [ -d /l/payload/$d ] && { mount -t overlay overlay -o ro,lowerdir=/l/payload/$d:/base/$d /merged/$d || echo "NF-ERROR overlay $d"; }
done
mount -t overlay overlay -o ro,lowerdir=/l/config/etc:/base/etc /merged/etc || echo "NF-ERROR overlay etc"
echo NF-BEGIN
[ -L /merged/bin ] && [ "$(readlink /merged/bin)" = usr/bin ] && echo NF-USRMERGE
[ "$(cat /merged/etc/hostname)" = base ] && echo NF-HOSTETC
[ -e /merged/var/lib/kubelet ] || echo NF-OWNVAR
for role in payload config; do
  cd /l/$role
  find . -type f | sort | while read -r f; do
    p=${f#.}
    if h=$(sha256sum "/merged$p" 2>/dev/null); then echo "NF-FILE ${h%% *} $p"; else echo "NF-EIO $p"; fi
  done
done
echo NF-END
poweroff -f
"#;

/// What the VM needs beyond the kernel; their dependencies come from modules.dep.
const MODULES: [&str; 5] = ["virtio_pci", "virtio_blk", "dm-verity", "erofs", "overlay"];

/// The newest Debian kernel under /boot and its modules directory.
fn kernel() -> (PathBuf, PathBuf) {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .expect("/boot")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .collect();
    kernels.sort();
    let k = kernels
        .pop()
        .expect("a kernel in /boot (install linux-image-cloud-amd64)");
    let ver = k
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    (k, PathBuf::from("/lib/modules").join(ver))
}

/// The modules to load, dependencies first, as paths relative to the modules directory.
fn module_order(dir: &Path) -> Vec<String> {
    let dep = std::fs::read_to_string(dir.join("modules.dep")).expect("modules.dep");
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for line in dep.lines() {
        let Some((m, rest)) = line.split_once(':') else {
            continue;
        };
        let name = m
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".ko")
            .replace('-', "_");
        by_name.insert(name, m.to_string());
        deps.insert(
            m.to_string(),
            rest.split_whitespace().map(str::to_string).collect(),
        );
    }
    fn visit(m: &str, deps: &BTreeMap<String, Vec<String>>, out: &mut Vec<String>) {
        if out.iter().any(|x| x == m) {
            return;
        }
        for d in deps.get(m).into_iter().flatten() {
            visit(d, deps, out);
        }
        out.push(m.to_string());
    }
    let mut out = Vec::new();
    for m in MODULES {
        let path = by_name
            .get(&m.replace('-', "_"))
            .unwrap_or_else(|| panic!("module {m} not in modules.dep"));
        visit(path, &deps, &mut out);
    }
    out
}

fn initramfs(dir: &Path) -> PathBuf {
    let (_, modules) = kernel();
    let mut c = Cpio::new();
    let mut dirs = std::collections::BTreeSet::new();
    for d in ["bin", "proc", "sys", "dev", "modules", "mnt", "tmp"] {
        c.dir(d);
        dirs.insert(d.to_string());
    }
    c.file(
        "bin/busybox",
        0o755,
        &std::fs::read("/bin/busybox").expect("busybox-static"),
    );
    c.file("init", 0o755, INIT.as_bytes());
    let mut order = Vec::new();
    for rel in module_order(&modules) {
        assert!(
            rel.ends_with(".ko"),
            "{rel}: compressed modules are not supported here"
        );
        let name = rel
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".ko")
            .to_string();
        c.file(
            &format!("modules/{name}.ko"),
            0o644,
            &std::fs::read(modules.join(&rel)).unwrap(),
        );
        order.push(name);
    }
    c.file("modules.order", 0o644, order.join("\n").as_bytes());
    // dmsetup and the libraries it links (Debian's is dynamic).
    let dmsetup = Path::new("/usr/sbin/dmsetup");
    c.host_file(dmsetup, &mut dirs);
    let ldd = Command::new("ldd").arg(dmsetup).output().expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/'));
        if let Some(p) = path {
            c.host_file(Path::new(p), &mut dirs);
        }
    }
    let path = dir.join("initrd.cpio");
    std::fs::write(&path, c.finish()).unwrap();
    path
}

struct Boot {
    files: BTreeMap<String, String>,
    eio: Vec<String>,
    usrmerge: bool,
    host_etc: bool,
    own_var: bool,
    console: String,
}

/// A layer to attach: its EROFS file, its hash tree, and the verity parameters its record pins.
struct Layer {
    role: &'static str,
    raw: PathBuf,
    verity: PathBuf,
    root: String,
    salt: String,
    blocks: u64,
}

fn boot(layers: &[Layer], scratch: &Path) -> Boot {
    let (kernel, _) = kernel();
    let initrd = initramfs(scratch);
    let mut cmdline = "console=ttyS0 quiet panic=-1 rdinit=/init".to_string();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "256",
        "-smp",
        "1",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-nodefaults",
    ])
    .arg("-kernel")
    .arg(&kernel)
    .arg("-initrd")
    .arg(&initrd);
    for (i, l) in layers.iter().enumerate() {
        cmdline.push_str(&format!(
            " nf.{}={},{},{}",
            l.role, l.root, l.salt, l.blocks
        ));
        for (j, (file, serial)) in [
            (&l.raw, format!("nf-{}", l.role)),
            (&l.verity, format!("nf-{}-verity", l.role)),
        ]
        .into_iter()
        .enumerate()
        {
            // QEMU 7.2+ takes a serial on the device, not on -drive.
            cmd.arg("-drive")
                .arg(format!(
                    "file={},format=raw,if=none,readonly=on,id=d{i}{j}",
                    file.display()
                ))
                .arg("-device")
                .arg(format!("virtio-blk-pci,drive=d{i}{j},serial={serial}"));
        }
    }
    cmd.arg("-append").arg(cmdline);
    let (console, took, killed) = crate::run_vm(&mut cmd, Duration::from_secs(180));
    eprintln!("VM boot and check took {:.1}s", took.as_secs_f64());
    assert!(!killed, "the VM did not power off in 180 s:\n{console}");
    assert!(
        !console.contains("NF-ERROR"),
        "the VM reported an error:\n{console}"
    );
    assert!(
        console.contains("NF-BEGIN") && console.contains("NF-END"),
        "no listing from the VM:\n{console}"
    );
    let mut b = Boot {
        files: BTreeMap::new(),
        eio: Vec::new(),
        usrmerge: false,
        host_etc: false,
        own_var: false,
        console: console.clone(),
    };
    for line in console.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("NF-FILE ") {
            let (h, p) = rest.split_once(' ').unwrap();
            b.files.insert(p.to_string(), h.to_string());
        } else if let Some(p) = line.strip_prefix("NF-EIO ") {
            b.eio.push(p.to_string());
        } else if line == "NF-USRMERGE" {
            b.usrmerge = true;
        } else if line == "NF-HOSTETC" {
            b.host_etc = true;
        } else if line == "NF-OWNVAR" {
            b.own_var = true;
        }
    }
    b
}

/// Whether this machine can run the VM tests (under CI=true a missing tool is a failure).
fn can_boot() -> bool {
    [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("dmsetup", "dmsetup"),
        ("busybox", "busybox-static"),
    ]
    .iter()
    .all(|(tool, package)| crate::requires(tool, package))
}

fn built() -> (TestContext, serde_json::Value) {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1"]).ok();
    let dir = std::fs::canonicalize(ctx.path().join("out/nodes/worker1/current")).unwrap();
    let m: serde_json::Value = crate::whole_record(&dir.join("manifest.json"));
    (ctx, m)
}

/// The image's two layers: the disks `show --boot` says to attach, with the verity parameters
/// the image record pins (the busybox initramfs opens them with dmsetup, which needs the salt and
/// size; veritysetup reads those from the hash tree's superblock).
fn layers(ctx: &TestContext, m: &serde_json::Value) -> Vec<Layer> {
    let plan = ctx
        .run(&["show", "worker1", "--boot", "--json"])
        .ok()
        .json();
    let disk = |serial: String| -> PathBuf {
        let d = plan["disks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["serial"] == serial.as_str())
            .unwrap_or_else(|| panic!("no disk {serial} in {plan}"));
        PathBuf::from(d["path"].as_str().unwrap())
    };
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let role = if l["role"] == "payload" {
                "payload"
            } else {
                "config"
            };
            let v = &l["verity"];
            let root = v["root_hash"].as_str().unwrap().to_string();
            assert!(plan["kernel_cmdline"]
                .as_str()
                .unwrap()
                .contains(&format!("nodeforge.{role}={root}")));
            Layer {
                role,
                raw: disk(format!("nf-{role}")),
                verity: disk(format!("nf-{role}-verity")),
                root,
                salt: v["salt"].as_str().unwrap().to_string(),
                blocks: v["data_blocks"].as_u64().unwrap(),
            }
        })
        .collect()
}

fn object(ctx: &TestContext, b3: &str) -> Vec<u8> {
    std::fs::read(
        ctx.store()
            .join("blake3")
            .join(&b3[..2])
            .join(&b3[2..4])
            .join(&b3[4..]),
    )
    .unwrap()
}

#[test]
fn vm_sees_exactly_the_layers_through_verity_and_overlays() {
    if !can_boot() {
        return;
    }
    let (ctx, m) = built();
    let b = boot(&layers(&ctx, &m), ctx.path());
    assert!(
        b.eio.is_empty(),
        "read errors in the VM: {:?}\n{}",
        b.eio,
        b.console
    );
    assert!(
        b.usrmerge,
        "the overlays must keep the root's usr-merged /bin symlink"
    );
    assert!(
        b.host_etc,
        "the root's own /etc files show through the config layer"
    );
    assert!(b.own_var, "/var is the root's own, nothing of an image");
    // Every regular file of the image, with the sha256 of its content in the store.
    let mut want = BTreeMap::new();
    for e in m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "file")
    {
        want.insert(
            e["path"].as_str().unwrap().to_string(),
            crate::sha256_hex(&object(&ctx, e["blake3"].as_str().unwrap())),
        );
    }
    assert_eq!(
        b.files, want,
        "what the VM sees differs from the image record"
    );
}

/// A copy of `layer`'s EROFS file with one byte flipped inside the data of `path`.
fn flipped(ctx: &TestContext, m: &serde_json::Value, layer: &Layer, path: &str) -> PathBuf {
    let e = m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap();
    let content = object(ctx, e["blake3"].as_str().unwrap());
    let mut img = std::fs::read(&layer.raw).unwrap();
    let probe = &content[..content.len().min(64)];
    let at = img
        .windows(probe.len())
        .position(|w| w == probe)
        .unwrap_or_else(|| panic!("{path}'s data in the layer"));
    img[at + content.len() / 2] ^= 0x01;
    let copy = ctx.path().join(format!("flipped-{}.raw", layer.role));
    std::fs::write(&copy, &img).unwrap();
    copy
}

#[test]
fn vm_read_fails_after_a_flipped_byte_in_either_layer() {
    if !can_boot() {
        return;
    }
    let (ctx, m) = built();
    for (role, path, other) in [
        ("payload", "/usr/local/bin/kubelet", "/usr/local/bin/runc"),
        (
            "config",
            "/etc/containerd/config.toml",
            "/etc/systemd/system/kubelet.service",
        ),
    ] {
        let mut ls = layers(&ctx, &m);
        let l = ls.iter_mut().find(|l| l.role == role).unwrap();
        l.raw = flipped(&ctx, &m, l, path);
        let b = boot(&ls, ctx.path());
        assert_eq!(b.eio, vec![path.to_string()], "{role}: {}", b.console);
        assert!(!b.files.contains_key(path));
        assert!(
            b.files.contains_key(other),
            "{role}: other files still read"
        );
    }
}
