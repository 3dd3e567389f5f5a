//! `nodeforge sbom NODE|ID`: an image's SBOM, SPDX 2.3 or CycloneDX 1.5 JSON (see `crate::sbom`).

use std::path::PathBuf;

use crate::layout::OutDir;
use crate::ops::error::Error;
use crate::ops::steps::attestations as attest;
use crate::sbom::{self, Format};

#[derive(Debug, Clone)]
pub struct SbomOptions {
    pub manifest: PathBuf,
    pub out: PathBuf,
    /// NODE, NODE@GEN or an image id (prefix).
    pub image: String,
    pub format: Format,
    /// Seconds since the epoch for the document's creation time (`--created`,
    /// `SOURCE_DATE_EPOCH`); None: the epoch itself.
    pub created: Option<u64>,
}

/// The SBOM document's bytes.
pub fn sbom(opts: &SbomOptions) -> Result<Vec<u8>, Error> {
    let m = crate::ops::steps::resolve_image(&opts.manifest, &opts.out, &opts.image)?;
    let store = crate::ops::steps::open_store(&OutDir::new(&opts.out))?;
    let created = opts
        .created
        .map_or_else(|| sbom::EPOCH.to_string(), sbom::rfc3339);
    let cache = attest::DigestCache::remembering(&OutDir::new(&opts.out));
    let sbom = attest::render_sbom(&store, &m, opts.format, &created, &cache)?;
    cache.save();
    Ok(sbom)
}
