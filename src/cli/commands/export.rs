//! `nodeforge export --oci-layout DIR`: node images as an OCI image layout.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The OCI image layout directory to write (created; blobs already there are kept).
    #[arg(long, value_name = "DIR", required = true)]
    oci_layout: PathBuf,
    /// Only this node (repeatable) [default: every node with an image].
    #[arg(long, value_name = "NAME")]
    node: Vec<String>,
}

pub fn exec(ctx: &Ctx, args: ExportArgs) -> Result<ExitCode, Error> {
    let r = ops::export(&ops::ExportOptions {
        manifest: ctx.manifest.clone(),
        out: ctx.out.clone(),
        dir: args.oci_layout,
        nodes: args.node,
    })?;
    if ctx.json {
        print_json("export-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    for i in &r.images {
        say!(
            "{}: image {} (generation {}) as {}:{}  {}",
            i.node,
            short(&i.image_id),
            i.generation,
            r.dir.display(),
            i.node,
            i.manifest_digest
        );
    }
    say!(
        "exported {} to {}: {} written ({})",
        crate::cli::report::counted(r.images.len(), "image"),
        r.dir.display(),
        crate::cli::report::blobs(r.blobs_written),
        human_bytes(r.bytes_written)
    );
    Ok(ExitCode::SUCCESS)
}
