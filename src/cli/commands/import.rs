//! `nodeforge import DIR`: node images from an OCI image layout, verified, as new generations.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// An OCI image layout directory (`export --oci-layout`, `skopeo copy … oci:DIR:TAG`).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Only the image with this tag (repeatable) [default: each node's newest, tagged `<node>`].
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    #[command(flatten)]
    trust: crate::cli::args::TrustArgs,
    #[command(flatten)]
    freshness: crate::cli::args::FreshnessArgs,
}

pub fn exec(ctx: &Ctx, args: ImportArgs) -> Result<ExitCode, Error> {
    let r = ops::import(&ops::ImportOptions {
        out: ctx.out.clone(),
        dir: args.dir,
        tags: args.tag,
        keys: args.trust.load()?,
        allow_downgrade: args.freshness.allow_downgrade,
        progress: ctx.progress.clone(),
    })?;
    if ctx.json {
        print_json("import-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    for i in &r.images {
        crate::cli::report::trust_lines(&i.node, &i.attestations);
        say!(
            "{}: image {} (tag {}) verified, {}",
            i.node,
            short(&i.image_id),
            if i.tag.len() == 64 {
                short(&i.tag)
            } else {
                &i.tag
            },
            if i.switched {
                format!("generation {} is current", i.generation)
            } else {
                format!("already on generation {}", i.generation)
            }
        );
    }
    say!(
        "imported {} from {} ({} copied)",
        crate::cli::report::counted(r.images.len(), "image"),
        r.dir.display(),
        human_bytes(r.bytes_copied)
    );
    Ok(ExitCode::SUCCESS)
}
