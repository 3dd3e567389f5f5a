//! `nodeforge demo-mirror`: stand-in artifacts in upstream's shapes, as a mirror.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::super::print_json;
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct DemoMirrorArgs {
    /// The mirror directory to write.
    dir: PathBuf,
    /// Size in bytes of each stand-in executable.
    #[arg(long, default_value_t = 65536, value_name = "BYTES")]
    size: usize,
}

pub fn exec(ctx: &Ctx, args: DemoMirrorArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let DemoMirrorArgs { dir, size } = args;
    let r = ops::demo_mirror(&ctx.manifest, &dir, size)?;
    if json {
        print_json("demo-mirror-report", &r);
    } else {
        say!(
            "wrote {} stand-in artifacts and {} checksum files to {}",
            r.artifacts.len(),
            r.checksum_files.len(),
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
