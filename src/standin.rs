//! Stand-in artifacts: for every artifact a manifest implies, a file of the same shape as
//! upstream's (a single executable, or a `.tar.gz` with the same members), plus checksum files in
//! upstream's three shapes, laid out as a mirror (`DIR/<host>/<path>`). They let a newcomer run
//! the whole pipeline offline (`make demo`) and the tests serve realistic fixtures from 127.0.0.1.
//! Everything is deterministic: the same manifest and size give the same bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::fetch::mirror_path;
use crate::fsutil::{self, FsError};
use crate::hash::Sha256;
use crate::manifest::{url_file_name, ArtifactSpec, Manifest};

/// The members of upstream's archives at the seed's versions (executables, and the non-executable
/// files a node must not take).
fn archive_members(component: &str) -> Vec<(&'static str, u32)> {
    match component {
        "containerd" => vec![
            ("bin/containerd", 0o755),
            ("bin/containerd-shim", 0o755),
            ("bin/containerd-shim-runc-v1", 0o755),
            ("bin/containerd-shim-runc-v2", 0o755),
            ("bin/containerd-stress", 0o755),
            ("bin/ctr", 0o755),
        ],
        "crictl" => vec![("crictl", 0o755)],
        "cni-plugins" => vec![
            ("./LICENSE", 0o644),
            ("./README.md", 0o644),
            ("./bandwidth", 0o755),
            ("./bridge", 0o755),
            ("./dhcp", 0o755),
            ("./dummy", 0o755),
            ("./firewall", 0o755),
            ("./host-device", 0o755),
            ("./host-local", 0o755),
            ("./ipvlan", 0o755),
            ("./loopback", 0o755),
            ("./macvlan", 0o755),
            ("./portmap", 0o755),
            ("./ptp", 0o755),
            ("./sbr", 0o755),
            ("./static", 0o755),
            ("./tap", 0o755),
            ("./tuning", 0o755),
            ("./vlan", 0o755),
            ("./vrf", 0o755),
        ],
        _ => vec![],
    }
}

/// A stand-in executable: a shell script that says what it stands for, padded to `size` bytes
/// with deterministic filler.
pub fn standin_binary(spec: &ArtifactSpec, member: &str, size: usize) -> Vec<u8> {
    let name = member.rsplit('/').next().unwrap_or(member);
    let mut data = format!(
        "#!/bin/sh\n# nodeforge stand-in for {} {} ({}): {name}\necho \"{name} (nodeforge stand-in for {} {})\"\nexit 0\n",
        spec.component, spec.version, spec.arch, spec.component, spec.version
    )
    .into_bytes();
    if data.len() < size {
        data.push(b'#');
        let mut xof = blake3::Hasher::new()
            .update(
                format!("{}/{}/{}/{member}", spec.component, spec.version, spec.arch).as_bytes(),
            )
            .finalize_xof();
        let mut pad = vec![0u8; size - data.len()];
        xof.fill(&mut pad);
        // Text-like filler (a comment line), compressible about as well as a Go binary.
        for b in &mut pad {
            *b = b"abcdefghijklmnop"[usize::from(*b % 16)];
        }
        data.extend_from_slice(&pad);
    }
    data
}

fn tar_gz(spec: &ArtifactSpec, members: &[(&str, u32)], size: usize) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    let mut tar = tar::Builder::new(gz);
    for (name, mode) in members {
        let body = if *mode & 0o111 != 0 {
            standin_binary(spec, name, size)
        } else {
            format!("{name}: stand-in text file\n").into_bytes()
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, body.as_slice())?;
    }
    tar.into_inner()?.finish()
}

/// The bytes of the stand-in for one artifact.
pub fn standin_artifact(spec: &ArtifactSpec, size: usize) -> std::io::Result<Vec<u8>> {
    let file = url_file_name(&spec.url);
    if file.ends_with(".tar.gz") || file.ends_with(".tgz") {
        let mut members = archive_members(spec.component.as_str());
        if members.is_empty() {
            members = vec![("bin/tool", 0o755)];
        }
        tar_gz(spec, &members, size)
    } else {
        Ok(standin_binary(spec, spec.component.as_str(), size))
    }
}

/// What `write_mirror` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StandinReport {
    pub artifacts: Vec<(String, String)>,
    pub checksum_files: Vec<String>,
}

/// Write stand-ins for every artifact of `manifest` into `dir` in mirror layout, with checksum
/// files: bare for a `.sha256` next to one artifact, `<hex>  <name>` lines otherwise, and the
/// several-asset shape (plus an unrelated line, to make selection matter) where artifacts share one.
pub fn write_mirror(
    manifest: &Manifest,
    dir: &Path,
    size: usize,
) -> Result<StandinReport, FsError> {
    let mut sums: BTreeMap<String, Vec<(String, Sha256)>> = BTreeMap::new();
    let mut artifacts = Vec::new();
    for spec in manifest.artifacts() {
        let (Some(rel), Some(sum_rel)) = (mirror_path(&spec.url), mirror_path(&spec.checksum_url))
        else {
            continue;
        };
        let bytes = standin_artifact(&spec, size)
            .map_err(|e| FsError::new("cannot build a stand-in for", Path::new(&spec.url), e))?;
        fsutil::write_atomic(&dir.join(&rel), &bytes, 0o644)?;
        sums.entry(sum_rel)
            .or_default()
            .push((spec.checksum_name.clone(), Sha256::of(&bytes)));
        artifacts.push((
            format!("{} {} ({})", spec.component, spec.version, spec.arch),
            rel,
        ));
    }
    let mut checksum_files = Vec::new();
    for (rel, mut lines) in sums {
        lines.sort();
        let mut text = Vec::new();
        // A checksum file named after its artifact describes that one file; any other lists
        // several release assets (runc's `runc.sha256sum`).
        let multi = lines.len() > 1 || !url_file_name(&rel).starts_with(lines[0].0.as_str());
        if !multi && rel.ends_with(".sha256") {
            let _ = writeln!(text, "{}", lines[0].1);
        } else {
            if multi {
                let _ = writeln!(
                    text,
                    "{}  libseccomp-2.5.5.tar.gz",
                    Sha256::of(rel.as_bytes())
                );
            }
            for (name, sha) in &lines {
                let _ = writeln!(text, "{sha}  {name}");
            }
        }
        fsutil::write_atomic(&dir.join(&rel), &text, 0o644)?;
        checksum_files.push(rel);
    }
    Ok(StandinReport {
        artifacts,
        checksum_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standins_are_deterministic_and_shaped_like_upstream() {
        let m = Manifest::load(Path::new("manifests/kubenet.toml")).expect("manifest");
        let specs = m.artifacts();
        let containerd = specs
            .iter()
            .find(|s| s.component.as_str() == "containerd")
            .expect("containerd");
        let a = standin_artifact(containerd, 4096).expect("a");
        let b = standin_artifact(containerd, 4096).expect("b");
        assert_eq!(a, b);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(a.as_slice()));
        let names: Vec<String> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert!(names.contains(&"bin/containerd".to_string()), "{names:?}");
        let kubelet = specs
            .iter()
            .find(|s| s.component.as_str() == "kubelet")
            .expect("kubelet");
        let bin = standin_artifact(kubelet, 10_000).expect("kubelet");
        assert_eq!(bin.len(), 10_000);
        assert!(bin.starts_with(b"#!/bin/sh\n"));
    }
}
