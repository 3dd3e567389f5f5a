//! `nodeforge fetch`: download every locked artifact the store lacks, verified against the lockfile.

use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json, print_problems};
use crate::cli::Ctx;
use crate::ops::{self, ArtifactStatus, Error};
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Refuse to change the lockfile: fail instead of resolving entries that are missing or
    /// `unresolved` (for CI).
    #[arg(long)]
    locked: bool,
}

pub fn exec(ctx: &Ctx, args: FetchArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let FetchArgs { locked } = args;
    let opts = ops::FetchOptions {
        manifest: ctx.manifest.clone(),
        lockfile: ctx.lockfile.clone(),
        out: ctx.out.clone(),
        fetch: ctx.net.config(ctx.quiet)?,
        jobs: ctx.net.jobs(),
        progress: ctx.progress.clone(),
        locked,
    };
    let r = ops::fetch(&opts)?;
    if let Some(m) = r.lock.message() {
        eprintln!("{m}");
    }
    for w in r.artifacts.iter().flat_map(|a| &a.warnings) {
        eprintln!("warning: {w}");
    }
    let failures = r.failure_list();
    let problems = ops::failure_problems(&failures);
    print_problems(&problems, None);
    if json {
        print_json("fetch-report", &r);
    } else {
        for a in r
            .artifacts
            .iter()
            .filter(|a| a.status == ArtifactStatus::Fetched)
        {
            // A download that continued an interrupted run's partial file says so.
            let resumed = if a.resumed_from > 0 {
                format!(
                    ", resumed: {} bytes were left by an earlier run",
                    a.resumed_from
                )
            } else {
                String::new()
            };
            say!(
                "{:>10} {} {} ({}) {} from {}{resumed}",
                "fetched",
                a.component,
                a.version,
                a.arch,
                human_bytes(a.size.unwrap_or(0)),
                a.source.as_deref().unwrap_or("?")
            );
        }
        say!(
            "fetched {} ({}), {} already in the store, {} failed, in {:.2}s",
            artifacts(r.count(ArtifactStatus::Fetched)),
            human_bytes(r.fetched_bytes),
            r.count(ArtifactStatus::Present),
            failures.len(),
            // Milliseconds to seconds, for display only.
            r.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `1 artifact`, `6 artifacts`.
fn artifacts(n: usize) -> String {
    if n == 1 {
        "1 artifact".to_string()
    } else {
        format!("{n} artifacts")
    }
}
