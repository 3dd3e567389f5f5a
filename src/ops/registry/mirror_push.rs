//! `nodeforge mirror push oci://REGISTRY/REPOSITORY`: the store's locked artifacts into an OCI
//! registry, each as the blob its sha256 names, so that a fleet of builders fetches them with
//! `--mirror oci://REGISTRY/REPOSITORY` (each still checked against the lockfile's sha256). One
//! manifest (`artifactType` `application/vnd.nodeforge.mirror.v1`, the lockfile as its config,
//! every artifact a layer annotated with its URL) keeps the blobs referenced, tagged
//! `lock-<lock id>` and `latest`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::fetch::Mirror;
use crate::hash::Sha256;
use crate::layout::OutDir;
use crate::oci::client::{ClientOptions, Registry};
use crate::oci::{self, Part};
use crate::ops::error::{ArtifactFailure, Error, FailureCause};
use crate::ops::steps::{check_lock, LockCheck};
use crate::progress::Unit;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct MirrorPushOptions {
    pub manifest: PathBuf,
    pub lockfile: PathBuf,
    pub out: PathBuf,
    /// `oci://REGISTRY/REPOSITORY` (`oci+http://` for plain HTTP).
    pub target: String,
    pub client: ClientOptions,
    /// Where progress is reported.
    pub progress: crate::progress::Reporting,
}

#[derive(Debug, Clone, Serialize)]
pub struct MirrorPushReport {
    pub registry: String,
    pub repository: String,
    /// Locked artifacts in the mirror.
    pub artifacts: usize,
    pub blobs_uploaded: usize,
    pub blobs_present: usize,
    pub bytes_uploaded: u64,
    /// `sha256:<hex>` of the mirror's manifest.
    pub manifest_digest: String,
    pub tags: Vec<String>,
}

/// The registry host, repository and whether it speaks plain HTTP, from an `oci://` target.
fn oci_target(target: &str) -> Result<(String, String, bool), Error> {
    match Mirror::parse(target).map_err(Error::Usage)? {
        Mirror::Oci {
            registry,
            repository,
            plain_http,
        } => Ok((registry, repository, plain_http)),
        _ => Err(Error::Usage(format!(
            "`{target}` is not an OCI registry repository: write oci://REGISTRY/REPOSITORY (oci+http:// for plain HTTP)"
        ))),
    }
}

/// One artifact of the mirror: a layer of its manifest.
struct MirrorLayer {
    sha: Sha256,
    size: u64,
    path: PathBuf,
    annotations: BTreeMap<String, String>,
}

/// The lockfile's resolved artifacts as the mirror's layers, each once; every one must be in
/// the store: a mirror with holes is not pushed.
fn stored_artifacts(checked: &LockCheck, store: &Store) -> Result<Vec<MirrorLayer>, Error> {
    let mut missing = Vec::new();
    let mut layers = Vec::new();
    let mut seen = BTreeSet::new();
    for e in &checked.lock.artifacts {
        let Some(sha) = e.sha256() else { continue };
        let Some(obj) = store.lookup_sha256(&sha) else {
            missing.push(ArtifactFailure {
                label: e.label(),
                component: e.component.to_string(),
                url: e.url.clone(),
                cause: FailureCause::NotInStore,
                message: format!("{} is not in the store", e.label()),
                hint: None,
            });
            continue;
        };
        if !seen.insert(sha) {
            continue;
        }
        let annotations = BTreeMap::from([
            (
                oci::ANN_TITLE.to_string(),
                crate::manifest::url_file_name(&e.url).to_string(),
            ),
            ("dev.nodeforge.url".to_string(), e.url.clone()),
            (
                "dev.nodeforge.component".to_string(),
                e.component.to_string(),
            ),
            ("dev.nodeforge.version".to_string(), e.version.clone()),
            (oci::ANN_ARCH.to_string(), e.arch.to_string()),
        ]);
        layers.push(MirrorLayer {
            sha,
            size: obj.size,
            path: obj.path.clone(),
            annotations,
        });
    }
    if !missing.is_empty() {
        return Err(Error::NotInStore { missing });
    }
    Ok(layers)
}

/// The mirror's manifest: the lockfile as its config, the artifacts as its layers.
fn mirror_manifest(
    lock_sha: Sha256,
    lock_size: u64,
    layers: &[MirrorLayer],
    lock_id: &str,
) -> Result<Vec<u8>, Error> {
    let config = Part {
        media_type: oci::LOCKFILE_MEDIA_TYPE,
        digest: lock_sha,
        size: lock_size,
        annotations: BTreeMap::new(),
    };
    let parts: Vec<Part<'_>> = layers
        .iter()
        .map(|l| Part {
            media_type: oci::ARTIFACT_MEDIA_TYPE,
            digest: l.sha,
            size: l.size,
            annotations: l.annotations.clone(),
        })
        .collect();
    oci::manifest_bytes(
        oci::MIRROR_ARTIFACT_TYPE,
        &config,
        &parts,
        BTreeMap::from([(oci::ANN_LOCK_ID.to_string(), lock_id.to_string())]),
    )
    .map_err(|e| Error::Internal(format!("the mirror's manifest: {e}")))
}

pub fn mirror_push(opts: &MirrorPushOptions) -> Result<MirrorPushReport, Error> {
    let (host, repository, plain) = oci_target(&opts.target)?;
    let checked = check_lock(&opts.manifest, &opts.lockfile)?;
    let store = crate::ops::steps::open_store(&OutDir::new(&opts.out))?;
    let mut client = opts.client.clone();
    if plain {
        client.insecure.push(host.clone());
    }
    let registry = Registry::new(&host, &client)?;
    let repo = repository.as_str();
    let layers = stored_artifacts(&checked, &store)?;

    let lock_bytes = std::fs::read(&opts.lockfile)
        .map_err(|e| crate::fsutil::FsError::new("cannot read", &opts.lockfile, e))?;
    let lock_sha = Sha256::of(&lock_bytes);

    let mut report = MirrorPushReport {
        registry: host.clone(),
        repository: repository.clone(),
        artifacts: layers.len(),
        blobs_uploaded: 0,
        blobs_present: 0,
        bytes_uploaded: 0,
        manifest_digest: String::new(),
        tags: Vec::new(),
    };
    let blobs = std::iter::once((lock_sha, lock_bytes.len() as u64, opts.lockfile.clone()))
        .chain(layers.iter().map(|l| (l.sha, l.size, l.path.clone())));
    for (sha, size, path) in blobs {
        if registry.has_blob(repo, &sha)? {
            report.blobs_present += 1;
            continue;
        }
        let bar = opts.progress.start(Unit::Bytes, size, "mirror");
        let r = registry.put_blob(repo, &sha, &path, size, None, &bar);
        bar.finish();
        r?;
        report.blobs_uploaded += 1;
        report.bytes_uploaded += size;
    }
    let manifest = mirror_manifest(lock_sha, lock_bytes.len() as u64, &layers, &checked.lock_id)?;
    // `blake3:<hex>` as a tag (no colon allowed there): `lock-blake3-<hex>`, whole.
    let tags = vec![
        format!("lock-{}", checked.lock_id.replace(':', "-")),
        "latest".to_string(),
    ];
    for t in &tags {
        registry.put_manifest(repo, t, &manifest)?;
    }
    report.manifest_digest = format!("sha256:{}", Sha256::of(&manifest));
    report.tags = tags;
    Ok(report)
}
