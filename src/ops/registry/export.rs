//! `nodeforge export --oci-layout DIR`: each node's current image as an OCI image layout, the
//! same artifact `push` sends (one mapping: `oci::image_blobs` and `oci::image_manifest`), for
//! sites without a registry. Blobs already in DIR are kept; `index.json` gains one entry per tag.

use std::path::PathBuf;

use serde::Serialize;

use super::push::{local_images, nodes_with_images};
use crate::fsutil::{self, IoContext};
use crate::hash::Sha256;
use crate::layout::OutDir;
use crate::oci::oci_layout::{IndexEntry, LayoutDir};
use crate::oci::{self, Digested};
use crate::ops::error::Error;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub manifest: PathBuf,
    pub out: PathBuf,
    pub dir: PathBuf,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayoutExportedImage {
    pub node: String,
    pub image_id: String,
    pub generation: u32,
    pub manifest_digest: String,
    pub tags: Vec<String>,
    /// `sha256:<hex>` of the manifest of its attestation files (listed in `index.json` without
    /// a tag, a referrer of the image's manifest); none when it has none.
    pub attestations_digest: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayoutExportReport {
    pub dir: PathBuf,
    pub images: Vec<LayoutExportedImage>,
    /// Blobs written now (the others were in DIR already).
    pub blobs_written: usize,
    pub bytes_written: u64,
}

/// Copy the file `from` to `dest` in the layout, atomically, unless it is there (a blob's name
/// is its digest: same name, same bytes).
fn put_blob(from: &std::path::Path, dest: &std::path::Path) -> Result<bool, Error> {
    if dest.is_file() {
        return Ok(false);
    }
    let dir = dest.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = fsutil::AtomicFile::new_in(dir)?;
    let mut src = std::fs::File::open(from).at("cannot read", from)?;
    std::io::copy(&mut src, tmp.as_file_mut()).at("cannot write", tmp.path())?;
    tmp.commit(dest, 0o444)?;
    Ok(true)
}

pub fn export(opts: &ExportOptions) -> Result<LayoutExportReport, Error> {
    let nodes = nodes_with_images(&opts.manifest, &opts.out, &opts.nodes)?;
    let out = OutDir::new(&opts.out);
    let (images, _) = local_images(&out, &nodes)?;
    let layout = LayoutDir::new(&opts.dir);
    fsutil::create_dir_all(&layout.blobs())?;
    let mut index = layout.read_index()?;
    let mut report = LayoutExportReport {
        dir: opts.dir.clone(),
        images: Vec::new(),
        blobs_written: 0,
        bytes_written: 0,
    };
    for image in images {
        for (d, path) in &image.blobs {
            if put_blob(path, &layout.blob(&d.digest))? {
                report.blobs_written += 1;
                report.bytes_written += d.size;
            }
        }
        let digested: Vec<Digested> = image.blobs.iter().map(|(d, _)| d.clone()).collect();
        let manifest = oci::image_manifest(&image.record, &image.lock_id, &digested)?;
        let digest = Sha256::of(&manifest);
        let dest = layout.blob(&digest);
        if !dest.is_file() {
            fsutil::write_atomic(&dest, &manifest, 0o444)?;
            report.blobs_written += 1;
            report.bytes_written += manifest.len() as u64;
        }
        let tags = oci::tags_for(&image.node, image.generation, &image.record.id);
        index.retain(|e| !tags.contains(&e.tag));
        for tag in &tags {
            index.push(IndexEntry {
                tag: tag.clone(),
                digest,
                size: manifest.len() as u64,
                node: Some(image.node.clone()),
                image_id: Some(image.record.id.clone()),
                artifact_type: Some(oci::ARTIFACT_TYPE.to_string()),
            });
        }
        let attestations = match super::referrers::export(
            &layout,
            &image.record.id,
            &digest,
            manifest.len() as u64,
            &image.attestations,
        )? {
            Some((entry, written, bytes)) => {
                report.blobs_written += written;
                report.bytes_written += bytes;
                let d = format!("sha256:{}", entry.digest);
                if !index.iter().any(|e| e.digest == entry.digest) {
                    index.push(entry);
                }
                Some(d)
            }
            None => None,
        };
        report.images.push(LayoutExportedImage {
            node: image.node,
            image_id: image.record.id.clone(),
            generation: image.generation,
            manifest_digest: format!("sha256:{digest}"),
            tags,
            attestations_digest: attestations,
        });
    }
    layout.write_index(&index)?;
    Ok(report)
}
