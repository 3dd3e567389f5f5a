//! `nodeforge diff`: files added, removed and changed between two images, versions moved.

use std::process::ExitCode;

use clap::Args;

use super::super::print_json;
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older side: an image id (prefix), NODE (its current image) or NODE@GENERATION.
    a: String,
    /// The newer side, in the same forms.
    b: String,
}

pub fn exec(ctx: &Ctx, args: DiffArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let DiffArgs { a, b } = args;
    let d = ops::diff(&ctx.manifest, &ctx.out, &a, &b)?;
    if json {
        print_json("diff-report", &d);
        return Ok(ExitCode::SUCCESS);
    }
    say!("--- {}\n+++ {}", d.a, d.b);
    for v in &d.versions {
        say!(
            "version {}: {} → {}",
            v.component,
            v.from.as_deref().unwrap_or("(none)"),
            v.to.as_deref().unwrap_or("(none)")
        );
    }
    for p in &d.added {
        say!("added   {p}");
    }
    for p in &d.removed {
        say!("removed {p}");
    }
    for c in &d.changed {
        say!(
            "changed {}\n    old: {}\n    new: {}",
            c.path,
            c.old.as_deref().unwrap_or(""),
            c.new.as_deref().unwrap_or("")
        );
        if let Some(diff) = &c.diff {
            for line in diff.lines() {
                say!("    {line}");
            }
        }
    }
    if d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty() {
        say!("identical");
    }
    Ok(ExitCode::SUCCESS)
}
