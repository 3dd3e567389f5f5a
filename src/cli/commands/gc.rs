//! `nodeforge gc`: remove generations, images, layers and store objects nothing needs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json};
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep this many newest generations of each node (the current one always).
    #[arg(long, value_name = "N")]
    keep_generations: Option<u32>,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn exec(ctx: &Ctx, args: GcArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let GcArgs {
        keep_generations,
        dry_run,
    } = args;
    let lockfiles = ctx
        .lockfile
        .parent()
        .map_or_else(|| PathBuf::from("lockfiles"), Path::to_path_buf);
    let r = ops::gc(&ops::GcOptions {
        out: ctx.out.clone(),
        lockfiles,
        keep_generations,
        dry_run,
    })?;
    if json {
        print_json("gc-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    for g in &r.removed_generations {
        say!(
            "{} generation {g}",
            if dry_run { "would remove" } else { "removed" }
        );
    }
    for i in &r.removed_images {
        say!(
            "{} image {i}",
            if dry_run { "would remove" } else { "removed" }
        );
    }
    for l in &r.removed_layers {
        say!(
            "{} layer {l}",
            if dry_run { "would remove" } else { "removed" }
        );
    }
    say!(
        "{} {} generations, {} images, {} layers, {} store objects, {} other files: {}; kept {} generations, {} images, {} layers, {} objects",
        if dry_run { "would free" } else { "freed" },
        r.removed_generations.len(),
        r.removed_images.len(),
        r.removed_layers.len(),
        r.removed_objects,
        r.removed_other,
        human_bytes(r.freed_bytes),
        r.kept_generations,
        r.kept_images,
        r.kept_layers,
        r.kept_objects
    );
    Ok(ExitCode::SUCCESS)
}
