//! `nodeforge pull`: a node image from an OCI registry, verified, as the node's new generation.

use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, BlobStatus, Error};

#[derive(Debug, Args)]
pub struct PullArgs {
    /// REGISTRY[:PORT]/REPOSITORY:TAG (a node's name, <node>-gen<N> or an image id) or
    /// REGISTRY[:PORT]/REPOSITORY@sha256:DIGEST.
    #[arg(value_name = "REF")]
    reference: String,
    #[command(flatten)]
    trust: crate::cli::args::TrustArgs,
    /// The node the image must be; without it, the tag's (`<node>`, `<node>-gen<N>`). For a
    /// tag that is not a node's name.
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
    #[command(flatten)]
    freshness: crate::cli::args::FreshnessArgs,
}

pub fn exec(ctx: &Ctx, args: PullArgs) -> Result<ExitCode, Error> {
    let r = ops::pull(&ops::PullOptions {
        out: ctx.out.clone(),
        reference: args.reference,
        client: ctx.net.options(ctx.quiet),
        keys: args.trust.load()?,
        node: args.node,
        allow_downgrade: args.freshness.allow_downgrade,
        progress: ctx.progress.clone(),
        jobs: ctx.net.jobs(),
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
        crate::cli::report::blobs(count(BlobStatus::Downloaded)),
        count(BlobStatus::Resumed),
        count(BlobStatus::Present),
        human_bytes(r.bytes_downloaded)
    );
    crate::cli::report::trust_lines(&r.node, &r.attestations);
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
