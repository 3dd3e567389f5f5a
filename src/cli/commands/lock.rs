//! `nodeforge lock`: pin every artifact of the manifest to its URL and upstream's published
//! sha256; `--check` changes nothing and uses no network.

use std::process::ExitCode;

use clap::Args;

use super::super::{print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, EntryStatus, Error};

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Change nothing and use no network: fail if the lockfile is missing, edited, stale or has
    /// unresolved entries.
    #[arg(long)]
    check: bool,
    /// Re-resolve this component even if its entry is unchanged (repeatable).
    #[arg(long, value_name = "COMPONENT")]
    update: Vec<String>,
    /// Record artifacts whose published sha256 cannot be read as `unresolved` instead of failing.
    #[arg(long)]
    allow_unresolved: bool,
    /// Lock even if the manifest breaks the Kubernetes version skew policy (printed as warnings).
    #[arg(long)]
    allow_skew: bool,
}

pub fn exec(ctx: &Ctx, args: LockArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    if args.check {
        return check(ctx);
    }
    let LockArgs {
        update,
        allow_unresolved,
        allow_skew,
        ..
    } = args;
    let opts = ops::LockOptions {
        manifest: ctx.manifest.clone(),
        lockfile: ctx.lockfile.clone(),
        update,
        allow_unresolved,
        fetch: ctx.net.config(ctx.quiet)?,
        jobs: ctx.net.jobs(),
        allow_skew,
    };
    let r = ops::lock(&opts)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        print_json("lock-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    for e in &r.entries {
        let what = format!("{} {} ({})", e.component, e.version, e.arch);
        let sha = e.sha256.as_deref().map(short).unwrap_or("-");
        match (e.status, &e.previous_version) {
            (EntryStatus::Updated, Some(prev)) => {
                say!(
                    "{:>10} {} {prev} → {} ({}) {sha}",
                    "updated",
                    e.component,
                    e.version,
                    e.arch
                );
            }
            (status, _) => {
                let s = serde_json::to_value(status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                say!("{s:>10} {what} {sha}");
            }
        }
    }
    if let Some(prev) = &r.previous_kube_apiserver {
        say!(
            "     moved kube-apiserver {prev} → {} (control plane)",
            r.kube_apiserver.as_deref().unwrap_or("(not set)")
        );
    }
    if r.written {
        say!("wrote {} (lock-id {})", r.lockfile.display(), r.lock_id);
    } else {
        say!(
            "{} is up to date (lock-id {})",
            r.lockfile.display(),
            r.lock_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn check(ctx: &Ctx) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let c = ops::check_lock(&ctx.manifest, &ctx.lockfile)?;
    // Intact and fresh is not enough: an unresolved entry cannot be fetched or built.
    if !c.unresolved.is_empty() {
        let mut components: Vec<String> = c
            .lock
            .artifacts
            .iter()
            .filter(|e| e.sha256().is_none())
            .map(|e| e.component.to_string())
            .collect();
        components.sort();
        components.dedup();
        return Err(Error::UnresolvedEntries {
            lockfile: c.lockfile,
            labels: c.unresolved,
            components,
        });
    }
    if json {
        print_json("lock-check-report", &c);
    } else {
        say!(
            "{} is fresh: {}, lock-id {}",
            c.lockfile.display(),
            crate::cli::report::counted(c.artifacts, "artifact"),
            c.lock_id
        );
    }
    Ok(ExitCode::SUCCESS)
}
