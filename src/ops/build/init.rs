//! `init`: a new project, as `cargo new` makes one: the seed's cluster manifest and templates
//! (`project::FILES`) written into a new or empty directory, never over anything.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fsutil;
use crate::manifest::Manifest;
use crate::ops::Error;
use crate::project;

/// What `init` wrote.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// The project's directory, as given.
    pub dir: PathBuf,
    /// The files written, relative to `dir`, sorted.
    pub files: Vec<String>,
    /// The manifest's path, relative to `dir`.
    pub manifest: String,
    /// Its cluster's name and nodes.
    pub cluster: String,
    pub nodes: Vec<String>,
}

/// Write a new project into `dir`: created if missing, refused if it holds anything. The files
/// are written into a temporary directory beside (or inside) `dir` first and moved into place
/// whole, so an error leaves no half project.
pub fn init(dir: &Path) -> Result<InitReport, Error> {
    let existing: Vec<String> = if dir.exists() {
        if !dir.is_dir() {
            return Err(Error::NotEmpty {
                dir: dir.to_path_buf(),
                entries: Vec::new(),
            });
        }
        let mut names: Vec<String> = fsutil::entries(dir)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    } else {
        Vec::new()
    };
    if !existing.is_empty() {
        return Err(Error::NotEmpty {
            dir: dir.to_path_buf(),
            entries: existing,
        });
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let exists = dir.exists();
    let tmp = if exists {
        fsutil::temp_dir_in(dir)?
    } else {
        fsutil::create_dir_all(&parent)?;
        fsutil::temp_dir_in(&parent)?
    };
    let mut files = Vec::new();
    for (path, text) in project::FILES {
        let dest = tmp.path().join(path);
        if let Some(d) = dest.parent() {
            fsutil::create_dir_all(d)?;
        }
        fsutil::write_new(&dest, text.as_bytes(), 0o644)?;
        files.push((*path).to_string());
    }
    files.sort();
    let manifest = Manifest::load(&tmp.path().join(project::MANIFEST))?;
    if exists {
        // Each top-level entry renamed into the empty directory.
        fsutil::sync_fs(tmp.path())?;
        let mut tops: Vec<PathBuf> = fsutil::entries(tmp.path()).map(|e| e.path()).collect();
        tops.sort();
        for from in tops {
            if let Some(name) = from.file_name() {
                fsutil::rename_into(&from, &dir.join(name))?;
            }
        }
    } else if !fsutil::publish_dir_new(tmp, dir)? {
        return Err(Error::NotEmpty {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        });
    }
    Ok(InitReport {
        dir: dir.to_path_buf(),
        files,
        manifest: project::MANIFEST.to_string(),
        cluster: manifest.name.clone(),
        nodes: manifest.nodes.keys().map(ToString::to_string).collect(),
    })
}
