//! `nodeforge rollback`: switch a node (or every node) to an earlier generation.

use std::process::ExitCode;

use clap::Args;

use super::super::print_json;
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The node to roll back.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    node: Option<String>,
    /// An image id, or an unambiguous prefix of one, that the node had.
    #[arg(long, value_name = "ID")]
    to: Option<String>,
    /// Roll every node back to its previous generation.
    #[arg(long, conflicts_with = "to")]
    all: bool,
}

pub fn exec(ctx: &Ctx, args: RollbackArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let RollbackArgs { node, to, all } = args;
    let nodes = if all {
        crate::generations::nodes(&ctx.out)
    } else {
        node.into_iter().collect()
    };
    let r = ops::rollback(&ctx.manifest, &ctx.out, &nodes, to.as_deref())?;
    if json {
        print_json(&r);
        return Ok(ExitCode::SUCCESS);
    }
    for x in &r {
        let from = x.from.map_or_else(|| "-".to_string(), |f| f.to_string());
        say!(
            "{}: generation {from} → {} (image {}){}",
            x.node,
            x.to,
            x.image_id,
            if x.rebuilt {
                ", its files rebuilt from the store"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
