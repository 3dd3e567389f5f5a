//! `nodeforge show NODE --boot`: what a VM host attaches to boot a node: each layer's EROFS file
//! and hash tree as read-only virtio disks with the serials the guest integration looks for
//! (`contrib/`), the root hashes it pins on the kernel command line, and a QEMU command line.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::generations;
use crate::image::Role;
use crate::layout::{self, OutDir};
use crate::ops::error::Error;
use crate::ops::steps::images::resolve_image;

/// One disk to attach, read-only.
#[derive(Debug, Clone, Serialize)]
pub struct BootDisk {
    pub role: Role,
    /// `data` (the EROFS file) or `hash` (its dm-verity tree).
    pub kind: &'static str,
    /// The virtio serial the guest finds it by (`/dev/disk/by-id/virtio-<serial>`).
    pub serial: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct BootPlan {
    pub node: String,
    pub image_id: String,
    pub disks: Vec<BootDisk>,
    /// `nodeforge.<role>=<root hash>` for each layer: the guest's kernel command line.
    pub kernel_cmdline: String,
    /// The guest's `root=`: VM_DISK's first partition, as the guest names the first virtio disk.
    pub root: String,
    /// A QEMU (7.2 or later) command line; `VM_DISK` is the VM's own disk (root and /var),
    /// attached first (so the guest sees it as `/dev/vda`) with the virtio serial `nf-root`.
    pub qemu: Vec<String>,
    /// With `--secrets`: each secret passed as a systemd credential over fw_cfg (also in `qemu`).
    pub credentials: Vec<crate::credentials::deliver::Credential>,
    /// With `--secrets`: the same as libvirt's `<sysinfo type='fwcfg'>` element.
    pub libvirt_sysinfo: Option<String>,
}

/// VM_DISK's root file system in the guest. Virtio disks get their names in the order of their
/// PCI slots; QEMU gives `-drive if=virtio` disks their slots after every `-device`, so VM_DISK
/// is attached with a `-device` of its own, first: `/dev/vda`. Cloud images (Debian, Ubuntu)
/// put their root file system on its first partition.
pub const VM_ROOT: &str = "/dev/vda1";

/// The virtio serial of VM_DISK (`/dev/disk/by-id/virtio-nf-root`; `scripts/vm-init` finds the
/// root disk by it).
pub const VM_DISK_SERIAL: &str = "nf-root";

/// The serial of a layer's disk: `nf-<role>` for the data, `nf-<role>-verity` for the tree.
pub fn serial(role: Role, hash: bool) -> String {
    if hash {
        format!("nf-{role}-verity")
    } else {
        format!("nf-{role}")
    }
}

/// The boot plan of `reference` (NODE, NODE@GEN or an image id). A plain node name gives paths
/// through `out/nodes/<node>/current`, so the same VM definition follows builds and rollbacks.
pub fn boot_plan(manifest: &Path, out: &Path, reference: &str) -> Result<BootPlan, Error> {
    let m = resolve_image(manifest, out, reference)?;
    if m.layers.is_empty() {
        return Err(Error::FlatImage {
            image: m.id.clone(),
            node: m.node.clone(),
        });
    }
    // Canonical and absolute (no `sub/../../out`), as pasted into a VM definition that outlives
    // the directory it was printed in; `current` itself stays a link, followed at boot.
    let canonical = std::fs::canonicalize(out)
        .or_else(|_| std::path::absolute(out))
        .unwrap_or_else(|_| out.to_path_buf());
    let layout = OutDir::new(&canonical);
    let base = if generations::nodes(out).iter().any(|n| n == reference) {
        layout.current(reference)
    } else {
        layout.image(&m.id)
    };
    let mut disks = Vec::new();
    let mut cmdline = Vec::new();
    for l in &m.layers {
        let [raw, verity, _] = layout::layer_files(&l.name);
        disks.push(BootDisk {
            role: l.role,
            kind: "data",
            serial: serial(l.role, false),
            path: base.join(raw),
        });
        disks.push(BootDisk {
            role: l.role,
            kind: "hash",
            serial: serial(l.role, true),
            path: base.join(verity),
        });
        let root = l
            .verity
            .as_ref()
            .map(|v| v.root_hash.as_str())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "image {} records no root hash for its {} layer: run `nodeforge build`",
                    m.id, l.role
                ))
            })?;
        cmdline.push(format!("nodeforge.{}={root}", l.role));
    }
    let qemu_bin = match m.arch.as_str() {
        "arm64" => "qemu-system-aarch64",
        _ => "qemu-system-x86_64",
    };
    let mut qemu = vec![
        qemu_bin.to_string(),
        "-m".into(),
        "2048".into(),
        "-smp".into(),
        "2".into(),
        "-drive".into(),
        "file=VM_DISK,format=qcow2,if=none,id=vm0".into(),
        "-device".into(),
        format!("virtio-blk-pci,drive=vm0,serial={VM_DISK_SERIAL}"),
    ];
    for (i, d) in disks.iter().enumerate() {
        qemu.push("-drive".into());
        qemu.push(format!(
            "file={},format=raw,if=none,readonly=on,id=nf{i}",
            d.path.display()
        ));
        qemu.push("-device".into());
        qemu.push(format!("virtio-blk-pci,drive=nf{i},serial={}", d.serial));
    }
    Ok(BootPlan {
        node: m.node,
        image_id: m.id,
        disks,
        kernel_cmdline: cmdline.join(" "),
        root: VM_ROOT.to_string(),
        qemu,
        credentials: Vec::new(),
        libvirt_sysinfo: None,
    })
}
