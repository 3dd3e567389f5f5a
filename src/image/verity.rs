//! dm-verity hash trees (format 1, sha256, 4096-byte blocks), written natively and
//! byte-identical to `veritysetup format --salt=… --uuid=…`: a 4 KiB block holding the 512-byte
//! superblock, then the hash levels, top level first. Each digest is sha256(salt ‖ block); 128
//! digests fill a hash block (zero-padded). With a single data block there are no levels and the
//! root hash is that block's digest. The uuid is derived from the image id and the salt is one
//! fixed value, so the same image gives the same tree on any machine, and a file's block digests
//! are the same in every image that holds it (block-aligned in EROFS), so they can be cached.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256 as Sha};

use crate::hash::{Blake3, Sha256};

pub const BLOCK: usize = 4096;
const DIGEST: usize = 32;
const PER_BLOCK: u64 = (BLOCK / DIGEST) as u64;

/// The salt and uuid of a tree; the rest (sha256, 4096/4096, format 1) is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityParams {
    pub salt: Vec<u8>,
    pub uuid: [u8; 16],
}

/// The salt of every tree nodeforge writes (v2; v1 derived it from the image id, and images
/// keep the salt they were made with in manifest.json). One salt for all images makes a file's
/// block digests the same in each of them, so building another node does not re-hash the
/// binaries. A per-image salt only defends against precomputed collisions, which sha256 does
/// not need.
pub fn salt() -> Vec<u8> {
    blake3::derive_key("nodeforge verity salt v2", b"").to_vec()
}

/// Salt and uuid of an image (uuid from its id in blake3 derive-key mode, an RFC 4122
/// version-4 one so tools print it normally).
pub fn params_for(image_id: &Blake3) -> VerityParams {
    let salt = salt();
    let key = blake3::derive_key("nodeforge verity uuid v1", image_id.as_bytes());
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&key[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    VerityParams { salt, uuid }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn uuid_string(uuid: &[u8; 16]) -> String {
    let h = hex::encode(uuid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn digest(salt: &[u8], block: &[u8]) -> [u8; 32] {
    let mut h = Sha::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

/// The 512-byte superblock, padded to a block.
fn superblock(params: &VerityParams, data_blocks: u64) -> io::Result<Vec<u8>> {
    if params.salt.len() > 256 {
        return Err(io::Error::other("a verity salt is at most 256 bytes"));
    }
    let mut sb = Vec::with_capacity(BLOCK);
    sb.extend_from_slice(b"verity\0\0");
    sb.extend_from_slice(&1u32.to_le_bytes()); // version
    sb.extend_from_slice(&1u32.to_le_bytes()); // hash type: normal
    sb.extend_from_slice(&params.uuid);
    let mut algo = [0u8; 32];
    algo[..6].copy_from_slice(b"sha256");
    sb.extend_from_slice(&algo);
    sb.extend_from_slice(&(BLOCK as u32).to_le_bytes());
    sb.extend_from_slice(&(BLOCK as u32).to_le_bytes());
    sb.extend_from_slice(&data_blocks.to_le_bytes());
    sb.extend_from_slice(&u16::try_from(params.salt.len()).unwrap_or(0).to_le_bytes());
    sb.extend_from_slice(&[0u8; 6]);
    let mut salt = [0u8; 256];
    salt[..params.salt.len()].copy_from_slice(&params.salt);
    sb.extend_from_slice(&salt);
    sb.resize(BLOCK, 0);
    Ok(sb)
}

/// The size of the hash tree file [`write_tree`] writes for `data_blocks` data blocks: its
/// superblock and every stored level. `None` for no blocks, or a size past `u64`.
pub fn tree_size(data_blocks: u64) -> Option<u64> {
    if data_blocks == 0 {
        return None;
    }
    let mut size = BLOCK as u64;
    let mut n = data_blocks;
    while n > 1 {
        let blocks = n.div_ceil(PER_BLOCK);
        size = size.checked_add(blocks.checked_mul(BLOCK as u64)?)?;
        n = blocks;
    }
    Some(size)
}

/// Pack digests into zero-padded hash blocks.
fn pack(digests: &[[u8; 32]]) -> Vec<u8> {
    let blocks = digests.len().div_ceil(PER_BLOCK as usize);
    let mut out = vec![0u8; blocks * BLOCK];
    for (i, d) in digests.iter().enumerate() {
        let (b, slot) = (i / PER_BLOCK as usize, i % PER_BLOCK as usize);
        out[b * BLOCK + slot * DIGEST..b * BLOCK + (slot + 1) * DIGEST].copy_from_slice(d);
    }
    out
}

/// The digest of each 4096-byte block of the `size` bytes `data` yields, the last block
/// zero-padded (as a file's data is in a block-aligned image). `data` must yield `size` bytes.
pub fn block_digests(data: &mut dyn Read, size: u64, salt: &[u8]) -> io::Result<Vec<[u8; 32]>> {
    let mut level: Vec<[u8; 32]> =
        Vec::with_capacity(usize::try_from(size.div_ceil(BLOCK as u64)).unwrap_or(0));
    let mut buf = vec![0u8; BLOCK * 256];
    let mut left = size;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        data.read_exact(&mut buf[..want])?;
        let padded = want.next_multiple_of(BLOCK);
        buf[want..padded].fill(0);
        for block in buf[..padded].chunks(BLOCK) {
            level.push(digest(salt, block));
        }
        left -= want as u64;
    }
    Ok(level)
}

/// Write the hash tree of `data` (exactly `data_size` bytes, a non-zero multiple of 4096) to
/// `out`; returns the root hash.
pub fn write_verity(
    data: &mut dyn Read,
    data_size: u64,
    params: &VerityParams,
    out: &mut dyn Write,
) -> io::Result<Sha256> {
    if data_size == 0 || !data_size.is_multiple_of(BLOCK as u64) {
        return Err(io::Error::other(format!(
            "verity data must be a non-zero multiple of {BLOCK} bytes, not {data_size}"
        )));
    }
    let level = block_digests(data, data_size, &params.salt)?;
    write_tree(level, params, out)
}

/// Write the hash tree whose level 0 (one digest per data block, see `block_digests`) is
/// `level`; returns the root hash.
pub fn write_tree(
    mut level: Vec<[u8; 32]>,
    params: &VerityParams,
    out: &mut dyn Write,
) -> io::Result<Sha256> {
    if level.is_empty() {
        return Err(io::Error::other("verity data must hold at least one block"));
    }
    let data_blocks = level.len() as u64;
    let mut stored: Vec<Vec<u8>> = Vec::new();
    let root = if data_blocks == 1 {
        level[0]
    } else {
        loop {
            let blocks = pack(&level);
            let next: Vec<[u8; 32]> = blocks
                .chunks(BLOCK)
                .map(|b| digest(&params.salt, b))
                .collect();
            stored.push(blocks);
            if next.len() == 1 {
                break next[0];
            }
            level = next;
        }
    };
    out.write_all(&superblock(params, data_blocks)?)?;
    for blocks in stored.iter().rev() {
        out.write_all(blocks)?;
    }
    Ok(Sha256::from_bytes(root))
}

/// [`block_digests`] of bytes that arrive in pieces of any size (a download): the digest of
/// each full 4096-byte block as soon as it is complete, the last one zero-padded by
/// [`StreamingBlocks::finish`].
#[derive(Debug, Clone)]
pub struct StreamingBlocks {
    salt: Vec<u8>,
    pending: Vec<u8>,
    level: Vec<[u8; 32]>,
    len: u64,
}

impl StreamingBlocks {
    pub fn new(salt: &[u8]) -> Self {
        Self {
            salt: salt.to_vec(),
            pending: Vec::with_capacity(BLOCK),
            level: Vec::new(),
            len: 0,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.pending.is_empty() {
            let take = (BLOCK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < BLOCK {
                return;
            }
            self.level.push(digest(&self.salt, &self.pending));
            self.pending.clear();
        }
        let mut blocks = data.chunks_exact(BLOCK);
        for block in &mut blocks {
            self.level.push(digest(&self.salt, block));
        }
        self.pending.extend_from_slice(blocks.remainder());
    }

    /// Forget the bytes seen: the data starts again.
    pub fn restart(&mut self) {
        self.pending.clear();
        self.level.clear();
        self.len = 0;
    }

    /// The bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Level 0 of the tree of the bytes seen (see [`block_digests`]), and their number.
    pub fn finish(mut self) -> (Vec<[u8; 32]>, u64) {
        if !self.pending.is_empty() {
            self.pending.resize(BLOCK, 0);
            self.level.push(digest(&self.salt, &self.pending));
        }
        (self.level, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn streaming_blocks_match_block_digests_wherever_the_pieces_split() {
        let d = data(5, 7);
        let salt = salt();
        let want = block_digests(&mut d.as_slice(), d.len() as u64, &salt).expect("digests");
        for piece in [1usize, 100, 4095, 4096, 4097, 10_000, d.len()] {
            let mut s = StreamingBlocks::new(&salt);
            for p in d.chunks(piece) {
                s.update(p);
            }
            assert_eq!(
                s.finish(),
                (want.clone(), d.len() as u64),
                "pieces of {piece}"
            );
        }
        let short = &d[..5000];
        let mut s = StreamingBlocks::new(&salt);
        s.update(short);
        let want = block_digests(&mut &short[..], 5000, &salt).expect("digests");
        assert_eq!(s.finish().0, want);
    }

    fn data(blocks: usize, seed: u8) -> Vec<u8> {
        let mut x = blake3::Hasher::new().update(&[seed]).finalize_xof();
        let mut v = vec![0u8; blocks * BLOCK];
        x.fill(&mut v);
        v
    }

    #[test]
    fn tree_size_is_the_size_write_tree_writes() {
        let params = VerityParams {
            salt: vec![1, 2],
            uuid: [0; 16],
        };
        for blocks in [1usize, 2, 127, 128, 129, 16385] {
            let mut out = Vec::new();
            write_verity(
                &mut &data(blocks, 7)[..],
                (blocks * BLOCK) as u64,
                &params,
                &mut out,
            )
            .expect("tree");
            assert_eq!(tree_size(blocks as u64), Some(out.len() as u64), "{blocks}");
        }
        assert_eq!(tree_size(0), None);
        assert_eq!(tree_size(u64::MAX), None);
    }

    /// Ours against veritysetup's, byte for byte (the test needs cryptsetup-bin).
    #[test]
    fn identical_to_veritysetup_and_verifiable() {
        if !crate::test_tools::requires("veritysetup", "cryptsetup-bin") {
            return;
        }
        let dir = tempfile::tempdir().expect("tmp");
        for (blocks, salt) in [
            (1usize, "00ff"),
            (2, "aa"),
            (127, "0123456789abcdef"),
            (128, "11"),
            (129, "22"),
            (16385, "33"),
        ] {
            let d = data(blocks, u8::try_from(blocks % 251).unwrap_or(0));
            let data_path = dir.path().join("data");
            std::fs::write(&data_path, &d).expect("write");
            let params = VerityParams {
                salt: hex::decode(salt).expect("hex"),
                uuid: *b"0123456789abcdef",
            };
            let mut ours = Vec::new();
            let root =
                write_verity(&mut d.as_slice(), d.len() as u64, &params, &mut ours).expect("tree");
            let theirs = dir.path().join("hash");
            let _ = std::fs::remove_file(&theirs);
            let out = Command::new("veritysetup")
                .args([
                    "format",
                    "--hash=sha256",
                    "--data-block-size=4096",
                    "--hash-block-size=4096",
                    "--format=1",
                ])
                .arg(format!("--salt={salt}"))
                .arg(format!("--uuid={}", uuid_string(&params.uuid)))
                .arg(&data_path)
                .arg(&theirs)
                .output()
                .expect("veritysetup must be installed (Debian cryptsetup-bin)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&format!("Root hash:      \t{root}")),
                "{blocks} blocks: root differs:\n{text}\nours {root}"
            );
            assert!(
                std::fs::read(&theirs).expect("read") == ours,
                "{blocks} blocks: hash file differs"
            );
            // veritysetup accepts ours, and refuses it after one flipped data byte.
            let ours_path = dir.path().join("ours");
            std::fs::write(&ours_path, &ours).expect("write");
            let verify = |p: &std::path::Path| {
                Command::new("veritysetup")
                    .arg("verify")
                    .arg(p)
                    .arg(&ours_path)
                    .arg(root.to_hex())
                    .status()
                    .expect("run")
                    .success()
            };
            assert!(verify(&data_path), "{blocks}: verify failed");
            let mut bad = d.clone();
            bad[d.len() / 2] ^= 1;
            std::fs::write(&data_path, &bad).expect("write");
            assert!(!verify(&data_path), "{blocks}: a flipped byte passed");
        }
    }

    #[test]
    fn sizes_must_be_whole_blocks_and_params_are_stable() {
        let p = params_for(&Blake3::of(b"image"));
        assert_eq!(p, params_for(&Blake3::of(b"image")));
        assert_eq!(p.salt.len(), 32);
        assert_eq!(uuid_string(&p.uuid).chars().nth(14), Some('4'));
        let mut out = Vec::new();
        assert!(write_verity(&mut [0u8; 100].as_slice(), 100, &p, &mut out).is_err());
        assert!(write_verity(&mut [0u8; 0].as_slice(), 0, &p, &mut out).is_err());
        assert!(write_tree(Vec::new(), &p, &mut out).is_err());
        // One salt for every image: a file's digests do not depend on the image holding it.
        assert_eq!(p.salt, params_for(&Blake3::of(b"other")).salt);
        assert_ne!(p.uuid, params_for(&Blake3::of(b"other")).uuid);
    }

    /// A file's digests (last block zero-padded) are the digests of its blocks in an image.
    #[test]
    fn file_digests_match_the_padded_blocks() {
        let salt = salt();
        for len in [1usize, 4095, 4096, 4097, BLOCK * 256 + 5, BLOCK * 600] {
            let d = data(len.div_ceil(BLOCK) + 1, 3);
            let file = &d[..len];
            let mut padded = file.to_vec();
            padded.resize(len.next_multiple_of(BLOCK), 0);
            let ours = block_digests(&mut &file[..], len as u64, &salt).expect("digests");
            let want: Vec<[u8; 32]> = padded.chunks(BLOCK).map(|b| digest(&salt, b)).collect();
            assert_eq!(ours, want, "{len} bytes");
        }
        assert!(block_digests(&mut &[0u8; 10][..], 11, &salt).is_err());
    }
}
