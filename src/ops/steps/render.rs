//! Rendering node images from the manifest, lockfile, templates and store: what `build` writes
//! and `plan` and `verify` compute without writing (`Writes::Nothing`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::extract::{self, Installed};
use crate::image::{Entry, EntryList, ImageError, ImageManifest, Provenance, Role, ROLES};
use crate::manifest::{Arch, Manifest, Node};
use crate::ops::error::{ArtifactFailure, Error, FailureCause};
use crate::ops::steps::{parallel_map, LockCheck};
use crate::render::{self, RenderError, TemplateSet};
use crate::store::Store;

/// The binaries of one architecture and version set: entries with provenance, shared by every
/// node of that arch and group (nodes outside groups share the cluster's).
struct BinarySet {
    /// The entries added (checked) once, cloned for each node.
    list: EntryList,
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
            // Durable with the build's one syncfs, before any layer made from it is published.
            let o = store.put_bytes_batched(bytes)?;
            Ok((o.size, o.blake3))
        }
        Writes::Nothing => Ok((bytes.len() as u64, crate::hash::Blake3::of(bytes))),
    }
}

pub(crate) fn select_nodes<'m>(
    manifest: &'m Manifest,
    names: &[String],
) -> Result<Vec<&'m Node>, Error> {
    if names.is_empty() {
        return Ok(manifest.nodes.values().collect());
    }
    let mut out = Vec::new();
    for n in names {
        match manifest.nodes.values().find(|node| node.name.as_str() == n) {
            Some(node) if !out.iter().any(|o: &&Node| o.name == node.name) => out.push(node),
            Some(_) => {}
            None => {
                let known = crate::ops::steps::nodes::KnownNodes {
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
    checked: &LockCheck,
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
            // What plan names among a build's needs: the lockfile's (lock first), or the store's.
            let missing = |cause: FailureCause, message: String| Error::NotInStore {
                missing: vec![ArtifactFailure {
                    label: format!("{} {} ({arch})", c.name, c.version),
                    component: c.name.to_string(),
                    url: String::new(),
                    cause,
                    message,
                    hint: None,
                }],
            };
            let Some(entry) = checked.lock.entry(&c.name, &c.version, arch) else {
                let message = format!("{} {} ({arch}) is not in the lockfile", c.name, c.version);
                return Err(match writes {
                    // plan: named among what a build would have to lock first.
                    Writes::Nothing => {
                        missing(FailureCause::Unresolved, format!("{message}: lock it"))
                    }
                    Writes::Store => Error::Usage(message),
                });
            };
            let Some(sha) = entry.sha256() else {
                return Err(match writes {
                    Writes::Nothing => missing(
                        FailureCause::Unresolved,
                        format!(
                            "{} is unresolved: `nodeforge lock --update {}`",
                            entry.label(),
                            c.name
                        ),
                    ),
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
            list.add(e, p).map_err(|e| Error::Image(Box::new(e)))?;
        }
    }
    if !lacking.is_empty() {
        return Err(Error::NotInStore { missing: lacking });
    }
    Ok(BinarySet { list })
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
    let mut list = bins.list.clone();
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
    checked: &LockCheck,
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
    checked: &LockCheck,
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
                crate::ops::steps::nodes::suggest(&u.key, &u.read)
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

/// `render_images` for every node of the manifest, by node name.
pub(crate) fn render_all(
    store: &Store,
    checked: &LockCheck,
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
