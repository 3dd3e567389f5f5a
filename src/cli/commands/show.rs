//! `nodeforge show`: an image's layers and entries with where each came from (a bill of
//! materials); `--boot`: what a VM host attaches to boot it.

use std::process::ExitCode;

use clap::Args;

use super::super::{print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// An image id (an unambiguous prefix is enough), a node (its current image) or NODE@GEN.
    id: String,
    /// Print what a VM host attaches instead: each layer's disk, its root hash, the kernel
    /// command line and a QEMU command line.
    #[arg(long)]
    boot: bool,
    /// With --boot: check the node's secrets in DIR, then pass each as a systemd credential
    /// (QEMU -fw_cfg arguments and libvirt <sysinfo type='fwcfg'> entries naming the files).
    #[arg(long = "secrets", value_name = "DIR", requires = "boot")]
    secrets: Option<std::path::PathBuf>,
    /// With --secrets: certificates expiring within this margin are a warning (30d, 12h, 2w).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30d",
        requires = "secrets"
    )]
    expiry_margin: String,
    /// With trusted keys, say which of them validly signed the image.
    #[command(flatten)]
    trust: crate::cli::args::TrustArgs,
}

pub fn exec(ctx: &Ctx, args: ShowArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let ShowArgs {
        id,
        boot,
        trust,
        secrets,
        expiry_margin,
    } = args;
    if boot {
        let secrets = secrets.map(|dir| crate::cli::args::SecretsDirArgs { dir, expiry_margin });
        return show_boot(ctx, &id, secrets.as_ref());
    }
    let r = ops::show(&ctx.manifest, &ctx.out, &id, &trust.load()?)?;
    if json {
        print_json("show-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    let m = &r.image;
    say!(
        "image {} (node {}, {}{})",
        m.id,
        m.node,
        crate::term::escape(&m.arch),
        if m.layers.is_empty() {
            ", whole-root format 1"
        } else {
            ""
        }
    );
    for l in &m.layers {
        say!(
            "{} layer {} {}: verity root hash {}",
            l.role,
            l.name,
            l.id,
            l.verity
                .as_ref()
                .map_or("(not written)", |v| v.root_hash.as_str())
        );
    }
    for sig in &r.signatures.signatures {
        let valid = if !sig.trusted_by.is_empty() && sig.mismatch.is_none() {
            "valid, trusted".to_string()
        } else if let Some(why) = &sig.mismatch {
            format!("does not vouch for this image: {why}")
        } else {
            "not checked against a trusted key (pass --key)".to_string()
        };
        say!(
            "signed by key {} ({valid}): {}",
            sig.keyids.join(", "),
            sig.file.display()
        );
    }
    if r.signatures.signatures.is_empty() && !m.layers.is_empty() {
        say!("not signed");
    }
    for p in r
        .attestations
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".roothash.p7s"))
    {
        say!("systemd signed root hash: {}", p.display());
    }
    if let Some(v) = &m.verity {
        say!(
            "verity root hash {} (salt {}, {} data blocks)",
            v.root_hash,
            v.salt,
            v.data_blocks
        );
    }
    for e in &m.entries {
        let from = match m.provenance.get(&e.path) {
            Some(crate::image::Provenance::Artifact {
                component,
                version,
                url,
                sha256,
                member,
                ..
            }) => format!(
                "{component} {version}{} <- {url} (sha256 {})",
                member
                    .as_deref()
                    .map(|m| format!(" [{m}]"))
                    .unwrap_or_default(),
                short(sha256)
            ),
            Some(crate::image::Provenance::Template { template }) => {
                format!("template {template}")
            }
            Some(crate::image::Provenance::Enable { unit }) => {
                format!("systemctl enable {unit}")
            }
            Some(crate::image::Provenance::Release { role }) => {
                format!("{role} layer's extension-release")
            }
            Some(crate::image::Provenance::Directory) | None => String::new(),
        };
        let what = match e.kind {
            crate::image::Kind::Dir => format!("{}/", e.path),
            crate::image::Kind::Symlink => {
                format!("{} -> {}", e.path, e.target.as_deref().unwrap_or(""))
            }
            crate::image::Kind::File => e.path.clone(),
        };
        let hash = e.blake3.map(|b| b.to_hex()).unwrap_or_default();
        // No trailing spaces where an entry has no provenance.
        let line = format!(
            "{:04o} {:>10} {:<12} {what}  {from}",
            e.mode,
            e.size,
            short(&hash)
        );
        say!("{}", line.trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

fn show_boot(
    ctx: &Ctx,
    id: &str,
    secrets: Option<&crate::cli::args::SecretsDirArgs>,
) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let b = match secrets {
        None => ops::boot_plan(&ctx.manifest, &ctx.out, id)?,
        Some(s) => {
            let (b, warnings) = ops::boot_plan_with_secrets(id, &s.options(ctx)?)?;
            crate::cli::report::print_warnings(&warnings);
            b
        }
    };
    if json {
        print_json("show-boot-report", &b);
        return Ok(ExitCode::SUCCESS);
    }
    say!("image {} (node {})", b.image_id, b.node);
    say!("attach read-only (virtio serial, file):");
    for d in &b.disks {
        say!("  {:<20} {}", d.serial, d.path.display());
    }
    say!(
        "kernel command line (root=: VM_DISK's first partition; a disk without partitions: root=/dev/vda):\n  root={} {}",
        b.root,
        b.kernel_cmdline
    );
    say!(
        "QEMU (7.2+; VM_DISK is the VM's own disk, with /var, attached first: /dev/vda; boot it with the kernel command line above):\n  {}",
        b.qemu
            .first()
            .into_iter()
            .cloned()
            .chain(b.qemu.get(1..).unwrap_or_default().chunks(2).map(|c| c.join(" ")))
            .collect::<Vec<_>>()
            .join(" \\\n    ")
    );
    if !b.credentials.is_empty() {
        say!("systemd credentials (QEMU -fw_cfg above; systemd 252+ in the guest imports them into /run/credentials/@system/, the config layer's nodeforge-secrets.service places them):");
        for c in &b.credentials {
            say!(
                "  {:<24} {} -> {} ({:04o} {})",
                c.name,
                c.file.display(),
                c.to,
                c.mode,
                c.owner
            );
        }
    }
    if let Some(x) = &b.libvirt_sysinfo {
        say!("libvirt (inside <domain>; libvirt 6.5+):");
        for line in x.lines() {
            say!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
