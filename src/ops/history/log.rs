//! `nodeforge list`, `rollback` and `diff`: reading and switching a node's generations, and
//! comparing two images.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::generations::{self, Generation};
use crate::image::{ImageManifest, Kind, Provenance, FLAT_FORMAT};
use crate::layout::OutDir;
use crate::ops::error::Error;
use crate::ops::steps::images::{generation_manifest, resolve_image, versions};
use crate::ops::steps::materialize::materialize;
use crate::ops::steps::nodes::{check_node, KnownNodes};

#[derive(Debug, Clone, Serialize)]
pub struct NodeHistory {
    pub node: String,
    pub current: Option<u32>,
    pub generations: Vec<Generation>,
    /// Generations whose image is a whole-root image of format 1 (from before layered
    /// images): listed, never switched to.
    pub whole_root: Vec<u32>,
}

/// The format of a generation's recorded image (1: whole-root; 2: layered), read without
/// checking the record (`list` only reports it).
fn recorded_format(out: &Path, node: &str, number: u32) -> Option<u32> {
    #[derive(serde::Deserialize)]
    struct Format {
        format: u32,
    }
    let path = OutDir::new(out).generation_record(node, number);
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<Format>(&bytes)
        .ok()
        .map(|f| f.format)
}

/// An output directory nested in another (`make demo`'s `out/demo`) that holds node
/// generations, with the lockfile beside its images when there is one.
#[derive(Debug, Clone, Serialize)]
pub struct NestedOut {
    pub out: std::path::PathBuf,
    pub lockfile: Option<std::path::PathBuf>,
}

/// The directories directly inside `out` that hold generations of their own, sorted: where a
/// `list` of an empty `out` should look instead.
pub fn nested_outputs(out: &Path) -> Vec<NestedOut> {
    let mut found: Vec<NestedOut> = crate::fsutil::entries(out)
        .map(|e| e.path())
        .filter(|d| d.is_dir() && !generations::nodes(d).is_empty())
        .map(|d| {
            let mut locks: Vec<std::path::PathBuf> = crate::fsutil::entries(&d)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "lock"))
                .collect();
            locks.sort();
            NestedOut {
                lockfile: locks.into_iter().next(),
                out: d,
            }
        })
        .collect();
    found.sort_by(|a, b| a.out.cmp(&b.out));
    found
}

/// Every node's generations (or one node's), oldest first, with the current one.
pub fn list(manifest: &Path, out: &Path, node: Option<&str>) -> Result<Vec<NodeHistory>, Error> {
    let nodes = match node {
        Some(n) => {
            check_node(manifest, out, n)?;
            if !generations::nodes(out).iter().any(|x| x == n) {
                return Err(generations::GenerationError::NoGenerations {
                    node: n.to_string(),
                }
                .into());
            }
            vec![n.to_string()]
        }
        None => generations::nodes(out),
    };
    nodes
        .into_iter()
        .map(|n| {
            let gens = generations::list(out, &n)?;
            Ok(NodeHistory {
                current: generations::current(out, &n),
                whole_root: gens
                    .iter()
                    .filter(|g| recorded_format(out, &n, g.number) == Some(FLAT_FORMAT))
                    .map(|g| g.number)
                    .collect(),
                generations: gens,
                node: n,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    pub node: String,
    pub from: Option<u32>,
    pub to: u32,
    pub image_id: String,
    /// The image's files had been collected and were written again from the store.
    pub rebuilt: bool,
    /// The node was on that image already: nothing was switched.
    pub already: bool,
    /// Generations passed over, newest first: between the current one and `to`, they hold the
    /// current image, so going back to them would change nothing.
    pub skipped_generations: Vec<u32>,
    /// Layers of the target image that were damaged (or planted): set aside and written again
    /// from the store.
    pub repaired_layers: Vec<RepairedLayer>,
}

/// A damaged layer directory a rollback set aside and wrote again from the store.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedLayer {
    pub id: String,
    /// What the check found wrong with it, the first of its problems.
    pub problem: String,
}

/// A node `rollback --all` left where it is, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub node: String,
    pub current: Option<u32>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackAll {
    pub rolled_back: Vec<Rollback>,
    /// Nodes with no generation to go back to.
    pub skipped: Vec<Skipped>,
}

/// Switch nodes to the newest earlier generation whose image differs from the current one (or
/// to the one `to` names: a generation number or an image id prefix). All targets are found
/// and their images made present before any node is switched. With trusted `keys`, every
/// target must carry a valid signature by one of them, checked before anything is written.
pub fn rollback(
    manifest: &Path,
    out: &Path,
    nodes: &[String],
    to: Option<&str>,
    keys: &crate::trust::TrustedKeys,
) -> Result<Vec<Rollback>, Error> {
    let known = KnownNodes::read(manifest, out);
    let mut plan = Vec::new();
    for node in nodes {
        known.check(node)?;
        let generations::Target {
            generation: mut target,
            skipped,
        } = generations::target(out, node, to)?;
        let current = generations::current(out, node);
        // `--to` the image the node is on: its current generation, not a newer one with it.
        if let Some(cur) = current {
            let gens = generations::list(out, node)?;
            if let Some(g) = gens
                .into_iter()
                .find(|g| g.number == cur && g.image_id == target.image_id)
            {
                target = g;
            }
        }
        plan.push((node.clone(), current, target, skipped));
    }
    if !keys.is_empty() {
        for (node, _, target, _) in &plan {
            let m = generation_manifest(out, node, target.number)?;
            let status = crate::ops::steps::image_signatures(out, &m, keys);
            if !status.trusted() {
                return Err(crate::ops::steps::attestations::untrusted(
                    &format!("rollback of {node} to generation {}", target.number),
                    &status,
                    &keys.keys,
                ));
            }
        }
    }
    let layout = OutDir::new(out);
    let store = crate::ops::steps::open_store(&layout)?;
    let mut rebuilt = Vec::new();
    let mut repaired = Vec::new();
    for (node, _, target, _) in &plan {
        let m = generation_manifest(out, node, target.number)?;
        // Switch only to layers that are what their entries make: a damaged or planted layer
        // directory is set aside and the layer written again from the store (and must then be
        // what the generation's record pins).
        // Said in the report: a rollback never rewrites a layer silently.
        let mut fixed = Vec::new();
        for l in &m.layers {
            let dir = layout.layer(&l.id);
            if !dir.exists() {
                continue;
            }
            let check = crate::ops::steps::materialize::check_layer(&store, &dir, false);
            if let Some(problem) = check.fails.into_iter().next() {
                crate::fsutil::remove_dir_aside(&dir)?;
                fixed.push(RepairedLayer {
                    id: l.id.clone(),
                    problem,
                });
            }
        }
        let (_, _, new) = materialize(&layout, &store, &m)?;
        rebuilt.push(new);
        repaired.push(fixed);
    }
    let mut done = Vec::new();
    for (((node, from, target, skipped), rebuilt), repaired_layers) in
        plan.into_iter().zip(rebuilt).zip(repaired)
    {
        let already = from == Some(target.number);
        if !already {
            generations::switch(out, &node, target.number)?;
        }
        done.push(Rollback {
            node,
            from,
            to: target.number,
            image_id: target.image_id,
            rebuilt,
            already,
            skipped_generations: skipped,
            repaired_layers,
        });
    }
    Ok(done)
}

/// Switch every node that has a previous generation to it (all targets found first); the nodes
/// that have none are named, and stay where they are. An error only when no node can go back.
pub fn rollback_all(
    manifest: &Path,
    out: &Path,
    keys: &crate::trust::TrustedKeys,
) -> Result<RollbackAll, Error> {
    rollback_among(manifest, out, generations::nodes(out), keys)
}

/// `rollback --group G`: [`rollback_all`] restricted to the nodes of group `G` of the manifest.
pub fn rollback_group(
    manifest: &Path,
    out: &Path,
    group: &str,
    keys: &crate::trust::TrustedKeys,
) -> Result<RollbackAll, Error> {
    let m = crate::manifest::Manifest::load(manifest)?;
    let Some(g) = m.groups.get(group) else {
        let known: Vec<String> = m.groups.keys().cloned().collect();
        return Err(Error::Usage(format!(
            "`{group}` is not a group of {}{}",
            manifest.display(),
            if known.is_empty() {
                " (it declares none)".to_string()
            } else {
                format!(
                    " (groups: {}){}",
                    known.join(", "),
                    crate::ops::steps::nodes::suggest(group, &known)
                        .map(|s| format!("; did you mean {s}?"))
                        .unwrap_or_default()
                )
            }
        )));
    };
    rollback_among(
        manifest,
        out,
        g.nodes.iter().map(ToString::to_string).collect(),
        keys,
    )
}

/// Roll back each of `candidates` that has a previous generation; name the others.
fn rollback_among(
    manifest: &Path,
    out: &Path,
    candidates: Vec<String>,
    keys: &crate::trust::TrustedKeys,
) -> Result<RollbackAll, Error> {
    let mut nodes = Vec::new();
    let mut skipped = Vec::new();
    for node in candidates {
        match generations::target(out, &node, None) {
            Ok(_) => nodes.push(node),
            Err(
                e @ (generations::GenerationError::NoPrevious { .. }
                | generations::GenerationError::NoGenerations { .. }),
            ) => skipped.push(Skipped {
                current: generations::current(out, &node),
                reason: e.to_string(),
                node,
            }),
            Err(e) => return Err(e.into()),
        }
    }
    if nodes.is_empty() {
        return Err(Error::NothingToRollBack {
            reasons: skipped.into_iter().map(|s| s.reason).collect(),
        });
    }
    Ok(RollbackAll {
        rolled_back: rollback(manifest, out, &nodes, None, keys)?,
        skipped,
    })
}

/// `nodeforge show`: an image's record and who signed it.
#[derive(Debug, Clone, Serialize)]
pub struct ShowReport {
    #[serde(flatten)]
    pub image: ImageManifest,
    /// Its signatures; `signed_by` names the trusted keys (`--key`) that validly signed it.
    pub signatures: crate::ops::steps::SignatureStatus,
    /// Every file beside it in `out/attestations/<id>/`: signatures, SBOM, provenance, systemd's
    /// `<NAME>.roothash.p7s`.
    pub attestations: Vec<std::path::PathBuf>,
}

pub fn show(
    manifest: &Path,
    out: &Path,
    reference: &str,
    keys: &crate::trust::TrustedKeys,
) -> Result<ShowReport, Error> {
    let image = resolve_image(manifest, out, reference)?;
    let signatures = crate::ops::steps::image_signatures(out, &image, keys);
    let attestations = crate::ops::steps::attestation_files(out, &image.id);
    Ok(ShowReport {
        image,
        signatures,
        attestations,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct EntryChange {
    pub path: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// For text files whose contents are in the store: a unified diff.
    pub diff: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionMove {
    pub component: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<EntryChange>,
    pub versions: Vec<VersionMove>,
}

fn describe(e: &crate::image::Entry) -> String {
    match e.kind {
        Kind::Dir => format!("dir {:04o}", e.mode),
        Kind::Symlink => format!("symlink -> {}", e.target.as_deref().unwrap_or("")),
        Kind::File => format!(
            "file {:04o} {} bytes blake3 {}",
            e.mode,
            e.size,
            e.blake3.map(|b| b.to_hex()).unwrap_or_default()
        ),
    }
}

/// Files added, removed and changed between two images, with unified diffs of rendered text
/// files, and the component versions that moved.
pub fn diff(manifest: &Path, out: &Path, a_ref: &str, b_ref: &str) -> Result<DiffReport, Error> {
    let a = resolve_image(manifest, out, a_ref)?;
    let b = resolve_image(manifest, out, b_ref)?;
    let store = crate::ops::steps::open_store(&OutDir::new(out))?;
    let amap: BTreeMap<&str, &crate::image::Entry> =
        a.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let bmap: BTreeMap<&str, &crate::image::Entry> =
        b.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let added = bmap
        .keys()
        .filter(|p| !amap.contains_key(*p))
        .map(|p| (*p).to_string())
        .collect();
    let removed = amap
        .keys()
        .filter(|p| !bmap.contains_key(*p))
        .map(|p| (*p).to_string())
        .collect();
    let mut changed = Vec::new();
    for (path, ea) in &amap {
        let Some(eb) = bmap.get(path) else { continue };
        if ea == eb {
            continue;
        }
        let text = |m: &ImageManifest, e: &crate::image::Entry| -> Option<String> {
            if !matches!(m.provenance.get(&e.path), Some(Provenance::Template { .. })) {
                return None;
            }
            let o = store.object(&e.blake3?)?;
            String::from_utf8(std::fs::read(o.path).ok()?).ok()
        };
        let diff = match (text(&a, ea), text(&b, eb)) {
            (Some(x), Some(y)) if x != y => Some(
                similar::TextDiff::from_lines(&x, &y)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("a{path}"), &format!("b{path}"))
                    .to_string(),
            ),
            _ => None,
        };
        changed.push(EntryChange {
            path: (*path).to_string(),
            old: Some(describe(ea)),
            new: Some(describe(eb)),
            diff,
        });
    }
    let (va, vb) = (versions(&a), versions(&b));
    let mut moved = Vec::new();
    for c in va.keys().chain(vb.keys()).collect::<BTreeSet<_>>() {
        let (x, y) = (va.get(c), vb.get(c));
        if x != y {
            let join = |s: Option<&BTreeSet<String>>| {
                s.map(|s| s.iter().cloned().collect::<Vec<_>>().join(", "))
            };
            moved.push(VersionMove {
                component: c.clone(),
                from: join(x),
                to: join(y),
            });
        }
    }
    Ok(DiffReport {
        a: a.id,
        b: b.id,
        added,
        removed,
        changed,
        versions: moved,
    })
}
