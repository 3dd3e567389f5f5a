//! Mirrors and the sources an upstream URL can be read from, in order: every mirror
//! (`URL/<host>/<path>` for `https://<host>/<path>`), then upstream itself. `file://` mirrors are
//! directories with the same layout; offline, only they (and `file://` URLs) are used. An
//! `oci://REGISTRY/REPOSITORY` mirror (filled by `nodeforge mirror push`) serves each artifact as
//! the blob its locked sha256 names.

use std::fmt;
use std::path::PathBuf;

use crate::hash::Sha256;

/// A place that holds copies of upstream files under `<host>/<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    Http(String),
    Dir(PathBuf),
    /// A repository of an OCI registry that `nodeforge mirror push` filled: each artifact is the
    /// blob named by its sha256 (`registry`: `host[:port]`; `plain_http` for `oci+http://` or a
    /// registry named with `--insecure-registry`).
    Oci {
        registry: String,
        repository: String,
        plain_http: bool,
    },
}

impl Mirror {
    /// Parse `https://host/prefix`, `http://…`, `file:///dir` (`file://dir` is relative), or
    /// `oci://registry/repository` (`oci+http://…` for a registry that speaks plain HTTP).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        for (prefix, plain_http) in [("oci://", false), ("oci+http://", true)] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let r =
                    crate::oci::Reference::parse(rest).map_err(|e| format!("mirror `{s}`: {e}"))?;
                if r.tag.is_some() || r.digest.is_some() {
                    return Err(format!(
                        "mirror `{s}` names a tag or digest: an OCI mirror is a repository, oci://REGISTRY/REPOSITORY"
                    ));
                }
                return Ok(Mirror::Oci {
                    registry: r.registry,
                    repository: r.repository,
                    plain_http,
                });
            }
        }
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
            Mirror::Oci {
                registry,
                repository,
                plain_http,
            } => {
                let scheme = if *plain_http { "oci+http" } else { "oci" };
                write!(f, "{scheme}://{registry}/{repository}")
            }
        }
    }
}

impl Mirror {
    /// The mirror with plain HTTP for a registry named in `insecure` (`--insecure-registry
    /// HOST[:PORT]`, or a host for all its ports), as `push` and `pull` treat them.
    pub fn with_insecure(self, insecure: &[String]) -> Self {
        match self {
            Mirror::Oci {
                registry,
                repository,
                plain_http,
            } => {
                let bare = registry
                    .rsplit_once(':')
                    .map_or(registry.as_str(), |(h, _)| h);
                let plain_http = plain_http || insecure.iter().any(|i| *i == registry || i == bare);
                Mirror::Oci {
                    registry,
                    repository,
                    plain_http,
                }
            }
            other => other,
        }
    }

    /// Where an OCI mirror serves the artifact with `sha256`: its blob.
    pub fn oci_blob_url(
        registry: &str,
        plain_http: bool,
        repository: &str,
        sha256: &Sha256,
    ) -> String {
        let scheme = if plain_http { "http" } else { "https" };
        format!("{scheme}://{registry}/v2/{repository}/blobs/sha256:{sha256}")
    }
}

/// One place to read a file from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Http(String),
    File(PathBuf),
    /// A blob of an OCI mirror's repository, read with the registry's authentication.
    Registry(Box<RegistryBlob>),
}

/// The blob of an OCI mirror that holds an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryBlob {
    /// The blob's URL (`https://REGISTRY/v2/REPOSITORY/blobs/sha256:…`).
    pub url: String,
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub sha256: Sha256,
    /// Spoken to over plain HTTP (`oci+http://`, or `--insecure-registry`).
    pub plain_http: bool,
}

impl Source {
    pub fn is_network(&self) -> bool {
        matches!(self, Source::Http(_) | Source::Registry(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Http(u) => f.write_str(u),
            Source::File(p) => write!(f, "file://{}", p.display()),
            Source::Registry(b) => f.write_str(&b.url),
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

/// The sources of `url` (whose bytes have `sha256`, when known), mirrors first, then upstream.
/// An OCI mirror serves only what its sha256 names. Offline, network sources are left out.
pub fn sources(
    url: &str,
    sha256: Option<&Sha256>,
    mirrors: &[Mirror],
    offline: bool,
    mirrors_only: bool,
) -> Vec<Source> {
    let mut out = Vec::new();
    if let Some(rel) = mirror_path(url) {
        for m in mirrors {
            match m {
                Mirror::Http(base) => out.push(Source::Http(format!("{base}/{rel}"))),
                Mirror::Dir(dir) => out.push(Source::File(dir.join(&rel))),
                Mirror::Oci {
                    registry,
                    repository,
                    plain_http,
                } => {
                    if let Some(sha) = sha256 {
                        out.push(Source::Registry(Box::new(RegistryBlob {
                            url: Mirror::oci_blob_url(registry, *plain_http, repository, sha),
                            registry: registry.clone(),
                            repository: repository.clone(),
                            sha256: *sha,
                            plain_http: *plain_http,
                        })));
                    }
                }
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
        let s = sources(url, None, &mirrors, false, false);
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
        assert_eq!(
            sources(url, None, &mirrors, true, false),
            vec![s[1].clone()]
        );
        assert_eq!(sources(url, None, &mirrors, false, true).len(), 2);
        // An OCI mirror: the blob the artifact's sha256 names, first; nothing without a sha256.
        let oci = Mirror::parse("oci+http://127.0.0.1:5000/fleet/artifacts").expect("oci");
        assert_eq!(oci.to_string(), "oci+http://127.0.0.1:5000/fleet/artifacts");
        let sha = Sha256::of(b"x");
        assert_eq!(
            sources(url, Some(&sha), std::slice::from_ref(&oci), false, true),
            vec![Source::Registry(Box::new(RegistryBlob {
                url: format!("http://127.0.0.1:5000/v2/fleet/artifacts/blobs/sha256:{sha}"),
                registry: "127.0.0.1:5000".into(),
                repository: "fleet/artifacts".into(),
                sha256: sha,
                plain_http: true,
            }))]
        );
        assert!(sources(url, None, &[oci], false, true).is_empty());
        assert!(Mirror::parse("oci://reg.example/a:tag").is_err());
        assert_eq!(
            Mirror::parse("oci://reg.example/a")
                .expect("oci")
                .to_string(),
            "oci://reg.example/a"
        );
        assert!(Mirror::parse("ftp://x").is_err());
        assert_eq!(
            mirror_path("http://127.0.0.1:9/a/b").as_deref(),
            Some("127.0.0.1:9/a/b")
        );
    }
}
