//! `nodeforge init [DIR]`: a new project from the seed's cluster, as `cargo new` makes one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::super::print_json;
use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's directory: created if missing, refused if not empty [default: .].
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

pub fn exec(ctx: &Ctx, args: InitArgs) -> Result<ExitCode, Error> {
    let r = ops::init(&args.dir)?;
    if ctx.json {
        print_json("init-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "created {}: {} (cluster `{}`, {} nodes: {}), its {} templates and .gitignore",
        r.dir.display(),
        r.manifest,
        r.cluster,
        r.nodes.len(),
        r.nodes.join(", "),
        r.files.len() - 2
    );
    let cd = if r.dir == std::path::Path::new(".") {
        String::new()
    } else {
        format!("cd {} && ", r.dir.display())
    };
    say!("next: {cd}nodeforge lock && nodeforge build");
    say!(
        "offline: {cd}nodeforge demo-mirror out/mirror && nodeforge lock --offline --mirrors-only --trust-mirror-checksums --mirror file://out/mirror && nodeforge build --offline --mirror file://out/mirror"
    );
    Ok(ExitCode::SUCCESS)
}
