//! The stock systemd route (contrib/README.md, "A guest with systemd-sysext/confext"), run as
//! written: the README's command block for the guest's systemd, executed in a VM booted from a
//! Debian 12 root (systemd 252, `scripts/vm-rootfs`) or one with bookworm-backports' systemd 254
//! (`scripts/vm-rootfs backports`), with no nodeforge code in the guest (the busybox initramfs
//! only mounts the root: no `nodeforge.*` on the kernel command line, so the shipped mount script
//! does nothing). The node image is worker1's, built by the normal commands from Debian's real
//! containerd, runc and CNI plugins (the mirror `systemd_vm.rs` makes; busybox stands in for
//! kubelet, kube-proxy and crictl). The VM's disks are attached with exactly the `-drive`/
//! `-device` arguments `nodeforge show worker1 --boot --json` prints, VM_DISK replaced by the
//! VM's qcow2 overlay; the six files the README copies are read from those disks (and the root
//! hashes from the image), as an operator would copy them in.
//!
//! Boots, one after another on one overlay:
//!  1. install: VM_DISK is /dev/vda (serial nf-root), then the layer disks in the printed order;
//!     the README's block succeeds; containerd is active, running the payload's binary, and
//!     kubelet and kube-proxy were started; each merged layer is a dm-verity mapping with the
//!     root hash the image pins (on 252 the config layer's files are in /etc, read through
//!     verity);
//!  2. a plain reboot: the same, with nothing run by hand (the units start after the merge);
//!  3. (254) the payload's `.roothash` deleted, reboot: the image policy refuses the payload
//!     (the journal says so), its binaries are absent and containerd does not run;
//!  4. (254) the root hash back, and the confext drop-in without its `daemon-reload` and start
//!     (stock systemd's behaviour), reboot: both layers merge through verity and the units'
//!     files are in /etc, but containerd, kubelet and kube-proxy are never started — what the
//!     drop-in is for.
//!
//! Needs root, qemu-system-x86, qemu-utils, linux-image-cloud-amd64, busybox-static, dmsetup,
//! cryptsetup-bin, mmdebstrap, e2fsprogs (.ci/run installs them); the first run fills
//! `$NODEFORGE_VM_CACHE` from the Debian archive (both root filesystems, bookworm-backports
//! included).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::vmkit::{run, script};
use crate::{sha256_hex, TestContext, REPO};

/// Which guest: its `scripts/vm-rootfs` variant and the contrib/README.md heading of its block.
#[derive(Clone, Copy, PartialEq)]
enum Systemd {
    /// Debian 12: systemd 252, sysext only.
    V252,
    /// bookworm-backports: systemd 254, sysext and confext with an image policy.
    V254,
}

impl Systemd {
    fn heading(self) -> &'static str {
        match self {
            Systemd::V252 => "### systemd 252 (Debian 12)",
            Systemd::V254 => "### systemd 254 or later",
        }
    }

    fn version(self) -> &'static str {
        match self {
            Systemd::V252 => "systemd 252 ",
            Systemd::V254 => "systemd 254 ",
        }
    }
}

/// The first ```sh block under `heading` in contrib/README.md.
fn readme_block(heading: &str) -> String {
    let text = std::fs::read_to_string(Path::new(REPO).join("contrib/README.md")).unwrap();
    let at = text
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("contrib/README.md has no heading `{heading}`"));
    let rest = &text[at..];
    let start = rest.find("\n```sh\n").expect("a ```sh block") + 7;
    let end = rest[start..].find("\n```").expect("the block's end") + start;
    format!("{}\n", &rest[start..end])
}

/// What runs in the VM once systemd is up (nf-check.service); every line for the host starts
/// with `NFT `. `nftest.mode=` picks what it does.
const CHECK: &str = r#"#!/bin/sh
exec >/dev/ttyS0 2>&1
mode=$(sed -n 's/.*nftest\.mode=\([a-z]*\).*/\1/p' /proc/cmdline)
say() { echo "NFT $*"; }
say BEGIN "$mode"
say systemd "$(systemctl --version | head -1)"
for d in vda vdb vdc vdd vde; do say disk "$d" "$(cat /sys/block/$d/serial 2>/dev/null)"; done
if [ "$mode" = install ]; then
  # The six files as an operator copies them in: the layers from their disks, the root hashes.
  mkdir -p /root/node && cd /root/node
  for l in payload config; do
    ln -s /dev/disk/by-id/virtio-nf-$l nodeforge-$l.raw
    ln -s /dev/disk/by-id/virtio-nf-$l-verity nodeforge-$l.verity
    cp /run/nf-test/nodeforge-$l.roothash .
  done
  mkdir -p contrib && cp -r /run/nf-test/contrib/systemd contrib/
  sh -ex /run/nf-test/route.sh >/run/nf-test/route.out 2>&1
  say route-rc $?
  sed 's/^/NFT route-out /' /run/nf-test/route.out
fi
# Up to 90 s for containerd (a reboot starts it by itself, after the merge); none when the
# payload is not merged (this unit runs after systemd-sysext.service) or nothing starts it.
i=0
until [ ! -e /usr/bin/containerd ] || [ "$mode" = stock ] || { [ "$(systemctl is-active containerd.service)" = active ] && ctr version >/dev/null 2>&1; }; do
  i=$((i + 1)); [ $i -gt 180 ] && break; sleep 0.5
done
for u in containerd kubelet kube-proxy; do
  say active "$u" "$(systemctl is-active "$u.service")"
  say started "$u" "$(systemctl show -p InactiveExitTimestampMonotonic --value "$u.service")"
done
say containerd-sha256 "$(sha256sum /usr/bin/containerd 2>/dev/null | cut -d' ' -f1)"
say kubelet-present "$([ -e /usr/local/bin/kubelet ] && echo yes || echo no)"
say containerd-config "$(sha256sum /etc/containerd/config.toml 2>/dev/null | cut -d' ' -f1)"
dmsetup table 2>/dev/null | awk '$4 == "verity" {print "NFT verity", $(NF-1)}'
say etc-fstype "$(findmnt -n -o FSTYPE,OPTIONS --mountpoint /etc | tail -1 | cut -d, -f1)"
journalctl -b -u systemd-sysext.service -u systemd-confext.service --no-pager 2>&1 | sed 's/^/NFT journal /'
say unit-file "$([ -e /etc/systemd/system/containerd.service ] && echo yes || echo no)"
if [ "$mode" = reboot ] && [ -e /run/nf-test/delete-roothash ]; then
  rm /var/lib/extensions/nodeforge-payload.roothash
  say deleted-roothash
fi
# Stock systemd: the root hash back, the confext drop-in without its daemon-reload and start
# (written with /etc unmerged: the confext's /etc is read-only).
if [ "$mode" = norh ]; then
  cp /run/nf-test/nodeforge-payload.roothash /var/lib/extensions/ &&
    systemd-confext unmerge >/dev/null &&
    sed -i '/^ExecStartPost=/d' /etc/systemd/system/systemd-confext.service.d/nodeforge.conf &&
    say stock-next
fi
say END
sync
systemctl poweroff --force
"#;

const CHECK_UNIT: &str = "[Unit]
Description=nodeforge VM test checks
After=systemd-sysext.service systemd-confext.service

[Service]
Type=simple
ExecStart=/bin/sh /run/nf-test/check
";

/// The `NFT key rest` lines of a console, as (key, rest).
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

fn values<'a>(r: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    r.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn one<'a>(r: &'a [(String, String)], key: &str, console: &str) -> &'a str {
    match values(r, key)[..] {
        [v] => v,
        _ => panic!("the VM reported `{key}` not exactly once:\n{console}"),
    }
}

/// A value of `key` that starts with `prefix`: its rest.
fn of<'a>(r: &'a [(String, String)], key: &str, prefix: &str, console: &str) -> &'a str {
    values(r, key)
        .into_iter()
        .find_map(|v| v.strip_prefix(prefix).map(str::trim))
        .unwrap_or_else(|| panic!("the VM reported no `{key} {prefix}`:\n{console}"))
}

struct Guest {
    kernel: PathBuf,
    initrd: PathBuf,
    /// The `-drive`/`-device` arguments `show --boot` prints, VM_DISK replaced.
    disks: Vec<String>,
}

impl Guest {
    fn boot(&self, systemd: Systemd, mode: &str) -> String {
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
        .arg(&self.initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet loglevel=3 panic=-1 systemd.show_status=0 \
             systemd.mask=serial-getty@ttyS0.service systemd.mask=getty@tty1.service \
             nftest.mode={mode}"
        ))
        .args(&self.disks);
        let (console, took, killed) = crate::run_vm(&mut cmd, Duration::from_secs(300));
        if let Some(dir) = std::env::var_os("NODEFORGE_VM_LOG") {
            std::fs::create_dir_all(&dir).unwrap();
            let v = systemd.version().trim().replace(' ', "-");
            std::fs::write(
                Path::new(&dir).join(format!("sysext-{v}-{mode}.log")),
                &console,
            )
            .unwrap();
        }
        eprintln!(
            "sysext_vm: {}boot ({mode}) took {:.1}s",
            systemd.version(),
            took.as_secs_f64()
        );
        assert!(!killed, "the VM did not power off in 300 s:\n{console}");
        assert!(
            console.contains("NFT END"),
            "the VM's checks did not finish:\n{console}"
        );
        console
    }
}

/// containerd active from the payload's binary, kubelet and kube-proxy started, each layer
/// merged through dm-verity with the root hash the image pins.
fn assert_node_runs(
    r: &[(String, String)],
    console: &str,
    containerd_sha: &str,
    pinned: &[&str],
    config_sha: &str,
) {
    assert_eq!(
        of(r, "active", "containerd", console),
        "active",
        "{console}"
    );
    for u in ["kubelet", "kube-proxy"] {
        assert_ne!(
            of(r, "started", u, console),
            "0",
            "{u} was never started:\n{console}"
        );
    }
    assert_eq!(one(r, "containerd-sha256", console), containerd_sha);
    assert_eq!(one(r, "containerd-config", console), config_sha);
    let verity = values(r, "verity");
    for hash in pinned {
        assert!(
            verity.contains(hash),
            "no dm-verity mapping with the pinned root hash {hash} ({verity:?}):\n{console}"
        );
    }
}

fn route(systemd: Systemd) {
    let tools = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("mmdebstrap", "mmdebstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("dmsetup", "dmsetup"),
        ("busybox", "busybox-static"),
    ];
    if !tools
        .iter()
        .all(|(tool, package)| crate::requires(tool, package))
    {
        return;
    }
    let mut rootfs = script("vm-rootfs");
    if systemd == Systemd::V254 {
        rootfs.arg("backports");
    }
    let base = PathBuf::from(run(&mut rootfs).trim());
    let (manifest, mirror, real) = crate::systemd_vm::cached_mirror();
    let ctx = TestContext::with_manifest(&manifest);
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
    ctx.run(&[
        "build",
        "--offline",
        "--mirror",
        &mirror_url,
        "--node",
        "worker1",
    ])
    .ok();
    let image = std::fs::canonicalize(ctx.path().join("out/nodes/worker1/current")).unwrap();
    let layers = crate::vmkit::layers(&image);
    let config_sha = sha256_hex(
        &std::fs::read(
            ctx.path()
                .join("manifests/kubenet/etc/containerd/config.toml"),
        )
        .unwrap(),
    );

    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let root = s.join("root.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(&root));
    // The disks exactly as `show --boot` attaches them.
    let plan = ctx
        .run(&["show", "worker1", "--boot", "--json"])
        .ok()
        .json();
    assert_eq!(plan["root"], "/dev/vda1");
    let qemu: Vec<String> = plan["qemu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace("VM_DISK", root.to_str().unwrap())
        })
        .collect();
    let mut disks = Vec::new();
    for w in qemu.windows(2) {
        if w[0] == "-drive" || w[0] == "-device" {
            disks.extend_from_slice(w);
        }
    }
    assert_eq!(disks.len(), 20, "five disks: {qemu:?}");

    let extra = s.join("nf-test");
    std::fs::create_dir_all(extra.join("contrib")).unwrap();
    std::fs::write(extra.join("check"), CHECK).unwrap();
    std::fs::write(extra.join("nf-check.service"), CHECK_UNIT).unwrap();
    std::fs::write(extra.join("route.sh"), readme_block(systemd.heading())).unwrap();
    if systemd == Systemd::V254 {
        std::fs::write(extra.join("delete-roothash"), "").unwrap();
    }
    for (l, hash) in [("payload", &layers.payload), ("config", &layers.config)] {
        std::fs::write(extra.join(format!("nodeforge-{l}.roothash")), hash).unwrap();
    }
    crate::copy_tree(
        &Path::new(REPO).join("contrib/systemd"),
        &extra.join("contrib/systemd"),
    );
    let initrd = s.join("initrd.cpio");
    run(script("vm-initramfs").arg(&initrd).arg(&extra));
    let guest = Guest {
        kernel: PathBuf::from(format!("/boot/vmlinuz-{}", crate::vmkit::kernel_version())),
        initrd,
        disks,
    };
    let containerd_sha = sha256_hex(&real.containerd);
    let pinned: Vec<&str> = match systemd {
        Systemd::V252 => vec![&layers.payload],
        Systemd::V254 => vec![&layers.payload, &layers.config],
    };

    // 1. The README's block, by hand.
    let c = guest.boot(systemd, "install");
    let r = report(&c);
    assert!(one(&r, "systemd", &c).starts_with(systemd.version()), "{c}");
    let serials: Vec<&str> = values(&r, "disk");
    assert_eq!(
        serials,
        [
            "vda nf-root",
            "vdb nf-payload",
            "vdc nf-payload-verity",
            "vdd nf-config",
            "vde nf-config-verity"
        ],
        "the disks in the order show --boot gives them:\n{c}"
    );
    assert_eq!(
        one(&r, "route-rc", &c),
        "0",
        "contrib/README.md's block failed in the VM:\n{c}"
    );
    assert_node_runs(&r, &c, &containerd_sha, &pinned, &config_sha);
    if systemd == Systemd::V254 {
        assert!(
            one(&r, "etc-fstype", &c).starts_with("overlay ro"),
            "/etc is the confext's read-only overlay:\n{c}"
        );
    }

    // 2. A plain reboot: everything starts by itself, after the merge.
    let c = guest.boot(systemd, "reboot");
    let r = report(&c);
    assert_node_runs(&r, &c, &containerd_sha, &pinned, &config_sha);
    if systemd == Systemd::V252 {
        return;
    }

    // 3. The payload's root hash deleted: the image policy refuses it.
    assert_eq!(values(&r, "deleted-roothash").len(), 1, "{c}");
    let c = guest.boot(systemd, "norh");
    let r = report(&c);
    assert!(
        values(&r, "journal")
            .iter()
            .any(|l| l.contains("nodeforge-payload.raw: Image does not match image policy")),
        "systemd-sysext did not refuse the payload without its root hash:\n{c}"
    );
    assert_eq!(one(&r, "kubelet-present", &c), "no", "{c}");
    assert_ne!(of(&r, "active", "containerd", &c), "active", "{c}");
    assert!(
        !values(&r, "verity").contains(&layers.payload.as_str()),
        "{c}"
    );
    assert_eq!(values(&r, "stock-next").len(), 1, "{c}");

    // 4. Without the drop-in's reload and start: merged, and nothing started.
    let c = guest.boot(systemd, "stock");
    let r = report(&c);
    let verity = values(&r, "verity");
    assert!(
        pinned.iter().all(|h| verity.contains(h)),
        "both layers merged through verity:\n{c}"
    );
    assert_eq!(one(&r, "unit-file", &c), "yes", "{c}");
    for u in ["containerd", "kubelet", "kube-proxy"] {
        assert_eq!(
            of(&r, "started", u, &c),
            "0",
            "{u} started without the drop-in's reload (then the drop-in is not needed):\n{c}"
        );
    }
}

#[test]
fn sysext_route_on_debian_12_systemd_252() {
    route(Systemd::V252);
}

#[test]
fn sysext_confext_route_with_verity_required_on_systemd_254() {
    route(Systemd::V254);
}
