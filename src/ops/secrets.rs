//! `nodeforge secrets check` and `secrets user-data`, and the secrets of `show NODE --boot
//! --secrets DIR`: the manifest's `[[secrets]]` rendered for the nodes, the files of the secrets
//! directory checked (`crate::credentials::check`), then delivered: fw_cfg arguments and
//! libvirt entries that name the files, or a cloud-config that carries them. The secrets
//! directory is read only; nothing of it is written anywhere but the cloud-config file the user
//! names (mode 0600, never inside `out/` or the template tree).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::{BootPlan, Error};
use crate::credentials::deliver::{self, Credential, WrittenFile};
use crate::credentials::{self, CheckOptions, Finding, NodeFiles, NodePlan, Severity, Templates};
use crate::fsutil::{self, resolved};
use crate::manifest::{Manifest, Node};

/// What every secrets command needs.
#[derive(Debug, Clone)]
pub struct SecretsOptions {
    pub manifest: PathBuf,
    pub out: PathBuf,
    /// The secrets directory (`--secrets DIR`).
    pub dir: PathBuf,
    /// Certificates expiring within this margin are a warning.
    pub expiry_margin: Duration,
    /// The margin as given (`30d`), for messages.
    pub margin_text: String,
}

#[derive(Debug, Clone)]
pub struct SecretsCheckOptions {
    pub secrets: SecretsOptions,
    /// Check only these nodes (all when empty).
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SecretsCheckReport {
    /// The secrets directory.
    pub secrets: PathBuf,
    /// No errors (warnings allowed).
    pub ok: bool,
    pub errors: usize,
    pub warnings: usize,
    /// Each checked node's files.
    pub nodes: Vec<NodeFiles>,
    /// Errors first, then warnings.
    pub problems: Vec<Finding>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone)]
pub struct UserDataOptions {
    pub secrets: SecretsOptions,
    pub node: String,
    /// Where to write it (mode 0600); None: the report carries it to print.
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserDataReport {
    pub node: String,
    /// The file written, or None when it goes to stdout.
    pub path: Option<PathBuf>,
    pub files: Vec<WrittenFile>,
    /// Warnings of the check (errors stop it).
    pub warnings: Vec<Finding>,
    /// The cloud-config itself, when no file was named.
    #[serde(skip)]
    pub content: Option<zeroize::Zeroizing<String>>,
}

/// The secrets directory, checked to exist and to lie outside `out/` and the template tree
/// (nodeforge puts neither's contents into images or registries, but neither is a place for keys).
fn secrets_dir(opts: &SecretsOptions, manifest: &Manifest) -> Result<PathBuf, Error> {
    let dir = &opts.dir;
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--secrets {}: {}",
            dir.display(),
            if dir.exists() {
                "is not a directory"
            } else {
                "no such directory"
            }
        )));
    }
    refuse_inside(dir, &opts.out, manifest, "--secrets")?;
    Ok(dir.clone())
}

/// Refuse `path` inside the output directory or the template tree.
fn refuse_inside(path: &Path, out: &Path, manifest: &Manifest, what: &str) -> Result<(), Error> {
    let at = resolved(path);
    for (root, name) in [
        (resolved(out), "the output directory"),
        (resolved(&manifest.templates), "the template tree"),
    ] {
        if at.starts_with(&root) {
            return Err(Error::Usage(format!(
                "{what} {}: is inside {name} {}: secrets must live elsewhere (images, exports and pushes are made from there); move them out, e.g. to ~/.config/nodeforge/secrets/{}",
                path.display(),
                root.display(),
                manifest.name
            )));
        }
    }
    Ok(())
}

/// The manifest's nodes by name (all when `names` is empty), or the error for an unknown one.
fn select<'m>(manifest: &'m Manifest, names: &[String]) -> Result<Vec<&'m Node>, Error> {
    if names.is_empty() {
        return Ok(manifest.nodes.values().collect());
    }
    names
        .iter()
        .map(|n| {
            manifest
                .nodes
                .values()
                .find(|node| node.name.as_str() == n)
                .ok_or_else(|| {
                    let known: Vec<String> =
                        manifest.nodes.keys().map(ToString::to_string).collect();
                    Error::UnknownNode {
                        node: n.clone(),
                        source_name: manifest.path.file_name().map_or_else(
                            || manifest.path.display().to_string(),
                            |f| f.to_string_lossy().into_owned(),
                        ),
                        suggestion: super::suggest(n, &known),
                        known,
                    }
                })
        })
        .collect()
}

fn no_secrets(manifest: &Manifest) -> Error {
    Error::Usage(format!(
        "{} declares no [[secrets]]: there is nothing to check or deliver (the README's Secrets section shows the seed's five files as entries)",
        manifest.path.display()
    ))
}

/// Render and check the secrets of `nodes`.
fn run_check<'m>(
    opts: &SecretsOptions,
    manifest: &'m Manifest,
    nodes: &[&'m Node],
) -> Result<(Vec<NodePlan<'m>>, credentials::CheckOutcome), Error> {
    let dir = secrets_dir(opts, manifest)?;
    let templates = Templates::new(manifest)?;
    let plans = nodes
        .iter()
        .map(|n| templates.plan(n))
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = credentials::check(
        &dir,
        &plans,
        &CheckOptions {
            expiry_margin: opts.expiry_margin,
            margin_text: opts.margin_text.clone(),
            now: SystemTime::now(),
        },
    );
    Ok((plans, outcome))
}

/// `nodeforge secrets check`.
pub fn secrets_check(opts: &SecretsCheckOptions) -> Result<SecretsCheckReport, Error> {
    let started = Instant::now();
    let manifest = Manifest::load(&opts.secrets.manifest)?;
    if manifest.secrets.is_empty() {
        return Err(no_secrets(&manifest));
    }
    let nodes = select(&manifest, &opts.nodes)?;
    let (_, outcome) = run_check(&opts.secrets, &manifest, &nodes)?;
    Ok(SecretsCheckReport {
        secrets: opts.secrets.dir.clone(),
        ok: outcome.errors() == 0,
        errors: outcome.errors(),
        warnings: outcome.warnings(),
        nodes: outcome.nodes,
        problems: outcome.findings,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// One node's plan, checked: its errors refuse; its warnings are returned.
fn checked_node<'m>(
    opts: &SecretsOptions,
    manifest: &'m Manifest,
    node: &str,
) -> Result<(NodePlan<'m>, Vec<Finding>), Error> {
    if manifest.secrets.is_empty() {
        return Err(no_secrets(manifest));
    }
    let nodes = select(manifest, &[node.to_string()])?;
    let (mut plans, outcome) = run_check(opts, manifest, &nodes)?;
    let (errors, warnings): (Vec<Finding>, Vec<Finding>) = outcome
        .findings
        .into_iter()
        .partition(|f| f.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(Error::Secrets {
            node: node.to_string(),
            dir: opts.dir.clone(),
            findings: errors,
        });
    }
    let plan = plans
        .pop()
        .ok_or_else(|| Error::Internal("no plan for the node checked".into()))?;
    Ok((plan, warnings))
}

/// `show NODE --boot --secrets DIR`: the boot plan with each secret passed as a systemd
/// credential over fw_cfg (QEMU arguments, libvirt `<sysinfo>`), after the node's check.
pub fn boot_plan_with_secrets(
    reference: &str,
    opts: &SecretsOptions,
) -> Result<(BootPlan, Vec<Finding>), Error> {
    let mut plan = super::boot_plan(&opts.manifest, &opts.out, reference)?;
    let manifest = Manifest::load(&opts.manifest)?;
    let (node_plan, warnings) = checked_node(opts, &manifest, &plan.node)?;
    let creds: Vec<Credential> = deliver::credentials(&opts.dir, &node_plan);
    plan.qemu.extend(deliver::qemu_args(&creds));
    plan.libvirt_sysinfo = Some(deliver::libvirt_sysinfo(&creds));
    plan.credentials = creds;
    Ok((plan, warnings))
}

/// `nodeforge secrets user-data NODE`: a NoCloud cloud-config carrying the node's secrets,
/// after the node's check; written with mode 0600 when a file is named.
pub fn secrets_user_data(opts: &UserDataOptions) -> Result<UserDataReport, Error> {
    let manifest = Manifest::load(&opts.secrets.manifest)?;
    if let Some(out) = &opts.output {
        refuse_inside(out, &opts.secrets.out, &manifest, "-o")?;
        if resolved(out).starts_with(resolved(&opts.secrets.dir)) {
            return Err(Error::Usage(format!(
                "-o {}: is inside the secrets directory {}; write it elsewhere",
                out.display(),
                opts.secrets.dir.display()
            )));
        }
    }
    let (plan, warnings) = checked_node(&opts.secrets, &manifest, &opts.node)?;
    let mut contents = Vec::new();
    for p in &plan.files {
        let path = credentials::source_path(&opts.secrets.dir, p);
        let bytes =
            std::fs::read(&path).map_err(|e| fsutil::FsError::new("cannot read", &path, e))?;
        contents.push(zeroize::Zeroizing::new(bytes));
    }
    let (text, files) = deliver::user_data(&opts.secrets.dir, &plan, &contents);
    let path = match &opts.output {
        Some(out) => {
            fsutil::write_atomic(out, text.as_bytes(), 0o600)?;
            Some(out.clone())
        }
        None => None,
    };
    Ok(UserDataReport {
        node: opts.node.clone(),
        content: if path.is_none() { Some(text) } else { None },
        path,
        files,
        warnings,
    })
}

/// `30d`, `12h`, `90m`, `3600s`, `2w`: a duration for `--expiry-margin`. Hand-written: five
/// suffixes do not justify a dependency.
pub fn parse_margin(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let bad =
        || format!("`{s}` is not a duration (like 30d, 12h, 2w: a number and s, m, h, d or w)");
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" | "" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        assert_eq!(parse_margin("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_margin("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_margin("0"), Ok(Duration::ZERO));
        assert!(parse_margin("3 days").is_err());
        assert!(parse_margin("d").is_err());
    }
}
