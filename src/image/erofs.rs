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
//! once, a doc comment per field giving its offset, and serialized field by field.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

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

/// Little-endian fields appended in declaration order: each on-disk struct below writes every
/// field, reserved ones included, so the offsets in their doc comments follow from the order.
struct Le<const N: usize> {
    buf: [u8; N],
    at: usize,
}

impl<const N: usize> Le<N> {
    fn new() -> Self {
        Self { buf: [0; N], at: 0 }
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.buf[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
        self
    }
    fn u8(self, v: u8) -> Self {
        self.bytes(&[v])
    }
    fn u16(self, v: u16) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    /// The finished struct; every byte must have been written.
    fn done(self) -> [u8; N] {
        debug_assert_eq!(self.at, N, "an on-disk struct writes all its bytes");
        self.buf
    }
}

/// `struct erofs_super_block`: 128 bytes at byte 1024 of block 0. Fields nodeforge does not use
/// (checksum, features, xattrs, compression, extra devices) are written as 0.
#[derive(Debug, Default)]
struct SuperBlock {
    /// @0 `magic`: `EROFS_SUPER_MAGIC_V1`.
    magic: u32,
    /// @4 `checksum`: crc32c of the superblock block, only with `FEATURE_COMPAT_SB_CHKSUM`
    /// (not set: 0).
    checksum: u32,
    /// @8 `feature_compat`: none.
    feature_compat: u32,
    /// @12 `blkszbits`: log2 of the block size (12: 4 KiB).
    blkszbits: u8,
    /// @13 `sb_extslots`: superblock extension slots (none).
    sb_extslots: u8,
    /// @14 `root_nid`: the root directory's inode number (nid).
    root_nid: u16,
    /// @16 `inos`: how many inodes the image has.
    inos: u64,
    /// @24 `build_time`: seconds; 0, so images do not depend on the clock.
    build_time: u64,
    /// @32 `build_time_nsec`.
    build_time_nsec: u32,
    /// @36 `blocks`: the image size in blocks.
    blocks: u32,
    /// @40 `meta_blkaddr`: the block where the inode table (nid 0) starts.
    meta_blkaddr: u32,
    /// @44 `xattr_blkaddr`: the shared xattr area (none).
    xattr_blkaddr: u32,
    /// @48 `uuid`.
    uuid: [u8; 16],
    /// @64 `volume_name`: none.
    volume_name: [u8; 16],
    /// @80 `feature_incompat`: none (plain, uncompressed, no chunks or devices).
    feature_incompat: u32,
    // @84..128: compression configuration, extra devices, packed inode, reserved: all 0.
}

impl SuperBlock {
    const SIZE: usize = 128;

    fn to_bytes(&self) -> [u8; Self::SIZE] {
        Le::<{ Self::SIZE }>::new()
            .u32(self.magic)
            .u32(self.checksum)
            .u32(self.feature_compat)
            .u8(self.blkszbits)
            .u8(self.sb_extslots)
            .u16(self.root_nid)
            .u64(self.inos)
            .u64(self.build_time)
            .u32(self.build_time_nsec)
            .u32(self.blocks)
            .u32(self.meta_blkaddr)
            .u32(self.xattr_blkaddr)
            .bytes(&self.uuid)
            .bytes(&self.volume_name)
            .u32(self.feature_incompat)
            .bytes(&[0; 128 - 84])
            .done()
    }
}

/// `struct erofs_inode_compact`: 32 bytes, for an inode whose size fits 32 bits and whose
/// owner and link count fit 16.
#[derive(Debug, Default)]
struct CompactInode {
    /// @0 `i_format`: bit 0 clear (compact), bits 1-3 the data layout.
    format: u16,
    /// @2 `i_xattr_icount`: inline xattrs (none).
    xattr_icount: u16,
    /// @4 `i_mode`: file type and permission bits.
    mode: u16,
    /// @6 `i_nlink`.
    nlink: u16,
    /// @8 `i_size`: bytes (a directory: its encoded blocks).
    size: u32,
    /// @12 `i_reserved`.
    reserved: u32,
    /// @16 `i_u.raw_blkaddr`: the first block of the data (flat plain layout).
    blkaddr: u32,
    /// @20 `i_ino`: the inode number shown to user space (stat's `st_ino`).
    ino: u32,
    /// @24 `i_uid`.
    uid: u16,
    /// @26 `i_gid`.
    gid: u16,
    /// @28 `i_reserved2`.
    reserved2: u32,
}

impl CompactInode {
    const SIZE: usize = 32;

    fn to_bytes(&self) -> [u8; Self::SIZE] {
        Le::<{ Self::SIZE }>::new()
            .u16(self.format)
            .u16(self.xattr_icount)
            .u16(self.mode)
            .u16(self.nlink)
            .u32(self.size)
            .u32(self.reserved)
            .u32(self.blkaddr)
            .u32(self.ino)
            .u16(self.uid)
            .u16(self.gid)
            .u32(self.reserved2)
            .done()
    }
}

/// `struct erofs_inode_extended`: 64 bytes, for a size, owner or link count too large for the
/// compact form. Takes two 32-byte nid slots.
#[derive(Debug, Default)]
struct ExtendedInode {
    /// @0 `i_format`: bit 0 set (extended), bits 1-3 the data layout.
    format: u16,
    /// @2 `i_xattr_icount`: inline xattrs (none).
    xattr_icount: u16,
    /// @4 `i_mode`: file type and permission bits.
    mode: u16,
    /// @6 `i_reserved`.
    reserved: u16,
    /// @8 `i_size`.
    size: u64,
    /// @16 `i_u.raw_blkaddr`: the first block of the data (flat plain layout).
    blkaddr: u32,
    /// @20 `i_ino`: the inode number shown to user space.
    ino: u32,
    /// @24 `i_uid`.
    uid: u32,
    /// @28 `i_gid`.
    gid: u32,
    /// @32 `i_mtime`: 0, like every timestamp here.
    mtime: u64,
    /// @40 `i_mtime_nsec`.
    mtime_nsec: u32,
    /// @44 `i_nlink`.
    nlink: u32,
    /// @48 `i_reserved2`.
    reserved2: [u8; 16],
}

impl ExtendedInode {
    const SIZE: usize = 64;

    fn to_bytes(&self) -> [u8; Self::SIZE] {
        Le::<{ Self::SIZE }>::new()
            .u16(self.format)
            .u16(self.xattr_icount)
            .u16(self.mode)
            .u16(self.reserved)
            .u64(self.size)
            .u32(self.blkaddr)
            .u32(self.ino)
            .u32(self.uid)
            .u32(self.gid)
            .u64(self.mtime)
            .u32(self.mtime_nsec)
            .u32(self.nlink)
            .bytes(&self.reserved2)
            .done()
    }
}

/// `struct erofs_dirent`: 12 bytes. A directory block holds every entry's dirent, then their
/// names back to back (not NUL-terminated: a name ends where the next begins, the last one at
/// the first NUL or the block's end).
#[derive(Debug, Default)]
struct Dirent {
    /// @0 `nid`: the entry's inode.
    nid: u64,
    /// @8 `nameoff`: where the name starts, from the start of the block.
    nameoff: u16,
    /// @10 `file_type`: `EROFS_FT_*`.
    file_type: u8,
    /// @11 `reserved`.
    reserved: u8,
}

impl Dirent {
    const SIZE: usize = 12;

    fn to_bytes(&self) -> [u8; Self::SIZE] {
        Le::<{ Self::SIZE }>::new()
            .u64(self.nid)
            .u16(self.nameoff)
            .u8(self.file_type)
            .u8(self.reserved)
            .done()
    }
}

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
        while j < children.len() && used + Dirent::SIZE + children[j].0.len() <= BLKSZ as usize {
            used += Dirent::SIZE + children[j].0.len();
            j += 1;
        }
        if j == i {
            return Err(io::Error::other(
                "a file name longer than a directory block",
            ));
        }
        let start = out.len();
        let mut nameoff = (j - i) * Dirent::SIZE;
        for (name, nid, ft) in &children[i..j] {
            let d = Dirent {
                nid: *nid,
                nameoff: u16::try_from(nameoff).map_err(io::Error::other)?,
                file_type: *ft,
                reserved: 0,
            };
            out.extend_from_slice(&d.to_bytes());
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
pub fn write_erofs<W: Write, R: Read>(
    out: &mut W,
    entries: &[Entry],
    uuid: [u8; 16],
    open: &mut dyn FnMut(&Blake3) -> io::Result<R>,
) -> io::Result<Layout> {
    // 1. Inodes: the root, then every entry in order.
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

    // 2. Inode table: compact where possible, 32-byte slots, starting at block 1.
    let meta_blkaddr = 1u64;
    let mut off = 0u64;
    for ino in &mut inodes {
        ino.extended = ino.size > u64::from(u32::MAX)
            || ino.uid > u32::from(u16::MAX)
            || ino.gid > u32::from(u16::MAX)
            || ino.nlink > u64::from(u16::MAX);
        ino.nid = off / CompactInode::SIZE as u64;
        off += if ino.extended {
            ExtendedInode::SIZE
        } else {
            CompactInode::SIZE
        } as u64;
    }
    if inodes[0].nid != 0 {
        return Err(io::Error::other("the root inode must come first"));
    }
    let table_blocks = off.div_ceil(BLKSZ);

    // 3. Directory contents (need every nid), then data placement in inode order.
    let parent_of: Vec<usize> = {
        let mut p = vec![0usize; inodes.len()];
        for (i, ino) in inodes.iter().enumerate() {
            for (_, c) in &ino.children {
                p[*c] = i;
            }
        }
        p
    };
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
    let mut next = meta_blkaddr + table_blocks;
    for ino in &mut inodes {
        if ino.size > 0 {
            ino.blkaddr = next;
            next += ino.blocks();
        }
    }
    let total_blocks = next;

    // 4. Superblock (block 0).
    let sb = SuperBlock {
        magic: MAGIC,
        blkszbits: BLKSZ_BITS,
        root_nid: u16::try_from(inodes[0].nid).map_err(io::Error::other)?,
        inos: inodes.len() as u64,
        blocks: u32::try_from(total_blocks)
            .map_err(|_| io::Error::other("image larger than 16 TiB"))?,
        meta_blkaddr: u32::try_from(meta_blkaddr).map_err(io::Error::other)?,
        uuid,
        ..SuperBlock::default()
    };
    let mut block0 = vec![0u8; BLKSZ as usize];
    block0[SUPERBLOCK_OFFSET..SUPERBLOCK_OFFSET + SuperBlock::SIZE].copy_from_slice(&sb.to_bytes());
    out.write_all(&block0)?;

    // 5. Inode table.
    let mut table = Vec::with_capacity(usize::try_from(table_blocks * BLKSZ).unwrap_or(0));
    for (i, ino) in inodes.iter().enumerate() {
        let ino_no = u32::try_from(i + 1).map_err(|_| io::Error::other("too many inodes"))?;
        let blkaddr = u32::try_from(ino.blkaddr).map_err(io::Error::other)?;
        let mode = u16::try_from(ino.mode).map_err(io::Error::other)?;
        if ino.extended {
            let inode = ExtendedInode {
                format: 1 | (LAYOUT_FLAT_PLAIN << 1),
                mode,
                size: ino.size,
                blkaddr,
                ino: ino_no,
                uid: ino.uid,
                gid: ino.gid,
                nlink: u32::try_from(ino.nlink).map_err(io::Error::other)?,
                ..ExtendedInode::default()
            };
            table.extend_from_slice(&inode.to_bytes());
        } else {
            let inode = CompactInode {
                format: LAYOUT_FLAT_PLAIN << 1,
                mode,
                nlink: u16::try_from(ino.nlink).map_err(io::Error::other)?,
                size: u32::try_from(ino.size).map_err(io::Error::other)?,
                blkaddr,
                ino: ino_no,
                uid: u16::try_from(ino.uid).map_err(io::Error::other)?,
                gid: u16::try_from(ino.gid).map_err(io::Error::other)?,
                ..CompactInode::default()
            };
            table.extend_from_slice(&inode.to_bytes());
        }
    }
    table.resize(usize::try_from(table_blocks * BLKSZ).unwrap_or(0), 0);
    out.write_all(&table)?;

    // 6. Data, in inode order, each padded to a block.
    let zeros = [0u8; BLKSZ as usize];
    let mut files = Vec::new();
    for ino in &inodes {
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
    Ok(Layout {
        size: total_blocks * BLKSZ,
        files,
    })
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
