//! `nodeforge verify`: for CI, every hash re-checked; `--rebuild` compares rebuilds.

use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json};
use crate::cli::report::counted;
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
    // Damaged layers and images: repair writes them again.
    if r.failures.iter().any(|f| {
        f.starts_with("layer ")
            || (f.starts_with("image ") && !f.contains("not signed by a trusted key"))
    }) {
        crate::cli::print_hint("`nodeforge repair` writes damaged layers and images again from the store and the generations' records, and says what it fixed");
    }
    // Images no trusted key signed: what makes verify pass.
    let unsigned: Vec<&str> = r
        .signatures
        .iter()
        .filter(|s| keyed && !s.status.trusted())
        .filter_map(|s| s.used_by.first().map(String::as_str))
        .collect();
    if !unsigned.is_empty() {
        eprintln!(
            "hint: sign each image you have checked with a trusted key: `nodeforge sign {} --key PRIVATE_KEY`; or remove the generations no node should go back to: `nodeforge gc --keep-generations N`",
            unsigned.join(" ")
        );
    }
    for d in &r.drift {
        eprintln!("note: {d}");
    }
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    if !r.layers_root_hash_only.is_empty() {
        eprintln!(
            "note: {} checked against their root hashes only: the store lacks their files (pulled from a registry), so their EROFS files cannot be made again here",
            if r.layers_root_hash_only.len() == 1 { "1 layer was".to_string() } else { format!("{} layers were", r.layers_root_hash_only.len()) }
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
        // The store's read rate, in the units of the sizes; none for a run too short to time.
        let rate = match r
            .object_bytes
            .checked_mul(1000)
            .map(|b| b / r.elapsed_ms.max(1))
        {
            Some(per_s) if r.elapsed_ms >= 10 && r.object_bytes > 0 => {
                format!(" ({}/s)", human_bytes(per_s))
            }
            _ => String::new(),
        };
        say!(
            "{}: lockfile {}, {} ({}), {}, {}{} in {:.2}s{rate}",
            if r.ok {
                "verified"
            } else {
                "verification FAILED"
            },
            if r.lockfile_ok {
                "ok"
            } else if r.notes.iter().any(|n| n.starts_with("no manifest")) {
                "not checked"
            } else {
                "FAILED"
            },
            counted(r.objects_checked, "store object"),
            human_bytes(r.object_bytes),
            counted(r.images_checked, "image"),
            counted(r.layers_checked, "layer"),
            if rebuild {
                format!(
                    ", {} rebuilt and compared ({} rendered again from the inputs)",
                    r.images_rebuilt, r.images_from_inputs
                )
            } else {
                String::new()
            } + &if keyed {
                format!(
                    ", {} of {} images a node is on or can roll back to signed by a trusted key",
                    r.signatures.iter().filter(|s| s.status.trusted()).count(),
                    r.signatures.len()
                )
            } else {
                String::new()
            },
            r.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(if r.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
