//! `nodeforge pull`: a node image from an OCI registry, verified, as the node's new generation.

use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json, short};
use super::push::RegistryArgs;
use crate::cli::Ctx;
use crate::ops::{self, BlobStatus, Error};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// REGISTRY[:PORT]/REPOSITORY:TAG (a node's name, <node>-gen<N> or an image id) or
    /// REGISTRY[:PORT]/REPOSITORY@sha256:DIGEST.
    #[arg(value_name = "REF")]
    reference: String,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    trust: super::sign::TrustArgs,
}

pub fn exec(ctx: &Ctx, args: PullArgs) -> Result<ExitCode, Error> {
    use std::io::IsTerminal;
    let r = ops::pull(&ops::PullOptions {
        out: ctx.out.clone(),
        reference: args.reference,
        client: args.registry.options(),
        keys: args.trust.load()?,
        progress: !ctx.json && std::io::stderr().is_terminal(),
    })?;
    if ctx.json {
        print_json("pull-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    let count = |s: BlobStatus| r.blobs.iter().filter(|b| b.status == s).count();
    say!(
        "{}: image {} from {}/{}@{} ({} downloaded, {} resumed, {} present; {} received), verified",
        r.node,
        short(&r.image_id),
        r.registry,
        r.repository,
        short(r.manifest_digest.trim_start_matches("sha256:")),
        blobs(count(BlobStatus::Downloaded)),
        count(BlobStatus::Resumed),
        count(BlobStatus::Present),
        human_bytes(r.bytes_downloaded)
    );
    trust_lines(&r.node, &r.attestations);
    if r.switched {
        say!("{}: generation {} is current", r.node, r.generation);
    } else {
        say!(
            "{} is already on generation {} (image {}): nothing to switch",
            r.node,
            r.generation,
            short(&r.image_id)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What a pull or import says of an image's signatures and attestation files.
pub(crate) fn trust_lines(node: &str, a: &ops::PulledAttestations) {
    let keys = |k: &[String]| {
        k.iter()
            .map(|k| k.get(..16).unwrap_or(k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if a.trust_checked {
        say!("{node}: signed by trusted key {}", keys(&a.signed_by));
    } else if a.signature_keys.is_empty() {
        eprintln!("note: {node}: the image came unsigned (no signature among its referrers); pass --key or --trusted-keys to require one");
    } else {
        eprintln!(
            "note: {node}: the image came signed by key {} (not checked: pass --key or --trusted-keys to require it)",
            keys(&a.signature_keys)
        );
    }
    for f in &a.files {
        if f.status == ops::FileStatus::KeptLocal {
            eprintln!(
                "warning: {node}: kept this host's {} (the pulled one has other bytes, {})",
                f.name, f.digest
            );
        }
    }
    for c in &a.conflicts {
        eprintln!("warning: {node}: two attestation manifests hold other bytes for {c}: the newest one's was taken");
    }
}

/// `1 blob`, `3 blobs`.
pub(crate) fn blobs(n: usize) -> String {
    if n == 1 {
        "1 blob".to_string()
    } else {
        format!("{n} blobs")
    }
}
