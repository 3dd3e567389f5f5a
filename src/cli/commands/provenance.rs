//! `nodeforge provenance`: an image's SLSA provenance.

use std::process::ExitCode;

use clap::Args;

use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct ProvenanceArgs {
    /// NODE (its current image), NODE@GEN or an image id (prefix).
    image: String,
}

pub fn exec(ctx: &Ctx, args: ProvenanceArgs) -> Result<ExitCode, Error> {
    let doc = ops::provenance(&ctx.manifest, &ctx.lockfile, &ctx.out, &args.image)?;
    // The statement is the output (JSON already, with or without --json).
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(&doc);
    Ok(ExitCode::SUCCESS)
}
