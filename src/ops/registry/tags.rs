//! `nodeforge tags REGISTRY/REPOSITORY`: the node images a repository holds, read from its tags
//! (as `skopeo list-tags` and `skopeo inspect` would, in one): each image's node, generations
//! (`<node>-gen<N>` tags), manifest digest and whether a trusted key signed it (by the
//! attestations that travel with it as referrers). Nothing is downloaded but manifests, image
//! records and attestation files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::pull::read_record;
use super::referrers::{self, RegistrySource};
use crate::layout::SBOM_FILE;
use crate::oci::client::{ClientOptions, Registry};
use crate::oci::{self, Reference};
use crate::ops::error::Error;
use crate::trust::TrustedKeys;

pub struct TagsOptions {
    /// `REGISTRY/REPOSITORY`.
    pub repository: String,
    pub client: ClientOptions,
    pub keys: TrustedKeys,
}

#[derive(Debug, Serialize)]
pub struct TagsReport {
    pub registry: String,
    pub repository: String,
    /// The node images, by node then image id.
    pub images: Vec<TaggedImage>,
    /// Tags that hold no node image (a mirror's `latest`), sorted; the referrers tag scheme's
    /// `sha256-<hex>` tags are left out (they hold images' attestations).
    pub other_tags: Vec<String>,
    /// Whether trusted keys were given (`trusted` is only meaningful then).
    pub trust_checked: bool,
}

#[derive(Debug, Serialize)]
pub struct TaggedImage {
    pub node: String,
    pub image_id: String,
    /// `sha256:<hex>` of its manifest.
    pub manifest_digest: String,
    /// Its tags, sorted.
    pub tags: Vec<String>,
    /// The generations its `<node>-gen<N>` tags name, ascending.
    pub generations: Vec<u32>,
    pub arch: String,
    /// Every key (id) with a valid signature on exactly this image, trusted or not.
    pub signature_keys: Vec<String>,
    /// The trusted keys among them.
    pub signed_by: Vec<String>,
    /// Signed by a trusted key (false without keys given).
    pub trusted: bool,
}

pub fn tags(opts: &TagsOptions) -> Result<TagsReport, Error> {
    let r = Reference::parse(&opts.repository)?;
    if r.tag.is_some() || r.digest.is_some() {
        return Err(Error::Usage(format!(
            "`{}` names a tag or digest: `tags` takes REGISTRY/REPOSITORY and lists them all",
            opts.repository
        )));
    }
    let registry = Registry::new(&r.registry, &opts.client)?;
    let repo = r.repository.as_str();
    let what = format!("{}/{repo}", r.registry);
    let source = RegistrySource {
        registry: &registry,
        repository: repo,
    };
    // Tags by the manifest they hold: each manifest is read once.
    let mut by_digest: BTreeMap<String, (Vec<u8>, Vec<String>)> = BTreeMap::new();
    let mut other_tags = Vec::new();
    for tag in registry.list_tags(repo)? {
        // `sha256-<hex>`: the referrers tag scheme's index of an image's attestations (read
        // with the image below), not an image.
        if tag.starts_with("sha256-") {
            continue;
        }
        let (bytes, digest) = registry.get_manifest(repo, &tag)?;
        by_digest
            .entry(format!("sha256:{digest}"))
            .or_insert_with(|| (bytes, Vec::new()))
            .1
            .push(tag);
    }
    let mut images = Vec::new();
    for (digest, (bytes, mut tags)) in by_digest {
        tags.sort();
        let Ok(art) = oci::read_manifest(&what, &bytes) else {
            other_tags.extend(tags);
            continue;
        };
        let record = registry.get_blob(repo, &art.config.0, oci::MAX_CONFIG_BYTES)?;
        let m = read_record(&format!("{what}:{}", tags[0]), &record, &art, None)?;
        let subject = crate::hash::Sha256::parse(digest.trim_start_matches("sha256:"))
            .map_err(|e| Error::Internal(format!("a manifest digest: {e}")))?;
        let fetched = referrers::fetch(&source, &what, &m, &subject)?;
        let envelopes: Vec<(PathBuf, Vec<u8>)> = fetched
            .files
            .iter()
            .filter(|(n, _)| crate::layout::is_image_signature(n))
            .map(|(n, (_, b))| (PathBuf::from(n), b.clone()))
            .collect();
        let sbom = fetched
            .files
            .get(SBOM_FILE)
            .map(|(_, b)| crate::hash::Sha256::of(b).to_hex());
        let status = crate::ops::steps::attestations::signature_status(
            &m,
            &envelopes,
            sbom.as_deref(),
            &opts.keys,
        );
        let mut signature_keys: Vec<String> = status
            .signatures
            .iter()
            .filter(|c| c.mismatch.is_none())
            .flat_map(|c| c.keyids.iter().cloned())
            .collect();
        signature_keys.sort();
        signature_keys.dedup();
        let prefix = format!("{}-gen", m.node);
        let mut generations: Vec<u32> = tags
            .iter()
            .filter_map(|t| t.strip_prefix(&prefix)?.parse().ok())
            .collect();
        generations.sort_unstable();
        images.push(TaggedImage {
            trusted: status.trusted(),
            signed_by: status.signed_by,
            signature_keys,
            node: m.node,
            image_id: m.id,
            manifest_digest: digest,
            tags,
            generations,
            arch: m.arch,
        });
    }
    images.sort_by(|a, b| {
        (&a.node, &a.generations, &a.image_id).cmp(&(&b.node, &b.generations, &b.image_id))
    });
    other_tags.sort();
    Ok(TagsReport {
        registry: r.registry,
        repository: r.repository,
        images,
        other_tags,
        trust_checked: !opts.keys.is_empty(),
    })
}
