//! `nodeforge push`: each node's current image to an OCI registry.

use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, BlobStatus, Error};

#[derive(Debug, Args)]
pub struct PushArgs {
    /// REGISTRY[:PORT]/REPOSITORY, without a tag: each image is tagged `<node>`,
    /// `<node>-gen<N>` and with its image id.
    #[arg(value_name = "REGISTRY/REPOSITORY")]
    target: String,
    /// Only this node (repeatable) [default: every node with an image].
    #[arg(long, value_name = "NAME")]
    node: Vec<String>,
    /// Mount blobs from this repository of the same registry before uploading them (repeatable).
    #[arg(long, value_name = "REPOSITORY")]
    mount_from: Vec<String>,
}

pub fn exec(ctx: &Ctx, args: PushArgs) -> Result<ExitCode, Error> {
    let r = ops::push(&ops::PushOptions {
        manifest: ctx.manifest.clone(),
        out: ctx.out.clone(),
        target: args.target,
        nodes: args.node,
        mount_from: args.mount_from,
        client: ctx.net.options(ctx.quiet),
        progress: ctx.progress.clone(),
    })?;
    if ctx.json {
        print_json("push-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    for n in &r.nodes {
        let count = |s: BlobStatus| n.blobs.iter().filter(|b| b.status == s).count();
        say!(
            "{}: image {} (generation {}) → {}  tags {}  ({} sent, {} present, {} mounted; {})",
            n.node,
            short(&n.image_id),
            n.generation,
            n.reference,
            n.tags
                .iter()
                .map(|t| if t.len() == 64 { short(t) } else { t.as_str() })
                .collect::<Vec<_>>()
                .join(", "),
            crate::cli::report::blobs(count(BlobStatus::Uploaded)),
            count(BlobStatus::Present),
            count(BlobStatus::Mounted),
            human_bytes(n.bytes_sent)
        );
        if let Some(a) = &n.attestations {
            say!(
                "{}: {} → referrer {} ({}; {} sent)",
                n.node,
                if a.files.len() == 1 {
                    "1 attestation file".to_string()
                } else {
                    format!("{} attestation files", a.files.len())
                },
                short(a.manifest_digest.trim_start_matches("sha256:")),
                match (a.referrers, &a.referrers_tag_updated) {
                    (ops::ReferrersVia::Api, _) => "the registry's referrers API".to_string(),
                    (ops::ReferrersVia::Tag, Some(t)) =>
                        format!("referrers tag {} updated", short(t)),
                    (ops::ReferrersVia::Tag, None) =>
                        "listed in its referrers tag already".to_string(),
                },
                crate::cli::report::blobs(a.blobs_uploaded)
            );
        }
    }
    say!(
        "pushed {} to {}/{}: {} uploaded ({}), {} already there, {} mounted",
        crate::cli::report::counted(r.nodes.len(), "image"),
        r.registry,
        r.repository,
        crate::cli::report::blobs(r.blobs_uploaded),
        human_bytes(r.bytes_uploaded),
        r.blobs_present,
        r.blobs_mounted
    );
    Ok(ExitCode::SUCCESS)
}
