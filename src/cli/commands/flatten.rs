//! `nodeforge flatten`: a whole node image as one file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json};
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct FlattenArgs {
    /// An image id (prefix), a node (its current image) or NODE@GEN.
    id: String,
    /// Where to write it (FILE.tar.zst, or FILE.erofs with its hash tree in FILE.erofs.verity).
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
    /// tar.zst or erofs [default: from the output's name, else tar.zst].
    #[arg(long, value_parser = ["tar.zst", "erofs"])]
    format: Option<String>,
}

pub fn exec(ctx: &Ctx, args: FlattenArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let FlattenArgs { id, output, format } = args;
    let format = match format.as_deref() {
        Some("erofs") => ops::FlatFormat::Erofs,
        Some(_) => ops::FlatFormat::TarZst,
        None if output
            .extension()
            .is_some_and(|e| e == "erofs" || e == "raw") =>
        {
            ops::FlatFormat::Erofs
        }
        None => ops::FlatFormat::TarZst,
    };
    let r = ops::flatten(&ctx.manifest, &ctx.out, &id, format, &output)?;
    if json {
        print_json("flatten-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "wrote image {} (node {}) to {} ({})",
        r.image_id,
        r.node,
        r.path.display(),
        human_bytes(r.bytes)
    );
    if let (Some(v), Some(root)) = (&r.verity, &r.root_hash) {
        say!("its dm-verity tree: {} (root hash {root})", v.display());
    }
    Ok(ExitCode::SUCCESS)
}
