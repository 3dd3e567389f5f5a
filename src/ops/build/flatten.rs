//! `nodeforge flatten`: a whole node image as one file (a `.tar.zst`, or an EROFS file with its
//! dm-verity tree) for bare-metal installers, containers and setups that cannot stack layers.
//! Written from the store, deterministic: the same image gives the same bytes.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::layout::OutDir;
use crate::ops::error::Error;
use crate::ops::steps::images::resolve_image;
use crate::ops::steps::materialize::{write_flat, FlatFormat};

#[derive(Debug, Clone, Serialize)]
pub struct FlattenReport {
    pub image_id: String,
    pub node: String,
    pub format: FlatFormat,
    pub path: PathBuf,
    /// EROFS only: the hash tree beside it, and its root hash.
    pub verity: Option<PathBuf>,
    pub root_hash: Option<String>,
    pub bytes: u64,
}

/// Write the image `reference` (NODE, NODE@GEN or an image id) to `dest` as one file.
pub fn flatten(
    manifest: &Path,
    out: &Path,
    reference: &str,
    format: FlatFormat,
    dest: &Path,
) -> Result<FlattenReport, Error> {
    let m = resolve_image(manifest, out, reference)?;
    let store = crate::ops::steps::open_store(&OutDir::new(out))?;
    let info = write_flat(&store, &m, format, dest)?;
    let verity = info.as_ref().map(|_| {
        let mut v = dest.as_os_str().to_owned();
        v.push(".verity");
        PathBuf::from(v)
    });
    Ok(FlattenReport {
        image_id: m.id,
        node: m.node,
        format,
        path: dest.to_path_buf(),
        verity,
        root_hash: info.map(|i| i.root_hash),
        bytes: std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0),
    })
}
