//! `nodeforge mirror export`: the store's locked artifacts in mirror layout, for air-gapped sites.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::super::{human_bytes, print_json};
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct MirrorArgs {
    #[command(subcommand)]
    command: MirrorCommand,
}

#[derive(Debug, Subcommand)]
enum MirrorCommand {
    /// Copy the store's locked artifacts (and checksum files) to DIR in mirror layout, and the
    /// lockfile to DIR/<name>.lock.
    Export {
        /// The mirror directory to write.
        dir: PathBuf,
    },
}

pub fn exec(ctx: &Ctx, args: MirrorArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let MirrorArgs {
        command: MirrorCommand::Export { dir },
    } = args;
    let r = ops::export_mirror(&ctx.manifest, &ctx.lockfile, &ctx.out, &dir)?;
    if json {
        print_json("mirror-export-report", &r);
    } else {
        say!(
            "exported {} files ({}) to {}, the lockfile included as {}",
            r.files.len(),
            human_bytes(r.bytes),
            r.dir.display(),
            r.lockfile.display()
        );
        say!(
            "use it with: nodeforge fetch --offline --mirror file://{} --lockfile {}",
            r.dir.display(),
            r.lockfile.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
