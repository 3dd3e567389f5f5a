//! Finding images: a node's generations, `node@N`, an image id (prefix), and what their records
//! say. Shared by the history, build, registry and attestation commands.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::generations::{self, Generation};
use crate::image::{ImageManifest, Provenance};
use crate::ops::error::Error;
use crate::ops::steps::materialize::{find_image, read_image_manifest};
use crate::ops::steps::nodes::{self, KnownNodes};

/// The recorded entry list of a generation (kept with it, so it survives gc of the image).
pub fn generation_manifest(out: &Path, node: &str, number: u32) -> Result<ImageManifest, Error> {
    let gens = generations::list(out, node)?;
    if gens.is_empty() {
        return Err(generations::GenerationError::NoGenerations {
            node: node.to_string(),
        }
        .into());
    }
    let Some(g) = gens.iter().find(|g| g.number == number) else {
        return Err(generations::GenerationError::NoSuchGeneration {
            node: node.to_string(),
            number,
            existing: gens.iter().map(|g| g.number).collect(),
        }
        .into());
    };
    recorded_manifest(out, node, g)
}

/// The image record kept with generation `g` (from a list the caller already read), checked
/// against its id and against the image id the generation records.
pub(crate) fn recorded_manifest(
    out: &Path,
    node: &str,
    g: &Generation,
) -> Result<ImageManifest, Error> {
    let path = crate::layout::OutDir::new(out).generation_record(node, g.number);
    let m = read_image_manifest(&path)?;
    if g.image_id != m.id {
        return Err(Error::damaged(
            &path,
            format!(
                "the generation records image {}, its manifest.json is image {}: the record is damaged or was edited",
                g.image_id, m.id
            ),
        ));
    }
    Ok(m)
}

/// Resolve `node`, `node@N` or an image id (prefix) to an image's entry list.
pub fn resolve_image(manifest: &Path, out: &Path, reference: &str) -> Result<ImageManifest, Error> {
    let known = KnownNodes::read(manifest, out);
    if let Some((node, gen)) = reference.split_once('@') {
        known.check(node)?;
        let n: u32 = gen.parse().map_err(|_| {
            Error::Usage(format!(
                "`{reference}`: expected NODE@GENERATION, like worker1@2"
            ))
        })?;
        return generation_manifest(out, node, n);
    }
    if known.contains(reference) {
        let cur = generations::current(out, reference).ok_or_else(|| {
            generations::GenerationError::NoGenerations {
                node: reference.to_string(),
            }
        })?;
        return generation_manifest(out, reference, cur);
    }
    match find_image(out, reference) {
        Ok(m) => Ok(m),
        Err(e) => {
            // An image collected by gc is still known to the generations that had it.
            for node in generations::nodes(out) {
                for g in generations::list(out, &node)? {
                    if !reference.is_empty() && g.image_id.starts_with(reference) {
                        return recorded_manifest(out, &node, &g);
                    }
                }
            }
            // Not an image id but close to a node's name: a mistyped node name.
            let hex = reference.chars().all(|c| c.is_ascii_hexdigit());
            if !hex && nodes::suggest(reference, &known.all()).is_some() {
                Err(known.unknown(reference))
            } else {
                Err(e)
            }
        }
    }
}

/// The versions of each component an image holds.
pub(crate) fn versions(m: &ImageManifest) -> BTreeMap<String, BTreeSet<String>> {
    let mut v: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in m.provenance.values() {
        if let Provenance::Artifact {
            component, version, ..
        } = p
        {
            v.entry(component.clone())
                .or_default()
                .insert(version.clone());
        }
    }
    v
}
