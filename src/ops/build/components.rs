//! `nodeforge components` and `nodeforge demo-mirror`: what the manifest implies, and stand-in
//! artifacts in upstream's shapes for demos and tests.

use std::path::Path;

use crate::manifest::{ArtifactSpec, Manifest};
use crate::ops::error::Error;
use crate::standin::{self, StandinReport};

/// Every (component, version, arch) of the manifest with its URLs.
pub fn components(manifest: &Path) -> Result<Vec<ArtifactSpec>, Error> {
    Ok(Manifest::load(manifest)?.artifacts())
}

/// Write stand-in artifacts of `size` bytes per executable, with checksum files, as a mirror.
/// `dir` must be empty or absent: stand-ins never overwrite a real mirror's files.
pub fn demo_mirror(manifest: &Path, dir: &Path, size: usize) -> Result<StandinReport, Error> {
    let m = Manifest::load(manifest)?;
    if crate::fsutil::entries(dir).next().is_some() {
        return Err(Error::Usage(format!(
            "{} is not empty: demo-mirror writes stand-ins only into an empty or new directory, never over a mirror's files",
            dir.display()
        )));
    }
    Ok(standin::write_mirror(&m, dir, size)?)
}
