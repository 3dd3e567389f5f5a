//! `nodeforge gc`: remove generations, images, layers and store objects nothing needs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json};
use crate::cli::report::counted;
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
        progress: ctx.progress.clone(),
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
    let k = &r.kept_reasons;
    if dry_run && ctx.verbose {
        // Why each kept thing stays (-v: a store of 6 nodes keeps ~50 things).
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
            say!("keep {}: {}", counted(o.count, "store object"), o.reason);
        }
    }
    let kept = format!(
        "kept {}, {}, {}, {}",
        counted(r.kept_generations, "generation"),
        counted(r.kept_images, "image"),
        counted(r.kept_layers, "layer"),
        counted(r.kept_objects, "store object")
    );
    let nothing = r.removed_generations.is_empty()
        && r.removed_images.is_empty()
        && r.removed_layers.is_empty()
        && r.removed_attestations.is_empty()
        && r.removed_objects == 0
        && r.removed_other == 0;
    if nothing {
        say!(
            "nothing {}: everything in {} is in use ({kept})",
            if dry_run { "to free" } else { "freed" },
            ctx.out.display()
        );
    } else {
        say!(
            "{} {}, {}, {}, {}, {}: {}; {kept}",
            if dry_run { "would free" } else { "freed" },
            counted(r.removed_generations.len(), "generation"),
            counted(r.removed_images.len(), "image"),
            counted(r.removed_layers.len(), "layer"),
            counted(r.removed_objects, "store object"),
            counted(r.removed_other, "other file"),
            human_bytes(r.freed_bytes),
        );
    }
    if dry_run && !ctx.verbose {
        say!("(`nodeforge -v gc --dry-run` says why each thing is kept)");
    }
    Ok(ExitCode::SUCCESS)
}
