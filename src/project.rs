//! The files of a new project (`nodeforge init`): the seed's cluster manifest and its config
//! templates, compiled in from this repository's `manifests/`, and a `.gitignore` for `out/`.
//! A test keeps them equal to the files in the repository.

/// Each file's path in the project and its text.
pub const FILES: &[(&str, &str)] = &[
    (".gitignore", GITIGNORE),
    (
        "manifests/kubenet.toml",
        include_str!("../manifests/kubenet.toml"),
    ),
    (
        "manifests/kubenet/etc/cni/net.d/10-bridge.conf",
        include_str!("../manifests/kubenet/etc/cni/net.d/10-bridge.conf"),
    ),
    (
        "manifests/kubenet/etc/cni/net.d/99-loopback.conf",
        include_str!("../manifests/kubenet/etc/cni/net.d/99-loopback.conf"),
    ),
    (
        "manifests/kubenet/etc/containerd/config.toml",
        include_str!("../manifests/kubenet/etc/containerd/config.toml"),
    ),
    (
        "manifests/kubenet/etc/kubernetes/kube-proxy-config.yaml",
        include_str!("../manifests/kubenet/etc/kubernetes/kube-proxy-config.yaml"),
    ),
    (
        "manifests/kubenet/etc/kubernetes/kubelet-config.yaml",
        include_str!("../manifests/kubenet/etc/kubernetes/kubelet-config.yaml"),
    ),
    (
        "manifests/kubenet/etc/modules-load.d/br_netfilter.conf",
        include_str!("../manifests/kubenet/etc/modules-load.d/br_netfilter.conf"),
    ),
    (
        "manifests/kubenet/etc/systemd/system/containerd.service",
        include_str!("../manifests/kubenet/etc/systemd/system/containerd.service"),
    ),
    (
        "manifests/kubenet/etc/systemd/system/kube-proxy.service",
        include_str!("../manifests/kubenet/etc/systemd/system/kube-proxy.service"),
    ),
    (
        "manifests/kubenet/etc/systemd/system/kubelet.service",
        include_str!("../manifests/kubenet/etc/systemd/system/kubelet.service"),
    ),
];

/// The project's manifest (where nodeforge looks for it by default).
pub const MANIFEST: &str = "manifests/kubenet.toml";

/// The build outputs stay out of version control; the lockfile goes in.
const GITIGNORE: &str = "/out\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the repository's `manifests/` is in the project, with the same bytes.
    #[test]
    fn the_project_is_the_repository_s_manifests() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.join("manifests")];
        while let Some(dir) = dirs.pop() {
            for e in crate::fsutil::entries(&dir) {
                if e.path().is_dir() {
                    dirs.push(e.path());
                } else {
                    on_disk.push(e.path());
                }
            }
        }
        on_disk.sort();
        let ours: Vec<_> = FILES.iter().filter(|(p, _)| *p != ".gitignore").collect();
        assert_eq!(ours.len(), on_disk.len(), "{on_disk:?}");
        for (path, text) in ours {
            let disk = std::fs::read_to_string(root.join(path)).expect("read");
            assert_eq!(&disk, text, "{path}");
        }
        assert!(FILES.iter().any(|(p, _)| *p == MANIFEST));
    }
}
