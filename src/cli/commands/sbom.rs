//! `nodeforge sbom`: an image's software bill of materials.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::super::print_json;
use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct SbomArgs {
    /// NODE (its current image), NODE@GEN or an image id (prefix).
    image: String,
    /// The document's format.
    #[arg(long, value_parser = ["spdx-json", "cyclonedx-json"], default_value = "spdx-json")]
    format: String,
    /// The document's creation time, in seconds since the epoch [default: SOURCE_DATE_EPOCH,
    /// else 0, 1970-01-01T00:00:00Z: the document is a function of the image].
    #[arg(long, value_name = "SECS", env = "SOURCE_DATE_EPOCH")]
    created: Option<u64>,
    /// Write the document to FILE (atomically) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct SbomReport {
    image: String,
    format: crate::sbom::Format,
    path: PathBuf,
    sha256: String,
    bytes: u64,
}

pub fn exec(ctx: &Ctx, args: SbomArgs) -> Result<ExitCode, Error> {
    let format = match args.format.as_str() {
        "cyclonedx-json" => crate::sbom::Format::CyclonedxJson,
        _ => crate::sbom::Format::SpdxJson,
    };
    let doc = ops::sbom(&ops::SbomOptions {
        manifest: ctx.manifest.clone(),
        out: ctx.out.clone(),
        image: args.image.clone(),
        format,
        created: args.created,
    })?;
    let Some(path) = args.output else {
        // The document is the output (JSON already, with or without --json).
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(&doc);
        return Ok(ExitCode::SUCCESS);
    };
    crate::fsutil::write_atomic(&path, &doc, 0o644)?;
    let r = SbomReport {
        image: args.image,
        format,
        sha256: crate::hash::Sha256::of(&doc).to_hex(),
        bytes: doc.len() as u64,
        path,
    };
    if ctx.json {
        print_json("sbom-report", &r);
    } else {
        say!(
            "wrote the SBOM of {} ({}, {} bytes) to {}",
            r.image,
            args.format,
            r.bytes,
            r.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
