//! The deterministic tar writer of `image.tar.zst`: GNU headers built here (explicit mode,
//! uid/gid 0, mtime 0, no user or group names, no sparse files), entries in the order given
//! (canonical: parents first), long names and symlink targets as GNU `L` and `K` records. The end-of-archive blocks are written
//! separately, so a shared prefix of entries can be compressed once and followed by per-node
//! frames: concatenated zstd frames decode to the concatenation of their contents.

use std::io::{self, Read, Write};

use super::{Entry, Kind};

const BLOCK: usize = 512;

fn header(kind: tar::EntryType, name: &[u8], size: u64, mode: u32) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    {
        let gnu = h
            .as_gnu_mut()
            .ok_or_else(|| io::Error::other("not a GNU header"))?;
        let n = name.len().min(gnu.name.len());
        gnu.name = [0; 100];
        gnu.name[..n].copy_from_slice(&name[..n]);
    }
    Ok(h)
}

fn pad(w: &mut impl Write, len: u64) -> io::Result<()> {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

fn write_header(w: &mut impl Write, mut h: tar::Header) -> io::Result<()> {
    h.set_cksum();
    w.write_all(h.as_bytes())
}

/// A GNU long-name (`L`) or long-link (`K`) record: the bytes, NUL-terminated, that replace the
/// next header's 100-byte name or link name.
fn long_record(w: &mut impl Write, kind: tar::EntryType, bytes: &[u8]) -> io::Result<()> {
    let len = bytes.len() as u64 + 1;
    write_header(w, header(kind, b"././@LongLink", len, 0o644)?)?;
    w.write_all(bytes)?;
    w.write_all(&[0])?;
    pad(w, len)
}

/// Write one entry; `data` must yield exactly `entry.size` bytes for a file.
pub fn write_entry(
    w: &mut impl Write,
    entry: &Entry,
    data: Option<&mut dyn Read>,
) -> io::Result<()> {
    let rel = entry.path.trim_start_matches('/');
    let name = match entry.kind {
        Kind::Dir => format!("{rel}/"),
        _ => rel.to_string(),
    };
    if name.len() > 100 {
        long_record(w, tar::EntryType::GNULongName, name.as_bytes())?;
    }
    match entry.kind {
        Kind::Dir => write_header(
            w,
            header(tar::EntryType::Directory, name.as_bytes(), 0, entry.mode)?,
        ),
        Kind::Symlink => {
            let target = entry.target.as_deref().unwrap_or("");
            if target.len() > 100 {
                long_record(w, tar::EntryType::GNULongLink, target.as_bytes())?;
            }
            let mut h = header(tar::EntryType::Symlink, name.as_bytes(), 0, entry.mode)?;
            // Over 100 bytes, the `K` record above holds the target; the header keeps a prefix.
            let n = target.len().min(100);
            h.as_old_mut().linkname = [0; 100];
            h.as_old_mut().linkname[..n].copy_from_slice(&target.as_bytes()[..n]);
            write_header(w, h)
        }
        Kind::File => {
            write_header(
                w,
                header(
                    tar::EntryType::Regular,
                    name.as_bytes(),
                    entry.size,
                    entry.mode,
                )?,
            )?;
            let data =
                data.ok_or_else(|| io::Error::other(format!("no content for {}", entry.path)))?;
            let copied = io::copy(&mut data.take(entry.size), w)?;
            if copied != entry.size {
                return Err(io::Error::other(format!(
                    "{} has {copied} bytes, expected {}",
                    entry.path, entry.size
                )));
            }
            pad(w, entry.size)
        }
    }
}

/// The two zero blocks that end an archive.
pub fn write_end(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&[0u8; 2 * BLOCK])
}

/// The fixed zstd parameters of every frame nodeforge writes: the same bytes on any machine.
pub fn zstd_encoder<W: Write>(w: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(w, 3)?;
    enc.include_checksum(true)?;
    // Multithreaded output is identical for any worker count ≥ 1 (but differs from 0).
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    enc.multithread(u32::try_from(workers).unwrap_or(1))?;
    Ok(enc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Blake3;

    #[test]
    fn archive_reads_back_with_exact_metadata() {
        let long = format!("/opt/{}/tool", "d".repeat(120));
        let entries = vec![
            Entry::dir("/etc"),
            Entry::file("/etc/a.conf", 0o644, 3, Blake3::of(b"abc")),
            Entry::symlink("/etc/link", "/etc/a.conf"),
            Entry::file(&long, 0o755, 2, Blake3::of(b"hi")),
            Entry::symlink("/etc/long-link", &long),
        ];
        let mut buf = Vec::new();
        for e in &entries {
            let mut data: &[u8] = match e.path.as_str() {
                "/etc/a.conf" => b"abc",
                _ => b"hi",
            };
            let d: Option<&mut dyn Read> = if e.kind == Kind::File {
                Some(&mut data)
            } else {
                None
            };
            write_entry(&mut buf, e, d).expect("write");
        }
        write_end(&mut buf).expect("end");
        let mut ar = ::tar::Archive::new(buf.as_slice());
        let got: Vec<(String, u32, u64, u64)> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    h.mode().expect("mode"),
                    h.uid().expect("uid"),
                    h.mtime().expect("mtime"),
                )
            })
            .collect();
        assert_eq!(got[0], ("etc/".to_string(), 0o755, 0, 0));
        assert_eq!(got[1], ("etc/a.conf".to_string(), 0o644, 0, 0));
        assert_eq!(got[3].0, long.trim_start_matches('/'));
        let mut ar = ::tar::Archive::new(buf.as_slice());
        let link = ar
            .entries()
            .expect("entries")
            .nth(4)
            .expect("link")
            .expect("entry");
        assert_eq!(
            link.link_name()
                .expect("link name")
                .expect("some")
                .display()
                .to_string(),
            long
        );
    }
}
