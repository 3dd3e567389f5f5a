//! `nodeforge provenance NODE|ID`: an image's SLSA Provenance v1, as an in-toto Statement v1
//! (unsigned; `sign` and `build --sign` write it signed beside the image).

use crate::layout::OutDir;
use crate::ops::error::Error;
use crate::ops::steps::attestations as attest;

/// The statement's bytes (pretty JSON, a trailing newline).
pub fn provenance(
    manifest: &std::path::Path,
    lockfile: &std::path::Path,
    out: &std::path::Path,
    image: &str,
) -> Result<Vec<u8>, Error> {
    let m = crate::ops::steps::resolve_image(manifest, out, image)?;
    let layout = OutDir::new(out);
    let store = crate::ops::steps::open_store(&layout)?;
    let cache = attest::DigestCache::remembering(&layout);
    let s = attest::provenance_statement(
        &layout,
        &store,
        &m,
        attest::BuiltFrom {
            lock_id: None,
            lockfile: Some(lockfile),
        },
        &cache,
    )?;
    cache.save();
    let mut v = serde_json::to_vec_pretty(&s)
        .map_err(|e| Error::Internal(format!("the provenance of image {}: {e}", m.id)))?;
    v.push(b'\n');
    Ok(v)
}
