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
    /// tar.zst or erofs [default: from the output's name: .tar.zst or .tzst, .erofs or .raw;
    /// any other name needs --format].
    #[arg(long, value_parser = ["tar.zst", "erofs"])]
    format: Option<String>,
}

pub fn exec(ctx: &Ctx, args: FlattenArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let FlattenArgs { id, output, format } = args;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let format = match format.as_deref() {
        Some("erofs") => ops::FlatFormat::Erofs,
        Some(_) => ops::FlatFormat::TarZst,
        None if name.ends_with(".erofs") || name.ends_with(".raw") => ops::FlatFormat::Erofs,
        None if name.ends_with(".tar.zst") || name.ends_with(".tzst") => ops::FlatFormat::TarZst,
        // `worker1.img` could mean either: ask rather than write a tar under a disk's name.
        None => {
            return Err(Error::Usage(format!(
                "cannot tell the format from the name `{name}`: pass --format erofs (one EROFS file, its dm-verity tree in {name}.verity) or --format tar.zst, or name it .erofs or .tar.zst"
            )))
        }
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
