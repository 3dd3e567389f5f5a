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
    let layout = crate::layout::OutDir::new(out);
    let path = layout.generation_record(node, g.number);
    let m = read_image_manifest(&layout, &path)?;
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

/// How record `m` differs from `other` (`theirs` names it: "what the inputs make", the record
/// the manifest, lockfile, templates and store make for the same node now; or "the copy"), in
/// what they both say before layers are written (the verity parameters are checked against the
/// layers the store makes, by `materialize`). `None`: the same. Compares what the records say,
/// not their files, so an edit made in place (the image directory's record is the
/// generation's, by hard link) is caught.
pub(crate) fn record_differs(
    m: &ImageManifest,
    other: &ImageManifest,
    theirs: &str,
) -> Option<String> {
    if m.id != other.id {
        return Some(format!(
            "it is image {}, {theirs} is image {}",
            m.id, other.id
        ));
    }
    if m.node != other.node || m.arch != other.arch {
        return Some(format!(
            "it says node {} ({}), {theirs} says node {} ({})",
            m.node, m.arch, other.node, other.arch
        ));
    }
    let shape = |x: &ImageManifest| {
        x.layers
            .iter()
            .map(|l| (l.role, l.name.clone(), l.id.clone()))
            .collect::<Vec<_>>()
    };
    if shape(m) != shape(other) || m.format != other.format {
        return Some(format!("its layers are not the ones in {theirs}"));
    }
    if m.entries != other.entries {
        return Some(format!("its entry list is not the one in {theirs}"));
    }
    let paths: BTreeSet<&String> = m.provenance.keys().chain(other.provenance.keys()).collect();
    let differ: Vec<String> = paths
        .into_iter()
        .filter(|p| m.provenance.get(*p) != other.provenance.get(*p))
        .map(|p| {
            let say = |x: Option<&Provenance>| x.map_or_else(|| "nothing".to_string(), describe);
            format!(
                "{p}: {} here, {} in {theirs}",
                say(m.provenance.get(p)),
                say(other.provenance.get(p))
            )
        })
        .collect();
    if !differ.is_empty() {
        let more = differ.len().saturating_sub(3);
        let mut text = differ.into_iter().take(3).collect::<Vec<_>>().join("; ");
        if more > 0 {
            text.push_str(&format!(" (and {more} more)"));
        }
        return Some(format!("its provenance differs: {text}"));
    }
    let verity = |x: &ImageManifest| {
        x.layers
            .iter()
            .map(|l| l.verity.clone())
            .collect::<Vec<_>>()
    };
    // Only when `other` has them (a planned record has none before its layers are written).
    let known = other.verity.is_some() || verity(other).iter().all(Option::is_some);
    if known && (m.verity != other.verity || verity(m) != verity(other)) {
        return Some(format!(
            "its dm-verity parameters are not the ones in {theirs}"
        ));
    }
    None
}

/// What a provenance entry says, in a phrase (an artifact's version, URL and sha256 prefix).
fn describe(p: &Provenance) -> String {
    match p {
        Provenance::Artifact {
            component,
            version,
            url,
            sha256,
            member,
            ..
        } => format!(
            "{component} {version}{} from {url} (sha256 {})",
            member
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            sha256.get(..12).unwrap_or(sha256)
        ),
        Provenance::Template { template } => format!("template {template}"),
        Provenance::Enable { unit } => format!("enabling {unit}"),
        Provenance::Release { role } => format!("the {role} layer's extension-release file"),
        Provenance::Directory => "a directory".into(),
    }
}
