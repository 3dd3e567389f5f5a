//! Writing images from their records: each layer's EROFS file, dm-verity tree and root hash into
//! `out/layers/<id>/` (once, whoever needs it), the image directory that names them, and flat
//! single-file images on request. Everything is written from the store, so an image that gc
//! collected is written again, byte for byte, from its record.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::{self, IoContext};
use crate::hash::Blake3;
use crate::image::{
    self, Entry, ImageManifest, Kind, LayerRecord, Provenance, Role, VerityInfo, FLAT_FORMAT,
    LAYER_FORMAT,
};
use crate::layout::{self, OutDir, IMAGE_RECORD, LAYER_RECORD};
use crate::ops::error::Error;
use crate::store::Store;

/// Every file of the image must be in the store before anything is written.
pub(crate) fn check_objects(store: &Store, m: &ImageManifest) -> Result<(), Error> {
    let missing: Vec<String> = m
        .entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .filter(|e| {
            e.blake3
                .and_then(|b| store.object(&b))
                .is_none_or(|o| o.size != e.size)
        })
        .map(|e| {
            let from = match m.provenance.get(&e.path) {
                Some(Provenance::Artifact {
                    component,
                    version,
                    arch,
                    ..
                }) => format!(" (from {component} {version} ({arch}))"),
                Some(Provenance::Template { template }) => format!(" (from template {template})"),
                _ => String::new(),
            };
            format!("{}{from}", e.path)
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingObjects {
            image: m.id.clone(),
            missing,
        })
    }
}

/// Whether a layer directory holds its record and all its files (it is renamed into place whole).
pub(crate) fn layer_complete(dir: &Path, name: &str) -> bool {
    dir.join(LAYER_RECORD).is_file()
        && layout::layer_files(name)
            .iter()
            .all(|f| dir.join(f).is_file())
}

/// Whether an image directory is complete: its record, and each file of each layer, which is
/// the layer's own file (a hard link: no blocks of its own, unlike a symlink whose 64-hex target
/// does not fit in an inode), as `out/layers/<id>/` holds it now.
pub(crate) fn image_complete(out: &OutDir, dir: &Path, m: &ImageManifest) -> bool {
    dir.join(IMAGE_RECORD).is_file()
        && m.layers.iter().all(|l| {
            layout::layer_files(&l.name)
                .iter()
                .all(|f| same_inode(&dir.join(f), &out.layer(&l.id).join(f)))
        })
}

/// Whether two paths name the same file (device and inode).
pub(crate) fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.is_file() && x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Layer records this process read and checked, with the record file's stat key when read.
type ReadRecords = std::collections::HashMap<PathBuf, (crate::verified::FileKey, LayerRecord)>;
static READ_RECORDS: std::sync::Mutex<Option<ReadRecords>> = std::sync::Mutex::new(None);

/// Read a layer's record and check it against its id and directory. A record this process
/// read already is taken again while its file's stat key has not moved (a build reads the
/// shared payload's record for each node): a key is remembered only when it was not racy
/// ([`crate::verified`]'s rule), so any write to the file makes it read again.
pub(crate) fn read_layer_record(dir: &Path) -> Result<LayerRecord, Error> {
    let path = dir.join(LAYER_RECORD);
    let key = crate::verified::FileKey::of(&path).filter(|k| !k.racy());
    if let Some(k) = key {
        let read = READ_RECORDS.lock().ok().and_then(|r| {
            r.as_ref()?
                .get(&path)
                .filter(|(was, _)| *was == k)
                .map(|(_, rec)| rec.clone())
        });
        if let Some(rec) = read {
            return Ok(rec);
        }
    }
    let rec = read_layer_record_file(dir, path.clone())?;
    if let (Some(k), Ok(mut read)) = (key, READ_RECORDS.lock()) {
        read.get_or_insert_with(Default::default)
            .insert(path, (k, rec.clone()));
    }
    Ok(rec)
}

/// [`read_layer_record`] from the file.
fn read_layer_record_file(dir: &Path, path: PathBuf) -> Result<LayerRecord, Error> {
    let bytes = std::fs::read(&path).at("cannot read", &path)?;
    let rec: LayerRecord = serde_json::from_slice(&bytes)
        .map_err(|e| Error::damaged(&path, format!("not a layer record: {e}")))?;
    rec.check()
        .map_err(|e| Error::damaged(&path, format!("{e}: the record is damaged or was edited")))?;
    if dir
        .file_name()
        .is_none_or(|n| n.to_string_lossy() != rec.id)
    {
        return Err(Error::damaged(
            &path,
            format!("the layer in this directory says its id is {}", rec.id),
        ));
    }
    Ok(rec)
}

/// The record of the layer in `dir` (of extension name `name`) when the directory is complete
/// and its record pins `pinned` (if given); `None` otherwise.
pub(crate) fn usable_layer(
    dir: &Path,
    name: &str,
    pinned: Option<&VerityInfo>,
) -> Option<LayerRecord> {
    if !layer_complete(dir, name) {
        return None;
    }
    read_layer_record(dir)
        .ok()
        .filter(|r| pinned.is_none_or(|p| *p == r.verity))
}

/// Make sure `out/layers/<id>/` holds the layer of `role` of `m`; returns its record and
/// whether it was written now. When `m` pins the layer's verity parameters (a generation's
/// record), a layer directory that does not match them is not used: the layer is written again
/// from the store, and if that does not give what the record pins, the record was edited.
#[allow(dead_code)] // build stages its layers; kept for the commands that rewrite one (repair)
pub(crate) fn ensure_layer(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    role: Role,
) -> Result<(LayerRecord, bool), Error> {
    ensure_layer_with(out, store, m, role, &crate::progress::Progress::hidden())
}

/// [`ensure_layer`], advancing `bar` by each file's bytes as they are written.
pub(crate) fn ensure_layer_with(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    role: Role,
    bar: &crate::progress::Progress,
) -> Result<(LayerRecord, bool), Error> {
    match stage_layer(out, store, m, role, bar)? {
        LayerStage::Present(rec) => Ok((rec, false)),
        LayerStage::Staged(s) => {
            let rec = s.rec.clone();
            let written = s.publish(fsutil::Durability::Each)?;
            Ok((rec, written))
        }
    }
}

/// What [`stage_layer`] found: the layer in place, or written into a temporary directory.
pub(crate) enum LayerStage {
    Present(LayerRecord),
    Staged(StagedLayer),
}

/// A layer written into a temporary directory in `out/layers/`, not yet in place.
pub(crate) struct StagedLayer {
    tmp: tempfile::TempDir,
    dest: PathBuf,
    rec: LayerRecord,
}

impl StagedLayer {
    /// Where the layer's file `name` is while staged.
    fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Rename it into place unless an equal layer is there already; whether it was put there.
    fn publish(self, durability: fsutil::Durability) -> Result<bool, Error> {
        let (role, verity) = (self.rec.role, self.rec.verity.clone());
        Ok(fsutil::commit_dir_with(
            self.tmp,
            &self.dest,
            |d| usable_layer(d, role.name(), Some(&verity)).is_some(),
            durability,
        )?)
    }
}

/// The layer of `role` of `m`: in `out/layers/<id>/` already, or written into a temporary
/// directory there. When `m` pins the layer's verity parameters (a generation's record), a layer
/// directory that does not match them is not used: the layer is written again from the store,
/// and if that does not give what the record pins, the record was edited.
pub(crate) fn stage_layer(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
    role: Role,
    bar: &crate::progress::Progress,
) -> Result<LayerStage, Error> {
    let entries = image::layer_entries(&m.entries, role);
    let id = image::layer_id(&entries);
    let dir = out.layer(&id.to_hex());
    let pinned = m.layer(role).and_then(|l| l.verity.clone());
    if let Some(rec) = usable_layer(&dir, role.name(), pinned.as_ref()) {
        return Ok(LayerStage::Present(rec));
    }
    check_objects(store, m)?;
    let layers = out.layers();
    fsutil::create_dir_all(&layers)?;
    let tmp = fsutil::temp_dir_in(&layers)?;
    let [raw, verity, roothash] = layout::layer_files(role.name());
    let info = write_erofs_verity(
        store,
        &entries,
        &id,
        &tmp.path().join(&raw),
        &tmp.path().join(&verity),
        bar,
    )?;
    if let Some(p) = pinned.as_ref().filter(|p| **p != info) {
        return Err(Error::RootHashMismatch {
            image: m.id.to_string(),
            role: role.to_string(),
            pinned: p.root_hash.to_string(),
            made: info.root_hash.to_string(),
        });
    }
    fsutil::write_new(
        &tmp.path().join(&roothash),
        format!("{}\n", info.root_hash).as_bytes(),
        0o444,
    )?;
    let rec = LayerRecord {
        format: LAYER_FORMAT,
        id: id.to_hex(),
        role,
        name: role.name().to_string(),
        arch: m.arch.clone(),
        entries,
        verity: info,
    };
    fsutil::write_new(&tmp.path().join(LAYER_RECORD), &rec.to_json(), 0o444)?;
    Ok(LayerStage::Staged(StagedLayer {
        tmp,
        dest: dir,
        rec,
    }))
}

/// Make sure `out/images/<id>/` exists with its record and links, and every layer it names is
/// written. Returns the image directory, the record as written (with each layer's verity
/// parameters: what a generation keeps) and whether anything was written now. An image directory
/// whose record is not exactly this one (edited, or pinning other root hashes) is replaced.
pub(crate) fn materialize(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
) -> Result<(PathBuf, ImageManifest, bool), Error> {
    materialize_layers(out, store, m).map(|w| (w.dir, w.full, w.new))
}

/// What writing an image's directory and layers did.
#[derive(Debug, Clone)]
pub(crate) struct Materialized {
    /// `out/images/<id>/`.
    pub dir: PathBuf,
    /// The record as written, with each layer's verity parameters.
    pub full: ImageManifest,
    /// Something was written now (a layer or the image directory).
    pub new: bool,
    /// The image's layers this call wrote (the others were in place already).
    pub layers_written: Vec<Role>,
}

/// [`materialize`], also saying which of the image's layers this call wrote. Whatever is
/// missing is staged, made durable with one `syncfs`, renamed into place, and the renames made
/// durable with a second.
pub(crate) fn materialize_layers(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
) -> Result<Materialized, Error> {
    let staged = stage_image(out, store, m)?;
    let pending = staged.pending();
    if pending {
        fsutil::sync_fs(&out.images())?;
    }
    let done = staged.publish(out, fsutil::Durability::Batched)?;
    if pending {
        fsutil::sync_fs(&out.images())?;
    }
    Ok(done)
}

/// An image's layers and directory, written where missing into temporary directories, not yet
/// in place: [`stage_image`], then one `syncfs` (with whatever else the caller staged), then
/// [`publish`](Self::publish).
pub(crate) struct StagedImage {
    dir: PathBuf,
    full: ImageManifest,
    /// `full` as `out/` keeps it ([`ImageManifest::to_stored_json`]), made once.
    record: Vec<u8>,
    layers: Vec<StagedLayer>,
    image: Option<tempfile::TempDir>,
}

impl StagedImage {
    /// The record as it will be written, with each layer's verity parameters.
    pub(crate) fn full(&self) -> &ImageManifest {
        &self.full
    }

    /// The bytes of its record as `out/` keeps it: what its generation keeps too.
    pub(crate) fn record(&self) -> &[u8] {
        &self.record
    }

    /// Whether anything waits to be published (false: the image was complete already).
    pub(crate) fn pending(&self) -> bool {
        !self.layers.is_empty() || self.image.is_some()
    }

    /// Where the image's record is now (staged, or in place): what a generation links.
    pub(crate) fn record_path(&self) -> PathBuf {
        self.image
            .as_ref()
            .map_or_else(|| self.dir.clone(), |t| t.path().to_path_buf())
            .join(IMAGE_RECORD)
    }

    /// Rename the staged layers, then the image directory, into place; with
    /// [`fsutil::Durability::Batched`] the caller synced them before and syncs the renames
    /// after. A layer someone else put in place meanwhile (the same bytes) is kept, and the
    /// image's links are pointed at its files.
    pub(crate) fn publish(
        self,
        out: &OutDir,
        durability: fsutil::Durability,
    ) -> Result<Materialized, Error> {
        let Self {
            dir,
            full,
            record,
            layers,
            image,
        } = self;
        let mut layers_written = Vec::new();
        for l in layers {
            let (role, id, name) = (l.rec.role, l.rec.id.clone(), l.rec.name.clone());
            if l.publish(durability)? {
                layers_written.push(role);
            } else if let Some(tmp) = &image {
                for f in layout::layer_files(&name) {
                    let link = tmp.path().join(&f);
                    let target = out.layer(&id).join(&f);
                    std::fs::remove_file(&link).at("cannot replace", &link)?;
                    std::fs::hard_link(&target, &link).at("cannot link", &link)?;
                }
            }
        }
        let written = match image {
            None => false,
            Some(tmp) => fsutil::commit_dir_with(
                tmp,
                &dir,
                |d| image_matches(out, d, &full, &record),
                durability,
            )?,
        };
        Ok(Materialized {
            new: !layers_written.is_empty() || written,
            dir,
            full,
            layers_written,
        })
    }
}

/// Whether `d` is image `full`'s complete directory, its record exactly `full`.
/// A record holding exactly `record`, the bytes `out/` keeps `full` as, is `full` (no parse
/// needed); any other is parsed and compared, as records written otherwise (pulled) may be.
fn image_matches(out: &OutDir, d: &Path, full: &ImageManifest, record: &[u8]) -> bool {
    let path = d.join(IMAGE_RECORD);
    image_complete(out, d, full)
        && (std::fs::read(&path).is_ok_and(|b| b == record)
            || read_image_manifest(out, &path).is_ok_and(|w| w == *full))
}

/// Write what image `m` lacks into temporary directories: each missing layer in
/// `out/layers/`, and the image directory (its record, hard links to its layers' files) in
/// `out/images/` unless it is complete already.
pub(crate) fn stage_image(
    out: &OutDir,
    store: &Store,
    m: &ImageManifest,
) -> Result<StagedImage, Error> {
    if m.format == FLAT_FORMAT {
        return Err(Error::FlatImage {
            image: m.id.clone(),
            node: m.node.clone(),
        });
    }
    let mut full = m.clone();
    let mut staged = Vec::new();
    let hidden = crate::progress::Progress::hidden();
    for layer in &mut full.layers {
        match stage_layer(out, store, m, layer.role, &hidden)? {
            LayerStage::Present(rec) => layer.verity = Some(rec.verity),
            LayerStage::Staged(s) => {
                layer.verity = Some(s.rec.verity.clone());
                staged.push(s);
            }
        }
    }
    let dir = out.image(&m.id);
    let record = full.to_stored_json();
    if staged.is_empty() && image_matches(out, &dir, &full, &record) {
        return Ok(StagedImage {
            dir,
            full,
            record,
            layers: staged,
            image: None,
        });
    }
    let images = out.images();
    fsutil::create_dir_all(&images)?;
    let tmp = fsutil::temp_dir_in(&images)?;
    fsutil::write_new(&tmp.path().join(IMAGE_RECORD), &record, 0o444)?;
    for layer in &full.layers {
        let from_staged = staged.iter().find(|s| s.rec.id == layer.id);
        for f in layout::layer_files(&layer.name) {
            let target = from_staged.map_or_else(|| out.layer(&layer.id).join(&f), |s| s.file(&f));
            let link = tmp.path().join(&f);
            std::fs::hard_link(&target, &link).at("cannot link", &link)?;
        }
    }
    Ok(StagedImage {
        dir,
        full,
        record,
        layers: staged,
        image: Some(tmp),
    })
}

/// The parameters of the dm-verity tree of layer `id` that `v` records.
pub(crate) fn verity_params(
    v: &VerityInfo,
    id: &str,
) -> std::io::Result<image::verity::VerityParams> {
    Ok(image::verity::VerityParams {
        salt: hex::decode(&v.salt).map_err(std::io::Error::other)?,
        uuid: Blake3::parse(id)
            .map(|id| image::verity::params_for(&id).uuid)
            .map_err(std::io::Error::other)?,
    })
}

/// The dm-verity tree of `data` with the parameters `v` records; its root hash.
fn verity_of(data: &Path, v: &VerityInfo, id: &str) -> std::io::Result<(String, Vec<u8>)> {
    let size = std::fs::metadata(data)?.len();
    let params = verity_params(v, id)?;
    let mut tree = Vec::new();
    let mut r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(data)?);
    let root = image::verity::write_verity(&mut r, size, &params, &mut tree)?;
    Ok((root.to_hex(), tree))
}

/// A `Write` that only hashes.
struct HashWriter(blake3::Hasher);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What checking a layer directory found.
#[derive(Debug, Default)]
pub(crate) struct LayerCheck {
    pub fails: Vec<String>,
    /// The EROFS file was compared with what its entries make from the store. `false` when the
    /// store lacks some of its files (a host that pulled the layer from a registry): then it was
    /// checked against the root hash its record pins, and its tree and root hash file, only.
    pub rebuilt: bool,
}

/// Check a layer directory: its record against its id; its EROFS file against the one its entries
/// make from the store (when the store holds every file of it); its hash tree and root hash
/// against that file.
pub(crate) fn check_layer(store: &Store, dir: &Path, mmap: bool) -> LayerCheck {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rec: LayerRecord = match read_layer_record(dir) {
        Ok(r) => r,
        Err(e) => {
            return LayerCheck {
                fails: vec![format!("layer {name}: {e}")],
                rebuilt: false,
            }
        }
    };
    let in_store = rec
        .entries
        .iter()
        .filter(|e| e.kind == Kind::File)
        .all(|e| {
            e.blake3
                .and_then(|b| store.object(&b))
                .is_some_and(|o| o.size == e.size)
        });
    let mut fails = Vec::new();
    let [raw, _, _] = layout::layer_files(&rec.name);
    let raw = dir.join(raw);
    if in_store {
        // The EROFS file is exactly what the entries make from the store.
        let expected = Blake3::parse(&rec.id)
            .map_err(|e| e.to_string())
            .and_then(|id| {
                let mut w = HashWriter(blake3::Hasher::new());
                image::erofs::write_erofs(&mut w, &rec.entries, image::erofs_uuid(&id), &mut |b| {
                    std::fs::File::open(store.object_path(b))
                })
                .map_err(|e| e.to_string())?;
                Ok(Blake3::from_bytes(*w.0.finalize().as_bytes()))
            });
        let actual = if mmap {
            Blake3::of_file_mapped(&raw)
        } else {
            Blake3::of_file(&raw)
        };
        match (expected, actual) {
            (Ok(e), Ok((a, _))) if e == a => {}
            (Ok(_), Ok(_)) => fails.push(format!(
                "layer {name}: {} is not the EROFS file its entries make from the store",
                raw.display()
            )),
            (Err(e), _) => fails.push(format!(
                "layer {name}: cannot make its EROFS file again: {e}"
            )),
            (_, Err(e)) => fails.push(format!("layer {name}: cannot read {}: {e}", raw.display())),
        }
    }
    fails.extend(check_layer_verity(dir, &rec));
    LayerCheck {
        fails,
        rebuilt: in_store,
    }
}

/// Check a layer directory's EROFS file against the root hash `rec` pins, and its hash tree and
/// root hash file against that file: what a layer is checked by where its entries' files are not
/// in the store (a pulled layer, before and after it is put in place).
pub(crate) fn check_layer_verity(dir: &Path, rec: &LayerRecord) -> Vec<String> {
    let name = &rec.id;
    let mut fails = Vec::new();
    let [raw, verity, roothash] = layout::layer_files(&rec.name);
    let raw = dir.join(raw);
    match verity_of(&raw, &rec.verity, &rec.id) {
        Ok((root, tree)) => {
            if root != rec.verity.root_hash {
                fails.push(format!(
                    "layer {name}: its EROFS file hashes to verity root {root}, its record pins {}",
                    rec.verity.root_hash
                ));
            }
            if std::fs::read(dir.join(&verity)).ok().as_ref() != Some(&tree) {
                fails.push(format!(
                    "layer {name}: {verity} is not the hash tree of its EROFS file"
                ));
            }
            let file = std::fs::read_to_string(dir.join(&roothash)).unwrap_or_default();
            if file.trim_end() != root {
                fails.push(format!(
                    "layer {name}: {roothash} says {:?}, the EROFS file's root hash is {root}",
                    file.trim_end()
                ));
            }
        }
        Err(e) => fails.push(format!("layer {name}: cannot hash {}: {e}", raw.display())),
    }
    fails
}

/// [`check_layer_verity`] of a layer whose EROFS file was hashed as it arrived: `level0` holds
/// the digests of its `size` bytes' blocks (with the parameters `rec` records) and
/// `tree_digest` is the sha256 of the hash tree file received beside it (checked as it
/// arrived). The tree these blocks make must have the root hash `rec` pins and be that file,
/// byte for byte; neither file is read again. (The root hash file is written from `rec`.)
pub(crate) fn check_streamed_verity(
    rec: &LayerRecord,
    params: &image::verity::VerityParams,
    level0: Vec<[u8; 32]>,
    size: u64,
    tree_digest: &crate::hash::Sha256,
) -> Vec<String> {
    let name = &rec.id;
    let [raw, verity, _] = layout::layer_files(&rec.name);
    if size == 0 || !size.is_multiple_of(image::verity::BLOCK as u64) {
        return vec![format!(
            "layer {name}: cannot hash {raw}: verity data must be a non-zero multiple of {} bytes, not {size}",
            image::verity::BLOCK
        )];
    }
    let mut tree = Vec::new();
    let root = match image::verity::write_tree(level0, params, &mut tree) {
        Ok(root) => root.to_hex(),
        Err(e) => return vec![format!("layer {name}: cannot hash {raw}: {e}")],
    };
    let mut fails = Vec::new();
    if root != rec.verity.root_hash {
        fails.push(format!(
            "layer {name}: its EROFS file hashes to verity root {root}, its record pins {}",
            rec.verity.root_hash
        ));
    }
    if crate::hash::Sha256::of(&tree) != *tree_digest {
        fails.push(format!(
            "layer {name}: {verity} is not the hash tree of its EROFS file"
        ));
    }
    fails
}

/// Write `entries` as an EROFS file and its dm-verity tree, file data copied from the store;
/// uuids derived from `id`. Returns how to open it.
pub(crate) fn write_erofs_verity(
    store: &Store,
    entries: &[Entry],
    id: &Blake3,
    erofs_path: &Path,
    verity_path: &Path,
    bar: &crate::progress::Progress,
) -> Result<VerityInfo, Error> {
    // Read back for its own blocks' verity digests.
    let erofs = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(erofs_path)
        .at("cannot create", erofs_path)?;
    let layout = {
        // File to file: the binaries are copied by the kernel, not through this process.
        let mut w = BufWriter::with_capacity(1 << 20, &erofs);
        let layout = image::erofs::write_erofs(&mut w, entries, image::erofs_uuid(id), &mut |b| {
            let f = File::open(store.object_path(b))?;
            // Opened to be copied whole: counted as written.
            if let Ok(m) = f.metadata() {
                bar.inc(m.len());
            }
            Ok(f)
        })
        .at("cannot write", erofs_path)?;
        w.flush().at("cannot write", erofs_path)?;
        layout
    };
    fsutil::set_mode(&erofs, 0o444).at("cannot set the mode of", erofs_path)?;
    let params = image::verity::params_for(id);
    let level0 = level0(store, &erofs, erofs_path, &layout, &params.salt)?;
    // Made durable with its directory (fsutil::commit_dir), or by the caller.
    drop(erofs);
    let root = {
        let f = File::create(verity_path).at("cannot create", verity_path)?;
        let mut w = BufWriter::new(&f);
        let root =
            image::verity::write_tree(level0, &params, &mut w).at("cannot write", verity_path)?;
        w.flush().at("cannot write", verity_path)?;
        drop(w);
        fsutil::set_mode(&f, 0o444).at("cannot set the mode of", verity_path)?;
        root
    };
    Ok(VerityInfo {
        root_hash: root.to_hex(),
        salt: hex::encode(&params.salt),
        uuid: image::verity::uuid_string(&params.uuid),
        hash_algorithm: "sha256".into(),
        data_block_size: 4096,
        hash_block_size: 4096,
        data_blocks: layout.size / 4096,
        erofs_uuid: image::verity::uuid_string(&image::erofs_uuid(id)),
    })
}

/// Level 0 of an EROFS file's dm-verity tree: its own blocks (metadata, directories, configs)
/// hashed from the file, every file's data blocks from the store's cached digests of that object.
fn level0(
    store: &Store,
    erofs: &File,
    erofs_path: &Path,
    layout: &image::erofs::Layout,
    salt: &[u8],
) -> Result<Vec<[u8; 32]>, Error> {
    const BLOCK: u64 = image::verity::BLOCK as u64;
    let own = |from: u64, to: u64| -> Result<Vec<[u8; 32]>, Error> {
        use std::io::{Seek, SeekFrom};
        let mut f = erofs;
        f.seek(SeekFrom::Start(from * BLOCK))
            .at("cannot read", erofs_path)?;
        let len = (to - from) * BLOCK;
        Ok(image::verity::block_digests(&mut f.take(len), len, salt)
            .at("cannot read", erofs_path)?)
    };
    let mut level = Vec::with_capacity(usize::try_from(layout.size / BLOCK).unwrap_or(0));
    let mut at = 0;
    for f in &layout.files {
        if f.block < at {
            return Err(Error::Internal(format!(
                "image layout: file data at block {} overlaps block {at}",
                f.block
            )));
        }
        level.extend(own(at, f.block)?);
        level.extend(image::digests::block_digests(
            store, &f.blake3, f.size, salt,
        )?);
        at = f.block + f.size.div_ceil(BLOCK);
    }
    if at > layout.size / BLOCK {
        return Err(Error::Internal(format!(
            "image layout: file data ends at block {at}, past the image's {} blocks",
            layout.size / BLOCK
        )));
    }
    level.extend(own(at, layout.size / BLOCK)?);
    Ok(level)
}

/// Write `entries` as tar records (no end-of-archive) through `w`, file data from the store.
fn write_tar_entries(store: &Store, entries: &[Entry], w: &mut impl Write) -> Result<(), Error> {
    for e in entries {
        if e.kind == Kind::File {
            let b = e
                .blake3
                .ok_or_else(|| Error::Internal(format!("{} has no content address", e.path)))?;
            let path = store.object_path(&b);
            let mut f = File::open(&path).at("cannot open store object", &path)?;
            image::tar::write_entry(w, e, Some(&mut f as &mut dyn Read))
                .at("cannot write the tar entry for", Path::new(&e.path))?;
        } else {
            image::tar::write_entry(w, e, None)
                .at("cannot write the tar entry for", Path::new(&e.path))?;
        }
    }
    Ok(())
}

/// The single-file forms of a whole node image, for bare-metal installers, containers and
/// setups that cannot stack layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlatFormat {
    /// A deterministic `.tar.zst` of every entry (GNU headers, mtime 0, owners 0).
    TarZst,
    /// One EROFS file of every entry, with its dm-verity tree in `<FILE>.verity`.
    Erofs,
}

/// Write the whole image `m` (every layer's entries) as one file at `dest`, atomically. For
/// EROFS, the hash tree goes to `<dest>.verity` and the verity parameters are returned.
pub(crate) fn write_flat(
    store: &Store,
    m: &ImageManifest,
    format: FlatFormat,
    dest: &Path,
) -> Result<Option<VerityInfo>, Error> {
    check_objects(store, m)?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = fsutil::temp_dir_in(&dir)?;
    let staged = tmp.path().join("image");
    let verity = match format {
        FlatFormat::TarZst => {
            let f = File::create(&staged).at("cannot create", &staged)?;
            let mut enc = image::tar::zstd_encoder(BufWriter::with_capacity(1 << 20, &f))
                .at("cannot start compressing", &staged)?;
            write_tar_entries(store, &m.entries, &mut enc)?;
            image::tar::write_end(&mut enc).at("cannot write", &staged)?;
            let mut w = enc.finish().at("cannot compress", &staged)?;
            w.flush().at("cannot write", &staged)?;
            drop(w);
            fsutil::set_mode(&f, 0o644).at("cannot set the mode of", &staged)?;
            f.sync_all().at("cannot sync", &staged)?;
            None
        }
        FlatFormat::Erofs => {
            let id = Blake3::parse(&m.id).map_err(|e| Error::Internal(format!("image id: {e}")))?;
            let info = write_erofs_verity(
                store,
                &m.entries,
                &id,
                &staged,
                &tmp.path().join("verity"),
                &crate::progress::Progress::hidden(),
            )?;
            // The user's files, writable as the tar is (the store's layers are 0444, not these).
            for f in [staged.clone(), tmp.path().join("verity")] {
                let file = File::open(&f).at("cannot open", &f)?;
                fsutil::set_mode(&file, 0o644).at("cannot set the mode of", &f)?;
            }
            fsutil::sync_fs(tmp.path())?;
            let mut v = dest.as_os_str().to_owned();
            v.push(".verity");
            fsutil::rename_into(&tmp.path().join("verity"), Path::new(&v))?;
            Some(info)
        }
    };
    fsutil::rename_into(&staged, dest)?;
    Ok(verity)
}

/// Read an image's record and check that it is what its id says: a damaged or edited record must
/// not be trusted, nor its id used as a path. A record kept without its entries (format 3) gets
/// them from its layers' records in `out` ([`full_from_layers`]).
pub(crate) fn read_image_manifest(out: &OutDir, path: &Path) -> Result<ImageManifest, Error> {
    let bytes = std::fs::read(path).at("cannot read", path)?;
    match image::OnDisk::parse(&bytes)
        .map_err(|e| Error::damaged(path, format!("not an image manifest: {e}")))?
    {
        image::OnDisk::Whole(m) => {
            m.check().map_err(|e| {
                Error::damaged(path, format!("{e}: the record is damaged or was edited"))
            })?;
            Ok(m)
        }
        // Checked as it is put together.
        image::OnDisk::Stored(s) => full_from_layers(out, path, s),
    }
}

/// The whole (format-2) record of `s`, read from `path`: each layer's entries from its record
/// in `out/layers/<id>/`, checked against the layer's id. A layer record that is missing or
/// damaged is named ([`Error::RecordLayer`]).
pub(crate) fn full_from_layers(
    out: &OutDir,
    path: &Path,
    s: image::StoredRecord,
) -> Result<ImageManifest, Error> {
    s.check()
        .map_err(|e| Error::damaged(path, format!("{e}: the record is damaged or was edited")))?;
    let mut lists = Vec::with_capacity(s.layers.len());
    for l in &s.layers {
        let rec = read_layer_record(&out.layer(&l.id)).map_err(|e| Error::RecordLayer {
            path: path.to_path_buf(),
            role: l.role.to_string(),
            layer: l.id.clone(),
            problem: e.to_string(),
        })?;
        lists.push(rec.entries);
    }
    s.into_full(lists)
        .map_err(|e| Error::damaged(path, format!("{e}: the record is damaged or was edited")))
}

/// Find an image by id or unambiguous id prefix.
pub fn find_image(out: &Path, id: &str) -> Result<ImageManifest, Error> {
    let images = OutDir::new(out).images();
    let mut found = Vec::new();
    for e in crate::fsutil::entries(&images) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && name.starts_with(id) && !id.is_empty() {
            found.push(name);
        }
    }
    found.sort();
    match found.as_slice() {
        [one] => {
            let m = read_image_manifest(&OutDir::new(out), &images.join(one).join(IMAGE_RECORD))?;
            if &m.id != one {
                return Err(Error::damaged(
                    &images.join(one),
                    format!("the image in directory {one} says its id is {}", m.id),
                ));
            }
            Ok(m)
        }
        [] => Err(Error::Usage(format!(
            "no image `{id}` in {}",
            images.display()
        ))),
        many => Err(Error::Usage(format!(
            "`{id}` is ambiguous: it starts {} image ids ({})",
            many.len(),
            many.iter()
                .map(|m| m.get(..16).unwrap_or(m))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
