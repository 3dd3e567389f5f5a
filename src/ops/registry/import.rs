//! `nodeforge import DIR`: node images from an OCI image layout (what `export --oci-layout`
//! writes, or `skopeo copy … oci:DIR:TAG`), checked and recorded exactly as `pull` does (the same
//! `pull::install`), with the layout's files instead of a registry's blobs.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::pull::{check_node, install, read_record, Admission, BlobSource};
use super::push::BlobReport;
use crate::fsutil::IoContext;
use crate::hash::Sha256;
use crate::layout::OutDir;
use crate::oci::client::{BlobObserver, Transfer};
use crate::oci::oci_layout::{IndexEntry, LayoutDir};
use crate::oci::{self, Digested, OciError};
use crate::ops::error::Error;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub out: PathBuf,
    pub dir: PathBuf,
    /// Tags to import (none: each node's `<node>` tag, its newest image in the layout).
    pub tags: Vec<String>,
    /// Trusted keys: with any, each image must be signed by one of them.
    pub keys: crate::trust::TrustedKeys,
    /// Switch to an image older than the node's current one (`--allow-downgrade`).
    pub allow_downgrade: bool,
    /// Where progress is reported.
    pub progress: crate::progress::Reporting,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportedImage {
    pub tag: String,
    pub manifest_digest: String,
    pub node: String,
    pub image_id: String,
    pub generation: u32,
    pub switched: bool,
    pub blobs: Vec<BlobReport>,
    /// Its attestation files (listed in `index.json` as referrers of its manifest), checked
    /// and installed.
    pub attestations: super::referrers::PulledAttestations,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub dir: PathBuf,
    pub images: Vec<ImportedImage>,
    /// Blob bytes copied out of the layout (layers the host had are not).
    pub bytes_copied: u64,
}

/// A layout's blobs as a source.
struct FromLayout<'a>(&'a LayoutDir);

impl BlobSource for FromLayout<'_> {
    fn fetch(
        &self,
        d: &Digested,
        partial: &Path,
        bar: &crate::progress::Progress,
        observer: &mut dyn BlobObserver,
    ) -> Result<Transfer, Error> {
        let from = self.0.blob(&d.digest);
        let src = crate::fsutil::open_regular(&from).at("cannot read", &from)?;
        let mut dst = crate::fsutil::open_partial(partial, true)?;
        // Never more than the manifest says, plus one byte to tell a longer file: a blob that
        // is a device or grows as it is read must not fill the disk.
        // Hashed as it is copied, not read again.
        observer.restart();
        let mut hashing = Hashing {
            file: &mut dst,
            sha: sha2::Sha256::default(),
            observer,
        };
        let n = std::io::copy(&mut src.take(d.size.saturating_add(1)), &mut hashing)
            .at("cannot write", partial)?;
        let actual = Sha256::from_bytes(sha2::Digest::finalize(hashing.sha).into());
        dst.sync_data().at("cannot sync", partial)?;
        bar.inc(n);
        if n != d.size {
            let _ = std::fs::remove_file(partial);
            return Err(Error::DamagedLayout {
                path: from.to_path_buf(),
                problem: format!(
                    "blob sha256:{} has {} bytes, the manifest says {}: the layout is damaged; export it again",
                    d.digest,
                    if n > d.size { "more".to_string() } else { n.to_string() },
                    d.size
                ),
            });
        }
        if actual != d.digest {
            let _ = std::fs::remove_file(partial);
            return Err(layout_damaged(&from, &d.digest, &actual));
        }
        Ok(Transfer {
            received: n,
            resumed_from: 0,
        })
    }

    fn resumable(&self) -> bool {
        false
    }
}

/// A file written to, each byte hashed and shown to an observer on the way.
struct Hashing<'a> {
    file: &'a mut std::fs::File,
    sha: sha2::Sha256,
    observer: &'a mut dyn BlobObserver,
}

impl std::io::Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        sha2::Digest::update(&mut self.sha, &buf[..n]);
        self.observer.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn layout_damaged(file: &Path, digest: &Sha256, actual: &Sha256) -> Error {
    Error::DamagedLayout {
        path: file.to_path_buf(),
        problem: format!(
            "blob sha256:{digest} hashes to sha256:{actual}: the layout is damaged; export it again"
        ),
    }
}

/// A blob of the layout, whole, checked against its digest (manifests and records).
fn read_blob(layout: &LayoutDir, digest: &Sha256, limit: u64) -> Result<Vec<u8>, Error> {
    let path = layout.blob(digest);
    let file = crate::fsutil::open_regular(&path).at("cannot read", &path)?;
    // Read through a limit, not by the size the file claims: a device or a growing file has
    // no size worth trusting.
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .at("cannot read", &path)?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > limit) {
        return Err(Error::DamagedLayout {
            path: path.clone(),
            problem: format!(
                "more than {limit} bytes is too large for a manifest, image record or attestation file: the layout is damaged or not nodeforge's"
            ),
        });
    }
    let actual = Sha256::of(&bytes);
    if actual != *digest {
        return Err(layout_damaged(&path, digest, &actual));
    }
    Ok(bytes)
}

pub fn import(opts: &ImportOptions) -> Result<ImportReport, Error> {
    let layout = LayoutDir::new(&opts.dir);
    let index = layout.read_index()?;
    if index.is_empty() {
        return Err(OciError::NotNodeImage {
            what: opts.dir.display().to_string(),
            reason: "it has no index.json listing images (an OCI image layout has oci-layout, index.json and blobs/sha256/)".into(),
        }
        .into());
    }
    let chosen: Vec<&IndexEntry> = if opts.tags.is_empty() {
        index
            .iter()
            .filter(|e| e.node.as_deref() == Some(e.tag.as_str()))
            .collect()
    } else {
        let mut v = Vec::new();
        for t in &opts.tags {
            let e = index.iter().find(|e| &e.tag == t).ok_or_else(|| {
                Error::Usage(format!(
                    "{} has no image tagged `{t}` (tags: {})",
                    opts.dir.display(),
                    index
                        .iter()
                        .map(|e| e.tag.as_str())
                        .filter(|t| !t.is_empty() && t.len() != 64)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            v.push(e);
        }
        v
    };
    let out = OutDir::new(&opts.out);
    let mut seen = BTreeSet::new();
    let mut report = ImportReport {
        dir: opts.dir.clone(),
        images: Vec::new(),
        bytes_copied: 0,
    };
    for e in chosen {
        if !seen.insert(e.digest) {
            continue;
        }
        let what = format!("{}:{}", opts.dir.display(), e.tag);
        let manifest = read_blob(&layout, &e.digest, oci::MAX_MANIFEST_BYTES)?;
        let art = oci::read_manifest(&what, &manifest)?;
        let record = read_blob(&layout, &art.config.0, oci::MAX_CONFIG_BYTES)?;
        let m = read_record(&what, &record, &art, Some(&e.tag))?;
        check_node(&what, Some(&e.tag), None, &m)?;
        let read = |d: &Sha256, limit: u64| read_blob(&layout, d, limit);
        let attestations = super::referrers::fetch(
            &super::referrers::LayoutSource {
                index: &index,
                read: &read,
            },
            &what,
            &m,
            &e.digest,
        )?;
        let done = install(
            &out,
            &what,
            &art,
            &m,
            &FromLayout(&layout),
            Admission {
                fetched: &attestations,
                keys: &opts.keys,
                allow_downgrade: opts.allow_downgrade,
            },
            super::pull::Moving {
                progress: opts.progress.clone(),
                jobs: super::pull::DEFAULT_JOBS,
            },
        )?;
        report.bytes_copied += done
            .blobs
            .iter()
            .skip(1)
            .map(|b| b.transferred)
            .sum::<u64>();
        report.images.push(ImportedImage {
            tag: e.tag.clone(),
            manifest_digest: format!("sha256:{}", e.digest),
            node: m.node.clone(),
            image_id: m.id.clone(),
            generation: done.generation,
            switched: done.switched,
            blobs: done.blobs,
            attestations: done.attestations,
        });
    }
    Ok(report)
}
