//! `nodeforge push`: each node's current image to an OCI registry.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::super::{human_bytes, print_json, short};
use crate::cli::Ctx;
use crate::oci::client::{ClientOptions, Notes};
use crate::ops::{self, BlobStatus, Error};

/// How to reach a registry (push and pull).
#[derive(Debug, Args)]
#[command(next_help_heading = "Registry options")]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (HOST or HOST:PORT; repeatable). Every other registry
    /// is spoken to over HTTPS, checked against the system's roots.
    #[arg(long, value_name = "HOST")]
    insecure_registry: Vec<String>,
    /// Seconds to wait for the next bytes of a response.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    timeout: u64,
    /// Seconds to wait for a connection.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    connect_timeout: u64,
    /// Retries of a blob transfer that broke off, or of a request an unreachable or failing
    /// (5xx) registry did not complete: a download resumes from the bytes received, an upload
    /// or a manifest is sent again.
    #[arg(long, default_value_t = 3, value_name = "N")]
    retries: u32,
}

impl RegistryArgs {
    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            insecure: self.insecure_registry.clone(),
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            read_timeout: Duration::from_secs(self.timeout.max(1)),
            retries: self.retries,
            notes: Notes::new(|m| eprintln!("note: {m}")),
        }
    }
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// REGISTRY[:PORT]/REPOSITORY, without a tag: each image is tagged `<node>`,
    /// `<node>-gen<N>` and with its image id.
    #[arg(value_name = "REGISTRY/REPOSITORY")]
    target: String,
    /// Only this node (repeatable) [default: every node with an image].
    #[arg(long, value_name = "NAME")]
    node: Vec<String>,
    /// Mount blobs from this repository of the same registry before uploading them (repeatable).
    #[arg(long, value_name = "REPOSITORY")]
    mount_from: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn exec(ctx: &Ctx, args: PushArgs) -> Result<ExitCode, Error> {
    use std::io::IsTerminal;
    let r = ops::push(&ops::PushOptions {
        manifest: ctx.manifest.clone(),
        out: ctx.out.clone(),
        target: args.target,
        nodes: args.node,
        mount_from: args.mount_from,
        client: args.registry.options(),
        progress: !ctx.json && std::io::stderr().is_terminal(),
    })?;
    if ctx.json {
        print_json("push-report", &r);
        return Ok(ExitCode::SUCCESS);
    }
    for n in &r.nodes {
        let count = |s: BlobStatus| n.blobs.iter().filter(|b| b.status == s).count();
        say!(
            "{}: image {} (generation {}) → {}  tags {}  ({} sent, {} present, {} mounted; {})",
            n.node,
            short(&n.image_id),
            n.generation,
            n.reference,
            n.tags
                .iter()
                .map(|t| if t.len() == 64 { short(t) } else { t.as_str() })
                .collect::<Vec<_>>()
                .join(", "),
            super::pull::blobs(count(BlobStatus::Uploaded)),
            count(BlobStatus::Present),
            count(BlobStatus::Mounted),
            human_bytes(n.bytes_sent)
        );
        if let Some(a) = &n.attestations {
            say!(
                "{}: {} → referrer {} ({}; {} sent)",
                n.node,
                if a.files.len() == 1 {
                    "1 attestation file".to_string()
                } else {
                    format!("{} attestation files", a.files.len())
                },
                short(a.manifest_digest.trim_start_matches("sha256:")),
                match (a.referrers, &a.referrers_tag_updated) {
                    (ops::ReferrersVia::Api, _) => "the registry's referrers API".to_string(),
                    (ops::ReferrersVia::Tag, Some(t)) =>
                        format!("referrers tag {} updated", short(t)),
                    (ops::ReferrersVia::Tag, None) =>
                        "listed in its referrers tag already".to_string(),
                },
                super::pull::blobs(a.blobs_uploaded)
            );
        }
    }
    say!(
        "pushed {} images to {}/{}: {} uploaded ({}), {} already there, {} mounted",
        r.nodes.len(),
        r.registry,
        r.repository,
        super::pull::blobs(r.blobs_uploaded),
        human_bytes(r.bytes_uploaded),
        r.blobs_present,
        r.blobs_mounted
    );
    Ok(ExitCode::SUCCESS)
}
