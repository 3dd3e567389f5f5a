//! `nodeforge repair`: damaged layers and images of `out/` written again from the store and the
//! generations' records, saying what was fixed.

use std::process::ExitCode;

use clap::Args;

use super::super::{print_json, short};
use crate::cli::report::counted;
use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct RepairArgs {}

pub fn exec(ctx: &Ctx, args: RepairArgs) -> Result<ExitCode, Error> {
    let RepairArgs {} = args;
    let r = ops::repair(&ctx.out)?;
    for u in &r.unrepaired {
        eprintln!("error: not repaired: {}", crate::term::escape_lines(u));
    }
    if !r.unrepaired.is_empty() {
        crate::cli::print_hint("an image whose files the store lacks (pulled from a registry) is pulled again; one built here is written again by `nodeforge build` with the lockfile it was built from");
    }
    let code = if r.unrepaired.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if ctx.json {
        print_json("repair-report", &r);
        return Ok(code);
    }
    // The first problem of each, without the id it starts with (printed already).
    let first = |id: &str, problems: &[String]| -> String {
        let Some(p) = problems.first() else {
            return "linked to its layers written again".to_string();
        };
        let p = p
            .strip_prefix(&format!("layer {id}: "))
            .or_else(|| p.strip_prefix(&format!("image {id}: ")))
            .unwrap_or(p);
        match problems.len() {
            1 => p.to_string(),
            n => format!("{p} (and {})", counted(n - 1, "more problem")),
        }
    };
    for l in &r.repaired_layers {
        say!(
            "repaired layer {} (used by {}): {}",
            short(&l.id),
            l.used_by.join(", "),
            first(&l.id, &l.problems)
        );
    }
    for i in &r.repaired_images {
        say!(
            "repaired image {} ({}): {}",
            short(&i.id),
            i.used_by.join(", "),
            first(&i.id, &i.problems)
        );
    }
    if r.repaired_layers.is_empty() && r.repaired_images.is_empty() {
        if r.unrepaired.is_empty() {
            say!(
                "nothing to repair: {} and {} in {} are intact",
                counted(r.layers_checked, "layer"),
                counted(r.images_checked, "image"),
                ctx.out.display()
            );
        }
    } else {
        say!(
            "repaired {} and {} of the {} and {} in {}",
            counted(r.repaired_layers.len(), "layer"),
            counted(r.repaired_images.len(), "image"),
            counted(r.layers_checked, "layer"),
            counted(r.images_checked, "image"),
            ctx.out.display()
        );
    }
    Ok(code)
}
