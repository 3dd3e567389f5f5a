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
    /// Push the store's locked artifacts to an OCI registry repository (oci://REGISTRY/REPOSITORY,
    /// oci+http:// for plain HTTP), for builders that fetch with --mirror oci://….
    Push {
        /// oci://REGISTRY/REPOSITORY.
        target: String,
    },
}

pub fn exec(ctx: &Ctx, args: MirrorArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let dir = match args.command {
        MirrorCommand::Export { dir } => dir,
        MirrorCommand::Push { target } => {
            let r = ops::mirror_push(&ops::MirrorPushOptions {
                manifest: ctx.manifest.clone(),
                lockfile: ctx.lockfile.clone(),
                out: ctx.out.clone(),
                target: target.clone(),
                client: ctx.net.options(ctx.quiet),
                progress: ctx.progress.clone(),
            })?;
            if json {
                print_json("mirror-push-report", &r);
            } else {
                say!(
                    "pushed {} to {}/{} ({} uploaded, {}; {} there already), tagged {}",
                    crate::cli::report::counted(r.artifacts, "artifact"),
                    r.registry,
                    r.repository,
                    r.blobs_uploaded,
                    human_bytes(r.bytes_uploaded),
                    r.blobs_present,
                    r.tags.join(", ")
                );
                // The registry spoken to over plain HTTP (--insecure-registry) needs it again.
                let insecure = ctx.net.insecure_registry.contains(&r.registry)
                    && !target.starts_with("oci+http://");
                say!(
                    "use it with: nodeforge fetch --mirror {target}{}",
                    if insecure {
                        format!(" --insecure-registry {}", r.registry)
                    } else {
                        String::new()
                    }
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let r = ops::export_mirror(&ctx.manifest, &ctx.lockfile, &ctx.out, &dir)?;
    if json {
        print_json("mirror-export-report", &r);
    } else {
        say!(
            "exported {} ({}) to {}, the lockfile included as {}",
            crate::cli::report::counted(r.files.len(), "file"),
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
