//! The guest's boot script, `contrib/nodeforge-mount-layers`, function by function under both
//! shells it promises to run in (dash and busybox sh): what it accepts on the kernel command line,
//! the bounds it puts on a verity superblock, and how it cleans the persistent `/etc` upper so
//! the config layer's files show after the VM replaced a directory (`rm -rf /etc/kubernetes &&
//! mkdir /etc/kubernetes` leaves an overlay-opaque directory in the upper). The functions are
//! sourced with `NODEFORGE_MOUNT_LAYERS_LIB=1`; the overlay cases mount tmpfs and overlayfs in a
//! private mount namespace (`unshare -m`, root). The whole boot, with dm-verity and a reboot into a
//! rollback, is `systemd_vm.rs`'s.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{requires, requires_that, REPO};

fn script() -> PathBuf {
    Path::new(REPO).join("contrib/nodeforge-mount-layers")
}

/// The shells the script must run under, each as a command that takes `-c SCRIPT ARG0 ARGS…`.
fn shells() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out = Vec::new();
    if requires("dash", "dash") {
        out.push(("dash", vec!["dash"]));
    }
    if requires("busybox", "busybox-static") {
        out.push(("busybox sh", vec!["busybox", "sh"]));
    }
    out
}

/// Runs `body` under `shell` after sourcing the script's functions; `args` are `$1…`.
fn run(shell: &[&str], body: &str, args: &[&str]) -> Output {
    let program = format!(". \"$NF_SCRIPT\"\n{body}");
    Command::new(shell[0])
        .args(&shell[1..])
        .arg("-c")
        .arg(program)
        .arg("nodeforge-mount-layers-test")
        .args(args)
        .env("NODEFORGE_MOUNT_LAYERS_LIB", "1")
        .env("NF_SCRIPT", script())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "rc={:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const PARSE: &str = "parse_cmdline \"$1\"; echo \"payload=$payload_hash config=$config_hash\"";

fn hex(c: char) -> String {
    c.to_string().repeat(64)
}

#[test]
fn boot_script_takes_both_pinned_root_hashes_or_neither() {
    let (p, c) = (hex('a'), hex('b'));
    for (name, sh) in shells() {
        let line =
            format!("console=ttyS0 nodeforge.payload={p} root=/dev/vda nodeforge.config={c}");
        let o = run(&sh, PARSE, &[&line]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            format!("payload={p} config={c}"),
            "{name}"
        );
        // Not a nodeforge node: nothing to do. A glob on the command line stays a word.
        let o = run(&sh, PARSE, &["console=ttyS0 root=/dev/vda *"]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "payload= config="
        );
    }
}

#[test]
fn boot_script_refuses_empty_root_hash_parameters() {
    let (p, c) = (hex('a'), hex('b'));
    let cases = [
        format!("nodeforge.payload= nodeforge.config={c}"),
        format!("nodeforge.payload={p} nodeforge.config="),
        "nodeforge.payload= nodeforge.config=".to_string(),
        "nodeforge.payload=".to_string(),
        format!("nodeforge.payload nodeforge.config={c}"),
        format!("\"nodeforge.payload={p}\" nodeforge.config={c}"),
    ];
    for (name, sh) in shells() {
        for line in &cases {
            let o = run(&sh, PARSE, &[line]);
            assert_eq!(
                o.status.code(),
                Some(1),
                "{name} booted with {line:?}: {}",
                text(&o)
            );
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("nodeforge: "), "{name}: {}", text(&o));
            assert!(
                !String::from_utf8_lossy(&o.stdout).contains("payload="),
                "{name}"
            );
        }
    }
}

#[test]
fn boot_script_refuses_duplicated_root_hash_parameters_including_empty_ones_after_the_pinned() {
    let (p, c, other) = (hex('a'), hex('b'), hex('c'));
    let cases = [
        // An empty duplicate after the pinned ones used to win and boot the plain root.
        (
            format!(
                "nodeforge.payload={p} nodeforge.config={c} nodeforge.payload= nodeforge.config="
            ),
            "nodeforge.payload= is given 2 times",
        ),
        (
            format!("nodeforge.payload={p} nodeforge.config={c} nodeforge.config={other}"),
            "nodeforge.config= is given 2 times",
        ),
        (
            format!("nodeforge.payload={p} nodeforge.payload={p} nodeforge.config={c}"),
            "nodeforge.payload= is given 2 times",
        ),
    ];
    for (name, sh) in shells() {
        for (line, message) in &cases {
            let o = run(&sh, PARSE, &[line]);
            assert_eq!(
                o.status.code(),
                Some(1),
                "{name} booted with {line:?}: {}",
                text(&o)
            );
            assert!(
                String::from_utf8_lossy(&o.stderr).contains(message),
                "{name}: {line:?}: {}",
                text(&o)
            );
        }
    }
}

/// A verity superblock as `veritysetup format` writes it (format 1), with the fields given.
fn superblock(hash_type: u32, blocks: u64, salt: &[u8]) -> Vec<u8> {
    let mut sb = Vec::new();
    sb.extend_from_slice(b"verity\0\0");
    sb.extend_from_slice(&1u32.to_le_bytes());
    sb.extend_from_slice(&hash_type.to_le_bytes());
    sb.extend_from_slice(&[7u8; 16]);
    let mut alg = [0u8; 32];
    alg[..6].copy_from_slice(b"sha256");
    sb.extend_from_slice(&alg);
    sb.extend_from_slice(&4096u32.to_le_bytes());
    sb.extend_from_slice(&4096u32.to_le_bytes());
    sb.extend_from_slice(&blocks.to_le_bytes());
    sb.extend_from_slice(&u16::try_from(salt.len()).unwrap().to_le_bytes());
    sb.extend_from_slice(&[0u8; 6]);
    let mut s = [0u8; 256];
    s[..salt.len()].copy_from_slice(salt);
    sb.extend_from_slice(&s);
    sb.resize(4096, 0);
    sb
}

const CHECK: &str =
    "check_superblock payload \"$1\" \"$2\"; echo \"hash_type=$hash_type blocks=$blocks salt=$salt\"";

fn check_superblock(sh: &[&str], sb: &[u8], disk_sectors: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let hash = dir.path().join("hash");
    std::fs::write(&hash, sb).unwrap();
    run(sh, CHECK, &[hash.to_str().unwrap(), disk_sectors])
}

#[test]
fn boot_script_reads_the_superblock_nodeforge_writes() {
    let salt = [0xabu8; 32];
    for (name, sh) in shells() {
        let o = check_superblock(&sh, &superblock(1, 300, &salt), "2400");
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            format!("hash_type=1 blocks=300 salt={}", "ab".repeat(32)),
            "{name}"
        );
        // One sector short of 300 blocks.
        let o = check_superblock(&sh, &superblock(1, 300, &salt), "2399");
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
    }
}

#[test]
fn boot_script_superblock_with_blocks_2_pow_61_plus_1_does_not_overflow_the_size_check() {
    // blocks * 8 = 2^64 + 8, which wraps to 8 in 64-bit shell arithmetic: a disk of 8 sectors
    // passed the old check, and the table then mapped 8 sectors of a 2^61-block device.
    let salt = [1u8; 32];
    for (name, sh) in shells() {
        for blocks in [(1u64 << 61) + 1, 1u64 << 63, u64::MAX, 1u64 << 48] {
            let o = check_superblock(&sh, &superblock(1, blocks, &salt), "8");
            assert_eq!(
                o.status.code(),
                Some(1),
                "{name}: blocks={blocks}: {}",
                text(&o)
            );
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("corrupt verity superblock"),
                "{name}: blocks={blocks}: {}",
                text(&o)
            );
        }
        // Within 2^48 but beyond the disk, and a disk size too large for the shell's arithmetic.
        let o = check_superblock(&sh, &superblock(1, (1 << 48) - 1, &salt), "8");
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        let o = check_superblock(&sh, &superblock(1, 2, &salt), "99999999999999999999999");
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        let o = check_superblock(&sh, &superblock(1, 2, &salt), "");
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
    }
}

#[test]
fn boot_script_accepts_only_the_verity_hash_type_nodeforge_writes() {
    let salt = [1u8; 32];
    for (name, sh) in shells() {
        for hash_type in [0u32, 2, 0x0100_0001, u32::MAX] {
            let o = check_superblock(&sh, &superblock(hash_type, 2, &salt), "16");
            assert_eq!(
                o.status.code(),
                Some(1),
                "{name}: hash_type={hash_type}: {}",
                text(&o)
            );
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("is not 1"),
                "{name}: {}",
                text(&o)
            );
        }
        let o = check_superblock(&sh, &superblock(1, 2, &[2u8; 257][..256]), "16");
        assert!(o.status.success(), "{name}: {}", text(&o));
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The config layer over a root's `/etc` as the script mounts it, three boots in a row: generation
/// 1, whose `/etc/kubernetes` and `/etc/cni/net.d` the guest replaces with `rm -rf … && mkdir`;
/// generation 2, which no longer owns `/etc/cni`; generation 1 again (a rollback).
const OVERLAY_BOOTS: &str = r#"
set -u
T=$1
bad() { echo "FAILED: $*"; exit 1; }
mount -t tmpfs nf-boot-script "$T" || bad "mount tmpfs"
ROOT=$T/root
S=$ROOT/var/lib/nodeforge/etc
mkdir -p "$ROOT/etc/cni/net.d" "$T/gen1/etc/kubernetes/manifests" "$T/gen1/etc/cni/net.d" "$T/gen2/etc/kubernetes"
echo root >"$ROOT/etc/cni/net.d/99-root.conf"
echo gen1 >"$T/gen1/etc/kubernetes/kubelet.conf"
echo gen1 >"$T/gen1/etc/kubernetes/manifests/kube-apiserver.yaml"
echo gen1 >"$T/gen1/etc/cni/net.d/10-kubenet.conf"
echo gen2 >"$T/gen2/etc/kubernetes/kubelet.conf"

boot() { prepare_upper "$S" "$T/$1/etc"; mount_etc "$ROOT" "$S" "$T/$1/etc"; }

boot gen1
[ "$(cat "$ROOT/etc/kubernetes/kubelet.conf")" = gen1 ] || bad "gen1: kubelet.conf"
# The guest's clean-up (kubeadm reset-style), then its own file in the new directories.
rm -rf "$ROOT/etc/kubernetes" && mkdir "$ROOT/etc/kubernetes" || bad "rm -rf && mkdir /etc/kubernetes"
rm -rf "$ROOT/etc/cni/net.d" && mkdir "$ROOT/etc/cni/net.d" || bad "rm -rf && mkdir /etc/cni/net.d"
chmod 0750 "$ROOT/etc/kubernetes"
echo guest >"$ROOT/etc/kubernetes/guest.conf"
echo guest >"$ROOT/etc/kubernetes/.hidden"
umount "$ROOT/etc" || bad "umount"

# The reproduction: the upper's directory now hides the layer's (mounting without the clean-up).
mount_etc "$ROOT" "$S" "$T/gen1/etc"
[ -e "$ROOT/etc/kubernetes/kubelet.conf" ] && bad "the guest's rm -rf && mkdir left no opaque directory (the test reproduces nothing)"
umount "$ROOT/etc"

# Reboot into generation 1: the layer's files show again, the guest's stay.
boot gen1
[ "$(cat "$ROOT/etc/kubernetes/kubelet.conf")" = gen1 ] || bad "reboot: the layer's kubelet.conf is hidden"
[ "$(cat "$ROOT/etc/kubernetes/manifests/kube-apiserver.yaml")" = gen1 ] || bad "reboot: manifests/ hidden"
[ "$(cat "$ROOT/etc/cni/net.d/10-kubenet.conf")" = gen1 ] || bad "reboot: the layer's 10-kubenet.conf is hidden"
[ "$(cat "$ROOT/etc/kubernetes/guest.conf")" = guest ] || bad "reboot: the guest's file is gone"
[ "$(cat "$ROOT/etc/kubernetes/.hidden")" = guest ] || bad "reboot: the guest's dot file is gone"
[ "$(stat -c %a "$ROOT/etc/kubernetes")" = 750 ] || bad "reboot: the directory's mode changed"
# Again under generation 1, then generation 2, which does not own /etc/cni: the previous
# generation's directory loses its mark too, so the root's own file there shows.
rm -rf "$ROOT/etc/kubernetes" && mkdir "$ROOT/etc/kubernetes" || bad "rm -rf && mkdir (2)"
rm -rf "$ROOT/etc/cni/net.d" && mkdir "$ROOT/etc/cni/net.d" || bad "rm -rf && mkdir (3)"
umount "$ROOT/etc"
boot gen2
[ "$(cat "$ROOT/etc/kubernetes/kubelet.conf")" = gen2 ] || bad "gen2: kubelet.conf"
[ -e "$ROOT/etc/kubernetes/manifests" ] && bad "gen2: generation 1's manifests/ shows"
[ "$(cat "$ROOT/etc/cni/net.d/99-root.conf")" = root ] || bad "gen2: the previous generation's net.d still hides the root's files"
rm -rf "$ROOT/etc/kubernetes" && mkdir "$ROOT/etc/kubernetes" || bad "rm -rf && mkdir (4)"
umount "$ROOT/etc"
# Rollback.
boot gen1
[ "$(cat "$ROOT/etc/kubernetes/kubelet.conf")" = gen1 ] || bad "rollback: kubelet.conf"
[ "$(cat "$ROOT/etc/kubernetes/manifests/kube-apiserver.yaml")" = gen1 ] || bad "rollback: manifests/"
[ "$(cat "$ROOT/etc/cni/net.d/10-kubenet.conf")" = gen1 ] || bad "rollback: 10-kubenet.conf"
ls -A "$S" | grep -q unmark && bad "left $(ls -A "$S" | grep unmark | tr '\n' ' ')behind"
umount "$ROOT/etc"
echo BOOTS-OK
"#;

#[test]
fn boot_script_clears_the_opaque_mark_after_rm_rf_etc_kubernetes_and_mkdir_now_and_for_the_previous_generation(
) {
    if !requires("unshare", "util-linux")
        || !requires_that(
            is_root(),
            "not root (mounting tmpfs and overlayfs needs it)",
            "this test needs root (it mounts tmpfs and overlayfs in a private mount namespace)",
        )
    {
        return;
    }
    for (name, sh) in shells() {
        let dir = tempfile::tempdir().unwrap();
        let program = format!(". \"$NF_SCRIPT\"\n{OVERLAY_BOOTS}");
        let o = Command::new("unshare")
            .arg("-m")
            .args(&sh)
            .arg("-c")
            .arg(program)
            .arg("nodeforge-mount-layers-test")
            .arg(dir.path())
            .env("NODEFORGE_MOUNT_LAYERS_LIB", "1")
            .env("NF_SCRIPT", script())
            .output()
            .unwrap();
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("BOOTS-OK"),
            "{name}: {}",
            text(&o)
        );
    }
}

#[test]
fn boot_script_finishes_a_directory_renewal_a_crash_interrupted() {
    // A power cut while the upper's etc/kubernetes moved into its new directory: its path
    // recorded, one child still in the old directory, one already in the new.
    for (name, sh) in shells() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("state");
        let layer = dir.path().join("layer/etc");
        std::fs::create_dir_all(layer.join("kubernetes")).unwrap();
        std::fs::write(layer.join("kubernetes/kubelet.conf"), "layer").unwrap();
        std::fs::create_dir_all(s.join("upper")).unwrap();
        std::fs::create_dir_all(s.join("unmark.old")).unwrap();
        std::fs::create_dir_all(s.join("unmark.new")).unwrap();
        std::fs::write(s.join("unmark.old/a.conf"), "a").unwrap();
        std::fs::write(s.join("unmark.new/b.conf"), "b").unwrap();
        std::fs::write(s.join("unmark.path"), "./kubernetes\n").unwrap();
        let o = run(
            &sh,
            "prepare_upper \"$1\" \"$2\"",
            &[s.to_str().unwrap(), layer.to_str().unwrap()],
        );
        assert!(o.status.success(), "{name}: {}", text(&o));
        let k = s.join("upper/kubernetes");
        assert_eq!(
            std::fs::read_to_string(k.join("a.conf")).unwrap(),
            "a",
            "{name}"
        );
        assert_eq!(
            std::fs::read_to_string(k.join("b.conf")).unwrap(),
            "b",
            "{name}"
        );
        for left in ["unmark.old", "unmark.new", "unmark.path"] {
            assert!(!s.join(left).exists(), "{name}: {left} left behind");
        }
        // Interrupted before the directory moved: it stays as it was, the new one goes.
        std::fs::create_dir_all(s.join("unmark.new")).unwrap();
        std::fs::write(s.join("unmark.path"), "./kubernetes\n").unwrap();
        let o = run(
            &sh,
            "prepare_upper \"$1\" \"$2\"",
            &[s.to_str().unwrap(), layer.to_str().unwrap()],
        );
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(
            std::fs::read_to_string(k.join("a.conf")).unwrap(),
            "a",
            "{name}"
        );
        assert!(!s.join("unmark.new").exists() && !s.join("unmark.path").exists());
    }
}
