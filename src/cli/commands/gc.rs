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
        progress: ctx.progress(),
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
    for a in &r.removed_attestations {
        say!(
            "{} the SBOM and signatures of image {a}",
            if dry_run { "would remove" } else { "removed" }
        );
    }
    if dry_run {
        // Why each kept thing stays.
        let k = &r.kept_reasons;
        for g in &k.generations {
            say!("keep generation {}: {}", g.generation, g.reason);
        }
        for i in &k.images {
            say!("keep image {}: used by {}", i.id, i.used_by.join(", "));
        }
        for l in &k.layers {
            say!("keep layer {}: used by {}", l.id, l.used_by.join(", "));
        }
        for o in &k.objects {
            say!(
                "keep {} store object{}: {}",
                o.count,
                if o.count == 1 { "" } else { "s" },
                o.reason
            );
        }
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
