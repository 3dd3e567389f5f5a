//! `nodeforge build`: one immutable, layered image per node. The lock is enforced and missing
//! artifacts fetched; each artifact is extracted once into the store; templates are rendered per
//! node; the entries are split into a payload layer (`/usr`, `/opt`: one per binary set, written
//! once and shared by every node that uses it) and a config layer (`/etc`, per node); each layer
//! is written once into `out/layers/<id>/`, the image record into `out/images/<id>/`, and
//! `out/nodes/<node>/current` is switched atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::fetch::{fetch_checked, ArtifactFailure, FailureCause};
use super::lock::{complete_lock, LockCompletion};
use super::materialize::{ensure_layer_with, materialize_layers};
use super::{parallel_map, Error, FetchOptions};
use super::{progress_bar, Progress};
use crate::extract::{self, Installed};
use crate::fetch::FetchConfig;
use crate::generations;
use crate::image::{Entry, EntryList, ImageError, ImageManifest, Provenance, Role, ROLES};
use crate::layout::{self, OutDir};
use crate::manifest::{Arch, Manifest, Node};
use crate::render::{self, RenderError, TemplateSet};
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
    /// Take templates from a tree outside the manifest's directory (refused unless asked for).
    pub allow_outside_templates: bool,
    /// `--locked`: refuse to complete the lockfile (resolve missing or unresolved entries).
    pub locked: bool,
    /// Build a manifest that breaks the version skew policy (warned about instead).
    pub allow_skew: bool,
    /// `--sign KEY`: sign every node's image with this private key (PKCS#8 PEM).
    pub sign: Option<PathBuf>,
    /// `--x509-cert/--x509-key`: also write each layer's systemd `<NAME>.roothash.p7s`.
    pub x509: Option<(PathBuf, PathBuf)>,
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
    /// The layers, bottom to top: what a VM attaches.
    pub layers: Vec<LayerBuild>,
    pub entries: usize,
    /// The node had been rolled back to this generation, and this build moved it forward.
    pub rolled_back_to: Option<u32>,
    /// The image's SBOM (SPDX 2.3 JSON), beside it in `out/attestations/<id>/`.
    pub sbom: PathBuf,
    /// `--sign`: the image's signature by that key.
    pub signature: Option<PathBuf>,
}

/// One layer of a built image.
#[derive(Debug, Clone, Serialize)]
pub struct LayerBuild {
    pub role: Role,
    pub id: String,
    /// Written by this build (false: it was there already, e.g. the payload another node shares).
    pub written: bool,
    /// `<NAME>.raw`: the EROFS file.
    pub raw: PathBuf,
    /// `<NAME>.verity`: its dm-verity hash tree.
    pub verity: PathBuf,
    /// dm-verity root hash: what an operator pins.
    pub root_hash: String,
    /// Size of the EROFS file.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub lock_id: String,
    pub nodes: Vec<NodeBuild>,
    pub fetched: usize,
    pub elapsed_ms: u64,
    /// Entries resolved and written to the lockfile before building.
    pub lock: LockCompletion,
    /// Things that do not stop a build but are likely mistakes: a `vars` key no template reads,
    /// a mirror serving other bytes than the lockfile pins.
    pub warnings: Vec<String>,
}

impl BuildReport {
    pub fn all_unchanged(&self) -> bool {
        self.nodes.iter().all(|n| n.status == NodeStatus::Unchanged)
    }
}

/// The binaries of one architecture and version set: entries with provenance, shared by every
/// node of that arch and group (nodes outside groups share the cluster's).
struct BinarySet {
    entries: Vec<(Entry, Provenance)>,
}

/// Whether rendering images may write to the store (build), or writes nothing (plan: files are
/// hashed, not stored; extraction records are read, or members hashed as they stream by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writes {
    Store,
    Nothing,
}

/// The address and size of `bytes`, stored when `writes` allows.
fn put(store: &Store, bytes: &[u8], writes: Writes) -> Result<(u64, crate::hash::Blake3), Error> {
    match writes {
        Writes::Store => {
            let o = store.put_bytes(bytes)?;
            Ok((o.size, o.blake3))
        }
        Writes::Nothing => Ok((bytes.len() as u64, crate::hash::Blake3::of(bytes))),
    }
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
                let known = super::nodes::KnownNodes {
                    source: manifest.path.file_name().map_or_else(
                        || manifest.path.display().to_string(),
                        |f| f.to_string_lossy().into_owned(),
                    ),
                    manifest: manifest.nodes.keys().map(ToString::to_string).collect(),
                    built: Vec::new(),
                };
                return Err(known.unknown(n));
            }
        }
    }
    Ok(out)
}

/// Extract (once) what every component of `set` (the cluster's or a group's) installs for `arch`.
fn binaries_for(
    store: &Store,
    checked: &super::LockCheck,
    set: &BTreeMap<crate::manifest::ComponentName, crate::manifest::Component>,
    arch: &Arch,
    jobs: usize,
    writes: Writes,
) -> Result<BinarySet, Error> {
    let manifest = &checked.manifest;
    let components: Vec<_> = set.values().filter(|c| !c.install.is_empty()).collect();
    // What artifacts install goes to the payload layer, which holds only /usr and /opt.
    for c in &components {
        for rule in &c.install {
            if Role::holding(&rule.to) != Some(Role::Payload) {
                return Err(Error::Usage(format!(
                    "{}: component `{}` installs to `{}` (install rule {{ {}to = \"{}\" }}): what artifacts install goes into the payload layer, which may hold only /usr and /opt",
                    manifest.path.display(),
                    c.name,
                    rule.to,
                    rule.from.as_ref().map(|f| format!("from = \"{f}\", ")).unwrap_or_default(),
                    rule.to,
                )));
            }
        }
    }
    let results = parallel_map(
        &components,
        jobs,
        |c| -> Result<Vec<(Entry, Provenance)>, Error> {
            let missing = |message: String| Error::NotInStore {
                missing: vec![ArtifactFailure {
                    label: format!("{} {} ({arch})", c.name, c.version),
                    component: c.name.to_string(),
                    url: String::new(),
                    cause: FailureCause::NotInStore,
                    message,
                    hint: None,
                }],
            };
            let Some(entry) = checked.lock.entry(&c.name, &c.version, arch) else {
                let message = format!("{} {} ({arch}) is not in the lockfile", c.name, c.version);
                return Err(match writes {
                    // plan: named among what a build would have to lock first.
                    Writes::Nothing => missing(format!("{message}: lock it")),
                    Writes::Store => Error::Usage(message),
                });
            };
            let Some(sha) = entry.sha256() else {
                return Err(match writes {
                    Writes::Nothing => missing(format!(
                        "{} is unresolved: `nodeforge lock --update {}`",
                        entry.label(),
                        c.name
                    )),
                    Writes::Store => Error::Unresolved {
                        label: entry.label(),
                        component: c.name.to_string(),
                    },
                });
            };
            let object = store.lookup_sha256(&sha).ok_or_else(|| Error::NotInStore {
                missing: vec![ArtifactFailure {
                    label: entry.label(),
                    component: entry.component.to_string(),
                    url: entry.url.clone(),
                    cause: FailureCause::NotInStore,
                    message: format!("{} is not in the store", entry.label()),
                    hint: None,
                }],
            })?;
            let label = entry.label();
            let artifact = extract::Artifact {
                label: &label,
                url: &entry.url,
                object: &object,
                sha256: &sha,
                rules: &c.install,
            };
            let files: Vec<Installed> = match writes {
                Writes::Store => extract::installed(store, &artifact)?,
                Writes::Nothing => extract::installed_read_only(store, &artifact)?,
            };
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
    // plan names every artifact it lacks, not only the first.
    let mut lacking = Vec::new();
    for r in results {
        let r = match r {
            Err(Error::NotInStore { missing }) if writes == Writes::Nothing => {
                lacking.extend(missing);
                continue;
            }
            r => r?,
        };
        for (e, p) in r {
            list.add(e.clone(), p.clone())
                .map_err(|e| Error::Image(Box::new(e)))?;
            entries.push((e, p));
        }
    }
    if !lacking.is_empty() {
        return Err(Error::NotInStore { missing: lacking });
    }
    Ok(BinarySet { entries })
}

/// The entry list of one node: the binaries, the rendered files and enable links, and each
/// layer's `extension-release` file.
fn node_image(
    store: &Store,
    templates: &TemplateSet,
    manifest: &Manifest,
    node: &Node,
    bins: &BinarySet,
    writes: Writes,
) -> Result<ImageManifest, Error> {
    let image_err = |e| Error::Image(Box::new(e));
    let mut list = EntryList::new();
    for (e, p) in &bins.entries {
        list.add(e.clone(), p.clone()).map_err(image_err)?;
    }
    for role in ROLES {
        let (size, blake3) = put(
            store,
            role.release_file(node.arch.as_str()).as_bytes(),
            writes,
        )?;
        list.add(
            Entry::file(&role.release_path(), 0o644, size, blake3),
            Provenance::Release { role },
        )
        .map_err(image_err)?;
    }
    let mut rendered = templates.render_node(manifest, node)?;
    rendered.extend(secrets_placement(manifest, node)?);
    for r in &rendered {
        let (size, blake3) = put(store, &r.bytes, writes)?;
        list.add(
            Entry::file(&r.path, r.mode, size, blake3),
            Provenance::Template {
                template: r.template.clone(),
            },
        )
        .map_err(|e| match e {
            // The template file is what the user has to move.
            ImageError::OutsideLayer { .. } => Error::Render(RenderError::Refused {
                path: templates.root.join(&r.template),
                message: format!("{e}"),
            }),
            e => image_err(e),
        })?;
    }
    for (link, target) in render::enable_links(&rendered) {
        let unit = target.rsplit('/').next().unwrap_or(&target).to_string();
        list.add(Entry::symlink(&link, &target), Provenance::Enable { unit })
            .map_err(image_err)?;
    }
    Ok(list.finish(node.name.as_str(), node.arch.as_str()))
}

/// The config layer's unit that places the node's `[[secrets]]` at their paths from the
/// system credentials a VM host passes (`crate::credentials::deliver`), when it takes any.
fn secrets_placement(manifest: &Manifest, node: &Node) -> Result<Option<render::Rendered>, Error> {
    use crate::credentials::{deliver, Templates};
    if manifest.secrets.is_empty() {
        return Ok(None);
    }
    let plan = Templates::new(manifest)?.plan(node)?;
    Ok(deliver::placement_unit(&plan).map(|text| render::Rendered {
        path: deliver::PLACEMENT_UNIT.to_string(),
        bytes: text.into_bytes(),
        mode: 0o644,
        template: format!(
            "{} [[secrets]]",
            manifest
                .path
                .file_name()
                .map_or_else(|| "manifest".into(), |n| n.to_string_lossy().into_owned())
        ),
    }))
}

/// Every node's entry list as the manifest, lockfile and templates make it now, from the store
/// (every artifact the nodes need must be in it; binaries are extracted once per artifact).
pub(crate) fn render_images(
    store: &Store,
    checked: &super::LockCheck,
    nodes: &[&Node],
    jobs: usize,
    allow_outside_templates: bool,
) -> Result<(Vec<ImageManifest>, Vec<String>), Error> {
    let (images, warnings) = render_each(
        store,
        checked,
        nodes,
        jobs,
        allow_outside_templates,
        Writes::Store,
    )?;
    Ok((images.into_iter().collect::<Result<_, _>>()?, warnings))
}

/// One node's entry list, or why it cannot be made.
pub(crate) type NodeImage = Result<ImageManifest, Error>;

/// [`render_images`], one result per node: with [`Writes::Nothing`] (plan) a node whose
/// artifacts the store lacks gets `Error::NotInStore` naming them while the others render.
pub(crate) fn render_each(
    store: &Store,
    checked: &super::LockCheck,
    nodes: &[&Node],
    jobs: usize,
    allow_outside_templates: bool,
    writes: Writes,
) -> Result<(Vec<NodeImage>, Vec<String>), Error> {
    let manifest = &checked.manifest;
    let templates = TemplateSet::load(&templates_root(manifest, allow_outside_templates)?)?;
    let warnings = unread_vars_warnings(&templates, manifest, nodes);
    // One binary set per (architecture, group): nodes outside groups share the cluster's.
    let keys: BTreeSet<(&Arch, Option<&String>)> =
        nodes.iter().map(|n| (&n.arch, n.group.as_ref())).collect();
    // plan: a set whose artifacts the store lacks names them for each of its nodes.
    type Bins<'a> =
        BTreeMap<(&'a Arch, Option<&'a String>), Result<BinarySet, Vec<ArtifactFailure>>>;
    let mut bins: Bins = BTreeMap::new();
    for (arch, group) in keys {
        let set = manifest.components_of_group(group);
        let b = match binaries_for(store, checked, set, arch, jobs, writes) {
            Ok(b) => Ok(b),
            Err(Error::NotInStore { missing }) if writes == Writes::Nothing => Err(missing),
            Err(e) => return Err(e),
        };
        bins.insert((arch, group), b);
    }
    let images = parallel_map(nodes, jobs.max(2), |n| {
        match &bins[&(&n.arch, n.group.as_ref())] {
            Ok(b) => node_image(store, &templates, manifest, n, b, writes),
            Err(missing) => Err(Error::NotInStore {
                missing: missing.clone(),
            }),
        }
    });
    Ok((images, warnings))
}

/// A warning for each `vars` key no template reads (a typo falls back to the default
/// silently), with the key that was likely meant.
fn unread_vars_warnings(
    templates: &TemplateSet,
    manifest: &Manifest,
    nodes: &[&Node],
) -> Vec<String> {
    let file = manifest.path.file_name().map_or_else(
        || manifest.path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    templates
        .unread_vars(manifest, nodes)
        .into_iter()
        .map(|u| {
            let whose = match &u.node {
                Some(n) => format!("{n}: vars key"),
                None => format!("{file}: [vars] key"),
            };
            format!(
                "{whose} `{}` is read by no template{}",
                u.key,
                super::nodes::suggest(&u.key, &u.read)
                    .map(|s| format!("; did you mean {s}?"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// The template tree of `manifest`, which must lie inside the manifest's directory once symlinks
/// are resolved (a tree from another user's directory would go into images), unless the command
/// line allows otherwise.
fn templates_root(manifest: &Manifest, allow_outside: bool) -> Result<PathBuf, Error> {
    let root = &manifest.templates;
    if allow_outside {
        return Ok(root.clone());
    }
    let base = manifest
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let (Ok(real_root), Ok(real_base)) = (std::fs::canonicalize(root), std::fs::canonicalize(base))
    else {
        // Missing: TemplateSet::load names the path.
        return Ok(root.clone());
    };
    if real_root.starts_with(&real_base) {
        Ok(root.clone())
    } else {
        Err(Error::TemplatesOutside {
            templates: root.clone(),
            resolved: real_root,
            manifest_dir: real_base,
        })
    }
}

/// One output directory holds the nodes of one cluster: two clusters with a `worker1` each would
/// switch each other's `current`. The first build records the cluster's name; a build of another
/// cluster into the same directory is refused.
fn claim_for_cluster(out: &OutDir, manifest: &Manifest) -> Result<(), Error> {
    let marker = out.cluster_marker();
    match std::fs::read_to_string(&marker) {
        Ok(name) if name.trim_end() == manifest.name => Ok(()),
        Ok(name) => Err(Error::OtherCluster {
            out: out.root().to_path_buf(),
            theirs: name.trim_end().to_string(),
            ours: manifest.name.clone(),
        }),
        Err(_) => Ok(crate::fsutil::write_atomic(
            &marker,
            format!("{}\n", manifest.name).as_bytes(),
            0o644,
        )?),
    }
}

/// `render_images` for every node of the manifest, by node name.
pub(crate) fn render_all(
    store: &Store,
    checked: &super::LockCheck,
    jobs: usize,
    allow_outside_templates: bool,
) -> Result<BTreeMap<String, ImageManifest>, Error> {
    let nodes = select_nodes(&checked.manifest, &[])?;
    let (images, _) = render_images(store, checked, &nodes, jobs, allow_outside_templates)?;
    Ok(nodes
        .iter()
        .map(|n| n.name.to_string())
        .zip(images)
        .collect())
}

pub fn build(opts: &BuildOptions) -> Result<BuildReport, Error> {
    let started = Instant::now();
    // The skew policy first, against the lockfile as it is (before it is completed).
    let skew_warnings = super::plan::check_skew(
        &Manifest::load(&opts.manifest)?,
        crate::lock::Lockfile::load(&opts.lockfile).ok().as_ref(),
        opts.allow_skew,
    )?;
    // The signing key is read first: a bad key fails before anything is built.
    let signers = super::sign::Signers::load(opts.sign.as_deref(), opts.x509.as_ref())?;
    let sign_key = signers.as_ref().and_then(|s| s.key.as_ref());
    let x509 = signers.as_ref().and_then(|s| s.x509.as_ref());
    let (checked, completion) = complete_lock(
        &opts.manifest,
        &opts.lockfile,
        &opts.fetch,
        opts.jobs,
        opts.locked,
    )?;
    let manifest = &checked.manifest;
    let nodes = select_nodes(manifest, &opts.nodes)?;
    let store = super::open_store(&OutDir::new(&opts.out))?;

    // Every artifact the selected nodes need must be locked, resolved and in the store.
    let arches: BTreeSet<&Arch> = nodes.iter().map(|n| &n.arch).collect();
    let fetch_opts = FetchOptions {
        manifest: opts.manifest.clone(),
        lockfile: opts.lockfile.clone(),
        out: opts.out.clone(),
        fetch: opts.fetch.clone(),
        jobs: opts.jobs,
        progress: opts.progress,
        locked: opts.locked,
    };
    let fetched = fetch_checked(&checked, &store, &fetch_opts)?;
    let fetch_warnings: Vec<String> = fetched
        .artifacts
        .iter()
        .flat_map(|a| a.warnings.iter().cloned())
        .collect();
    let failures = super::fetch::failure_list(
        fetched
            .failures()
            .into_iter()
            .filter(|f| arches.iter().any(|a| a.as_str() == f.arch)),
    );
    if !failures.is_empty() {
        return Err(Error::Fetch { failures });
    }

    let (images, render_warnings) = render_images(
        &store,
        &checked,
        &nodes,
        opts.jobs,
        opts.allow_outside_templates,
    )?;
    let mut warnings = skew_warnings;
    warnings.extend(fetch_warnings);
    warnings.extend(render_warnings);

    // Shared layers first (each payload once, whoever needs it), then every node's own.
    let out = OutDir::new(&opts.out);
    claim_for_cluster(&out, manifest)?;
    let mut shared = BTreeSet::new();
    let mut first = Vec::new();
    for m in &images {
        if let Some(l) = m.layer(Role::Payload) {
            if shared.insert(l.id.clone()) {
                first.push(m);
            }
        }
    }
    let mut payload_written = BTreeSet::new();
    for m in first {
        // (ensure_layer checks the store holds every file when it has the layer to write.)
        let bytes = crate::image::layer_entries(&m.entries, Role::Payload)
            .iter()
            .filter(|e| e.kind == crate::image::Kind::File)
            .map(|e| e.size)
            .sum();
        let bar = progress_bar(opts.progress, Progress::Bytes, bytes, "payload");
        bar.set_message(m.arch.to_string());
        let ensured = ensure_layer_with(&out, &store, m, Role::Payload, &bar);
        bar.finish_and_clear();
        if ensured?.1 {
            payload_written.extend(m.layer(Role::Payload).map(|l| l.id.clone()));
        }
    }
    // Each node's layer, image and generation, several nodes at a time: the work is mostly
    // waiting for the disk (a syncfs per published directory), which overlaps well.
    // Nodes rolled back to an older generation than their newest: named when a build moves
    // them forward again.
    let rolled_back: Vec<Option<u32>> = nodes
        .iter()
        .map(|n| {
            let cur = generations::current(&opts.out, n.name.as_str())?;
            let newest = generations::list(&opts.out, n.name.as_str())
                .ok()?
                .last()?
                .number;
            (cur < newest).then_some(cur)
        })
        .collect();
    let pairs: Vec<(&&Node, &ImageManifest)> = nodes.iter().zip(&images).collect();
    let bar = progress_bar(opts.progress, Progress::Count, pairs.len() as u64, "images");
    bar.set_message("nodes");
    let digests = super::attest::DigestCache::default();
    let written = parallel_map(&pairs, opts.jobs.max(2), |(n, m)| {
        let one = || {
            let (dir, full, new, layers_written) = materialize_layers(&out, &store, m)?;
            // The SBOM beside the image. A read-only out/ (a no-op build of a mounted copy made
            // before SBOMs existed) goes without one, said in a warning.
            let sbom = match super::attest::ensure_sbom(&out, &store, &full, new, &digests) {
                Err(Error::Fs(e))
                    if matches!(
                        e.source.kind(),
                        std::io::ErrorKind::ReadOnlyFilesystem
                            | std::io::ErrorKind::PermissionDenied
                    ) && sign_key.is_none()
                        && x509.is_none() =>
                {
                    Some(format!("image {}: no SBOM written: {e}", m.id))
                }
                other => other.map(|_| None)?,
            };
            // The record as written, with each layer's root hash: what the generation keeps.
            let (generation, recorded) = generations::record_from(
                &opts.out,
                n.name.as_str(),
                &m.id,
                &checked.lock_id,
                &full.to_json(),
                Some(&dir.join(layout::IMAGE_RECORD)),
            )?;
            // Signed once recorded: the image is complete, with its SBOM.
            if let Some(key) = sign_key {
                let from = super::attest::BuiltFrom {
                    lock_id: Some(&checked.lock_id),
                    lockfile: Some(&opts.lockfile),
                };
                super::attest::sign_image(&out, &store, &full, key, &digests, from)?;
            }
            if let Some(x) = x509 {
                super::attest::sign_roothashes(&out, &store, &full, x, &digests)?;
            }
            Ok::<_, Error>((dir, full, new, layers_written, generation, recorded, sbom))
        };
        let r = one();
        bar.inc(1);
        r
    });
    bar.finish_and_clear();
    let mut report = Vec::new();
    for (((n, m), w), rolled_back) in nodes.iter().zip(&images).zip(written).zip(rolled_back) {
        let (dir, full, new, layers_written, generation, recorded, sbom_warning) = w?;
        warnings.extend(sbom_warning);
        let layers = full
            .layers
            .iter()
            .map(|l| {
                let [raw, verity, _] = layout::layer_files(&l.name);
                let raw = out.layer(&l.id).join(raw);
                LayerBuild {
                    role: l.role,
                    id: l.id.clone(),
                    // A shared payload is reported as written by the first node that has it.
                    written: match l.role {
                        Role::Payload => payload_written.remove(&l.id),
                        Role::Config => layers_written.contains(&Role::Config),
                    },
                    bytes: std::fs::metadata(&raw).map(|m| m.len()).unwrap_or(0),
                    raw,
                    verity: out.layer(&l.id).join(verity),
                    root_hash: l
                        .verity
                        .as_ref()
                        .map(|v| v.root_hash.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        report.push(NodeBuild {
            node: n.name.to_string(),
            image_id: m.id.clone(),
            generation,
            status: match (new, recorded) {
                (true, _) => NodeStatus::Built,
                (false, true) => NodeStatus::Reused,
                (false, false) => NodeStatus::Unchanged,
            },
            manifest_json: dir.join(layout::IMAGE_RECORD),
            image_dir: dir,
            layers,
            entries: m.entries.len(),
            rolled_back_to: rolled_back.filter(|&r| r != generation),
            sbom: out.sbom(&m.id),
            signature: sign_key.map(|k| out.image_signature(&m.id, k.public().keyid())),
        });
    }
    Ok(BuildReport {
        lock_id: checked.lock_id.clone(),
        nodes: report,
        fetched: fetched.count(super::ArtifactStatus::Fetched),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        lock: completion,
        warnings,
    })
}
