//! `nodeforge build`: one immutable, layered image per node.

use std::process::ExitCode;

use clap::Args;

use super::super::{human_bytes, print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, Error};
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build only this node (repeatable).
    #[arg(long, value_name = "NAME")]
    node: Vec<String>,
    /// Refuse to change the lockfile: fail instead of resolving entries that are missing or
    /// `unresolved` (for CI).
    #[arg(long)]
    locked: bool,
    /// Build even if the manifest breaks the Kubernetes version skew policy (printed as warnings).
    #[arg(long)]
    allow_skew: bool,
    /// Sign every node's image with this private key (see `nodeforge sign`).
    #[arg(long, value_name = "KEY")]
    sign: Option<std::path::PathBuf>,
    #[command(flatten)]
    x509: crate::cli::args::X509Args,
}

pub fn exec(ctx: &Ctx, args: BuildArgs) -> Result<ExitCode, Error> {
    let json = ctx.json;
    let BuildArgs {
        node,
        locked,
        allow_skew,
        sign,
        x509,
    } = args;
    let opts = ops::BuildOptions {
        manifest: ctx.manifest.clone(),
        lockfile: ctx.lockfile.clone(),
        out: ctx.out.clone(),
        nodes: node,
        fetch: ctx.net.config(ctx.quiet)?,
        jobs: ctx.net.jobs(),
        progress: ctx.progress.clone(),
        locked,
        allow_outside_templates: ctx.allow_outside_templates,
        allow_skew,
        sign: sign.clone(),
        x509: x509.pair(),
    };
    let sign_key = sign;
    let r = ops::build(&opts)?;
    if let Some(m) = r.lock.message() {
        eprintln!("{m}");
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        print_json("build-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    for n in &r.nodes {
        let status = serde_json::to_value(n.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let layers: Vec<String> = n
            .layers
            .iter()
            .map(|l| {
                format!(
                    "{} {} ({}{})",
                    l.role,
                    short(&l.id),
                    human_bytes(l.bytes),
                    if l.written { ", new" } else { "" }
                )
            })
            .collect();
        say!(
            "{status:>10} {:<10} {} {}: {}",
            n.node,
            n.image_id,
            crate::cli::report::counted(n.entries, "entry"),
            layers.join(", ")
        );
    }
    for n in &r.nodes {
        if let Some(g) = n.rolled_back_to {
            eprintln!(
                "note: {}: was rolled back to generation {g}; this build makes generation {} current",
                n.node, n.generation
            );
        }
    }
    // `--sign` signs unchanged images too: say so rather than "nothing to do".
    let signed = r.nodes.iter().filter(|n| n.signature.is_some()).count();
    let signed_with = sign_key
        .as_ref()
        .filter(|_| signed > 0)
        .map(|k| {
            format!(
                "; signed {} with {}",
                crate::cli::report::counted(signed, "image"),
                k.display()
            )
        })
        .unwrap_or_default();
    if r.all_unchanged() {
        say!(
            "{}{} up to date{signed_with} ({:.2}s)",
            if signed > 0 { "" } else { "nothing to do: " },
            if r.nodes.len() == 1 {
                "1 node image is".to_string()
            } else {
                format!("all {} node images are", r.nodes.len())
            },
            r.elapsed_ms as f64 / 1000.0
        );
    } else {
        let count = |status| r.nodes.iter().filter(|n| n.status == status).count();
        say!(
            "built {}, reused {}, unchanged {} node images in {:.2}s; {}/<node>/current points at each",
            count(ops::NodeStatus::Built),
            count(ops::NodeStatus::Reused),
            count(ops::NodeStatus::Unchanged),
            r.elapsed_ms as f64 / 1000.0,
            ctx.out.join("nodes").display()
        );
        if !signed_with.is_empty() {
            say!("{}", signed_with.trim_start_matches("; "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
