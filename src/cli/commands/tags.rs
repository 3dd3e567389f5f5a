//! `nodeforge tags REGISTRY/REPOSITORY`: the node images a repository holds, their nodes,
//! generations and signatures.

use std::process::ExitCode;

use clap::Args;

use super::super::{print_json, short};
use crate::cli::Ctx;
use crate::ops::{self, Error};

#[derive(Debug, Args)]
pub struct TagsArgs {
    /// REGISTRY[:PORT]/REPOSITORY, without a tag.
    #[arg(value_name = "REGISTRY/REPOSITORY")]
    repository: String,
    #[command(flatten)]
    trust: crate::cli::args::TrustArgs,
}

pub fn exec(ctx: &Ctx, args: TagsArgs) -> Result<ExitCode, Error> {
    let r = ops::tags(&ops::TagsOptions {
        repository: args.repository,
        client: ctx.net.options(ctx.quiet),
        keys: args.trust.load()?,
    })?;
    if ctx.json {
        print_json("tags-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    for i in &r.images {
        let gens = if i.generations.is_empty() {
            String::new()
        } else {
            format!(
                " generation{} {}",
                if i.generations.len() == 1 { "" } else { "s" },
                i.generations
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let keys = |k: &[String]| {
            k.iter()
                .map(|k| k.get(..16).unwrap_or(k))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let signed = if i.trusted {
            format!("signed by trusted key {}", keys(&i.signed_by))
        } else if r.trust_checked && i.signature_keys.is_empty() {
            "NOT signed by a trusted key (unsigned)".to_string()
        } else if r.trust_checked {
            format!(
                "NOT signed by a trusted key (signed by {})",
                keys(&i.signature_keys)
            )
        } else if i.signature_keys.is_empty() {
            "unsigned".to_string()
        } else {
            format!("signed by key {} (not checked)", keys(&i.signature_keys))
        };
        say!(
            "{:<10} image {} ({}){gens}: {signed}; tags {}",
            i.node,
            short(&i.image_id),
            i.arch,
            i.tags
                .iter()
                .map(|t| if t.len() == 64 { short(t) } else { t.as_str() })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    say!(
        "{} in {}/{}{}",
        crate::cli::report::counted(r.images.len(), "node image"),
        r.registry,
        r.repository,
        if r.other_tags.is_empty() {
            String::new()
        } else {
            format!("; other tags: {}", r.other_tags.join(", "))
        }
    );
    if !r.trust_checked && r.images.iter().any(|i| !i.signature_keys.is_empty()) {
        eprintln!("note: signatures were not checked: pass --key PUB or --trusted-keys FILE to say which keys are trusted");
    }
    Ok(ExitCode::SUCCESS)
}
