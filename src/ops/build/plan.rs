//! `nodeforge plan`: what a build would change, node by node, ordered as the Kubernetes version
//! skew policy wants a rollout (the control plane first, then canary groups, then the other
//! groups, then the remaining workers), and the skew check `lock`, `build` and `plan` share.
//! Read-only: new image ids are computed by build's own rendering with nothing written
//! (`Writes::Nothing`); what the store or the lockfile lacks is named instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::generations;
use crate::image::ImageManifest;
use crate::layout::OutDir;
use crate::lock::{LockError, Lockfile};
use crate::manifest::{Manifest, Node, Role};
use crate::ops::error::Error;
use crate::ops::steps::images::{recorded_manifest, versions};
use crate::ops::steps::render::{render_each, NodeImage, Writes};
use crate::ops::steps::skew::check_skew;
use crate::ops::steps::LockCheck;

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub manifest: PathBuf,
    pub lockfile: PathBuf,
    pub out: PathBuf,
    pub jobs: usize,
    pub allow_outside_templates: bool,
    /// Report skew as warnings instead of failing.
    pub allow_skew: bool,
}

/// What kind of rollout step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// kube-apiserver, and the nodes of role `control`.
    ControlPlane,
    /// The workers of a group marked `canary = true`.
    Canary,
    /// The workers of another group.
    Group,
    /// The workers in no group (the cluster's versions).
    Workers,
}

/// A version that moves on a node (or on the control plane).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionMove {
    pub component: String,
    /// None: the node has no image yet, or did not run the component.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One node a build would change.
#[derive(Debug, Clone, Serialize)]
pub struct NodeChange {
    pub node: String,
    pub group: Option<String>,
    /// Its current image (none: never built).
    pub from: Option<String>,
    /// The image a build would make (none: the store or lockfile lacks what it needs; see `needs`).
    pub to: Option<String>,
    pub versions: Vec<VersionMove>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    pub kind: StepKind,
    /// The group (canary and group steps).
    pub group: Option<String>,
    /// The control plane's kube-apiserver move (control-plane step), which nodeforge does not
    /// build: upgrade the API servers before the nodes of later steps.
    pub kube_apiserver: Option<VersionMove>,
    pub nodes: Vec<NodeChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub steps: Vec<PlanStep>,
    /// Nodes whose image would stay as it is.
    pub unchanged: Vec<String>,
    /// What a build would first have to lock or fetch (`component version (arch)`), when the
    /// plan cannot compute every new image from the lockfile and store as they are.
    pub needs: Vec<String>,
    /// Some of `needs` are the lockfile's (entries missing or unresolved): `nodeforge lock`
    /// must run before a build can work; the others a build fetches itself.
    pub lock_first: bool,
    pub warnings: Vec<String>,
}

/// The lockfile as it is (missing: an empty one), and how it differs from the manifest.
fn current_lock(
    opts: &PlanOptions,
    manifest: &Manifest,
) -> Result<(Lockfile, Vec<crate::lock::Change>), Error> {
    let lock = match Lockfile::load(&opts.lockfile) {
        Ok(l) => l,
        Err(LockError::Missing { .. }) => Lockfile::new(crate::lock::inputs_hash(&[]), Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let stale = crate::lock::staleness(
        &lock,
        &manifest.artifacts(),
        manifest.kube_apiserver.as_deref(),
    );
    Ok((lock, stale))
}

/// The warning `plan` gives when the lockfile lags behind the manifest, naming who completes it.
fn stale_warning(stale: &[crate::lock::Change]) -> Option<String> {
    if stale.is_empty() {
        return None;
    }
    // A build completes additions itself; anything else is `lock`'s to write.
    let build_completes = stale.iter().all(|c| {
        matches!(
            c,
            crate::lock::Change::Added { .. } | crate::lock::Change::ControlPlane { .. }
        )
    });
    Some(format!(
        "the lockfile is not up to date ({}): {}",
        stale
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        if build_completes {
            "`nodeforge build` completes it (or run `nodeforge lock`)"
        } else {
            "run `nodeforge lock` before building"
        }
    ))
}

/// The image the node runs now, as its current generation recorded it (none: never built or
/// unreadable).
fn current_image(out: &Path, name: &str) -> Option<ImageManifest> {
    generations::current(out, name).and_then(|n| {
        let gens = generations::list(out, name).ok()?;
        let g = gens.into_iter().find(|g| g.number == n)?;
        recorded_manifest(out, name, &g).ok()
    })
}

/// The versions that move on a node from its current image to the new one; without the new
/// image, its versions come from the manifest.
fn version_moves(
    manifest: &Manifest,
    node: &Node,
    current: Option<&ImageManifest>,
    new: Option<&ImageManifest>,
) -> Vec<VersionMove> {
    let old_v = current.map(versions).unwrap_or_default();
    let new_v: BTreeMap<String, BTreeSet<String>> = match new {
        Some(m) => versions(m),
        None => manifest
            .components_of(node)
            .values()
            .filter(|c| !c.install.is_empty())
            .map(|c| (c.name.to_string(), BTreeSet::from([c.version.clone()])))
            .collect(),
    };
    let joined =
        |s: Option<&BTreeSet<String>>| s.map(|s| s.iter().cloned().collect::<Vec<_>>().join("+"));
    old_v
        .keys()
        .chain(new_v.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|c| old_v.get(*c) != new_v.get(*c))
        .map(|c| VersionMove {
            component: c.clone(),
            from: joined(old_v.get(c)),
            to: joined(new_v.get(c)),
        })
        .collect()
}

/// The rollout step a node belongs to.
fn step_of(manifest: &Manifest, node: &Node) -> (StepKind, Option<String>) {
    let group = node.group.as_ref().and_then(|g| manifest.groups.get(g));
    match (node.role, group) {
        (Role::Control, _) => (StepKind::ControlPlane, None),
        (Role::Worker, Some(g)) if g.canary => (StepKind::Canary, Some(g.name.clone())),
        (Role::Worker, Some(g)) => (StepKind::Group, Some(g.name.clone())),
        (Role::Worker, None) => (StepKind::Workers, None),
    }
}

/// The nodes sorted into rollout steps, with what a build lacks to compute their new images.
#[derive(Default)]
struct Changes {
    steps: BTreeMap<(StepKind, Option<String>), Vec<NodeChange>>,
    unchanged: Vec<String>,
    needs: BTreeSet<String>,
    lock_first: bool,
}

/// Compares each node's current image with the one rendered for it (`Err(NotInStore)`: what the
/// store or lockfile lacks) and sorts the changed nodes into steps.
fn sort_changes(
    out: &Path,
    manifest: &Manifest,
    nodes: &[&Node],
    images: Vec<NodeImage>,
) -> Result<Changes, Error> {
    let mut changes = Changes::default();
    for (node, image) in nodes.iter().zip(images) {
        let name = node.name.as_str();
        let current = current_image(out, name);
        let new = match image {
            Ok(m) => Some(m),
            Err(Error::NotInStore { missing }) => {
                changes.lock_first |= missing
                    .iter()
                    .any(|f| f.cause == crate::ops::FailureCause::Unresolved);
                changes.needs.extend(missing.into_iter().map(|f| f.message));
                None
            }
            Err(e) => return Err(e),
        };
        if let (Some(c), Some(n)) = (&current, &new) {
            if c.id == n.id {
                changes.unchanged.push(name.to_string());
                continue;
            }
        }
        let moved = version_moves(manifest, node, current.as_ref(), new.as_ref());
        changes
            .steps
            .entry(step_of(manifest, node))
            .or_default()
            .push(NodeChange {
                node: name.to_string(),
                group: node.group.clone(),
                from: current.map(|c| c.id),
                to: new.map(|m| m.id),
                versions: moved,
            });
    }
    Ok(changes)
}

pub fn plan(opts: &PlanOptions) -> Result<PlanReport, Error> {
    let manifest = Manifest::load(&opts.manifest)?;
    let (lock, stale) = current_lock(opts, &manifest)?;
    let mut warnings = check_skew(&manifest, Some(&lock), opts.allow_skew)?;
    warnings.extend(stale_warning(&stale));
    let out = OutDir::new(&opts.out);
    let store = crate::ops::steps::open_store_read_only(&out, false)?;
    let checked = LockCheck {
        lockfile: opts.lockfile.clone(),
        lock_id: format!("blake3:{}", lock.lock_id()),
        artifacts: lock.artifacts.len(),
        unresolved: Vec::new(),
        manifest,
        lock,
    };
    let manifest = &checked.manifest;
    let nodes: Vec<&Node> = manifest.nodes.values().collect();
    let (images, _) = render_each(
        &store,
        &checked,
        &nodes,
        opts.jobs,
        opts.allow_outside_templates,
        Writes::Nothing,
    )?;
    let Changes {
        mut steps,
        unchanged,
        needs,
        lock_first,
    } = sort_changes(&opts.out, manifest, &nodes, images)?;
    // The control plane's own move, recorded in the lockfile by the last lock.
    let recorded = checked.lock.kube_apiserver.clone();
    let api_move =
        (manifest.kube_apiserver.is_some() && recorded != manifest.kube_apiserver).then(|| {
            VersionMove {
                component: "kube-apiserver".into(),
                from: recorded,
                to: manifest.kube_apiserver.clone(),
            }
        });
    if api_move.is_some() {
        steps.entry((StepKind::ControlPlane, None)).or_default();
    }
    Ok(PlanReport {
        steps: steps
            .into_iter()
            .map(|((kind, group), nodes)| PlanStep {
                kind,
                group,
                kube_apiserver: (kind == StepKind::ControlPlane)
                    .then(|| api_move.clone())
                    .flatten(),
                nodes,
            })
            .collect(),
        unchanged,
        needs: needs.into_iter().collect(),
        lock_first,
        warnings,
    })
}
