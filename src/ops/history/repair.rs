//! `nodeforge repair`: damaged layers and image directories of `out/` written again from the
//! store and the records every generation keeps (as nix-store `--repair` does for the Nix
//! store). What `verify` finds wrong in `out/layers/` and `out/images/` is moved aside whole and
//! written again, and checked again; what cannot be (the store lacks the files, a generation's
//! own record is damaged) is said, with what to do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fsutil;
use crate::image::{ImageManifest, FLAT_FORMAT};
use crate::layout::OutDir;
use crate::ops::error::Error;
use crate::ops::steps::images::recorded_manifest;
use crate::ops::steps::materialize::{check_layer, materialize};
use crate::store::Store;

/// What `repair` found and did.
#[derive(Debug, Default, Serialize)]
pub struct RepairReport {
    pub layers_checked: usize,
    pub images_checked: usize,
    /// Layers written again, with what was wrong with each.
    pub repaired_layers: Vec<Repaired>,
    /// Image directories written again (their links or record), with what was wrong.
    pub repaired_images: Vec<Repaired>,
    /// What could not be repaired, one sentence each.
    pub unrepaired: Vec<String>,
}

/// One thing repaired and what was wrong with it.
#[derive(Debug, Serialize)]
pub struct Repaired {
    pub id: String,
    /// The generations that use it (`node@N`).
    pub used_by: Vec<String>,
    pub problems: Vec<String>,
}

/// Check every layer and image directory, and write again those found damaged, from the
/// records of the generations that use them. Holds the store alone (as gc), so no build runs
/// meanwhile.
/// The records each image is written from: the generations' own (build wrote them, nothing
/// changes them), with who uses each image; generations that cannot be read go to `unrepaired`.
fn records_in_use(
    out: &OutDir,
    unrepaired: &mut Vec<String>,
) -> BTreeMap<String, (ImageManifest, Vec<String>)> {
    let mut records: BTreeMap<String, (ImageManifest, Vec<String>)> = BTreeMap::new();
    for node in out.node_names() {
        let gens = match crate::generations::list(out.root(), &node) {
            Ok(g) => g,
            Err(e) => {
                unrepaired.push(format!("{node}: {e}"));
                continue;
            }
        };
        for g in gens {
            match recorded_manifest(out.root(), &node, &g) {
                Ok(m) if m.format != FLAT_FORMAT => {
                    records
                        .entry(m.id.clone())
                        .or_insert_with(|| (m, Vec::new()))
                        .1
                        .push(format!("{node}@{}", g.number));
                }
                Ok(_) => {}
                // A layer record gone holds the only copy of its entries: say what gives them
                // again.
                Err(e @ Error::RecordLayer { .. }) => unrepaired.push(format!(
                    "{node}@{}: {e} ({})",
                    g.number,
                    e.hints().join("; ")
                )),
                Err(e) => unrepaired.push(format!("{node}@{}: {e}", g.number)),
            }
        }
    }
    records
}

/// What is damaged, by id, with its problems.
struct Damage {
    layers: BTreeMap<String, Vec<String>>,
    images: BTreeMap<String, Vec<String>>,
}

/// Layers checked against their entries and root hashes, image directories against their
/// records and layers; counted in the report.
fn find_damage(out: &OutDir, store: &Store, r: &mut RepairReport) -> Damage {
    let mut layers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dir in visible(&out.layers()) {
        r.layers_checked += 1;
        let fails = check_layer(store, &dir, true).fails;
        if !fails.is_empty() {
            layers.insert(name_of(&dir), fails);
        }
    }
    let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dir in visible(&out.images()) {
        r.images_checked += 1;
        let fails = super::verify::check_image(out, &dir);
        if !fails.is_empty() {
            images.insert(name_of(&dir), fails);
        }
    }
    Damage { layers, images }
}

/// Check every layer and image directory, and write again those found damaged, from the
/// records of the generations that use them. Holds the store alone (as gc), so no build runs
/// meanwhile.
pub fn repair(out_dir: &Path) -> Result<RepairReport, Error> {
    let out = OutDir::new(out_dir);
    let store = crate::ops::steps::open_store_exclusive(&out)?;
    let mut r = RepairReport::default();
    let records = records_in_use(&out, &mut r.unrepaired);
    let Damage {
        layers: mut bad_layers,
        images: mut bad_images,
    } = find_damage(&out, &store, &mut r);

    // Every image that is damaged or uses a damaged layer is written again from its record
    // (a layer shared by several images is written once, then linked into each).
    let damaged: BTreeSet<String> = bad_layers.keys().cloned().collect();
    let mut moved: BTreeSet<PathBuf> = BTreeSet::new();
    let mut layer_users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, (m, used_by)) in &records {
        let layers: Vec<&String> = m
            .layers
            .iter()
            .map(|l| &l.id)
            .filter(|l| damaged.contains(*l))
            .collect();
        let image_bad = bad_images.contains_key(id);
        if layers.is_empty() && !image_bad {
            continue;
        }
        let mut aside = |dir: PathBuf| -> Result<(), Error> {
            if dir.exists() && moved.insert(dir.clone()) {
                fsutil::remove_dir_aside(&dir)?;
            }
            Ok(())
        };
        for l in &layers {
            aside(out.layer(l))?;
        }
        aside(out.image(id))?;
        if let Err(e) = materialize(&out, &store, m) {
            r.unrepaired
                .push(format!("image {id} ({}): {e}", used_by.join(", ")));
            continue;
        }
        for l in layers {
            layer_users
                .entry(l.clone())
                .or_default()
                .extend(used_by.iter().cloned());
        }
        r.repaired_images.push(Repaired {
            id: id.clone(),
            used_by: used_by.clone(),
            problems: bad_images.remove(id).unwrap_or_default(),
        });
    }
    for (l, mut used_by) in layer_users {
        used_by.sort();
        if let Some(problems) = bad_layers.remove(&l) {
            r.repaired_layers.push(Repaired {
                id: l,
                used_by,
                problems,
            });
        }
    }
    // Damaged things no generation uses: nothing to write them from; gc removes them.
    for (id, p) in bad_layers {
        r.unrepaired.push(format!(
            "layer {id} is damaged ({}) and no generation uses it: `nodeforge gc` removes it",
            p.join("; ")
        ));
    }
    for (id, p) in bad_images {
        r.unrepaired.push(format!(
            "image {id} is damaged ({}) and no generation uses it: `nodeforge gc` removes it",
            p.join("; ")
        ));
    }
    Ok(r)
}

/// The entries of `dir` not hidden (temporaries start with a dot), sorted.
fn visible(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fsutil::entries(dir)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

fn name_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
