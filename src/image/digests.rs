//! dm-verity block digests of store objects, cached beside them
//! (`store/verity-<salt prefix>/<blake3>`). A file's data is block-aligned in an EROFS image, so
//! its level-0 digests are the same in every image that holds it: a node's image tree then costs
//! hashing its own metadata and configs, not its hundreds of megabytes of binaries again.
//!
//! A record is the digests (32 bytes per 4096-byte block, the last block zero-padded) followed
//! by the blake3 of those bytes, so a torn or damaged record is recomputed, never trusted.
//! `verify` recomputes every image's tree from its bytes, independently of this cache.
//!
//! This lives with the images, not the store: the store keeps opaque records for whoever asks
//! and knows nothing of dm-verity.

use std::fs::File;

use super::verity;
use crate::fsutil::{FsError, IoContext};
use crate::hash::Blake3;
use crate::store::Store;

/// Objects up to this size are hashed each time instead of having their digests recorded.
pub const RECORD_FROM: u64 = 64 * 1024;

/// The record kind for a salt: records made with another salt are never mixed in.
pub fn kind(salt: &[u8]) -> String {
    let h = hex::encode(Blake3::of(salt).as_bytes());
    format!("{KIND_PREFIX}{}", &h[..16])
}

const KIND_PREFIX: &str = "verity-";

/// Whether `kind` is a record kind [`kind`] makes (for any salt).
pub fn is_kind(kind: &str) -> bool {
    kind.starts_with(KIND_PREFIX)
}

fn decode(bytes: &[u8], blocks: usize) -> Option<Vec<[u8; 32]>> {
    let (body, check) = bytes.split_at_checked(blocks.checked_mul(32)?)?;
    if check != Blake3::of(body).as_bytes() {
        return None;
    }
    Some(
        body.chunks_exact(32)
            .map(|c| {
                let mut d = [0u8; 32];
                d.copy_from_slice(c);
                d
            })
            .collect(),
    )
}

/// The verity block digests of the store object `b` (`size` bytes) under `salt`: from its
/// record, or computed from the object and recorded.
pub fn block_digests(
    store: &Store,
    b: &Blake3,
    size: u64,
    salt: &[u8],
) -> Result<Vec<[u8; 32]>, FsError> {
    let path = store.object_path(b);
    // A small file (a rendered config: one or a few blocks) is hashed faster than its record is
    // read, and each record costs a durable write: only large objects are recorded.
    if size <= RECORD_FROM {
        return verity::block_digests(&mut File::open(&path).at("cannot open", &path)?, size, salt)
            .at("cannot read", &path);
    }
    let kind = kind(salt);
    let blocks = usize::try_from(size.div_ceil(verity::BLOCK as u64)).unwrap_or(usize::MAX);
    if let Some(d) = store
        .read_record(&kind, b)
        .and_then(|bytes| decode(&bytes, blocks))
    {
        return Ok(d);
    }
    let digests =
        verity::block_digests(&mut File::open(&path).at("cannot open", &path)?, size, salt)
            .at("cannot read", &path)?;
    let mut record: Vec<u8> = digests.iter().flatten().copied().collect();
    let check = Blake3::of(&record);
    record.extend_from_slice(check.as_bytes());
    store.write_record(&kind, b, &record)?;
    Ok(digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_recorded_and_a_damaged_record_is_recomputed() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let o = store.put_bytes(&data).expect("put");
        let salt = verity::salt();
        let want =
            verity::block_digests(&mut data.as_slice(), data.len() as u64, &salt).expect("d");
        assert_eq!(want.len(), 49);
        assert_eq!(
            block_digests(&store, &o.blake3, o.size, &salt).expect("d"),
            want
        );
        let rec = dir
            .path()
            .join("store")
            .join(kind(&salt))
            .join(o.blake3.to_hex());
        assert_eq!(std::fs::metadata(&rec).expect("record").len(), 49 * 32 + 32);
        // A record for another salt is another kind.
        assert_ne!(kind(&salt), kind(b"other"));
        // Damage the record: it is not trusted, the digests are recomputed and rewritten.
        let mut bytes = std::fs::read(&rec).expect("read");
        bytes[3] ^= 1;
        std::fs::write(&rec, &bytes).expect("write");
        assert_eq!(
            block_digests(&store, &o.blake3, o.size, &salt).expect("d"),
            want
        );
        assert_ne!(std::fs::read(&rec).expect("read"), bytes);
        // A truncated record too.
        std::fs::write(&rec, &bytes[..40]).expect("write");
        assert_eq!(
            block_digests(&store, &o.blake3, o.size, &salt).expect("d"),
            want
        );
    }

    #[test]
    fn small_objects_are_hashed_without_a_record() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let data = b"kind: KubeletConfiguration\n".repeat(100);
        let o = store.put_bytes(&data).expect("put");
        let salt = verity::salt();
        let want =
            verity::block_digests(&mut data.as_slice(), data.len() as u64, &salt).expect("d");
        assert_eq!(
            block_digests(&store, &o.blake3, o.size, &salt).expect("d"),
            want
        );
        assert!(!dir
            .path()
            .join("store")
            .join(kind(&salt))
            .join(o.blake3.to_hex())
            .exists());
    }
}
