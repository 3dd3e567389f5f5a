//! An EROFS filesystem image of an entry list, written natively (no crate writes complete EROFS
//! images). Uncompressed, 4 KiB blocks, deterministic: the same entries give the same bytes.
//!
//! Layout: block 0 holds the superblock at byte 1024; the inode table starts at block 1 (so the
//! root, placed first, has nid 0 and fits the superblock's 16-bit `root_nid`); then the data of
//! every inode in inode order, each starting on a block boundary (`EROFS_INODE_FLAT_PLAIN`), so
//! file contents are copied from the store at disk speed. Inodes are compact (32 bytes) unless a
//! size, owner or link count needs the extended (64-byte) form. Directories hold `.` and `..` and
//! are sorted by name bytes across blocks, as the kernel's binary search expects. Timestamps are
//! 0, the uuid is the caller's (derived from the image id), and no superblock checksum is used.
//! The on-disk structures (`SuperBlock`, `CompactInode`, `ExtendedInode`, `Dirent`) are declared
//! once, a doc comment per field giving its offset, as `repr(C)` structs of little-endian fields
//! whose bytes zerocopy derives (as composefs-rs does). No xattrs are written, so no xattr
//! header is declared.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, Immutable, IntoBytes, KnownLayout};

use super::{Entry, Kind};
use crate::hash::Blake3;

const BLKSZ: u64 = 4096;
const BLKSZ_BITS: u8 = 12;
const MAGIC: u32 = 0xE0F5_E1E2;
/// Where the superblock starts in block 0.
const SUPERBLOCK_OFFSET: usize = 1024;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const FT_REG: u8 = 1;
const FT_DIR: u8 = 2;
const FT_SYMLINK: u8 = 7;
const LAYOUT_FLAT_PLAIN: u16 = 0;

/// `struct erofs_super_block`: 128 bytes at byte 1024 of block 0. Fields nodeforge does not use
/// (checksum, features, xattrs, compression, extra devices) are 0. The on-disk structs are
/// `repr(C)` of little-endian fields with alignment 1 (no padding), their bytes given by
/// zerocopy's `IntoBytes`; the sizes are checked at compile time below.
#[derive(Debug, FromZeros, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct SuperBlock {
    /// @0 `magic`: `EROFS_SUPER_MAGIC_V1`.
    magic: U32,
    /// @4 `checksum`: crc32c of the superblock block, only with `FEATURE_COMPAT_SB_CHKSUM`
    /// (not set: 0).
    checksum: U32,
    /// @8 `feature_compat`: none.
    feature_compat: U32,
    /// @12 `blkszbits`: log2 of the block size (12: 4 KiB).
    blkszbits: u8,
    /// @13 `sb_extslots`: superblock extension slots (none).
    sb_extslots: u8,
    /// @14 `root_nid`: the root directory's inode number (nid).
    root_nid: U16,
    /// @16 `inos`: how many inodes the image has.
    inos: U64,
    /// @24 `build_time`: seconds; 0, so images do not depend on the clock.
    build_time: U64,
    /// @32 `build_time_nsec`.
    build_time_nsec: U32,
    /// @36 `blocks`: the image size in blocks.
    blocks: U32,
    /// @40 `meta_blkaddr`: the block where the inode table (nid 0) starts.
    meta_blkaddr: U32,
    /// @44 `xattr_blkaddr`: the shared xattr area (none).
    xattr_blkaddr: U32,
    /// @48 `uuid`.
    uuid: [u8; 16],
    /// @64 `volume_name`: none.
    volume_name: [u8; 16],
    /// @80 `feature_incompat`: none (plain, uncompressed, no chunks or devices).
    feature_incompat: U32,
    /// @84..128: compression configuration, extra devices, packed inode, reserved: all 0.
    reserved: [u8; 44],
}

/// `struct erofs_inode_compact`: 32 bytes, for an inode whose size fits 32 bits and whose
/// owner and link count fit 16.
#[derive(Debug, FromZeros, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct CompactInode {
    /// @0 `i_format`: bit 0 clear (compact), bits 1-3 the data layout.
    format: U16,
    /// @2 `i_xattr_icount`: inline xattrs (none).
    xattr_icount: U16,
    /// @4 `i_mode`: file type and permission bits.
    mode: U16,
    /// @6 `i_nlink`.
    nlink: U16,
    /// @8 `i_size`: bytes (a directory: its encoded blocks).
    size: U32,
    /// @12 `i_reserved`.
    reserved: U32,
    /// @16 `i_u.raw_blkaddr`: the first block of the data (flat plain layout).
    blkaddr: U32,
    /// @20 `i_ino`: the inode number shown to user space (stat's `st_ino`).
    ino: U32,
    /// @24 `i_uid`.
    uid: U16,
    /// @26 `i_gid`.
    gid: U16,
    /// @28 `i_reserved2`.
    reserved2: U32,
}

/// `struct erofs_inode_extended`: 64 bytes, for a size, owner or link count too large for the
/// compact form. Takes two 32-byte nid slots.
#[derive(Debug, FromZeros, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct ExtendedInode {
    /// @0 `i_format`: bit 0 set (extended), bits 1-3 the data layout.
    format: U16,
    /// @2 `i_xattr_icount`: inline xattrs (none).
    xattr_icount: U16,
    /// @4 `i_mode`: file type and permission bits.
    mode: U16,
    /// @6 `i_reserved`.
    reserved: U16,
    /// @8 `i_size`.
    size: U64,
    /// @16 `i_u.raw_blkaddr`: the first block of the data (flat plain layout).
    blkaddr: U32,
    /// @20 `i_ino`: the inode number shown to user space.
    ino: U32,
    /// @24 `i_uid`.
    uid: U32,
    /// @28 `i_gid`.
    gid: U32,
    /// @32 `i_mtime`: 0, like every timestamp here.
    mtime: U64,
    /// @40 `i_mtime_nsec`.
    mtime_nsec: U32,
    /// @44 `i_nlink`.
    nlink: U32,
    /// @48 `i_reserved2`.
    reserved2: [u8; 16],
}

/// `struct erofs_dirent`: 12 bytes. A directory block holds every entry's dirent, then their
/// names back to back (not NUL-terminated: a name ends where the next begins, the last one at
/// the first NUL or the block's end).
#[derive(Debug, FromZeros, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Dirent {
    /// @0 `nid`: the entry's inode.
    nid: U64,
    /// @8 `nameoff`: where the name starts, from the start of the block.
    nameoff: U16,
    /// @10 `file_type`: `EROFS_FT_*`.
    file_type: u8,
    /// @11 `reserved`.
    reserved: u8,
}

const DIRENT_SIZE: usize = size_of::<Dirent>();
const COMPACT_SIZE: u64 = size_of::<CompactInode>() as u64;
const EXTENDED_SIZE: u64 = size_of::<ExtendedInode>() as u64;

// The on-disk sizes, checked when compiling.
const _: () = assert!(size_of::<SuperBlock>() == 128);
const _: () = assert!(size_of::<CompactInode>() == 32);
const _: () = assert!(size_of::<ExtendedInode>() == 64);
const _: () = assert!(size_of::<Dirent>() == 12);

struct Inode<'a> {
    entry: Option<&'a Entry>, // None for the root
    mode: u32,
    size: u64,
    nlink: u64,
    uid: u32,
    gid: u32,
    extended: bool,
    nid: u64,
    blkaddr: u64,
    /// Directory contents: (name, child index) sorted by name, with `.` and `..`.
    children: Vec<(Vec<u8>, usize)>,
    /// Encoded directory blocks.
    dir_data: Vec<u8>,
}

impl Inode<'_> {
    fn blocks(&self) -> u64 {
        self.size.div_ceil(BLKSZ)
    }
    fn ftype(&self) -> u8 {
        match self.mode & 0o170_000 {
            S_IFDIR => FT_DIR,
            S_IFLNK => FT_SYMLINK,
            _ => FT_REG,
        }
    }
}

fn err(path: &str, msg: &str) -> io::Error {
    io::Error::other(format!("{path}: {msg}"))
}

/// Encode a directory's entries into blocks; returns the bytes (the last block not padded).
fn dir_blocks(children: &[(Vec<u8>, u64, u8)]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < children.len() {
        // Fill one block greedily.
        let mut j = i;
        let mut used = 0usize;
        while j < children.len() && used + DIRENT_SIZE + children[j].0.len() <= BLKSZ as usize {
            used += DIRENT_SIZE + children[j].0.len();
            j += 1;
        }
        if j == i {
            return Err(io::Error::other(
                "a file name longer than a directory block",
            ));
        }
        let start = out.len();
        let mut nameoff = (j - i) * DIRENT_SIZE;
        for (name, nid, ft) in &children[i..j] {
            let d = Dirent {
                nid: U64::new(*nid),
                nameoff: U16::new(u16::try_from(nameoff).map_err(io::Error::other)?),
                file_type: *ft,
                reserved: 0,
            };
            out.extend_from_slice(d.as_bytes());
            nameoff += name.len();
        }
        for (name, _, _) in &children[i..j] {
            out.extend_from_slice(name);
        }
        if j < children.len() {
            // Not the last block: pad to the block boundary.
            out.resize(start + BLKSZ as usize, 0);
        }
        i = j;
    }
    Ok(out)
}

/// Where an image's regular files keep their data: block-aligned, so their blocks (the last
/// zero-padded) are the same in every image that holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileData {
    /// First block of the data.
    pub block: u64,
    pub blake3: Blake3,
    pub size: u64,
}

/// What `write_erofs` wrote: the image size (a multiple of 4096) and where file data lies.
#[derive(Debug, Clone)]
pub struct Layout {
    pub size: u64,
    /// In block order, not overlapping.
    pub files: Vec<FileData>,
}

/// Write the EROFS image of `entries` (sorted, parents first, root implicit) to `out`.
/// `open` gives a file entry's content by its blake3; with a `File` source and a file-backed
/// `out` (`BufWriter<&File>`), the data is copied by the kernel (copy_file_range), never
/// through this process.
///
/// In phases: the inodes from the entries (`inodes_of`), their places in the inode table
/// (`assign_nids`), the directories' blocks (`encode_dirs`), where each inode's data goes
/// (`place_data`); then the bytes: the superblock, the inode table, the data.
pub fn write_erofs<W: Write, R: Read>(
    out: &mut W,
    entries: &[Entry],
    uuid: [u8; 16],
    open: &mut dyn FnMut(&Blake3) -> io::Result<R>,
) -> io::Result<Layout> {
    let mut inodes = inodes_of(entries)?;
    let table_blocks = assign_nids(&mut inodes)?;
    encode_dirs(&mut inodes)?;
    let total_blocks = place_data(&mut inodes, META_BLKADDR + table_blocks);
    out.write_all(&superblock_block(&inodes, total_blocks, uuid)?)?;
    out.write_all(&inode_table(&inodes, table_blocks)?)?;
    let files = write_data(out, &inodes, open)?;
    Ok(Layout {
        size: total_blocks * BLKSZ,
        files,
    })
}

/// The block where the inode table starts (block 0 holds the superblock).
const META_BLKADDR: u64 = 1;

/// Phase 1: the root, then an inode per entry in order, each listed in its parent's children.
fn inodes_of(entries: &[Entry]) -> io::Result<Vec<Inode<'_>>> {
    let mut inodes: Vec<Inode<'_>> = Vec::with_capacity(entries.len() + 1);
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    inodes.push(Inode {
        entry: None,
        mode: S_IFDIR | 0o755,
        size: 0,
        nlink: 2,
        uid: 0,
        gid: 0,
        extended: false,
        nid: 0,
        blkaddr: 0,
        children: Vec::new(),
        dir_data: Vec::new(),
    });
    index.insert("", 0);
    for e in entries {
        let (parent, name) = e
            .path
            .rsplit_once('/')
            .ok_or_else(|| err(&e.path, "not an absolute path"))?;
        if name.is_empty() || name == "." || name == ".." || name.len() > 255 {
            return Err(err(&e.path, "not a valid file name"));
        }
        let parent_idx = *index
            .get(parent)
            .ok_or_else(|| err(&e.path, "its parent directory is not an entry before it"))?;
        if inodes[parent_idx].mode & 0o170_000 != S_IFDIR {
            return Err(err(&e.path, "its parent is not a directory"));
        }
        let (fmt, size) = match e.kind {
            Kind::Dir => (S_IFDIR, 0),
            Kind::File => (S_IFREG, e.size),
            Kind::Symlink => (S_IFLNK, e.target.as_ref().map_or(0, |t| t.len() as u64)),
        };
        let me = inodes.len();
        inodes.push(Inode {
            entry: Some(e),
            mode: fmt | (e.mode & 0o7777),
            size,
            nlink: if e.kind == Kind::Dir { 2 } else { 1 },
            uid: e.uid,
            gid: e.gid,
            extended: false,
            nid: 0,
            blkaddr: 0,
            children: Vec::new(),
            dir_data: Vec::new(),
        });
        if e.kind == Kind::Dir {
            inodes[parent_idx].nlink += 1;
        }
        if index.insert(e.path.as_str(), me).is_some() {
            return Err(err(&e.path, "listed twice"));
        }
        inodes[parent_idx]
            .children
            .push((name.as_bytes().to_vec(), me));
    }
    Ok(inodes)
}

/// Phase 2: the inode table, compact inodes where possible, in 32-byte slots from
/// [`META_BLKADDR`]; returns its length in blocks.
fn assign_nids(inodes: &mut [Inode<'_>]) -> io::Result<u64> {
    let mut off = 0u64;
    for ino in inodes.iter_mut() {
        ino.extended = ino.size > u64::from(u32::MAX)
            || ino.uid > u32::from(u16::MAX)
            || ino.gid > u32::from(u16::MAX)
            || ino.nlink > u64::from(u16::MAX);
        ino.nid = off / COMPACT_SIZE;
        off += if ino.extended {
            EXTENDED_SIZE
        } else {
            COMPACT_SIZE
        };
    }
    if inodes.first().is_none_or(|root| root.nid != 0) {
        return Err(io::Error::other("the root inode must come first"));
    }
    Ok(off.div_ceil(BLKSZ))
}

/// Phase 3: every directory's blocks (`.`, `..` and its children, sorted by name bytes), which
/// need every nid; a directory's size is its encoded bytes.
fn encode_dirs(inodes: &mut [Inode<'_>]) -> io::Result<()> {
    let mut parent_of = vec![0usize; inodes.len()];
    for (i, ino) in inodes.iter().enumerate() {
        for (_, c) in &ino.children {
            parent_of[*c] = i;
        }
    }
    for i in 0..inodes.len() {
        if inodes[i].mode & 0o170_000 != S_IFDIR {
            continue;
        }
        let mut list: Vec<(Vec<u8>, u64, u8)> = vec![
            (b".".to_vec(), inodes[i].nid, FT_DIR),
            (b"..".to_vec(), inodes[parent_of[i]].nid, FT_DIR),
        ];
        for (name, c) in &inodes[i].children {
            list.push((name.clone(), inodes[*c].nid, inodes[*c].ftype()));
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let data = dir_blocks(&list)?;
        inodes[i].size = data.len() as u64;
        inodes[i].dir_data = data;
    }
    Ok(())
}

/// Phase 4: each inode with data gets its first block, in inode order from `first`; returns the
/// image's size in blocks.
fn place_data(inodes: &mut [Inode<'_>], first: u64) -> u64 {
    let mut next = first;
    for ino in inodes.iter_mut() {
        if ino.size > 0 {
            ino.blkaddr = next;
            next += ino.blocks();
        }
    }
    next
}

/// Block 0: zeros, and the superblock at byte 1024.
fn superblock_block(
    inodes: &[Inode<'_>],
    total_blocks: u64,
    uuid: [u8; 16],
) -> io::Result<Vec<u8>> {
    let root_nid = inodes.first().map_or(0, |r| r.nid);
    let sb = SuperBlock {
        magic: U32::new(MAGIC),
        blkszbits: BLKSZ_BITS,
        root_nid: U16::new(u16::try_from(root_nid).map_err(io::Error::other)?),
        inos: U64::new(inodes.len() as u64),
        blocks: U32::new(
            u32::try_from(total_blocks)
                .map_err(|_| io::Error::other("image larger than 16 TiB"))?,
        ),
        meta_blkaddr: U32::new(u32::try_from(META_BLKADDR).map_err(io::Error::other)?),
        uuid,
        ..SuperBlock::new_zeroed()
    };
    let mut block0 = vec![0u8; BLKSZ as usize];
    block0[SUPERBLOCK_OFFSET..SUPERBLOCK_OFFSET + size_of::<SuperBlock>()]
        .copy_from_slice(sb.as_bytes());
    Ok(block0)
}

/// The inode table's bytes, padded to `table_blocks` blocks.
fn inode_table(inodes: &[Inode<'_>], table_blocks: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(table_blocks * BLKSZ).map_err(io::Error::other)?;
    let mut table = Vec::with_capacity(len);
    for (i, ino) in inodes.iter().enumerate() {
        let ino_no = u32::try_from(i + 1).map_err(|_| io::Error::other("too many inodes"))?;
        let blkaddr = U32::new(u32::try_from(ino.blkaddr).map_err(io::Error::other)?);
        let mode = U16::new(u16::try_from(ino.mode).map_err(io::Error::other)?);
        if ino.extended {
            let inode = ExtendedInode {
                format: U16::new(1 | (LAYOUT_FLAT_PLAIN << 1)),
                mode,
                size: U64::new(ino.size),
                blkaddr,
                ino: U32::new(ino_no),
                uid: U32::new(ino.uid),
                gid: U32::new(ino.gid),
                nlink: U32::new(u32::try_from(ino.nlink).map_err(io::Error::other)?),
                ..ExtendedInode::new_zeroed()
            };
            table.extend_from_slice(inode.as_bytes());
        } else {
            let inode = CompactInode {
                format: U16::new(LAYOUT_FLAT_PLAIN << 1),
                mode,
                nlink: U16::new(u16::try_from(ino.nlink).map_err(io::Error::other)?),
                size: U32::new(u32::try_from(ino.size).map_err(io::Error::other)?),
                blkaddr,
                ino: U32::new(ino_no),
                uid: U16::new(u16::try_from(ino.uid).map_err(io::Error::other)?),
                gid: U16::new(u16::try_from(ino.gid).map_err(io::Error::other)?),
                ..CompactInode::new_zeroed()
            };
            table.extend_from_slice(inode.as_bytes());
        }
    }
    table.resize(len, 0);
    Ok(table)
}

/// Phase 6: each inode's data in inode order (directories' blocks, symlink targets, files'
/// contents through `open`), each padded to a block; returns where the files' data lies.
fn write_data<W: Write, R: Read>(
    out: &mut W,
    inodes: &[Inode<'_>],
    open: &mut dyn FnMut(&Blake3) -> io::Result<R>,
) -> io::Result<Vec<FileData>> {
    let zeros = [0u8; BLKSZ as usize];
    let mut files = Vec::new();
    for ino in inodes {
        if ino.size == 0 {
            continue;
        }
        let path = ino.entry.map_or("/", |e| e.path.as_str());
        match ino.mode & 0o170_000 {
            S_IFDIR => out.write_all(&ino.dir_data)?,
            S_IFLNK => out.write_all(
                ino.entry
                    .and_then(|e| e.target.as_deref())
                    .unwrap_or("")
                    .as_bytes(),
            )?,
            _ => {
                let e = ino.entry.ok_or_else(|| err(path, "no entry"))?;
                let b = e
                    .blake3
                    .ok_or_else(|| err(path, "a file without a content address"))?;
                let r =
                    open(&b).map_err(|x| err(path, &format!("cannot read its content: {x}")))?;
                let n = io::copy(&mut r.take(e.size), out)?;
                if n != e.size {
                    return Err(err(
                        path,
                        &format!("content ended {} bytes early", e.size - n),
                    ));
                }
                files.push(FileData {
                    block: ino.blkaddr,
                    blake3: b,
                    size: e.size,
                });
            }
        }
        let rem = (ino.size % BLKSZ) as usize;
        if rem != 0 {
            out.write_all(&zeros[..BLKSZ as usize - rem])?;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::process::Command;

    fn content(n: usize, seed: u8) -> Vec<u8> {
        let mut v = vec![0u8; n];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut v);
        v
    }

    fn tree() -> (Vec<Entry>, HashMap<Blake3, Vec<u8>>) {
        let mut files: Vec<(String, Vec<u8>, u32)> = vec![
            ("/etc/empty".into(), vec![], 0o644),
            ("/etc/one".into(), b"x".to_vec(), 0o644),
            ("/etc/b4095".into(), content(4095, 1), 0o600),
            ("/etc/b4096".into(), content(4096, 2), 0o644),
            ("/etc/b4097".into(), content(4097, 3), 0o644),
            ("/usr/local/bin/kubelet".into(), content(1 << 20, 4), 0o755),
        ];
        for i in 0..1500 {
            files.push((
                format!("/opt/many/file-{i:04}"),
                format!("{i}\n").into_bytes(),
                0o644,
            ));
        }
        let mut list = super::super::EntryList::new();
        let mut store = HashMap::new();
        for (p, data, mode) in files {
            let b = Blake3::of(&data);
            list.add(
                Entry::file(&p, mode, data.len() as u64, b),
                super::super::Provenance::Directory,
            )
            .expect("add");
            store.insert(b, data);
        }
        list.add(
            Entry::symlink("/etc/link", "/usr/local/bin/kubelet"),
            super::super::Provenance::Directory,
        )
        .expect("add");
        list.add(
            Entry::dir("/var/empty-dir"),
            super::super::Provenance::Directory,
        )
        .expect("add");
        (list.finish("n", "amd64").entries, store)
    }

    fn build(entries: &[Entry], store: &HashMap<Blake3, Vec<u8>>, uuid: [u8; 16]) -> Vec<u8> {
        let mut out = Vec::new();
        let layout = write_erofs(&mut out, entries, uuid, &mut |b| {
            Ok(std::io::Cursor::new(
                store.get(b).cloned().unwrap_or_default(),
            ))
        })
        .expect("write");
        assert_eq!(layout.size as usize, out.len());
        for f in &layout.files {
            let at = usize::try_from(f.block * 4096).expect("offset");
            let data = &store[&f.blake3];
            assert_eq!(
                &out[at..at + data.len()],
                data.as_slice(),
                "file data at its block"
            );
        }
        assert_eq!(out.len() % 4096, 0);
        out
    }

    /// The image written to a temp dir, which fsck.erofs must accept.
    fn written_and_checked(img: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("image.erofs");
        std::fs::write(&path, img).expect("write");
        let out = Command::new("fsck.erofs")
            .arg(&path)
            .output()
            .expect("fsck.erofs must be installed (erofs-utils)");
        assert!(
            out.status.success(),
            "fsck.erofs: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (dir, path)
    }

    /// erofs-utils (fsck.erofs, dump.erofs) read what we write exactly as listed.
    #[test]
    fn fsck_and_extract_agree_with_the_entries() {
        if !crate::test_tools::requires("fsck.erofs", "erofs-utils")
            || !crate::test_tools::requires("dump.erofs", "erofs-utils")
        {
            return;
        }
        let (entries, store) = tree();
        let (dir, path) = written_and_checked(&build(&entries, &store, [7u8; 16]));
        let x = dir.path().join("x");
        let out = Command::new("fsck.erofs")
            .arg(format!("--extract={}", x.display()))
            .arg(&path)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "extract: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        use std::os::unix::fs::PermissionsExt;
        for e in &entries {
            let p = x.join(e.path.trim_start_matches('/'));
            let meta =
                std::fs::symlink_metadata(&p).unwrap_or_else(|err| panic!("{}: {err}", e.path));
            match e.kind {
                Kind::File => {
                    assert_eq!(
                        std::fs::read(&p).expect("read"),
                        store[&e.blake3.expect("b3")],
                        "{}",
                        e.path
                    );
                    assert_eq!(meta.permissions().mode() & 0o7777, e.mode, "{}", e.path);
                }
                Kind::Dir => assert!(meta.is_dir(), "{}", e.path),
                Kind::Symlink => assert_eq!(
                    std::fs::read_link(&p).expect("link").to_str(),
                    e.target.as_deref()
                ),
            }
        }
        let out = Command::new("dump.erofs")
            .args(["-s"])
            .arg(&path)
            .output()
            .expect("dump.erofs");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!(
                "Filesystem inode count:                       {}",
                entries.len() + 1
            )) || text.contains(&(entries.len() + 1).to_string()),
            "{text}"
        );
    }

    /// Owners beyond 16 bits and a directory with more than 65535 links need the extended
    /// (64-byte) inode; erofs-utils must read those as written, beside compact ones.
    #[test]
    fn extended_inodes_where_needed() {
        if !crate::test_tools::requires("fsck.erofs", "erofs-utils")
            || !crate::test_tools::requires("dump.erofs", "erofs-utils")
        {
            return;
        }
        let (mut entries, store) = tree();
        let owned = entries
            .iter()
            .position(|e| e.path == "/etc/b4097")
            .expect("entry");
        entries[owned].uid = 70_000;
        entries[owned].gid = 70_001;
        // 65535 subdirectories: /wide gets 65537 links.
        entries.push(Entry::dir("/wide"));
        for i in 0..65_535 {
            entries.push(Entry::dir(&format!("/wide/d{i:05}")));
        }
        let (_dir, path) = written_and_checked(&build(&entries, &store, [9u8; 16]));
        let show = |p: &str| {
            let out = Command::new("dump.erofs")
                .arg(format!("--path={p}"))
                .arg(&path)
                .output()
                .expect("dump.erofs");
            assert!(out.status.success(), "dump.erofs {p}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let text = show("/etc/b4097");
        assert!(text.contains("Size: 4097 "), "{text}");
        assert!(text.contains("Inode size: 64 "), "{text}");
        assert!(text.contains("Uid: 70000   Gid: 70001"), "{text}");
        let text = show("/wide");
        assert!(text.contains("Links: 65537 "), "{text}");
        assert!(text.contains("Inode size: 64 "), "{text}");
        // Their neighbours stay compact.
        for p in ["/etc/b4096", "/wide/d65534", "/usr/local/bin/kubelet"] {
            let text = show(p);
            assert!(text.contains("Inode size: 32 "), "{p}: {text}");
        }
        // build() already checked that every file's data sits at the block its inode names.
    }

    #[test]
    fn deterministic_and_uuid_only_changes_uuid_bytes() {
        let (entries, store) = tree();
        let a = build(&entries, &store, [1u8; 16]);
        let b = build(&entries, &store, [1u8; 16]);
        assert!(a == b);
        let c = build(&entries, &store, [2u8; 16]);
        let diff: Vec<usize> = a
            .iter()
            .zip(&c)
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .map(|(i, _)| i)
            .collect();
        assert!(
            diff.iter().all(|i| (1024 + 48..1024 + 64).contains(i)),
            "{diff:?}"
        );
    }

    /// The writer's bytes, pinned: the tree with compact inodes only, and with the extended
    /// ones (owners beyond 16 bits, a directory of 65537 links). Any change to the on-disk
    /// encoding shows here first.
    #[test]
    fn bytes_are_pinned() {
        let (mut entries, store) = tree();
        assert_eq!(
            Blake3::of(&build(&entries, &store, [7u8; 16])).to_hex(),
            "9d441c6dc9fa4889bb10d5861f32f76594cdeb30838f8516979115270e7bad29"
        );
        let owned = entries
            .iter()
            .position(|e| e.path == "/etc/b4097")
            .expect("entry");
        entries[owned].uid = 70_000;
        entries[owned].gid = 70_001;
        entries.push(Entry::dir("/wide"));
        for i in 0..65_535 {
            entries.push(Entry::dir(&format!("/wide/d{i:05}")));
        }
        assert_eq!(
            Blake3::of(&build(&entries, &store, [7u8; 16])).to_hex(),
            "bbc35a9c5cf651699f2603d6cd8a000aa5cbb47d5ca5e45f35c8e8bdc7e03de5"
        );
    }
}
