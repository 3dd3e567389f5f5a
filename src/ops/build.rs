//! `nodeforge build`: one immutable root-overlay image per node. The lock is enforced and missing
//! artifacts fetched; each artifact is extracted once into the store; templates are rendered per
//! node; the entry list gives the image id; `out/images/<id>/` gets `manifest.json` and a
//! deterministic `image.tar.zst` whose binaries part is compressed once and shared by every node;
//! `out/nodes/<node>/current` is switched atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::fetch::fetch_checked;
use super::{check_lock, parallel_map, Error, FetchOptions};
use crate::extract::{self, Installed};
use crate::fetch::FetchConfig;
use crate::fsutil::{self, FsError, IoContext};
use crate::generations;
use crate::hash::Blake3;
use crate::image::{self, Entry, EntryList, ImageManifest, Kind, Provenance};
use crate::manifest::{Arch, Manifest, Node};
use crate::render::{self, TemplateSet};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub manifest: PathBuf,
    pub lockfile: PathBuf,
    pub out: PathBuf,
    /// Build only these nodes (all when empty).
    pub nodes: Vec<String>,
    pub fetch: FetchConfig,
    pub jobs: usize,
    pub progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// A new image was written.
    Built,
    /// The image already existed (built before, or by another node); `current` now points to it.
    Reused,
    /// Nothing changed: `current` already pointed to this image.
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeBuild {
    pub node: String,
    pub image_id: String,
    pub generation: u32,
    pub status: NodeStatus,
    pub image_dir: PathBuf,
    pub manifest_json: PathBuf,
    pub image_tar: PathBuf,
    pub image_erofs: PathBuf,
    pub image_verity: PathBuf,
    /// dm-verity root hash of image.erofs: what an operator pins.
    pub verity_root_hash: Option<String>,
    pub entries: usize,
    pub image_tar_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub lock_id: String,
    pub nodes: Vec<NodeBuild>,
    pub fetched: usize,
    pub elapsed_ms: u64,
}

impl BuildReport {
    pub fn all_unchanged(&self) -> bool {
        self.nodes.iter().all(|n| n.status == NodeStatus::Unchanged)
    }
}

/// The binaries of one architecture: entries with provenance, shared by every node of that arch.
struct BinarySet {
    entries: Vec<(Entry, Provenance)>,
}

/// How an image's tar is laid out: the binaries (entries that came from artifacts, with their
/// parent directories) form a prefix compressed once and shared; the rest follows per node.
pub(crate) struct TarPlan {
    prefix: Vec<Entry>,
    pub(crate) key: Blake3,
    paths: BTreeSet<String>,
}

pub(crate) fn tar_plan(m: &ImageManifest) -> Result<TarPlan, Error> {
    let mut list = EntryList::new();
    for e in &m.entries {
        if let Some(p @ Provenance::Artifact { .. }) = m.provenance.get(&e.path) {
            list.add(e.clone(), p.clone())
                .map_err(|e| Error::Image(Box::new(e)))?;
        }
    }
    let prefix = list.finish("", "").entries;
    let key = prefix_key(&prefix);
    let paths = prefix.iter().map(|e| e.path.clone()).collect();
    Ok(TarPlan { prefix, key, paths })
}

fn select_nodes<'m>(manifest: &'m Manifest, names: &[String]) -> Result<Vec<&'m Node>, Error> {
    if names.is_empty() {
        return Ok(manifest.nodes.values().collect());
    }
    let mut out = Vec::new();
    for n in names {
        match manifest.nodes.values().find(|node| node.name.as_str() == n) {
            Some(node) if !out.iter().any(|o: &&Node| o.name == node.name) => out.push(node),
            Some(_) => {}
            None => {
                return Err(Error::Usage(format!(
                    "`{n}` is not a node of this manifest (nodes: {})",
                    manifest
                        .nodes
                        .keys()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
    }
    Ok(out)
}

/// Extract (once) what every component installs for `arch`.
fn binaries_for(
    store: &Store,
    checked: &super::LockCheck,
    arch: &Arch,
    jobs: usize,
) -> Result<BinarySet, Error> {
    let manifest = &checked.manifest;
    let components: Vec<_> = manifest
        .components
        .values()
        .filter(|c| !c.install.is_empty())
        .collect();
    let results = parallel_map(
        &components,
        jobs,
        |c| -> Result<Vec<(Entry, Provenance)>, Error> {
            let entry = checked.lock.entry(&c.name, arch).ok_or_else(|| {
                Error::Usage(format!("{} ({arch}) is not in the lockfile", c.name))
            })?;
            let sha = entry.sha256().ok_or_else(|| Error::Unresolved {
                label: entry.label(),
                component: c.name.to_string(),
            })?;
            let object = store.lookup_sha256(&sha).ok_or_else(|| Error::NotInStore {
                missing: vec![(entry.label(), entry.url.clone())],
            })?;
            let files: Vec<Installed> =
                extract::installed(store, &entry.label(), &entry.url, &object, &c.install)?;
            Ok(files
                .into_iter()
                .map(|f| {
                    (
                        Entry::file(&f.target, 0o755, f.size, f.blake3),
                        Provenance::Artifact {
                            component: c.name.to_string(),
                            version: entry.version.clone(),
                            arch: arch.to_string(),
                            url: entry.url.clone(),
                            sha256: sha.to_hex(),
                            member: f.member,
                        },
                    )
                })
                .collect())
        },
    );
    let mut list = EntryList::new();
    let mut entries = Vec::new();
    for r in results {
        for (e, p) in r? {
            list.add(e.clone(), p.clone())
                .map_err(|e| Error::Image(Box::new(e)))?;
            entries.push((e, p));
        }
    }
    Ok(BinarySet { entries })
}

fn prefix_key(entries: &[Entry]) -> Blake3 {
    let mut h = blake3::Hasher::new();
    h.update(b"nodeforge tar prefix v1\n");
    h.update(image::image_id(entries).as_bytes());
    Blake3::from_bytes(*h.finalize().as_bytes())
}

/// The entry list of one node.
fn node_image(
    store: &Store,
    templates: &TemplateSet,
    manifest: &Manifest,
    node: &Node,
    bins: &BinarySet,
) -> Result<ImageManifest, Error> {
    let mut list = EntryList::new();
    for (e, p) in &bins.entries {
        list.add(e.clone(), p.clone())
            .map_err(|e| Error::Image(Box::new(e)))?;
    }
    let rendered = templates.render_node(manifest, node)?;
    for r in &rendered {
        let obj = store.put_bytes(&r.bytes)?;
        list.add(
            Entry::file(&r.path, r.mode, obj.size, obj.blake3),
            Provenance::Template {
                template: r.template.clone(),
            },
        )
        .map_err(|e| Error::Image(Box::new(e)))?;
    }
    for (link, target) in render::enable_links(&rendered) {
        let unit = target.rsplit('/').next().unwrap_or(&target).to_string();
        list.add(Entry::symlink(&link, &target), Provenance::Enable { unit })
            .map_err(|e| Error::Image(Box::new(e)))?;
    }
    Ok(list.finish(node.name.as_str(), node.arch.as_str()))
}

/// Write `entries` as tar records (no end-of-archive) through `w`, file data from the store.
fn write_tar_entries(store: &Store, entries: &[&Entry], w: &mut impl Write) -> Result<(), Error> {
    for e in entries {
        if e.kind == Kind::File {
            let b = e
                .blake3
                .ok_or_else(|| Error::Usage(format!("{} has no content address", e.path)))?;
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

/// The compressed tar prefix holding the binaries, built once per binary set and reused.
fn ensure_prefix(out: &Path, store: &Store, plan: &TarPlan) -> Result<PathBuf, Error> {
    let dir = out.join("cache").join("tar-prefix");
    let path = dir.join(format!("{}.tar.zst", plan.key));
    if path.is_file() {
        return Ok(path);
    }
    fsutil::create_dir_all(&dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".nodeforge-tmp-")
        .tempfile_in(&dir)
        .at("cannot create a temporary file in", &dir)?;
    {
        let mut enc = image::tar::zstd_encoder(BufWriter::with_capacity(1 << 20, tmp.as_file()))
            .at("cannot start compressing", tmp.path())?;
        let refs: Vec<&Entry> = plan.prefix.iter().collect();
        write_tar_entries(store, &refs, &mut enc)?;
        let mut w = enc.finish().at("cannot compress", tmp.path())?;
        w.flush().at("cannot write", tmp.path())?;
    }
    fsutil::set_mode(tmp.as_file(), 0o444).at("cannot set the mode of", tmp.path())?;
    tmp.as_file().sync_all().at("cannot sync", tmp.path())?;
    tmp.persist(&path)
        .map_err(|e| FsError::new("cannot move into place", &path, e.error))?;
    Ok(path)
}

/// Every file of the image must be in the store before anything is written.
fn check_objects(store: &Store, m: &ImageManifest) -> Result<(), Error> {
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

/// The files every image directory holds once it is complete.
pub(crate) const IMAGE_FILES: [&str; 4] = [
    "manifest.json",
    "image.tar.zst",
    "image.erofs",
    "image.verity",
];

/// Whether an image directory holds all its files (it is renamed into place whole, so a
/// directory missing one is of an older layout).
pub(crate) fn image_complete(dir: &Path) -> bool {
    IMAGE_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Make sure `out/images/<id>/` exists with all its files, writing it from the store if needed.
/// Returns its directory and whether it was written now.
pub(crate) fn materialize(
    out: &Path,
    store: &Store,
    m: &ImageManifest,
) -> Result<(PathBuf, bool), Error> {
    let dir = out.join("images").join(&m.id);
    if image_complete(&dir) {
        return Ok((dir, false));
    }
    check_objects(store, m)?;
    let plan = tar_plan(m)?;
    let prefix = ensure_prefix(out, store, &plan)?;
    write_image(out, store, m, &prefix, &plan.paths)
}

/// Write `out/images/<id>/` (unless it exists) and return its directory and whether it was new.
fn write_image(
    out: &Path,
    store: &Store,
    m: &ImageManifest,
    prefix: &Path,
    prefix_paths: &BTreeSet<String>,
) -> Result<(PathBuf, bool), Error> {
    let images = out.join("images");
    let final_dir = images.join(&m.id);
    if image_complete(&final_dir) {
        return Ok((final_dir, false));
    }
    fsutil::create_dir_all(&images)?;
    let tmp = tempfile::Builder::new()
        .prefix(".nodeforge-tmp-")
        .tempdir_in(&images)
        .at("cannot create a temporary directory in", &images)?;
    let tar_path = tmp.path().join("image.tar.zst");
    {
        let mut f = File::create(&tar_path).at("cannot create", &tar_path)?;
        let mut p = File::open(prefix).at("cannot open", prefix)?;
        std::io::copy(&mut p, &mut f).at("cannot write", &tar_path)?;
        let mut enc = image::tar::zstd_encoder(BufWriter::new(&f))
            .at("cannot start compressing", &tar_path)?;
        let rest: Vec<&Entry> = m
            .entries
            .iter()
            .filter(|e| !prefix_paths.contains(&e.path))
            .collect();
        write_tar_entries(store, &rest, &mut enc)?;
        image::tar::write_end(&mut enc).at("cannot write", &tar_path)?;
        let mut w = enc.finish().at("cannot compress", &tar_path)?;
        w.flush().at("cannot write", &tar_path)?;
        drop(w);
        fsutil::set_mode(&f, 0o444).at("cannot set the mode of", &tar_path)?;
        f.sync_all().at("cannot sync", &tar_path)?;
    }
    // image.erofs, and its dm-verity tree: what a VM mounts, and what proves it unchanged.
    let id = Blake3::parse(&m.id).map_err(|e| Error::Usage(format!("image id: {e}")))?;
    let erofs_path = tmp.path().join("image.erofs");
    // Read back for its own blocks' verity digests.
    let erofs = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&erofs_path)
        .at("cannot create", &erofs_path)?;
    let layout = {
        // File to file: the binaries are copied by the kernel, not through this process.
        let mut w = BufWriter::with_capacity(1 << 20, &erofs);
        let layout =
            image::erofs::write_erofs(&mut w, &m.entries, image::erofs_uuid(&id), &mut |b| {
                File::open(store.object_path(b))
            })
            .at("cannot write", &erofs_path)?;
        w.flush().at("cannot write", &erofs_path)?;
        layout
    };
    fsutil::set_mode(&erofs, 0o444).at("cannot set the mode of", &erofs_path)?;
    let params = image::verity::params_for(&id);
    let level0 = level0(store, &erofs, &erofs_path, &layout, &params.salt)?;
    erofs.sync_all().at("cannot sync", &erofs_path)?;
    drop(erofs);
    let erofs_size = layout.size;
    let verity_path = tmp.path().join("image.verity");
    let root = {
        let f = File::create(&verity_path).at("cannot create", &verity_path)?;
        let mut w = BufWriter::new(&f);
        let root =
            image::verity::write_tree(level0, &params, &mut w).at("cannot write", &verity_path)?;
        w.flush().at("cannot write", &verity_path)?;
        drop(w);
        fsutil::set_mode(&f, 0o444).at("cannot set the mode of", &verity_path)?;
        f.sync_all().at("cannot sync", &verity_path)?;
        root
    };
    let mut m = m.clone();
    m.verity = Some(image::VerityInfo {
        root_hash: root.to_hex(),
        salt: hex::encode(&params.salt),
        uuid: image::verity::uuid_string(&params.uuid),
        hash_algorithm: "sha256".into(),
        data_block_size: 4096,
        hash_block_size: 4096,
        data_blocks: erofs_size / 4096,
        erofs_uuid: image::verity::uuid_string(&image::erofs_uuid(&id)),
    });
    let json_path = tmp.path().join("manifest.json");
    fsutil::write_atomic(&json_path, &m.to_json(), 0o444)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .at("cannot set the mode of", tmp.path())?;
    }
    // Another process (or node) may have put the same image in place meanwhile: same id, same
    // bytes; keep that one, which may already be some node's `current`.
    if image_complete(&final_dir) {
        return Ok((final_dir, false));
    }
    let tmp_path = tmp.keep();
    if final_dir.exists() {
        // An image directory of an older layout (without image.erofs): replace it whole, moved
        // aside under a name of this process's own (cleaned up by the next run if we die here).
        let mut old = tmp_path.clone().into_os_string();
        old.push("-old");
        std::fs::rename(&final_dir, &old).at("cannot move aside", &final_dir)?;
        let _ = std::fs::remove_dir_all(&old);
    }
    match std::fs::rename(&tmp_path, &final_dir) {
        Ok(()) => {}
        // Another process (or node) wrote the same image first: same id, same bytes.
        Err(_) if image_complete(&final_dir) => {
            let _ = std::fs::remove_dir_all(&tmp_path);
            return Ok((final_dir, false));
        }
        Err(e) => return Err(FsError::new("cannot move the image into", &final_dir, e).into()),
    }
    fsutil::sync_dir(&images)?;
    Ok((final_dir, true))
}

/// Level 0 of the image's dm-verity tree: its own blocks (metadata, directories, configs) hashed
/// from the image file, every file's data blocks from the store's cached digests of that object.
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
            return Err(Error::Usage(format!(
                "image layout: file data at block {} overlaps block {at}",
                f.block
            )));
        }
        level.extend(own(at, f.block)?);
        level.extend(store.block_digests(&f.blake3, f.size, salt)?);
        at = f.block + f.size.div_ceil(BLOCK);
    }
    if at > layout.size / BLOCK {
        return Err(Error::Usage(format!(
            "image layout: file data ends at block {at}, past the image's {} blocks",
            layout.size / BLOCK
        )));
    }
    level.extend(own(at, layout.size / BLOCK)?);
    Ok(level)
}

/// Every node's entry list as the manifest, lockfile and templates make it now, from the store
/// (every artifact the nodes need must be in it; binaries are extracted once per artifact).
pub(crate) fn render_images(
    store: &Store,
    checked: &super::LockCheck,
    nodes: &[&Node],
    jobs: usize,
) -> Result<Vec<ImageManifest>, Error> {
    let manifest = &checked.manifest;
    let arches: BTreeSet<&Arch> = nodes.iter().map(|n| &n.arch).collect();
    let templates = TemplateSet::load(&manifest.templates)?;
    let mut bins: BTreeMap<&Arch, BinarySet> = BTreeMap::new();
    for arch in arches {
        bins.insert(arch, binaries_for(store, checked, arch, jobs)?);
    }
    let images = parallel_map(nodes, jobs.max(2), |n| {
        node_image(store, &templates, manifest, n, &bins[&n.arch])
    });
    images.into_iter().collect()
}

/// `render_images` for every node of the manifest, by node name.
pub(crate) fn render_all(
    store: &Store,
    checked: &super::LockCheck,
    jobs: usize,
) -> Result<BTreeMap<String, ImageManifest>, Error> {
    let nodes = select_nodes(&checked.manifest, &[])?;
    let images = render_images(store, checked, &nodes, jobs)?;
    Ok(nodes
        .iter()
        .map(|n| n.name.to_string())
        .zip(images)
        .collect())
}

pub fn build(opts: &BuildOptions) -> Result<BuildReport, Error> {
    let started = Instant::now();
    let checked = check_lock(&opts.manifest, &opts.lockfile)?;
    let manifest = &checked.manifest;
    let nodes = select_nodes(manifest, &opts.nodes)?;
    let store = Store::open(&opts.out.join("store"))?;

    // Every artifact the selected nodes need must be locked, resolved and in the store.
    let arches: BTreeSet<&Arch> = nodes.iter().map(|n| &n.arch).collect();
    let fetch_opts = FetchOptions {
        manifest: opts.manifest.clone(),
        lockfile: opts.lockfile.clone(),
        out: opts.out.clone(),
        fetch: opts.fetch.clone(),
        jobs: opts.jobs,
        progress: opts.progress,
    };
    let fetched = fetch_checked(&checked, &store, &fetch_opts)?;
    let failures: Vec<_> = fetched
        .failures()
        .into_iter()
        .filter(|f| arches.iter().any(|a| a.as_str() == f.arch))
        .map(|f| {
            (
                format!("{} {} ({})", f.component, f.version, f.arch),
                f.error.clone().unwrap_or_default(),
            )
        })
        .collect();
    if !failures.is_empty() {
        return Err(Error::Fetch(failures));
    }

    let images = render_images(&store, &checked, &nodes, opts.jobs)?;

    // The shared prefixes first (once per binary set), then every node's image.
    let mut keys = BTreeSet::new();
    for m in &images {
        if !opts
            .out
            .join("images")
            .join(&m.id)
            .join("manifest.json")
            .is_file()
        {
            check_objects(&store, m)?;
            let plan = tar_plan(m)?;
            if keys.insert(plan.key) {
                ensure_prefix(&opts.out, &store, &plan)?;
            }
        }
    }
    let written = parallel_map(&images, opts.jobs.clamp(1, 2), |m| {
        materialize(&opts.out, &store, m)
    });
    let mut report = Vec::new();
    for ((n, m), w) in nodes.iter().zip(&images).zip(written) {
        let (dir, new) = w?;
        // The manifest as written, with its verity root hash: what the generation keeps.
        let json_path = dir.join("manifest.json");
        let final_json = std::fs::read(&json_path).at("cannot read", &json_path)?;
        let verity_root = serde_json::from_slice::<ImageManifest>(&final_json)
            .ok()
            .and_then(|f| f.verity)
            .map(|v| v.root_hash);
        let (generation, recorded) = generations::record(
            &opts.out,
            n.name.as_str(),
            &m.id,
            &checked.lock_id,
            &final_json,
        )?;
        let image_tar = dir.join("image.tar.zst");
        report.push(NodeBuild {
            node: n.name.to_string(),
            image_id: m.id.clone(),
            generation,
            status: match (new, recorded) {
                (true, _) => NodeStatus::Built,
                (false, true) => NodeStatus::Reused,
                (false, false) => NodeStatus::Unchanged,
            },
            manifest_json: dir.join("manifest.json"),
            image_erofs: dir.join("image.erofs"),
            image_verity: dir.join("image.verity"),
            verity_root_hash: verity_root,
            image_tar_bytes: std::fs::metadata(&image_tar).map(|m| m.len()).unwrap_or(0),
            image_tar,
            image_dir: dir,
            entries: m.entries.len(),
        });
    }
    Ok(BuildReport {
        lock_id: checked.lock_id.clone(),
        nodes: report,
        fetched: fetched.count(super::ArtifactStatus::Fetched),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Read an image's entry list, and check that it hashes to the id it claims: a damaged or edited
/// record must not be trusted, nor its id used as a path.
pub(crate) fn read_image_manifest(path: &Path) -> Result<ImageManifest, Error> {
    let bytes = std::fs::read(path).at("cannot read", path)?;
    let m: ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Usage(format!("{}: not an image manifest: {e}", path.display())))?;
    let id = image::image_id(&m.entries).to_hex();
    if id != m.id {
        return Err(Error::Usage(format!(
            "{}: its entry list hashes to {id}, not to the id it records ({}): the record is damaged or was edited",
            path.display(),
            m.id
        )));
    }
    Ok(m)
}

/// Find an image by id or unambiguous id prefix.
pub fn find_image(out: &Path, id: &str) -> Result<ImageManifest, Error> {
    let images = out.join("images");
    let mut found = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&images) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && name.starts_with(id) && !id.is_empty() {
                found.push(name);
            }
        }
    }
    found.sort();
    match found.as_slice() {
        [one] => {
            let m = read_image_manifest(&images.join(one).join("manifest.json"))?;
            if &m.id != one {
                return Err(Error::Usage(format!(
                    "{}: the image in directory {one} says its id is {}",
                    images.join(one).display(),
                    m.id
                )));
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
