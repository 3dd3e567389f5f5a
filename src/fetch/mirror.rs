//! Mirrors and the sources an upstream URL can be read from, in order: every mirror
//! (`URL/<host>/<path>` for `https://<host>/<path>`), then upstream itself. `file://` mirrors are
//! directories with the same layout; offline, only they (and `file://` URLs) are used.

use std::fmt;
use std::path::PathBuf;

/// A place that holds copies of upstream files under `<host>/<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    Http(String),
    Dir(PathBuf),
}

impl Mirror {
    /// Parse `https://host/prefix`, `http://…` or `file:///dir` (`file://dir` is relative).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err(format!("mirror `{s}` names no directory"));
            }
            return Ok(Mirror::Dir(PathBuf::from(path)));
        }
        match reqwest::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Ok(Mirror::Http(s.trim_end_matches('/').to_string()))
            }
            _ if !s.contains("://") && !s.is_empty() => Err(format!(
                "mirror `{s}` is not an http(s):// URL or a file:// directory: for a directory, write `file://{s}`"
            )),
            _ => Err(format!(
                "mirror `{s}` is not an http(s):// URL or a file:// directory"
            )),
        }
    }

    /// Parse a list from the environment: separated by spaces, commas or newlines.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        s.split([' ', ',', '\n'])
            .filter(|p| !p.trim().is_empty())
            .map(Mirror::parse)
            .collect()
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mirror::Http(u) => f.write_str(u),
            Mirror::Dir(p) => write!(f, "file://{}", p.display()),
        }
    }
}

/// One place to read a file from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Http(String),
    File(PathBuf),
}

impl Source {
    pub fn is_network(&self) -> bool {
        matches!(self, Source::Http(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Http(u) => f.write_str(u),
            Source::File(p) => write!(f, "file://{}", p.display()),
        }
    }
}

/// `host/path` of an http(s) URL, the relative location of its copy on a mirror. None for
/// URLs with no host, a port-less `..` trick or anything that is not http(s).
pub fn mirror_path(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?;
    let host = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let path = u.path().trim_start_matches('/');
    // Url normalizes `.` and `..` away; refuse anything that would still climb out.
    if path.split('/').any(|seg| seg == ".." || seg == ".") || host.contains('/') {
        return None;
    }
    Some(format!("{host}/{path}"))
}

/// The sources of `url`, mirrors first, then upstream. Offline, network sources are left out.
pub fn sources(url: &str, mirrors: &[Mirror], offline: bool, mirrors_only: bool) -> Vec<Source> {
    let mut out = Vec::new();
    if let Some(rel) = mirror_path(url) {
        for m in mirrors {
            match m {
                Mirror::Http(base) => out.push(Source::Http(format!("{base}/{rel}"))),
                Mirror::Dir(dir) => out.push(Source::File(dir.join(&rel))),
            }
        }
    }
    if !mirrors_only {
        if let Some(path) = url.strip_prefix("file://") {
            out.push(Source::File(PathBuf::from(path)));
        } else {
            out.push(Source::Http(url.to_string()));
        }
    }
    if offline {
        out.retain(|s| !s.is_network());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_layout() {
        let url = "https://dl.k8s.io/release/v1.31.0/bin/linux/amd64/kubelet";
        assert_eq!(
            mirror_path(url).as_deref(),
            Some("dl.k8s.io/release/v1.31.0/bin/linux/amd64/kubelet")
        );
        let mirrors = vec![
            Mirror::parse("http://127.0.0.1:8080/m/").expect("http"),
            Mirror::parse("file:///srv/mirror").expect("dir"),
        ];
        let s = sources(url, &mirrors, false, false);
        assert_eq!(
            s,
            vec![
                Source::Http(
                    "http://127.0.0.1:8080/m/dl.k8s.io/release/v1.31.0/bin/linux/amd64/kubelet"
                        .into()
                ),
                Source::File(
                    "/srv/mirror/dl.k8s.io/release/v1.31.0/bin/linux/amd64/kubelet".into()
                ),
                Source::Http(url.into()),
            ]
        );
        assert_eq!(sources(url, &mirrors, true, false), vec![s[1].clone()]);
        assert_eq!(sources(url, &mirrors, false, true).len(), 2);
        assert!(Mirror::parse("ftp://x").is_err());
        assert_eq!(
            mirror_path("http://127.0.0.1:9/a/b").as_deref(),
            Some("127.0.0.1:9/a/b")
        );
    }
}
