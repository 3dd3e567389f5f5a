//! `nodeforge list`: each node's generations, the current one marked.

use std::process::ExitCode;

use clap::Args;

use super::super::{json_field, print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this node.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
}

pub fn exec(ctx: &Ctx, args: ListArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let ListArgs { node } = args;
    let h = ops::list(&ctx.manifest, &ctx.out, node.as_deref())?;
    if json {
        print_json("list-report", &json_field("nodes", &h));
        return Ok(ExitCode::SUCCESS);
    }
    if h.is_empty() {
        // Nothing here: say so, and where generations are (`make demo` writes out/demo).
        eprintln!(
            "note: no node has generations in {} yet: `nodeforge build` makes them",
            ctx.out.display()
        );
        for n in ops::nested_outputs(&ctx.out) {
            eprintln!(
                "hint: {} holds generations (`make demo` writes out/demo): `nodeforge list --out {}{}`",
                n.out.display(),
                n.out.display(),
                n.lockfile
                    .map(|l| format!(" --lockfile {}", l.display()))
                    .unwrap_or_default()
            );
        }
    }
    for n in &h {
        say!("{}", n.node);
        for g in &n.generations {
            let mark = if Some(g.number) == n.current {
                "*"
            } else {
                " "
            };
            say!(
                "  {mark} {:>3}  {}  lock {}  {}{}",
                g.number,
                g.image_id,
                short(g.lock_id.trim_start_matches("blake3:")),
                g.built_at,
                if n.whole_root.contains(&g.number) {
                    "  (whole-root, format 1: cannot be switched to)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
