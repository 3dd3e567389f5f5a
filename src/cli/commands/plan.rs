//! `nodeforge plan`: what a build would change, in the order a rollout must follow.

use std::process::ExitCode;

use clap::Args;

use super::super::{print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, Error, StepKind};

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan even if the manifest breaks the Kubernetes version skew policy (printed as warnings).
    #[arg(long)]
    allow_skew: bool,
}

pub fn exec(ctx: &Ctx, args: PlanArgs) -> Result<ExitCode, Error> {
    let r = ops::plan(&ops::PlanOptions {
        manifest: ctx.manifest.clone(),
        lockfile: ctx.lockfile.clone(),
        out: ctx.out.clone(),
        jobs: ctx.net.jobs(),
        allow_outside_templates: ctx.allow_outside_templates,
        allow_skew: args.allow_skew,
    })?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if ctx.json {
        print_json("plan-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    let id = |i: &Option<String>| i.as_deref().map_or("-", short).to_string();
    for (n, step) in r.steps.iter().enumerate() {
        let title = match (step.kind, &step.group) {
            (StepKind::ControlPlane, _) => "control plane".to_string(),
            (StepKind::Canary, Some(g)) => format!("canary group `{g}`"),
            (_, Some(g)) => format!("group `{g}`"),
            (_, None) => "workers".to_string(),
        };
        say!("step {}: {title}", n + 1);
        if let Some(api) = &step.kube_apiserver {
            say!(
                "  kube-apiserver {} → {} (not built by nodeforge: upgrade the API servers before the nodes below)",
                api.from.as_deref().unwrap_or("(not recorded)"),
                api.to.as_deref().unwrap_or("-")
            );
        }
        for c in &step.nodes {
            let moved: Vec<String> = c
                .versions
                .iter()
                .map(|v| {
                    format!(
                        "{} {} → {}",
                        v.component,
                        v.from.as_deref().unwrap_or("-"),
                        v.to.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            say!(
                "  {:<10} {} → {}  {}",
                c.node,
                id(&c.from),
                id(&c.to),
                if moved.is_empty() {
                    "(configuration only)".to_string()
                } else {
                    moved.join(", ")
                }
            );
        }
        if !step.nodes.is_empty() {
            let nodes: Vec<String> = step
                .nodes
                .iter()
                .map(|c| format!("--node {}", c.node))
                .collect();
            // A build on a lockfile that lacks entries fails: lock first, and say so.
            if r.lock_first {
                say!(
                    "  then: nodeforge lock (the lockfile lacks what `needs` names), then nodeforge build {}",
                    nodes.join(" ")
                );
            } else {
                say!("  then: nodeforge build {}", nodes.join(" "));
            }
        }
    }
    // A long list helps nobody on a terminal; `--json` has every name.
    match r.unchanged.len() {
        0 => {}
        n if n <= 12 => say!("unchanged: {}", r.unchanged.join(", ")),
        n => say!("unchanged: {n} nodes (`--json` lists them)"),
    }
    for n in &r.needs {
        say!("needs: {n}");
    }
    if !r.needs.is_empty() {
        say!("(`-`: an image the plan cannot compute until `nodeforge lock` and `nodeforge fetch`, or a build, get what it needs)");
    }
    if r.steps.is_empty() {
        say!("nothing to do: every node image is up to date");
    }
    Ok(ExitCode::SUCCESS)
}
