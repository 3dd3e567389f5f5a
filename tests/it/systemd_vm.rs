//! A node that really runs: a Debian 12 root filesystem with systemd (mmdebstrap, cached), booted
//! under QEMU (TCG) with the host's Debian cloud kernel and a busybox initramfs that runs THE
//! SHIPPED `contrib/nodeforge-mount-layers` (scripts/vm-initramfs), from node images nodeforge
//! builds out of REAL binaries: Debian bookworm's containerd, runc and containernetworking-plugins
//! repacked into upstream's archive names and layouts as a `file://` mirror (busybox-static
//! stands in for kubelet, kube-proxy and crictl), locked and built through the normal commands.
//!
//! One test, boots one after another on one qcow2 overlay of the cached base (so /var persists):
//!  1. generation 2 (busybox initramfs, veritysetup): containerd.service active from the image's
//!     unit and config, `ctr run` of a local OCI image through the image's runc, the image's CNI
//!     bridge config and plugins give a network namespace an address in the node's pod range,
//!     `systemd-analyze verify` of the image's units clean, kubelet/kube-proxy enabled with their
//!     ExecStart the image's binaries, /bin /sbin /lib the base's links, /etc the config layer's
//!     files; then the VM writes state under /var/lib, /etc/hostname, edits and deletes files the
//!     config layer owns, runs `rm -rf /etc/kubernetes && mkdir /etc/kubernetes`, and powers off; the node's secrets (made with openssl, checked by
//!     `nodeforge secrets check`) arrive as systemd credentials over fw_cfg, passed with exactly
//!     the `-fw_cfg` arguments `nodeforge show worker1 --boot --secrets DIR` prints: each at its
//!     declared path (a symlink into /run, a tmpfs) with its content, mode and owner, placed by
//!     the config layer's nodeforge-secrets.service before kubelet; afterwards none of their
//!     bytes is in the VM's disk images (the qcow2 overlay, the base ext4) or under out/;
//!  2. `nodeforge rollback`, generation 1, through Debian's mkinitramfs with the shipped
//!     initramfs-tools hook and local-bottom script: every file the config layer owns is
//!     generation 1's (/etc/kubernetes too, which the first boot removed and made again: an
//!     overlay-opaque directory in the /etc upper), the state, hostname, machine-id and
//!     containerd's images are still there;
//!     booted without credentials, nodeforge-secrets.service does not run (its condition) and the
//!     secrets' paths lead nowhere (their content was never on the disk);
//!  3. one flipped byte in the payload (busybox, dmsetup): reading runc fails, the rest reads;
//!  4. a wrong payload root hash (initramfs-tools: panic) and a wrong config root hash (busybox,
//!     dmsetup): the boot stops with the integration's `nodeforge:` message, before systemd.
//!
//! Needs root, qemu-system-x86, qemu-utils, linux-image-cloud-amd64, busybox-static, dmsetup,
//! cryptsetup-bin, erofs-utils, mmdebstrap, e2fsprogs, zstd, initramfs-tools, lz4, openssl
//! (.ci/run installs them). The first run
//! fills `$NODEFORGE_VM_CACHE` (default target/nodeforge-vm-cache) from the Debian archive: the
//! root filesystem and the three .deb packages; later runs need no network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::vmkit::{
    cache_dir, layer_disks, layers, oci_archive, put_in_mirror, run, script, targz, DebianRuntime,
    Layers,
};
use crate::{sha256_hex, TestContext, REPO};

/// What the test knows about the real binaries it put in the mirror.
pub(crate) struct Real {
    busybox: Vec<u8>,
    runc: Vec<u8>,
    pub(crate) containerd: Vec<u8>,
}

/// `real_mirror`, cached next to the .deb files it is made from (keyed by their names, the
/// busybox binary and the default manifest): repacking costs seconds each run otherwise.
pub(crate) fn cached_mirror() -> (String, PathBuf, Real) {
    let debs = DebianRuntime::package_files();
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    let manifest = std::fs::read(Path::new(REPO).join("manifests/kubenet.toml")).unwrap();
    let key = sha256_hex(
        format!(
            "repack 1 {debs:?} {} {}",
            sha256_hex(&busybox),
            sha256_hex(&manifest)
        )
        .as_bytes(),
    );
    let cache = cache_dir();
    let dir = cache.join(format!("mirror-{}", &key[..16]));
    if !dir.join("manifest.toml").exists() {
        let tmp = tempfile::tempdir_in(&cache).unwrap();
        let (manifest, _, real) = real_mirror(tmp.path());
        for work in ["debs", "busybox", "packed"] {
            std::fs::remove_dir_all(tmp.path().join(work)).unwrap();
        }
        std::fs::write(tmp.path().join("real-runc"), &real.runc).unwrap();
        std::fs::write(tmp.path().join("real-containerd"), &real.containerd).unwrap();
        std::fs::write(tmp.path().join("manifest.toml"), manifest).unwrap();
        // Another run may have won the race: its copy is as good.
        let _ = std::fs::rename(tmp.keep(), &dir);
    }
    (
        std::fs::read_to_string(dir.join("manifest.toml")).unwrap(),
        dir.join("mirror"),
        Real {
            busybox,
            runc: std::fs::read(dir.join("real-runc")).unwrap(),
            containerd: std::fs::read(dir.join("real-containerd")).unwrap(),
        },
    )
}

/// The default manifest with Debian's versions, and a `file://` mirror of real binaries in
/// upstream's names and layouts, with checksum files (busybox-static stands in for kubelet,
/// kube-proxy and crictl).
fn real_mirror(scratch: &Path) -> (String, PathBuf, Real) {
    let rt = DebianRuntime::unpack(scratch);
    let text = std::fs::read_to_string(Path::new(REPO).join("manifests/kubenet.toml")).unwrap();
    let manifest = rt.pin_versions(&text);
    let bb_dir = scratch.join("busybox");
    std::fs::create_dir_all(&bb_dir).unwrap();
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    std::fs::write(bb_dir.join("crictl"), &busybox).unwrap();
    run(Command::new("chmod").arg("0755").arg(bb_dir.join("crictl")));
    let real = Real {
        busybox: busybox.clone(),
        runc: rt.runc(),
        containerd: rt.containerd(),
    };

    let mf = scratch.join("mirror-manifest.toml");
    std::fs::write(&mf, &manifest).unwrap();
    let m = nodeforge::manifest::Manifest::load(&mf).unwrap();
    let mirror = scratch.join("mirror");
    let packed = scratch.join("packed");
    std::fs::create_dir_all(&packed).unwrap();
    for a in m.artifacts() {
        let name = a.url.rsplit('/').next().unwrap().to_string();
        let tmp = packed.join(&name);
        let bytes = match a.component.as_str() {
            "kubelet" | "kube-proxy" => busybox.clone(),
            "crictl" => targz(&tmp, &bb_dir, &["crictl"]),
            other => rt
                .artifact(other, &tmp)
                .unwrap_or_else(|| panic!("no real binary for component {other}")),
        };
        put_in_mirror(&mirror, &a, &bytes);
    }
    (manifest, mirror, real)
}

/// What runs in the VM once systemd is up (nf-check.service): every line it prints for the host
/// starts with `NFT `. `nftest.mode=` on the kernel command line picks what it does.
const CHECK: &str = r#"#!/bin/sh
exec >/dev/ttyS0 2>&1
mode=$(sed -n 's/.*nftest\.mode=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
say() { echo "NFT $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
say BEGIN "$mode" "$(up)"
if [ "$mode" = first ]; then
  echo "$(up)" >/run/nf-test/verify.start
  systemd-analyze verify --man=no /etc/systemd/system/containerd.service /etc/systemd/system/kubelet.service \
    /etc/systemd/system/kube-proxy.service /etc/systemd/system/nodeforge-secrets.service >/run/nf-test/verify.out 2>&1
  echo $? >/run/nf-test/verify.rc
  echo "$(up)" >/run/nf-test/verify.end
fi &
verify=$!
i=0
until [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -gt 120 ] && break; sleep 0.5
done
say containerd "$(systemctl is-active containerd.service)"
say t-containerd "$(up)"
say machine-id "$(cat /etc/machine-id)"
say hostname "$(cat /etc/hostname)"
for l in bin sbin lib; do say link "$l" "$(readlink /$l)"; done
say state "$(cat /var/lib/nf-state/marker 2>/dev/null || echo none)"
say images "$(ctr -n nft images ls -q 2>/dev/null | tr '\n' ' ')"
(cd /run/nodeforge/config/etc && find . -type f | sort) | while read -r p; do
  p=/etc/${p#./}
  say etc "$(sha256sum "$p" | cut -d' ' -f1)" "$p"
done
for u in containerd kubelet kube-proxy; do
  say enabled "$u" "$(systemctl is-enabled "$u.service")"
  say fragment "$u" "$(systemctl show -p FragmentPath --value "$u.service")"
  x=$(systemctl show -p ExecStart --value "$u.service" | sed -n 's/.*path=\([^ ;]*\).*/\1/p')
  say exec "$u" "$x" "$(sha256sum "$x" | cut -d' ' -f1)"
done
say secrets-unit "$(systemctl is-active nodeforge-secrets.service)" "$(systemctl show -p ConditionResult --value nodeforge-secrets.service)"
say secrets-after "$(systemctl show -p After --value kubelet.service | tr ' ' '\n' | grep -c '^nodeforge-secrets.service$')" "$(systemctl show -p After --value kube-proxy.service | tr ' ' '\n' | grep -c '^nodeforge-secrets.service$')"
say credentials "$(ls /run/credentials/@system 2>/dev/null | sort | tr '\n' ' ')"
while read -r f; do
  if [ -e "$f" ]; then
    say secret "$f" "$(readlink "$f")" "$(stat -L -c '%a %U:%G' "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)" "$(stat -f -L -c %T "$f")"
  else
    say secret "$f" "$(readlink "$f" || echo none)" absent
  fi
done </run/nf-test/secrets.list
say t-static "$(up)"

if [ "$mode" = first ]; then
  ctr -n nft images import /run/nf-test/oci.tar >/dev/null 2>&1; say import-rc $?
  say t-import "$(up)"
  out=$(ctr -n nft run --rm --runc-binary /usr/local/bin/runc localhost/nf-busybox:1 nf-c1 /bin/busybox echo NF-HELLO-FROM-A-CONTAINER 2>&1)
  say ctr-rc $?
  echo "$out" | sed 's/^/NFT ctr-out /'
  say t-run "$(up)"
  ip netns add nft
  out=$(CNI_COMMAND=ADD CNI_CONTAINERID=nft CNI_NETNS=/var/run/netns/nft CNI_IFNAME=eth0 \
    CNI_PATH=/opt/cni/bin /opt/cni/bin/bridge </etc/cni/net.d/10-bridge.conf 2>&1)
  say cni-rc $?
  echo "$out" | tr -d '\n' | sed 's/^/NFT cni-out /'; echo
  say cni-addr "$(ip -n nft -4 -o addr show dev eth0 | awk '{print $4}')"
  say t-cni "$(up)"
  wait $verify
  say verify-rc "$(cat /run/nf-test/verify.rc)"
  say t-verify "$(cat /run/nf-test/verify.start)" "$(cat /run/nf-test/verify.end)"
  sed 's/^/NFT verify-out /' /run/nf-test/verify.out
  # What a node's own boot writes: state under /var/lib, /etc/hostname (cloud-init would), and
  # edits of files the config layer owns (gone at the next boot). And a copy of the CA
  # certificate on the disk: the host must find it there (its search for secrets can see what
  # the VM writes), and nothing else of the secrets.
  mkdir -p /var/lib/nf-state && echo written-by-generation-2 >/var/lib/nf-state/marker
  cp /var/lib/kubernetes/ca.pem /var/lib/nf-state/ca-copy.pem
  echo nf-worker1 >/etc/hostname
  echo '# a local edit' >>/etc/containerd/config.toml
  rm -f /etc/cni/net.d/99-loopback.conf
  # A `kubeadm reset`-style clean-up: the directory removed and made again leaves an
  # overlay-opaque directory in the persistent /etc upper; the config layer's files in it must
  # be seen again at the next boot (issue 25: the boot script clears the mark).
  rm -rf /etc/kubernetes && mkdir /etc/kubernetes
fi
say END "$(up)"
sync
systemctl poweroff --force
"#;

const CHECK_UNIT: &str = "[Unit]
Description=nodeforge VM test checks
After=containerd.service nodeforge-secrets.service

[Service]
Type=simple
ExecStart=/bin/sh /run/nf-test/check
";

struct Vm {
    kernel: PathBuf,
    /// scripts/vm-initramfs: busybox, /init = scripts/vm-init.
    initrd: PathBuf,
    /// Debian's mkinitramfs with the shipped initramfs-tools hook and local-bottom script.
    initrd_tools: PathBuf,
    root: PathBuf,
}

/// Which initramfs a boot uses.
#[derive(Clone, Copy, PartialEq)]
enum Initramfs {
    Busybox,
    Tools,
}

impl Vm {
    /// Boot until the VM powers off; its console.
    fn boot(
        &self,
        initramfs: Initramfs,
        layers: &Layers,
        (payload, payload_hash, config_hash): (&Path, &str, &str),
        extra: &str,
        qemu_args: &[String],
    ) -> String {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-machine", "q35", "-accel", "tcg", "-cpu", "qemu64", "-m", "1024",
        ])
        .args([
            "-smp", "2", "-display", "none", "-monitor", "none", "-serial", "stdio",
        ])
        .args(["-no-reboot", "-nodefaults", "-kernel"])
        .arg(&self.kernel)
        .arg("-initrd")
        .arg(match initramfs {
            Initramfs::Busybox => &self.initrd,
            Initramfs::Tools => &self.initrd_tools,
        })
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet loglevel=3 panic=-1 systemd.show_status=0 \
                 systemd.mask=serial-getty@ttyS0.service systemd.mask=getty@tty1.service \
                 nodeforge.payload={payload_hash} nodeforge.config={config_hash} {}{extra}",
            if initramfs == Initramfs::Tools {
                "root=/dev/disk/by-id/virtio-nf-root "
            } else {
                ""
            }
        ))
        .arg("-drive")
        .arg(format!(
            "file={},format=qcow2,if=none,id=nf-root",
            self.root.display()
        ))
        .args(["-device", "virtio-blk-pci,drive=nf-root,serial=nf-root"]);
        cmd.args(layer_disks(layers, payload));
        cmd.args(qemu_args);
        let (console, took, killed) = crate::run_vm(&mut cmd, Duration::from_secs(240));
        // NODEFORGE_VM_LOG=DIR keeps every boot's console.
        if let Some(dir) = std::env::var_os("NODEFORGE_VM_LOG") {
            let mode = extra.split_whitespace().next().unwrap_or("boot");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(Path::new(&dir).join(format!("{mode}.log")), &console).unwrap();
        }
        eprintln!("systemd_vm: boot ({extra}) took {:.1}s", took.as_secs_f64());
        assert!(!killed, "the VM did not power off in 240 s:\n{console}");
        console
    }
}

/// The `NFT key rest` lines of a console.
fn report(console: &str) -> Vec<(String, String)> {
    console
        .lines()
        .filter_map(|l| l.find("NFT ").map(|at| &l[at + 4..]))
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_string(), v.trim().to_string())
        })
        .collect()
}

/// The check script ran to its end; prints the VM's uptime at its start and end.
#[track_caller]
fn ended(r: &[(String, String)], console: &str) {
    let begin = one(r, "BEGIN", console);
    let end = one(r, "END", console);
    eprintln!("systemd_vm: checks ran from uptime {begin} to {end} s");
}

#[track_caller]
fn one(r: &[(String, String)], key: &str, console: &str) -> String {
    let v: Vec<&String> = r.iter().filter(|(k, _)| k == key).map(|(_, v)| v).collect();
    assert_eq!(v.len(), 1, "expected one NFT {key} line:\n{console}");
    v[0].clone()
}

#[track_caller]
fn has(r: &[(String, String)], key: &str, value: &str, console: &str) {
    assert!(
        r.iter().any(|(k, v)| k == key && v == value),
        "expected `NFT {key} {value}`:\n{console}"
    );
}

/// The files of the config layer as the VM sees them in /etc: path → sha256.
fn etc_seen(r: &[(String, String)]) -> BTreeMap<String, String> {
    r.iter()
        .filter(|(k, _)| k == "etc")
        .map(|(_, v)| match v.split_once(' ') {
            Some((h, p)) => (p.to_string(), h.to_string()),
            // sha256sum printed nothing: the file is not there (hidden by an opaque directory).
            None => (v.to_string(), "unreadable".to_string()),
        })
        .collect()
}

/// The /etc files of an image (manifest.json, contents from the store): path → sha256.
fn etc_expected(ctx: &TestContext, image_dir: &Path) -> BTreeMap<String, String> {
    let m: serde_json::Value = crate::whole_record(&image_dir.join("manifest.json"));
    let mut out = BTreeMap::new();
    for e in m["entries"].as_array().unwrap() {
        let path = e["path"].as_str().unwrap();
        if e["kind"] != "file" || !path.starts_with("/etc/") {
            continue;
        }
        let b3 = e["blake3"].as_str().unwrap();
        let obj = ctx
            .store()
            .join("blake3")
            .join(&b3[..2])
            .join(&b3[2..4])
            .join(&b3[4..]);
        out.insert(path.to_string(), sha256_hex(&std::fs::read(obj).unwrap()));
    }
    out
}

#[track_caller]
fn assert_etc(seen: &BTreeMap<String, String>, want: &BTreeMap<String, String>, console: &str) {
    // The extension-release file is the layer's own (manifest.json may or may not list it).
    let strip = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(p, _)| !p.starts_with("/etc/extension-release.d/"))
            .map(|(p, h)| (p.clone(), h.clone()))
            .collect()
    };
    assert_eq!(
        strip(seen),
        strip(want),
        "the config layer's files in the VM's /etc differ from the image:\n{console}"
    );
}

fn current(ctx: &TestContext) -> PathBuf {
    std::fs::canonicalize(ctx.path().join("out/nodes/worker1/current")).unwrap()
}

#[test]
fn systemd_vm_runs_the_node_keeps_var_and_rolls_back() {
    // Under CI=true a missing tool is a failure; elsewhere the test says what it needs and skips.
    let tools = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("mmdebstrap", "mmdebstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("veritysetup", "cryptsetup-bin"),
        ("dmsetup", "dmsetup"),
        ("busybox", "busybox-static"),
        ("mkinitramfs", "initramfs-tools"),
        ("lz4", "lz4"),
        ("openssl", "openssl"),
    ];
    if !tools
        .iter()
        .all(|(tool, package)| crate::requires(tool, package))
    {
        return;
    }
    let mut t: Vec<(&'static str, Duration)> = Vec::new();
    let mut lap = Instant::now();
    let mut time = |what: &'static str, t: &mut Vec<(&'static str, Duration)>| {
        t.push((what, lap.elapsed()));
        lap = Instant::now();
    };
    let base = PathBuf::from(run(&mut script("vm-rootfs")).trim());
    time("rootfs", &mut t);
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let (manifest, mirror, real) = cached_mirror();
    time("mirror", &mut t);

    // Two generations through the normal commands: 1 (kubelet --v=2), then 2 (--v=7).
    let ctx = TestContext::with_manifest(&manifest);
    // The seed's containerd.service has `ExecStartPre=/sbin/modprobe overlay` without upstream's
    // leading `-`: on this root (no /lib/modules) the pre-step fails and containerd never starts.
    // Until the template is fixed (issue 11's branch), the test fixes its own copy so that every
    // other check runs, and fails at the end naming the template.
    let unit = ctx
        .path()
        .join("manifests/kubenet/etc/systemd/system/containerd.service");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    let seed_modprobe_bug = unit_text.contains("ExecStartPre=/sbin/modprobe");
    if seed_modprobe_bug {
        std::fs::write(
            &unit,
            unit_text.replace(
                "ExecStartPre=/sbin/modprobe",
                "ExecStartPre=-/sbin/modprobe",
            ),
        )
        .unwrap();
    }
    let mirror_url = format!("file://{}", mirror.display());
    ctx.run(&[
        "lock",
        "--offline",
        "--mirrors-only",
        "--trust-mirror-checksums",
        "--mirror",
        &mirror_url,
    ])
    .ok();
    ctx.run(&["fetch", "--offline", "--mirror", &mirror_url])
        .ok();
    ctx.run(&["build", "--offline", "--node", "worker1"]).ok();
    let gen1 = current(&ctx);
    crate::set_verbosity(&ctx, 7);
    ctx.run(&["build", "--offline", "--node", "worker1"]).ok();
    let gen2 = current(&ctx);
    assert_ne!(gen1, gen2);
    let want1 = etc_expected(&ctx, &gen1);
    let want2 = etc_expected(&ctx, &gen2);
    assert_ne!(
        want1, want2,
        "generations 1 and 2 differ in kubelet.service"
    );
    time("nodeforge lock, fetch, build x2", &mut t);

    // worker1's secrets, made with openssl as the README says, outside out/; checked, then
    // passed with the -fw_cfg arguments `show --boot --secrets` prints.
    let secrets = s.join("secrets");
    crate::secrets::make_ca(&s.join("ca"), "kubenet-ca", crate::secrets::Alg::Rsa);
    crate::secrets::make_secrets(
        &s.join("ca"),
        &secrets,
        &crate::secrets::NODES[4..5],
        |_| crate::secrets::Alg::Rsa,
    );
    let sd = secrets.to_str().unwrap();
    ctx.run(&["secrets", "check", "--node", "worker1", "--secrets", sd])
        .ok();
    let boot = ctx
        .run(&["show", "worker1", "--boot", "--secrets", sd, "--json"])
        .ok()
        .json();
    let qemu: Vec<String> = boot["qemu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let at = qemu.iter().position(|a| a == "-fw_cfg").unwrap();
    let fw_cfg = qemu[at..].to_vec();
    assert_eq!(fw_cfg.len(), 10, "{qemu:?}");
    // What each secret must be in the VM: path → (sha256, mode, owner).
    let want_secrets: Vec<(String, String, String)> = boot["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let file = std::fs::read(c["file"].as_str().unwrap()).unwrap();
            (
                c["to"].as_str().unwrap().to_string(),
                sha256_hex(&file),
                format!(
                    "{:o} {}",
                    c["mode"].as_u64().unwrap(),
                    c["owner"].as_str().unwrap()
                ),
            )
        })
        .collect();
    time("secrets (openssl, check)", &mut t);

    let extra = s.join("nf-test");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(
        extra.join("secrets.list"),
        want_secrets
            .iter()
            .map(|(to, _, _)| format!("{to}\n"))
            .collect::<String>(),
    )
    .unwrap();
    std::fs::write(extra.join("check"), CHECK).unwrap();
    std::fs::write(extra.join("nf-check.service"), CHECK_UNIT).unwrap();
    oci_archive(
        s,
        &extra.join("oci.tar"),
        "localhost/nf-busybox:1",
        &[(Path::new("/bin/busybox"), "bin/busybox")],
        serde_json::json!({ "Cmd": ["/bin/busybox", "sh"] }),
    );
    let initrd = s.join("initrd.cpio");
    run(script("vm-initramfs").arg(&initrd).arg(&extra));
    let kver = crate::vmkit::kernel_version();
    let initrd_tools = initramfs_tools(s, &kver, &extra);
    let root = s.join("root.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(&root));
    let vm = Vm {
        kernel: PathBuf::from(format!("/boot/vmlinuz-{kver}")),
        initrd,
        initrd_tools,
        root,
    };
    time("initramfs x2, OCI image, qcow2", &mut t);

    // 1. Generation 2: busybox initramfs, veritysetup.
    let l2 = layers(&gen2);
    let c = vm.boot(
        Initramfs::Busybox,
        &l2,
        (
            &l2.dir.join("nodeforge-payload.raw"),
            &l2.payload,
            &l2.config,
        ),
        "nftest.mode=first nftest.tool=veritysetup",
        &fw_cfg,
    );
    let r = report(&c);
    ended(&r, &c);
    has(&r, "containerd", "active", &c);
    has(&r, "hostname", "nf-base", &c);
    has(&r, "state", "none", &c);
    for (l, t) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
        has(&r, "link", &format!("{l} {t}"), &c);
    }
    assert_etc(&etc_seen(&r), &want2, &c);
    let bb = sha256_hex(&real.busybox);
    for u in ["containerd", "kubelet", "kube-proxy"] {
        has(&r, "enabled", &format!("{u} enabled"), &c);
        has(
            &r,
            "fragment",
            &format!("{u} /etc/systemd/system/{u}.service"),
            &c,
        );
    }
    has(
        &r,
        "exec",
        &format!("kubelet /usr/local/bin/kubelet {bb}"),
        &c,
    );
    has(
        &r,
        "exec",
        &format!("kube-proxy /usr/local/bin/kube-proxy {bb}"),
        &c,
    );
    has(
        &r,
        "exec",
        &format!(
            "containerd /usr/bin/containerd {}",
            sha256_hex(&real.containerd)
        ),
        &c,
    );
    has(&r, "verify-rc", "0", &c);
    assert!(
        !r.iter().any(|(k, _)| k == "verify-out"),
        "systemd-analyze verify of the image's units is not clean:\n{c}"
    );
    has(&r, "import-rc", "0", &c);
    has(&r, "ctr-rc", "0", &c);
    has(&r, "ctr-out", "NF-HELLO-FROM-A-CONTAINER", &c);
    has(&r, "cni-rc", "0", &c);
    let addr = one(&r, "cni-addr", &c);
    let addr: ipnet::Ipv4Net = addr
        .parse()
        .unwrap_or_else(|e| panic!("cni-addr {addr:?}: {e}\n{c}"));
    let pod: ipnet::Ipv4Net = "10.5.0.0/16".parse().unwrap();
    assert!(
        pod.contains(&addr.addr()),
        "{addr} is outside worker1's pod range {pod}:\n{c}"
    );
    let machine_id = one(&r, "machine-id", &c);
    assert_eq!(machine_id.len(), 32, "{c}");
    // The secrets: imported by systemd, placed by the config layer's unit before kubelet and
    // kube-proxy, each at its path as a symlink into /run (tmpfs) with its content, mode, owner.
    has(&r, "secrets-unit", "active yes", &c);
    has(&r, "secrets-after", "1 1", &c);
    has(
        &r,
        "credentials",
        "ca.pem kube-proxy.kubeconfig kubelet-key.pem kubelet.kubeconfig kubelet.pem",
        &c,
    );
    // The credential name `show --boot` gave the secret placed at `to`.
    let credential_name = |to: &str| {
        boot["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["to"] == to)
            .unwrap()["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (to, sha, mode) in &want_secrets {
        let name = credential_name(to);
        has(
            &r,
            "secret",
            &format!("{to} /run/nodeforge/secrets/{name} {mode} {sha} tmpfs"),
            &c,
        );
    }
    // None of their bytes went to a disk: not the VM's qcow2 overlay (everything it wrote), not
    // its base image, not out/. Only the CA certificate the check script copied to /var is on
    // the overlay: the search sees what the VM writes.
    let found = crate::secrets::leaks(&secrets, &[&vm.root, &base, &ctx.path().join("out")]);
    let (copied, leaked): (Vec<&String>, Vec<&String>) = found
        .iter()
        .partition(|f| f.starts_with("ca.pem ") && f.ends_with("root.qcow2"));
    assert!(leaked.is_empty(), "secrets found on disk: {leaked:#?}");
    assert!(
        copied.iter().any(|f| f.starts_with("ca.pem bytes in ")),
        "the CA certificate the VM copied to /var is not found on its disk: {found:#?}"
    );
    time("boot 1 (gen 2)", &mut t);

    // 2. `nodeforge rollback`, generation 1: Debian's initramfs-tools with the shipped hook and
    //    local-bottom script (veritysetup), root mounted read-only by initramfs-tools.
    ctx.run(&["rollback", "worker1"]).ok();
    assert_eq!(current(&ctx), gen1);
    let l1 = layers(&gen1);
    let c = vm.boot(
        Initramfs::Tools,
        &l1,
        (
            &l1.dir.join("nodeforge-payload.raw"),
            &l1.payload,
            &l1.config,
        ),
        "nftest.mode=second",
        &[],
    );
    let r = report(&c);
    ended(&r, &c);
    has(&r, "containerd", "active", &c);
    assert_etc(&etc_seen(&r), &want1, &c);
    has(&r, "state", "written-by-generation-2", &c);
    has(&r, "hostname", "nf-worker1", &c);
    has(&r, "machine-id", &machine_id, &c);
    has(&r, "images", "localhost/nf-busybox:1", &c);
    for u in ["kubelet", "kube-proxy"] {
        has(&r, "enabled", &format!("{u} enabled"), &c);
    }
    // Booted without credentials: the placement unit does not run, and the secrets' paths (the
    // symlinks on /var) lead nowhere: their content was in memory only.
    has(&r, "secrets-unit", "inactive no", &c);
    has(&r, "credentials", "", &c);
    for (to, _, _) in &want_secrets {
        let name = credential_name(to);
        has(
            &r,
            "secret",
            &format!("{to} /run/nodeforge/secrets/{name} absent"),
            &c,
        );
    }
    time("boot 2 (rollback, initramfs-tools)", &mut t);

    // 3. A flipped byte inside runc's data: reading runc through the mounted layers fails in the
    //    VM, other files read (checked right after the integration ran, before systemd; dmsetup).
    let img = std::fs::read(l1.dir.join("nodeforge-payload.raw")).unwrap();
    let at = memchr::memmem::find(&img, &real.runc[4096..4096 + 64])
        .expect("runc's data in the payload layer")
        + real.runc.len() / 2;
    let flipped = s.join("flipped-payload.raw");
    std::fs::copy(l1.dir.join("nodeforge-payload.raw"), &flipped).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&flipped)
            .unwrap();
        f.write_all_at(&[img[at] ^ 0x01], at as u64).unwrap();
    }
    let c = vm.boot(
        Initramfs::Busybox,
        &l1,
        (&flipped, &l1.payload, &l1.config),
        "nftest.mode=flip nftest.tool=dmsetup",
        &[],
    );
    let r = report(&c);
    has(&r, "eio", "/usr/local/bin/runc", &c);
    has(&r, "read-ok", "/usr/local/bin/kubelet", &c);
    has(&r, "read-ok", "/usr/bin/containerd", &c);
    has(&r, "read-ok", "/opt/cni/bin/bridge", &c);
    time("boot 3 (flipped byte)", &mut t);

    // 4. A wrong root hash stops the boot with the integration's message, before systemd: the
    //    payload's under initramfs-tools (veritysetup, then panic), the config's under busybox
    //    (dmsetup).
    let wrong = |h: &str| {
        let mut w = h.to_string().into_bytes();
        w[63] = if w[63] == b'0' { b'1' } else { b'0' };
        String::from_utf8(w).unwrap()
    };
    let (wp, wc) = (wrong(&l1.payload), wrong(&l1.config));
    let c = vm.boot(
        Initramfs::Tools,
        &l1,
        (&l1.dir.join("nodeforge-payload.raw"), &wp, &l1.config),
        "nftest.mode=wrong",
        &[],
    );
    assert!(
        c.contains(&format!(
            "nodeforge: payload layer does not match root hash {wp}"
        )) && c.contains("nodeforge: the node's layers did not verify or mount"),
        "a wrong root hash must stop the boot with the integration's message:\n{c}"
    );
    assert!(!c.contains("NFT BEGIN"), "systemd ran:\n{c}");
    let c = vm.boot(
        Initramfs::Busybox,
        &l1,
        (&l1.dir.join("nodeforge-payload.raw"), &l1.payload, &wc),
        "nftest.mode=wrong nftest.tool=dmsetup",
        &[],
    );
    assert!(
        c.contains(&format!(
            "nodeforge: config layer does not match root hash {wc}"
        )) && c.contains("NF-BOOT-STOPPED"),
        "a wrong root hash must stop the boot with the integration's message:\n{c}"
    );
    assert!(!c.contains("NFT BEGIN"), "systemd ran:\n{c}");
    time("boots 4+5 (wrong root hashes)", &mut t);

    let total: Duration = t.iter().map(|(_, d)| *d).sum();
    let parts: Vec<String> = t
        .iter()
        .map(|(w, d)| format!("{w} {:.1}s", d.as_secs_f64()))
        .collect();
    eprintln!(
        "systemd_vm: {}, total {:.1}s",
        parts.join(", "),
        total.as_secs_f64()
    );
    assert!(
        !seed_modprobe_bug,
        "every VM check passed with the test's fixed copy, but manifests/kubenet/etc/systemd/system/\
         containerd.service still has `ExecStartPre=/sbin/modprobe overlay`: on a root without \
         /lib/modules/$(uname -r) the pre-step fails and containerd never starts; upstream's unit \
         has `ExecStartPre=-/sbin/modprobe overlay`"
    );
}

/// Debian's initramfs-tools (mkinitramfs -d, a private config dir) with THE SHIPPED
/// contrib/initramfs-tools hook and local-bottom script (byte for byte), plus a test hook and
/// local-bottom script that put the checks into /run like scripts/vm-init does.
fn initramfs_tools(scratch: &Path, kver: &str, extra: &Path) -> PathBuf {
    let conf = scratch.join("initramfs-tools");
    let contrib = Path::new(REPO).join("contrib");
    std::fs::create_dir_all(conf.join("hooks")).unwrap();
    std::fs::create_dir_all(conf.join("scripts/local-bottom")).unwrap();
    std::fs::create_dir_all(conf.join("conf.d")).unwrap();
    std::fs::write(
        conf.join("initramfs.conf"),
        "MODULES=list\nBUSYBOX=y\nCOMPRESS=lz4\nRUNSIZE=10%\nFSTYPE=ext4\n",
    )
    .unwrap();
    std::fs::write(conf.join("modules"), "virtio_pci\nvirtio_blk\n").unwrap();
    for f in ["hooks/nodeforge", "scripts/local-bottom/nodeforge"] {
        std::fs::copy(contrib.join("initramfs-tools").join(f), conf.join(f)).unwrap();
    }
    std::fs::write(conf.join("hooks/nftest"), TEST_HOOK).unwrap();
    std::fs::write(conf.join("scripts/local-bottom/nftest"), TEST_LOCAL_BOTTOM).unwrap();
    for f in ["hooks/nftest", "scripts/local-bottom/nftest"] {
        run(Command::new("chmod").arg("0755").arg(conf.join(f)));
    }
    let out = scratch.join("initrd-tools.img");
    run(Command::new("mkinitramfs")
        .arg("-d")
        .arg(&conf)
        .arg("-o")
        .arg(&out)
        .arg(kver)
        .env(
            "NODEFORGE_MOUNT_LAYERS",
            contrib.join("nodeforge-mount-layers"),
        )
        .env("NFTEST_DIR", extra));
    out
}

const TEST_HOOK: &str = r#"#!/bin/sh
case "$1" in prereqs) echo ""; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
mkdir -p "$DESTDIR/nf-test"
cp -a "$NFTEST_DIR/." "$DESTDIR/nf-test/"
"#;

const TEST_LOCAL_BOTTOM: &str = r#"#!/bin/sh
PREREQ="nodeforge"
case "$1" in prereqs) echo "$PREREQ"; exit 0 ;; esac
mkdir -p /run/nf-test /run/systemd/system/multi-user.target.wants
cp -a /nf-test/. /run/nf-test/
for u in /nf-test/*.service; do
  cp "$u" /run/systemd/system/
  ln -s "../${u##*/}" "/run/systemd/system/multi-user.target.wants/${u##*/}"
done
"#;

/// The shipped guest scripts are POSIX sh: they parse under dash and busybox sh, and the logic
/// script refuses to run without a root (its message starts with `nodeforge:`).
#[test]
fn contrib_scripts_parse_under_dash_and_busybox() {
    if !crate::requires("busybox", "busybox-static") {
        return;
    }
    let contrib = Path::new(REPO).join("contrib");
    let scripts = [
        contrib.join("nodeforge-mount-layers"),
        contrib.join("initramfs-tools/hooks/nodeforge"),
        contrib.join("initramfs-tools/scripts/local-bottom/nodeforge"),
    ];
    for sh in [&["dash"][..], &["busybox", "sh"][..]] {
        for s in &scripts {
            run(Command::new(sh[0]).args(&sh[1..]).arg("-n").arg(s));
        }
        let out = Command::new(sh[0])
            .args(&sh[1..])
            .arg(&scripts[0])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{sh:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("nodeforge: usage:"),
            "{sh:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
