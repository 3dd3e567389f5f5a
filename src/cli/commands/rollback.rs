//! `nodeforge rollback`: switch a node (or every node) to an earlier generation.

use std::process::ExitCode;

use clap::Args;

use super::super::print_json;
use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The node to roll back.
    #[arg(required_unless_present_any = ["all", "group"], conflicts_with_all = ["all", "group"])]
    node: Option<String>,
    /// A generation (`@2`, `NODE@2`, or `2` when no image id starts with it) or an image id
    /// (an unambiguous prefix of one) that the node had.
    #[arg(long, value_name = "GEN|ID")]
    to: Option<String>,
    /// Roll every node back to its previous generation (nodes with none are named and left).
    #[arg(long, conflicts_with = "to")]
    all: bool,
    /// Roll every node of this manifest group back to its previous generation (as --all,
    /// restricted to the group).
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["to", "all"])]
    group: Option<String>,
    /// With trusted keys, a target no trusted key validly signed is refused (nothing switched).
    #[command(flatten)]
    trust: crate::cli::args::TrustArgs,
}

pub fn exec(ctx: &Ctx, args: RollbackArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let RollbackArgs {
        node,
        to,
        all,
        group,
        trust,
    } = args;
    let keys = trust.load()?;
    if all || group.is_some() {
        let r = match &group {
            Some(g) => ops::rollback_group(&ctx.manifest, &ctx.out, g, &keys)?,
            None => ops::rollback_all(&ctx.manifest, &ctx.out, &keys)?,
        };
        if json {
            print_json("rollback-report", &r);
            return Ok(ExitCode::SUCCESS);
        }
        print(&r.rolled_back);
        for s in &r.skipped {
            eprintln!("note: {} was not rolled back: {}", s.node, s.reason);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let r = ops::rollback(
        &ctx.manifest,
        &ctx.out,
        &node.into_iter().collect::<Vec<_>>(),
        to.as_deref(),
        &keys,
    )?;
    if json {
        // One shape with `--all`'s: a single node is never skipped.
        print_json(
            "rollback-report",
            &serde_json::json!({ "rolled_back": r, "skipped": [] }),
        );
        return Ok(ExitCode::SUCCESS);
    }
    print(&r);
    Ok(ExitCode::SUCCESS)
}

fn print(r: &[ops::Rollback]) {
    for x in r {
        for l in &x.repaired_layers {
            eprintln!(
                "note: {}: layer {} was damaged ({}); it was set aside and written again from the store",
                x.node,
                l.id.get(..12).unwrap_or(&l.id),
                l.problem
            );
        }
        if x.already {
            say!(
                "{} is already on generation {} (image {}): nothing to switch",
                x.node,
                x.to,
                x.image_id
            );
            continue;
        }
        let from = x.from.map_or_else(|| "-".to_string(), |f| f.to_string());
        say!(
            "{}: generation {from} → {} (image {}){}{}",
            x.node,
            x.to,
            x.image_id,
            if x.rebuilt {
                ", its files rebuilt from the store"
            } else {
                ""
            },
            match x.skipped_generations.as_slice() {
                [] => String::new(),
                [one] => format!("; skipped generation {one}: the same image as generation {from}"),
                many => format!(
                    "; skipped generations {}: the same image as generation {from}",
                    many.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        );
    }
}
