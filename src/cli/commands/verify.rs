//! `nodeforge verify`: for CI, every hash re-checked; `--rebuild` compares rebuilds.

use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json};
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Also rebuild every current image elsewhere and compare byte for byte.
    #[arg(long)]
    rebuild: bool,
    /// Read store objects instead of memory-mapping them (slower; for stores that another
    /// process may truncate during the run, where a mapping would end verify with SIGBUS).
    #[arg(long)]
    no_mmap: bool,
    #[command(flatten)]
    trust: crate::cli::args::TrustArgs,
}

pub fn exec(ctx: &Ctx, args: VerifyArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let VerifyArgs {
        rebuild,
        no_mmap,
        trust,
    } = args;
    let trusted = trust.load()?;
    let keyed = !trusted.is_empty();
    let r = ops::verify(&ops::VerifyOptions {
        manifest: ctx.manifest.clone(),
        lockfile: ctx.lockfile.clone(),
        out: ctx.out.clone(),
        rebuild,
        jobs: ctx.net.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        }),
        mmap: !no_mmap,
        progress: ctx.progress.clone(),
        allow_outside_templates: ctx.allow_outside_templates,
        trusted,
    })?;
    for f in &r.failures {
        eprintln!("FAIL {f}");
    }
    for d in &r.drift {
        eprintln!("note: {d}");
    }
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    if !r.layers_root_hash_only.is_empty() {
        eprintln!(
            "note: {} layers were checked against their root hashes only: the store lacks their files (pulled from a registry), so their EROFS files cannot be made again here",
            r.layers_root_hash_only.len()
        );
    }
    for n in &r.unbuilt {
        eprintln!(
            "note: node `{n}` of {} has no image in {}: run `nodeforge build`",
            ctx.manifest.display(),
            ctx.out.display()
        );
    }
    if r.objects_checked == 0 && r.images_checked == 0 {
        eprintln!(
            "note: {} holds no store objects and no images: only the lockfile was checked (run `nodeforge build` first)",
            ctx.out.display()
        );
    }
    if json {
        print_json("verify-report", &r);
    } else {
        #[allow(clippy::cast_precision_loss)]
        let gbps = if r.elapsed_ms > 0 {
            r.object_bytes as f64 / (r.elapsed_ms as f64 / 1000.0) / 1e9
        } else {
            0.0
        };
        say!(
            "{}: lockfile {}, {} store objects ({}), {} images, {} layers{} in {:.2}s ({gbps:.2} GB/s)",
            if r.ok { "verified" } else { "verification FAILED" },
            if r.lockfile_ok { "ok" } else if r.notes.iter().any(|n| n.starts_with("no manifest")) { "not checked" } else { "FAILED" },
            r.objects_checked,
            human_bytes(r.object_bytes),
            r.images_checked,
            r.layers_checked,
            if rebuild { format!(", {} rebuilt and compared ({} rendered again from the inputs)", r.images_rebuilt, r.images_from_inputs) } else { String::new() } + &if keyed { format!(", {} of {} images a node is on or can roll back to signed by a trusted key", r.signatures.iter().filter(|s| s.status.trusted()).count(), r.signatures.len()) } else { String::new() },
            r.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(if r.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
