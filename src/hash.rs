//! Typed digests. Every hash that crosses a module boundary is one of these: parsed strictly
//! (exact length, lowercase hex only) at the edge, printed as lowercase hex everywhere.

use std::fmt;
use std::io::Read;
use std::path::Path;

use sha2::Digest as _;

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {algo} digest: expected {len} lowercase hex characters")]
pub struct DigestParseError {
    pub algo: &'static str,
    pub len: usize,
    pub value: String,
}

fn parse_hex32(algo: &'static str, s: &str) -> Result<[u8; 32], DigestParseError> {
    let err = || DigestParseError {
        algo,
        len: 64,
        value: s.chars().take(80).collect(),
    };
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(err());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
    Ok(out)
}

macro_rules! digest_type {
    ($name:ident, $algo:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            pub const ALGO: &'static str = $algo;

            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Strict parse: 64 lowercase hex characters, nothing else.
            pub fn parse(s: &str) -> Result<Self, DigestParseError> {
                parse_hex32($algo, s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", $algo, self.to_hex())
            }
        }

        impl std::str::FromStr for $name {
            type Err = DigestParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_type!(Sha256, "sha256");
digest_type!(Blake3, "blake3");

impl Sha256 {
    pub fn of(data: &[u8]) -> Self {
        Self(sha2::Sha256::digest(data).into())
    }
}

impl Blake3 {
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// Hash a file by streaming it (no mmap: a file that shrinks meanwhile must be an error, not
    /// a SIGBUS). Large files are hashed with several threads.
    pub fn of_file(path: &Path) -> std::io::Result<(Self, u64)> {
        Self::of_reader(&mut std::fs::File::open(path)?)
    }

    /// Hash a file the way `b3sum` does: memory-mapped (no copy out of the page cache) and
    /// spread over every core; small files are read. Only for files that nobody truncates while
    /// they are hashed, such as read-only store objects: a file that shrinks under the mapping
    /// ends the process with SIGBUS. `of_file` is the safe, slower path.
    pub fn of_file_mapped(path: &Path) -> std::io::Result<(Self, u64)> {
        let mut hasher = blake3::Hasher::new();
        hasher.update_mmap_rayon(path)?;
        Ok((Self(*hasher.finalize().as_bytes()), hasher.count()))
    }

    /// Hash everything a reader yields; returns the digest and the byte count.
    pub fn of_reader(r: &mut dyn Read) -> std::io::Result<(Self, u64)> {
        // One 8 MiB buffer per thread, reused: blake3's multithreaded update pays off per call
        // only on megabytes, and a fresh buffer per file costs a page fault per 4 KiB.
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            if buf.len() < 8 << 20 {
                buf.resize(8 << 20, 0);
            }
            let mut hasher = blake3::Hasher::new();
            let size = crate::fsutil::read_chunks(
                r,
                &mut buf,
                |e| e,
                |chunk, _| {
                    if chunk.len() >= 1 << 20 {
                        hasher.update_rayon(chunk);
                    } else {
                        hasher.update(chunk);
                    }
                    Ok(())
                },
            )?;
            Ok((Self(*hasher.finalize().as_bytes()), size))
        })
    }
}

/// Both digests of a stream, computed in one pass while the bytes go elsewhere.
impl Sha256 {
    /// The sha256 of a file's contents, and its size.
    pub fn of_file(path: &Path) -> std::io::Result<(Self, u64)> {
        let mut f = std::fs::File::open(path)?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.update(&buf[..n]);
            size += n as u64;
        }
        Ok((Sha256(h.finalize().into()), size))
    }
}

#[derive(Default)]
pub struct DualHasher {
    sha256: sha2::Sha256,
    blake3: blake3::Hasher,
    len: u64,
}

impl DualHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.blake3.update(data);
        self.len += data.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> (Sha256, Blake3, u64) {
        (
            Sha256(self.sha256.finalize().into()),
            Blake3(*self.blake3.finalize().as_bytes()),
            self.len,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_strict() {
        let ok = "39e7f1c61c8389ea7680690f8bd5dd733672fa16875ae598df0fd8c205df57a9";
        assert_eq!(Sha256::parse(ok).map(|d| d.to_hex()), Ok(ok.to_string()));
        assert!(Sha256::parse(&ok.to_uppercase()).is_err());
        assert!(Sha256::parse(&ok[1..]).is_err());
        assert!(Sha256::parse(&format!("{ok}0")).is_err());
        assert!(Sha256::parse(&format!("{}g", &ok[1..])).is_err());
    }

    #[test]
    fn mapped_streamed_and_one_shot_hashes_agree() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Sizes on both sides of blake3's read-instead-of-map threshold and of the 8 MiB buffer.
        for size in [0usize, 1, 4096, 16 * 1024 + 1, (8 << 20) + 12345] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &data).expect("write");
            let want = (Blake3::of(&data), size as u64);
            assert_eq!(
                Blake3::of_file_mapped(&path).expect("mapped"),
                want,
                "mapped, {size} bytes"
            );
            assert_eq!(
                Blake3::of_file(&path).expect("streamed"),
                want,
                "streamed, {size} bytes"
            );
        }
        assert!(Blake3::of_file_mapped(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn dual_hasher_matches_one_shot() {
        let data = b"nodeforge".repeat(1000);
        let mut h = DualHasher::new();
        for chunk in data.chunks(7) {
            h.update(chunk);
        }
        let (s, b, n) = h.finish();
        assert_eq!(s, Sha256::of(&data));
        assert_eq!(b, Blake3::of(&data));
        assert_eq!(n, data.len() as u64);
    }
}
