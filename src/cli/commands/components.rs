//! `nodeforge components`: every component with its version and URLs per architecture.

use std::process::ExitCode;

use clap::Args;

use super::super::{json_field, print_json};
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct ComponentsArgs {}

pub fn exec(ctx: &Ctx, args: ComponentsArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let ComponentsArgs {} = args;
    let specs = ops::components(&ctx.manifest)?;
    if json {
        print_json("components-report", &json_field("components", &specs));
    } else {
        for s in &specs {
            say!(
                "{} {} ({})\n  url:          {}\n  checksum-url: {} [{}]",
                s.component,
                s.version,
                s.arch,
                s.url,
                s.checksum_url,
                s.checksum_name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
