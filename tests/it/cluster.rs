//! The seed's chapter 6 end to end: real kubelet and kube-proxy, built from upstream's Go source
//! (scripts/k8s-from-source), join a real control plane and run pods on two QEMU (TCG) VMs booted
//! from node images nodeforge locked, fetched and built through its normal commands.
//!
//! - control0, a "pseudo-worker" as in the seed: etcd, kube-apiserver, kube-controller-manager and
//!   kube-scheduler run from its own disk (units, certificates, service-account keys and an
//!   encryption config the test writes onto a copy of the base root filesystem); containerd,
//!   kubelet and kube-proxy from its nodeforge image;
//! - worker0 booted from its nodeforge image (generation 2) through the shipped guest integration;
//! - the nodes' certificates and kubeconfigs (openssl, made here), checked by `nodeforge secrets
//!   check`, reach them as the README tells users: systemd credentials over QEMU's fw_cfg (the
//!   arguments `nodeforge show NODE --boot --secrets DIR` prints), placed by the config layer's
//!   nodeforge-secrets.service; never through an image;
//! - their private link (192.168.1.0/24, node IPs and pod CIDRs from the manifest, the seed's
//!   routes between the nodes' pod ranges) is a QEMU UDP socket pair on 127.0.0.1; the host
//!   reaches kube-apiserver through a user-net port forward bound to 127.0.0.1 on control0, whose
//!   user net is `restrict=on`: nothing leaves the machine;
//! - no registry is reachable: the pause image (the pause binary built from source) and a busybox
//!   image (Debian's busybox-static) are OCI archives on the base disk, imported into containerd
//!   at boot under the names containerd's config and the pods use.
//!
//! Checks: both nodes Ready; control0 carries the NoSchedule control-plane taint and a plain pod
//! pinned to it stays Pending; a pod runs on worker0 with an address in worker0's pod CIDR;
//! `kubectl logs` and `kubectl exec` work after the seed's kube-apiserver→kubelet RBAC step; a pod
//! on control0 (tolerating the taint) reaches the worker's pod across nodes over the seed's routes;
//! a ClusterIP Service reaches the pod through kube-proxy's iptables rules; `crictl ps` on the node
//! (the image's crictl) lists the containers. Then `nodeforge rollback worker0` and a reboot:
//! worker0 comes back Ready on generation 1 (its kubelet runs with generation 1's `--v=2`) and
//! runs a pod again. Timings go to stderr (BENCHMARKS.md has them), never asserted.
//!
//! `make cluster` runs [`cluster_up_for_a_person`] (ignored in `cargo test`): the same bring-up,
//! left running in `$NODEFORGE_CLUSTER_DIR`, with the kubeconfig to use.
//!
//! Needs root and what tests/it/systemd_vm.rs needs, plus go and gcc/libc6-dev (for
//! scripts/k8s-from-source, cached under `$NODEFORGE_K8S_CACHE`, default target/k8s-cache) and
//! openssl.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::vmkit::DebianRuntime;
use crate::vmkit::{cache_dir, kernel_version, oci_archive, put_in_mirror, run, script};
use crate::{run_in, REPO};

/// The nodes this test boots, from the default manifest.
const NODES: [&str; 2] = ["control0", "worker0"];
/// The address of control0's user-net interface (a range the cluster does not use).
const WAN_NET: &str = "172.31.255.0/24";
const WAN_IP: &str = "172.31.255.15";

/// Where the time goes: (what, how long), printed at the end and on failure.
struct Clock {
    laps: Vec<(String, Duration)>,
    lap: Instant,
    start: Instant,
}

impl Clock {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            laps: Vec::new(),
            lap: now,
            start: now,
        }
    }

    fn lap(&mut self, what: &str) {
        let d = self.lap.elapsed();
        eprintln!("cluster: {what}: {:.1}s", d.as_secs_f64());
        self.laps.push((what.to_string(), d));
        self.lap = Instant::now();
    }

    fn summary(&self) -> String {
        let parts: Vec<String> = self
            .laps
            .iter()
            .map(|(w, d)| format!("{w} {:.1}s", d.as_secs_f64()))
            .collect();
        format!(
            "{}; total {:.1}s",
            parts.join(", "),
            self.start.elapsed().as_secs_f64()
        )
    }
}

/// The upstream binaries scripts/k8s-from-source built (or had cached).
struct K8s {
    bin: PathBuf,
    versions: BTreeMap<String, String>,
}

fn k8s_from_source() -> K8s {
    let text = run(script("k8s-from-source").arg("--print-versions"));
    let versions: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    for k in ["kubernetes", "cri-tools"] {
        assert!(
            versions.contains_key(k),
            "scripts/k8s-from-source --print-versions names no {k}:\n{text}"
        );
    }
    // Builds on a cold cache (progress on stderr, which the test shows).
    let out = Command::new(Path::new(REPO).join("scripts/k8s-from-source"))
        .arg("--print-bin-dir")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/k8s-from-source");
    assert!(
        out.status.success(),
        "scripts/k8s-from-source --print-bin-dir failed ({}); its output is above",
        out.status
    );
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    for b in [
        "kubelet",
        "kube-proxy",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "etcd",
        "crictl",
        "pause",
    ] {
        assert!(
            bin.join(b).is_file(),
            "scripts/k8s-from-source left no {b} in {}",
            bin.display()
        );
    }
    K8s { bin, versions }
}

/// The default manifest pinned to what the mirror holds: Kubernetes and cri-tools as built from
/// source (and kube-apiserver, which runs the same release), Debian's containerd, runc and CNI.
fn cluster_manifest(k8s: &K8s, rt: &DebianRuntime) -> String {
    let text = std::fs::read_to_string(Path::new(REPO).join("manifests/kubenet.toml")).unwrap();
    let text = rt.pin_versions(&text);
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.split_once(" = ").map(|(k, _)| k) {
            Some("kubernetes") => format!("kubernetes = \"{}\"", k8s.versions["kubernetes"]),
            Some("kube-apiserver") => {
                format!("kube-apiserver = \"{}\"", k8s.versions["kubernetes"])
            }
            Some("cri-tools") => format!("cri-tools = \"{}\"", k8s.versions["cri-tools"]),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// One `file://` mirror with everything the manifest locks: scripts/k8s-from-source's
/// (kubelet, kube-proxy, crictl's tarball, with upstream's checksum files) and Debian's runtime
/// repacked into upstream's archive names.
fn combined_mirror(dir: &Path, manifest: &Path, rt: &DebianRuntime) -> PathBuf {
    let mirror = dir.join("mirror");
    run(script("k8s-from-source").arg("--mirror").arg(&mirror));
    let m = nodeforge::manifest::Manifest::load(manifest).unwrap();
    let packed = dir.join("packed");
    std::fs::create_dir_all(&packed).unwrap();
    for a in m.artifacts() {
        let tmp = packed.join(a.url.rsplit('/').next().unwrap());
        if let Some(bytes) = rt.artifact(a.component.as_str(), &tmp) {
            put_in_mirror(&mirror, &a, &bytes);
        }
    }
    mirror
}

/// `nodeforge ARGS` in the project `dir`; its stdout, or a panic with what it said.
#[track_caller]
fn nf(dir: &Path, args: &[&str]) -> String {
    let r = run_in(dir, args);
    assert_eq!(
        r.code, 0,
        "nodeforge {args:?} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    r.stdout
}

/// The certificates and keys of the cluster, made with openssl as the seed's chapter 4 makes
/// them with cfssl (ECDSA P-256 instead of RSA 2048: under TCG, with no AES-NI and a loaded host,
/// every TLS handshake's RSA signature costs enough for kube-apiserver's own loopback clients to
/// time out): one CA, the API server's serving certificate (also its client certificate
/// towards etcd and the kubelets, user `kubernetes`), and a client certificate per identity.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// `openssl ARGS` (split on spaces; no argument has one) in the PKI directory.
    fn openssl(&self, args: &str) {
        run(Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(&self.dir));
    }

    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let pki = Self {
            dir: dir.to_path_buf(),
        };
        pki.openssl(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca-key.pem -out ca.pem -days 30 \
             -subj /CN=Kubernetes/O=Kubernetes -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign",
        );
        pki
    }

    /// `<name>.pem` and `<name>-key.pem`, signed by the CA, for server and client use.
    fn cert(&self, name: &str, subject: &str, sans: &[String]) {
        let ext = format!("{name}.ext");
        self.openssl(&format!(
            "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {name}-key.pem -out {name}.csr -subj {subject}"
        ));
        let mut e = String::from(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        );
        if !sans.is_empty() {
            writeln!(e, "subjectAltName={}", sans.join(",")).unwrap();
        }
        std::fs::write(self.dir.join(&ext), e).unwrap();
        self.openssl(&format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
             -sha256 -extfile {name}.ext -out {name}.pem"
        ));
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap()
    }

    /// A kubeconfig for `<name>.pem` as `user`, talking to `server`, with everything embedded.
    fn kubeconfig(&self, name: &str, user: &str, server: &str) -> String {
        let b64 = |f: &str| base64::engine::general_purpose::STANDARD.encode(self.read(f));
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubenet\n  cluster:\n    \
             certificate-authority-data: {}\n    server: {server}\ncontexts:\n- name: default\n  \
             context:\n    cluster: kubenet\n    user: {user}\ncurrent-context: default\n\
             users:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    \
             client-key-data: {}\n",
            b64("ca.pem"),
            b64(&format!("{name}.pem")),
            b64(&format!("{name}-key.pem")),
        )
    }
}

/// Edits of an ext4 image without mounting it (debugfs -w): directories, files (with modes),
/// symlinks, whole host trees. Root owns what it writes (the test runs as root).
struct Ext4Edit {
    cmds: String,
    stage: tempfile::TempDir,
    n: usize,
}

impl Ext4Edit {
    fn new() -> Self {
        Self {
            cmds: String::new(),
            stage: tempfile::tempdir().unwrap(),
            n: 0,
        }
    }

    /// `path` and its parents (existing ones are left as they are).
    fn mkdir(&mut self, path: &str) {
        let mut at = String::new();
        for part in path.trim_matches('/').split('/') {
            at.push('/');
            at.push_str(part);
            writeln!(self.cmds, "mkdir {at}").unwrap();
        }
    }

    fn mode(&mut self, path: &str, mode: u32) {
        writeln!(self.cmds, "sif {path} mode 0{mode:o}").unwrap();
    }

    /// A file from the host at `path` (replacing one that is there), with `mode` (permissions).
    fn file(&mut self, host: &Path, path: &str, mode: u32) {
        let parent = &path[..path.rfind('/').unwrap()];
        if !parent.is_empty() {
            self.mkdir(parent);
        }
        writeln!(self.cmds, "rm {path}").unwrap();
        writeln!(self.cmds, "write {} {path}", host.display()).unwrap();
        self.mode(path, 0o100000 | mode);
    }

    fn bytes(&mut self, data: &[u8], path: &str, mode: u32) {
        self.n += 1;
        let host = self.stage.path().join(self.n.to_string());
        std::fs::write(&host, data).unwrap();
        self.file(&host, path, mode);
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let parent = &path[..path.rfind('/').unwrap()];
        self.mkdir(parent);
        writeln!(self.cmds, "rm {path}").unwrap();
        writeln!(self.cmds, "symlink {path} {target}").unwrap();
    }

    /// Every directory, file and symlink under `host` (a kernel's module tree), at `path`.
    fn tree(&mut self, host: &Path, path: &str) {
        self.mkdir(path);
        let mut entries: Vec<_> = std::fs::read_dir(host)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let to = format!("{path}/{name}");
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                self.tree(&e.path(), &to);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(e.path()).unwrap();
                self.symlink(&to, &t.to_string_lossy());
            } else {
                writeln!(self.cmds, "write {} {to}", e.path().display()).unwrap();
            }
        }
    }

    /// Apply to `image`; fails on any error debugfs reports, other than the expected ones of
    /// `mkdir` on an existing directory and `rm` of a missing file.
    fn apply(self, image: &Path) {
        let script = self.stage.path().join("debugfs.cmds");
        std::fs::write(&script, &self.cmds).unwrap();
        let out = Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&script)
            .arg(image)
            .stdin(Stdio::null())
            .output()
            .expect("debugfs (e2fsprogs)");
        let err = String::from_utf8_lossy(&out.stderr);
        let bad: Vec<&str> = err
            .lines()
            .filter(|l| {
                !l.starts_with("debugfs ")
                    && !l.contains("Ext2 directory already exists")
                    && !l.contains("File not found by ext2_lookup")
                    && !l.trim().is_empty()
            })
            .collect();
        assert!(
            out.status.success() && bad.is_empty(),
            "debugfs -w on {} failed:\n{}",
            image.display(),
            bad.join("\n")
        );
    }
}

/// What the test knows about a node of the manifest.
#[derive(Clone)]
struct NodeNet {
    name: String,
    vmid: u32,
    ip: Ipv4Addr,
    pod_cidr: ipnet::Ipv4Net,
}

impl NodeNet {
    fn mac(&self) -> String {
        format!("52:54:00:6e:66:{:02x}", self.vmid)
    }
}

fn manifest_nodes(manifest: &Path) -> Vec<NodeNet> {
    let m = nodeforge::manifest::Manifest::load(manifest).unwrap();
    m.nodes
        .values()
        .map(|n| NodeNet {
            name: n.name.to_string(),
            vmid: n.vmid,
            ip: n.ip,
            pod_cidr: n.pod_cidr,
        })
        .collect()
}

/// The systemd-networkd config of every node of the manifest, matched by MAC address: its
/// node IP on the private link and, as the seed routes pod traffic, a route to every other
/// node's pod range via that node's IP. control0 also gets its user-net address.
fn network_files(nodes: &[NodeNet]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for n in nodes {
        let mut t = format!(
            "[Match]\nMACAddress={}\n\n[Network]\nAddress={}/24\nGateway=192.168.1.1\n\
             LinkLocalAddressing=no\nIPv6AcceptRA=no\n",
            n.mac(),
            n.ip
        );
        for o in nodes.iter().filter(|o| o.name != n.name) {
            write!(
                t,
                "\n[Route]\nDestination={}\nGateway={}\n",
                o.pod_cidr, o.ip
            )
            .unwrap();
        }
        files.push((format!("/etc/systemd/network/10-nf-{}.network", n.name), t));
    }
    files.push((
        "/etc/systemd/network/20-nf-wan.network".to_string(),
        format!(
            "[Match]\nMACAddress=52:54:00:6e:67:01\n\n[Network]\nAddress={WAN_IP}/24\n\
             LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
        ),
    ));
    files
}

/// Imports the test's OCI archives into containerd's CRI namespace (no registry is reachable).
const IMAGES_UNIT: &str = "[Unit]
Description=Import the local pause and busybox images into containerd
After=containerd.service
Requires=containerd.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for i in /var/lib/nf-images/*.tar; do /usr/bin/ctr -n k8s.io images import \"$i\" || exit 1; done'

[Install]
WantedBy=multi-user.target
";

fn want(e: &mut Ext4Edit, target: &str, unit: &str, unit_path: &str) {
    e.symlink(
        &format!("/etc/systemd/system/{target}.wants/{unit}"),
        unit_path,
    );
}

/// The base disk every node shares: Debian 12 (scripts/vm-rootfs) with the kernel's modules
/// (modprobe for kube-proxy's and the CNI's netfilter modules), /etc/hosts naming the nodes,
/// systemd-networkd with the nodes' addresses and the seed's pod routes, the local images and
/// their import. No secret: those come over fw_cfg, placed by the config layer's
/// nodeforge-secrets.service.
fn cluster_base(dir: &Path, nodes: &[NodeNet], images: &[PathBuf]) -> PathBuf {
    let base = PathBuf::from(run(&mut script("vm-rootfs")).trim());
    let img = dir.join("base.ext4");
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(&base)
        .arg(&img));
    let kver = kernel_version();
    let mut e = Ext4Edit::new();
    e.tree(
        &Path::new("/lib/modules").join(&kver),
        &format!("/usr/lib/modules/{kver}"),
    );
    let mut hosts = String::from("127.0.0.1 localhost\n");
    for n in nodes {
        writeln!(hosts, "{} {}", n.ip, n.name).unwrap();
    }
    e.bytes(hosts.as_bytes(), "/etc/hosts", 0o644);
    // kubelet's resolvConf (upstream's default, /etc/resolv.conf); the link has no DNS server.
    e.bytes(
        b"# no DNS server on the test's network\n",
        "/etc/resolv.conf",
        0o644,
    );
    for (path, text) in network_files(nodes) {
        e.bytes(text.as_bytes(), &path, 0o644);
    }
    want(
        &mut e,
        "multi-user.target",
        "systemd-networkd.service",
        "/lib/systemd/system/systemd-networkd.service",
    );
    want(
        &mut e,
        "sockets.target",
        "systemd-networkd.socket",
        "/lib/systemd/system/systemd-networkd.socket",
    );
    want(
        &mut e,
        "network-online.target",
        "systemd-networkd-wait-online.service",
        "/lib/systemd/system/systemd-networkd-wait-online.service",
    );
    for img in images {
        let name = img.file_name().unwrap().to_string_lossy();
        e.file(img, &format!("/var/lib/nf-images/{name}"), 0o644);
    }
    let path = "/etc/systemd/system/nf-images.service";
    e.bytes(IMAGES_UNIT.as_bytes(), path, 0o644);
    want(&mut e, "multi-user.target", "nf-images.service", path);
    e.apply(&img);
    img
}

/// control0's own disk: the cluster base with the control plane of the seed's chapter 5:
/// etcd, kube-apiserver, kube-controller-manager and kube-scheduler, their units (enabled),
/// certificates, kubeconfigs, service-account keys and encryption config.
fn control_disk(dir: &Path, base: &Path, k8s: &K8s, pki: &Pki, control: &NodeNet) -> PathBuf {
    let img = dir.join("control0.ext4");
    run(Command::new("cp")
        .arg("--sparse=always")
        .arg(base)
        .arg(&img));
    let mut e = Ext4Edit::new();
    for b in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
    ] {
        e.file(&k8s.bin.join(b), &format!("/usr/local/bin/{b}"), 0o755);
    }
    let p = "/etc/kubernetes/pki";
    for f in [
        "ca.pem",
        "ca-key.pem",
        "kubernetes.pem",
        "kubernetes-key.pem",
        "service-account.pem",
        "service-account-key.pem",
    ] {
        let mode = if f.ends_with("key.pem") { 0o600 } else { 0o644 };
        e.bytes(&pki.read(f), &format!("{p}/{f}"), mode);
    }
    let local = "https://127.0.0.1:6443";
    for (name, user) in [
        ("kube-controller-manager", "system:kube-controller-manager"),
        ("kube-scheduler", "system:kube-scheduler"),
        ("admin", "admin"),
    ] {
        e.bytes(
            pki.kubeconfig(name, user, local).as_bytes(),
            &format!("/etc/kubernetes/{name}.kubeconfig"),
            0o600,
        );
    }
    let key = run(Command::new("openssl").args(["rand", "-base64", "32"]));
    let key = key.trim();
    let encryption = format!(
        "kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources:\n  \
         - resources:\n      - secrets\n    providers:\n      - aescbc:\n          keys:\n            \
         - name: key1\n              secret: {key}\n      - identity: {{}}\n"
    );
    e.bytes(
        encryption.as_bytes(),
        "/etc/kubernetes/encryption-config.yaml",
        0o600,
    );
    e.mkdir("/var/lib/etcd");
    e.mode("/var/lib/etcd", 0o040700);
    let ip = control.ip;
    let units = [
        (
            "etcd",
            format!(
                "[Unit]\nDescription=etcd\nDocumentation=https://github.com/etcd-io/etcd\n\n\
                 [Service]\nType=notify\nExecStart=/usr/local/bin/etcd --name {name} \
                 --data-dir=/var/lib/etcd --cert-file={p}/kubernetes.pem \
                 --key-file={p}/kubernetes-key.pem --trusted-ca-file={p}/ca.pem \
                 --client-cert-auth --listen-client-urls=https://127.0.0.1:2379 \
                 --advertise-client-urls=https://127.0.0.1:2379 \
                 --listen-peer-urls=http://127.0.0.1:2380 \
                 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
                 --initial-cluster={name}=http://127.0.0.1:2380 --initial-cluster-state=new\n\
                 Restart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n",
                name = control.name
            ),
        ),
        (
            "kube-apiserver",
            format!(
                "[Unit]\nDescription=Kubernetes API Server\n\
                 Documentation=https://github.com/kubernetes/kubernetes\n\
                 After=etcd.service network-online.target\nWants=network-online.target\n\n\
                 [Service]\nExecStart=/usr/local/bin/kube-apiserver --advertise-address={ip} \
                 --allow-privileged=true --authorization-mode=Node,RBAC --bind-address=0.0.0.0 \
                 --client-ca-file={p}/ca.pem \
                 --enable-admission-plugins=NamespaceLifecycle,NodeRestriction,LimitRanger,ServiceAccount,ResourceQuota \
                 --etcd-cafile={p}/ca.pem --etcd-certfile={p}/kubernetes.pem \
                 --etcd-keyfile={p}/kubernetes-key.pem --etcd-servers=https://127.0.0.1:2379 \
                 --encryption-provider-config=/etc/kubernetes/encryption-config.yaml \
                 --kubelet-certificate-authority={p}/ca.pem \
                 --kubelet-client-certificate={p}/kubernetes.pem \
                 --kubelet-client-key={p}/kubernetes-key.pem \
                 --service-account-key-file={p}/service-account.pem \
                 --service-account-signing-key-file={p}/service-account-key.pem \
                 --service-account-issuer=https://{ip}:6443 \
                 --service-cluster-ip-range=10.32.0.0/16 --service-node-port-range=30000-32767 \
                 --tls-cert-file={p}/kubernetes.pem --tls-private-key-file={p}/kubernetes-key.pem \
                 --enable-priority-and-fairness=false\nRestart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n"
            ),
        ),
        (
            "kube-controller-manager",
            format!(
                "[Unit]\nDescription=Kubernetes Controller Manager\n\
                 Documentation=https://github.com/kubernetes/kubernetes\n\n\
                 [Service]\nExecStart=/usr/local/bin/kube-controller-manager \
                 --bind-address=127.0.0.1 --cluster-cidr=10.0.0.0/12 --cluster-name=kubenet \
                 --cluster-signing-cert-file={p}/ca.pem --cluster-signing-key-file={p}/ca-key.pem \
                 --kubeconfig=/etc/kubernetes/kube-controller-manager.kubeconfig \
                 --root-ca-file={p}/ca.pem \
                 --service-account-private-key-file={p}/service-account-key.pem \
                 --service-cluster-ip-range=10.32.0.0/16 --use-service-account-credentials=true \
                 --leader-elect=false\nRestart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n"
            ),
        ),
        (
            "kube-scheduler",
            "[Unit]\nDescription=Kubernetes Scheduler\n\
             Documentation=https://github.com/kubernetes/kubernetes\n\n\
             [Service]\nExecStart=/usr/local/bin/kube-scheduler --bind-address=127.0.0.1 \
             --kubeconfig=/etc/kubernetes/kube-scheduler.kubeconfig --leader-elect=false\n\
             Restart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n"
                .to_string(),
        ),
    ];
    for (name, text) in units {
        let path = format!("/etc/systemd/system/{name}.service");
        e.bytes(text.as_bytes(), &path, 0o644);
        want(
            &mut e,
            "multi-user.target",
            &format!("{name}.service"),
            &path,
        );
    }
    e.apply(&img);
    img
}

/// The certificates of the cluster (openssl) and each node's secrets directory, named as the
/// seed's chapter 4 names them: ca.pem, <node>.pem, <node>-key.pem, <node>.kubeconfig,
/// kube-proxy.kubeconfig.
fn make_pki(dir: &Path, nodes: &[NodeNet], control: &NodeNet) -> (Pki, PathBuf) {
    let pki = Pki::new(&dir.join("pki"));
    let mut api_sans: Vec<String> = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    ]
    .iter()
    .map(|d| format!("DNS:{d}"))
    .collect();
    api_sans.push(format!("DNS:{}", control.name));
    for ip in ["10.32.0.1", "127.0.0.1", WAN_IP] {
        api_sans.push(format!("IP:{ip}"));
    }
    api_sans.push(format!("IP:{}", control.ip));
    pki.cert("kubernetes", "/CN=kubernetes/O=Kubernetes", &api_sans);
    pki.cert("admin", "/CN=admin/O=system:masters", &[]);
    pki.cert(
        "kube-controller-manager",
        "/CN=system:kube-controller-manager/O=system:kube-controller-manager",
        &[],
    );
    pki.cert(
        "kube-scheduler",
        "/CN=system:kube-scheduler/O=system:kube-scheduler",
        &[],
    );
    pki.cert(
        "kube-proxy",
        "/CN=system:kube-proxy/O=system:node-proxier",
        &[],
    );
    pki.openssl(
        "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out service-account-key.pem",
    );
    pki.openssl("pkey -in service-account-key.pem -pubout -out service-account.pem");
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let server = format!("https://{}:6443", control.ip);
    let put = |name: &str, data: &[u8]| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(secrets.join(name))
            .unwrap();
        std::io::Write::write_all(&mut f, data).unwrap();
    };
    put("ca.pem", &pki.read("ca.pem"));
    put(
        "kube-proxy.kubeconfig",
        pki.kubeconfig("kube-proxy", "system:kube-proxy", &server)
            .as_bytes(),
    );
    for n in nodes {
        pki.cert(
            &n.name,
            &format!("/CN=system:node:{}/O=system:nodes", n.name),
            &[format!("DNS:{}", n.name), format!("IP:{}", n.ip)],
        );
        put(
            &format!("{}.pem", n.name),
            &pki.read(&format!("{}.pem", n.name)),
        );
        put(
            &format!("{}-key.pem", n.name),
            &pki.read(&format!("{}-key.pem", n.name)),
        );
        put(
            &format!("{}.kubeconfig", n.name),
            pki.kubeconfig(&n.name, &format!("system:node:{}", n.name), &server)
                .as_bytes(),
        );
    }
    (pki, secrets)
}

/// The pause image (the pause binary built from source) under the name containerd's CRI
/// plugin uses for sandboxes (its `sandbox_image`, asked of the same containerd binary the
/// image ships), and the busybox image the pods run.
fn images(dir: &Path, k8s: &K8s, rt: &DebianRuntime) -> (Vec<PathBuf>, String) {
    let config =
        run(Command::new(rt.containerd_dir.join("usr/bin/containerd")).args(["config", "default"]));
    let sandbox = config
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "sandbox_image").then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("`containerd config default` names no sandbox_image:\n{config}"));
    let pause = dir.join("pause.tar");
    oci_archive(
        dir,
        &pause,
        &sandbox,
        &[(&k8s.bin.join("pause"), "pause")],
        serde_json::json!({ "Entrypoint": ["/pause"] }),
    );
    let busybox = dir.join("busybox.tar");
    oci_archive(
        dir,
        &busybox,
        BUSYBOX_IMAGE,
        &[(Path::new("/bin/busybox"), "bin/busybox")],
        serde_json::json!({ "Entrypoint": ["/bin/busybox"], "Cmd": ["sh"] }),
    );
    (vec![pause, busybox], sandbox)
}

const BUSYBOX_IMAGE: &str = "localhost/nf-busybox:1";

/// A free TCP (or UDP) port on 127.0.0.1 (bound and released; QEMU binds it right after).
fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// One running VM (QEMU daemonized: it outlives the test's process only in `make cluster`).
struct Vm {
    name: String,
    dir: PathBuf,
    pid: Option<u32>,
}

impl Vm {
    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    fn console_tail(&self, lines: usize) -> String {
        let c = self.console();
        let all: Vec<&str> = c.lines().collect();
        let from = all.len().saturating_sub(lines);
        format!(
            "--- {} console (last {} lines) ---\n{}",
            self.name,
            all.len() - from,
            all[from..].join("\n")
        )
    }

    fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let t = Instant::now();
            while proc.exists() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if proc.exists() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

/// How a node boots: its image (through `nodeforge show NODE --boot --json`), its disk, its
/// place on the private link, its secrets.
struct Boot<'a> {
    project: &'a Path,
    node: &'a NodeNet,
    disk: &'a Path,
    secrets: &'a Path,
    lan: (u16, u16),
    /// control0: the host port forwarded to kube-apiserver.
    api_port: Option<u16>,
    memory_mb: u32,
}

fn smp() -> u32 {
    std::env::var("NODEFORGE_CLUSTER_SMP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

fn boot(b: &Boot, initrd: &Path, vm_dir: &Path) -> Vm {
    let secrets = b.secrets.to_string_lossy();
    let show = [
        "show",
        &b.node.name,
        "--boot",
        "--json",
        "--secrets",
        &secrets,
    ];
    let plan: serde_json::Value = serde_json::from_str(&nf(b.project, &show)).unwrap();
    std::fs::create_dir_all(vm_dir).unwrap();
    let root = vm_dir.join("root.qcow2");
    if !root.exists() {
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(b.disk)
            .arg(&root));
    }
    let console = vm_dir.join("console.log");
    let pidfile = vm_dir.join("qemu.pid");
    let _ = std::fs::remove_file(&pidfile);
    let kver = kernel_version();
    let n = smp();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "q35", "-cpu", "qemu64", "-m"])
        .arg(b.memory_mb.to_string())
        .args(["-smp", &n.to_string()])
        .args(["-accel", if n > 1 { "tcg,thread=multi" } else { "tcg" }])
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-nodefaults",
            "-no-reboot",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-daemonize")
        .arg("-pidfile")
        .arg(&pidfile)
        .arg("-kernel")
        .arg(format!("/boot/vmlinuz-{kver}"))
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 systemd.hostname={} systemd.journald.forward_to_console=1 \
             {}",
            b.node.name,
            plan["kernel_cmdline"].as_str().unwrap()
        ))
        .arg("-drive")
        .arg(format!(
            "file={},format=qcow2,if=none,id=nf-root",
            root.display()
        ))
        .args(["-device", "virtio-blk-pci,drive=nf-root,serial=nf-root"]);
    for d in plan["disks"].as_array().unwrap() {
        let serial = d["serial"].as_str().unwrap();
        cmd.arg("-drive")
            .arg(format!(
                "file={},format=raw,if=none,readonly=on,id={serial}",
                d["path"].as_str().unwrap()
            ))
            .arg("-device")
            .arg(format!("virtio-blk-pci,drive={serial},serial={serial}"));
    }
    // The private link: a UDP socket pair on 127.0.0.1.
    cmd.arg("-netdev")
        .arg(format!(
            "socket,id=lan,udp=127.0.0.1:{},localaddr=127.0.0.1:{}",
            b.lan.1, b.lan.0
        ))
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=lan,mac={}", b.node.mac()));
    if let Some(port) = b.api_port {
        cmd.arg("-netdev")
            .arg(format!(
                "user,id=wan,net={WAN_NET},restrict=on,hostfwd=tcp:127.0.0.1:{port}-{WAN_IP}:6443"
            ))
            .arg("-device")
            .arg("virtio-net-pci,netdev=wan,mac=52:54:00:6e:67:01");
    }
    // The node's secrets as systemd credentials: the `-fw_cfg` arguments `show --boot
    // --secrets` gives (never on a disk image).
    let qemu: Vec<&str> = plan["qemu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut fw_cfg = 0;
    for w in qemu.windows(2) {
        if w[0] == "-fw_cfg" {
            cmd.args(w);
            fw_cfg += 1;
        }
    }
    assert_eq!(
        fw_cfg, 5,
        "`nodeforge show {} --boot --secrets` passes the seed's five secrets: {qemu:?}",
        b.node.name
    );
    run(&mut cmd);
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Vm {
        name: b.node.name.clone(),
        dir: vm_dir.to_path_buf(),
        pid: Some(pid),
    }
}

/// The cluster: its VMs, and kubectl on the host with the admin kubeconfig.
struct Cluster {
    vms: Vec<Vm>,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    /// `make cluster`: leave the VMs running.
    keep: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.keep {
            for vm in &mut self.vms {
                vm.stop();
            }
        }
    }
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.kubectl_in(args, None)
    }

    fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().expect("kubectl");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "kubectl {}: {}{}",
                args.join(" "),
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn apply(&self, yaml: &str) {
        if let Err(e) = self.kubectl_in(&["apply", "-f", "-"], Some(yaml)) {
            panic!("{e}\n{}", self.evidence());
        }
    }

    /// What the cluster looks like, for a failed assertion.
    fn evidence(&self) -> String {
        let mut s = String::new();
        for args in [
            &["get", "nodes", "-o", "wide"][..],
            &["get", "pods", "-A", "-o", "wide"][..],
            &["get", "events", "-A", "--sort-by=.lastTimestamp"][..],
        ] {
            let r = self.kubectl(args).unwrap_or_else(|e| e);
            writeln!(s, "$ kubectl {}\n{r}", args.join(" ")).unwrap();
        }
        for vm in &self.vms {
            writeln!(s, "{}", vm.console_tail(150)).unwrap();
        }
        s
    }

    /// Poll `f` every 2 s until it gives a value; after `limit`, fail with `what`, the last
    /// error and the evidence.
    #[track_caller]
    fn wait<T>(&self, what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
        let t = Instant::now();
        loop {
            match f() {
                Ok(v) => return v,
                Err(e) if t.elapsed() > limit => panic!(
                    "{what}: not within {}s; last: {e}\n{}",
                    limit.as_secs(),
                    self.evidence()
                ),
                Err(_) => std::thread::sleep(Duration::from_secs(2)),
            }
        }
    }

    fn jsonpath(&self, args: &[&str], path: &str) -> Result<String, String> {
        let mut a = args.to_vec();
        let p = format!("jsonpath={path}");
        a.extend(["-o", &p]);
        self.kubectl(&a)
    }

    fn node_ready(&self, node: &str) -> Result<String, String> {
        let r = self.jsonpath(
            &["get", "node", node],
            "{.status.conditions[?(@.type==\"Ready\")].status} {.status.nodeInfo.bootID}",
        )?;
        match r.split_once(' ') {
            Some(("True", boot)) => Ok(boot.to_string()),
            _ => Err(format!("node {node}: Ready/bootID {r:?}")),
        }
    }

    fn pod_running(&self, pod: &str) -> Result<(String, String), String> {
        let r = self.jsonpath(
            &["get", "pod", pod],
            "{.status.phase} {.spec.nodeName} {.status.podIP}",
        )?;
        let f: Vec<&str> = r.split_whitespace().collect();
        match f[..] {
            ["Running", node, ip] => Ok((node.to_string(), ip.to_string())),
            _ => Err(format!("pod {pod}: phase/node/IP {r:?}")),
        }
    }

    fn exec(&self, pod: &str, cmd: &[&str]) -> Result<String, String> {
        let mut a = vec!["exec", pod, "--"];
        a.extend(cmd);
        self.kubectl(&a)
    }

    /// `cmd` on the node itself, from a privileged pod (host PID): in PID 1's mount, UTS, IPC
    /// and network namespaces.
    fn on_node(&self, pod: &str, cmd: &[&str]) -> Result<String, String> {
        let mut a = vec![
            "/bin/busybox",
            "nsenter",
            "-t",
            "1",
            "-m",
            "-u",
            "-i",
            "-n",
            "--",
        ];
        a.extend(cmd);
        self.exec(pod, &a)
    }
}

/// A pod of the busybox image; `node`: pinned there by its hostname label; `tolerate`: tolerates
/// the control plane's taint; `privileged`: host PID and network namespaces (a shell on the node).
fn pod(name: &str, node: Option<&str>, tolerate: bool, privileged: bool, script: &str) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\nspec:\n  \
         automountServiceAccountToken: false\n  terminationGracePeriodSeconds: 1\n"
    );
    if let Some(n) = node {
        write!(y, "  nodeSelector:\n    kubernetes.io/hostname: {n}\n").unwrap();
    }
    if tolerate {
        y.push_str(
            "  tolerations:\n  - key: node-role.kubernetes.io/control-plane\n    operator: Exists\n    effect: NoSchedule\n",
        );
    }
    if privileged {
        y.push_str("  hostPID: true\n  hostNetwork: true\n");
    }
    write!(
        y,
        "  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: Never\n    \
         command: [\"/bin/busybox\", \"sh\", \"-c\", {}]\n",
        serde_json::to_string(script).unwrap()
    )
    .unwrap();
    if privileged {
        y.push_str("    securityContext:\n      privileged: true\n");
    }
    y
}

/// The web server pod: prints a line (for `kubectl logs`) and serves its name on :8080.
const WEB: &str = "/bin/busybox mkdir -p /www && echo nf-hello-from-$(/bin/busybox hostname) \
                   >/www/index.html && echo web-started && exec /bin/busybox httpd -f -p 8080 -h /www";
const SLEEP: &str = "exec /bin/busybox sleep 100000";

/// An HTTP GET of `ip:port` from inside `pod` (busybox nc with a numeric port: busybox-static's
/// wget looks the scheme's port up through glibc's NSS, which a static binary cannot load in a
/// container, and crashes); the response, or what failed.
fn http_get(cl: &Cluster, pod: &str, ip: &str, port: u16) -> Result<String, String> {
    let req = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 5 {ip} {port}");
    let r = cl.exec(pod, &["/bin/busybox", "sh", "-c", &req])?;
    if r.contains(" 200 ") {
        Ok(r)
    } else {
        Err(format!("GET http://{ip}:{port}/ from {pod}: {r:?}"))
    }
}

/// The seed's RBAC step: kube-apiserver (user `kubernetes`) may call the kubelets' API.
const APISERVER_TO_KUBELET: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  annotations:
    rbac.authorization.kubernetes.io/autoupdate: \"true\"
  labels:
    kubernetes.io/bootstrapping: rbac-defaults
  name: system:kube-apiserver-to-kubelet
rules:
  - apiGroups:
      - \"\"
    resources:
      - nodes/proxy
      - nodes/stats
      - nodes/log
      - nodes/spec
      - nodes/metrics
    verbs:
      - \"*\"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:kube-apiserver
  namespace: \"\"
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kube-apiserver-to-kubelet
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: User
    name: kubernetes
";

/// Everything up to a cluster with both nodes Ready, in the project directory `dir`.
struct Up {
    cluster: Cluster,
    dir: PathBuf,
    nodes: Vec<NodeNet>,
    /// worker0's two image directories (generation 1: kubelet --v=2, generation 2: --v=3).
    gen1: PathBuf,
    gen2: PathBuf,
    worker_boot: BootArgs,
}

/// What a reboot of worker0 needs again.
struct BootArgs {
    initrd: PathBuf,
    base: PathBuf,
    secrets: PathBuf,
    lan: (u16, u16),
}

fn bring_up(dir: &Path, clock: &mut Clock, keep: bool) -> Up {
    let scratch = dir.join("work");
    std::fs::create_dir_all(&scratch).unwrap();
    let k8s = k8s_from_source();
    clock.lap("scripts/k8s-from-source (cached binaries)");
    let rt = DebianRuntime::unpack(&scratch);
    let manifest_text = cluster_manifest(&k8s, &rt);
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    crate::copy_tree(
        &Path::new(REPO).join("manifests/kubenet"),
        &dir.join("manifests/kubenet"),
    );
    let manifest = dir.join("manifests/kubenet.toml");
    std::fs::write(&manifest, &manifest_text).unwrap();
    let mirror = combined_mirror(&scratch, &manifest, &rt);
    let mirror_url = format!("file://{}", mirror.display());
    clock.lap("mirror (k8s-from-source --mirror + Debian's runtime repacked)");

    // Two generations of worker0 through the normal commands: 1 (kubelet --v=2, control0 too),
    // then 2 (--v=3).
    nf(
        dir,
        &[
            "lock",
            "--offline",
            "--mirrors-only",
            "--trust-mirror-checksums",
            "--mirror",
            &mirror_url,
        ],
    );
    nf(dir, &["fetch", "--offline", "--mirror", &mirror_url]);
    for n in NODES {
        nf(dir, &["build", "--offline", "--node", n]);
    }
    let current =
        |n: &str| std::fs::canonicalize(dir.join("out/nodes").join(n).join("current")).unwrap();
    let gen1 = current("worker0");
    std::fs::write(
        &manifest,
        format!("{manifest_text}\n[vars]\nkubelet_verbosity = 3\n"),
    )
    .unwrap();
    nf(dir, &["build", "--offline", "--node", "worker0"]);
    let gen2 = current("worker0");
    assert_ne!(gen1, gen2, "generation 2 of worker0 is another image");
    clock.lap("nodeforge lock, fetch, build (control0, worker0 x2)");

    let nodes = manifest_nodes(&manifest);
    let node = |name: &str| nodes.iter().find(|n| n.name == name).unwrap().clone();
    let control = node("control0");
    let (pki, secrets) = make_pki(&scratch, &nodes, &control);
    for n in NODES {
        nf(
            dir,
            &[
                "secrets",
                "check",
                "--node",
                n,
                "--secrets",
                &secrets.to_string_lossy(),
            ],
        );
    }
    let (image_files, sandbox) = images(&scratch, &k8s, &rt);
    eprintln!("cluster: containerd's sandbox image is {sandbox}");
    let base = cluster_base(&scratch, &nodes, &image_files);
    let control_img = control_disk(&scratch, &base, &k8s, &pki, &control);
    let initrd = scratch.join("initrd.cpio");
    run(script("vm-initramfs").arg(&initrd));
    clock.lap("certificates, images, base disks, initramfs");

    let api_port = free_port(false);
    let lan = (free_port(true), free_port(true));
    let kubeconfig = dir.join("admin.kubeconfig");
    std::fs::write(
        &kubeconfig,
        pki.kubeconfig("admin", "admin", &format!("https://127.0.0.1:{api_port}")),
    )
    .unwrap();
    let vm_dir = dir.join("vm");
    let c = boot(
        &Boot {
            project: dir,
            node: &control,
            disk: &control_img,
            secrets: &secrets,
            lan: (lan.0, lan.1),
            api_port: Some(api_port),
            memory_mb: 2048,
        },
        &initrd,
        &vm_dir.join("control0"),
    );
    let w = boot(
        &Boot {
            project: dir,
            node: &node("worker0"),
            disk: &base,
            secrets: &secrets,
            lan: (lan.1, lan.0),
            api_port: None,
            memory_mb: 1536,
        },
        &initrd,
        &vm_dir.join("worker0"),
    );
    let cluster = Cluster {
        vms: vec![c, w],
        kubectl: k8s.bin.join("kubectl"),
        kubeconfig,
        keep,
    };
    clock.lap("QEMU started (control0, worker0)");
    cluster.wait("kube-apiserver ready", Duration::from_secs(420), || {
        cluster.kubectl(&["get", "--raw", "/readyz"])
    });
    clock.lap("boot + etcd + kube-apiserver ready");
    cluster.apply(APISERVER_TO_KUBELET);
    for n in NODES {
        cluster.wait(&format!("node {n} Ready"), Duration::from_secs(300), || {
            cluster.node_ready(n)
        });
    }
    clock.lap("both nodes registered and Ready");
    // Pods are admitted once the controller-manager made the namespace's service account.
    cluster.wait(
        "service account default/default",
        Duration::from_secs(120),
        || cluster.kubectl(&["get", "serviceaccount", "default"]),
    );
    Up {
        cluster,
        dir: dir.to_path_buf(),
        nodes,
        gen1,
        gen2,
        worker_boot: BootArgs {
            initrd,
            base,
            secrets,
            lan: (lan.1, lan.0),
        },
    }
}

fn tools_present() -> bool {
    let tools = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("mmdebstrap", "mmdebstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("debugfs", "e2fsprogs"),
        ("dmsetup", "dmsetup"),
        ("veritysetup", "cryptsetup-bin"),
        ("busybox", "busybox-static"),
        ("openssl", "openssl"),
        ("go", "golang (Go 1.24 or newer)"),
        ("gcc", "gcc"),
    ];
    tools.iter().all(|(t, p)| crate::requires(t, p))
}

#[test]
fn cluster_runs_pods_across_nodes_and_rolls_back() {
    if !tools_present() {
        return;
    }
    let mut clock = Clock::new();
    let project = tempfile::tempdir_in(cache_dir()).unwrap();
    let up = bring_up(project.path(), &mut clock, false);
    let mut cl = up.cluster;
    let ctl = |r: Result<String, String>, cl: &Cluster| -> String {
        r.unwrap_or_else(|e| panic!("{e}\n{}", cl.evidence()))
    };
    let node = |name: &str| up.nodes.iter().find(|n| n.name == name).unwrap().clone();
    let worker = node("worker0");
    let control = node("control0");

    // control0 carries upstream's control-plane taint; a plain pod pinned to it stays Pending.
    let taints = ctl(
        cl.jsonpath(
            &["get", "node", "control0"],
            "{range .spec.taints[*]}{.key}={.effect} {end}",
        ),
        &cl,
    );
    assert!(
        taints.contains("node-role.kubernetes.io/control-plane=NoSchedule"),
        "control0's taints are {taints:?}, not node-role.kubernetes.io/control-plane:NoSchedule\n{}",
        cl.evidence()
    );
    cl.apply(&pod(
        "plain-on-control0",
        Some("control0"),
        false,
        false,
        SLEEP,
    ));
    // A pod on worker0 (plain: the scheduler may only pick worker0) serving HTTP.
    cl.apply(&pod("web", None, false, false, WEB));
    let (web_node, web_ip) = cl.wait("pod web Running", Duration::from_secs(240), || {
        cl.pod_running("web")
    });
    clock.lap("first pod Running");
    assert_eq!(web_node, "worker0", "{}", cl.evidence());
    let web_addr: Ipv4Addr = web_ip.parse().unwrap();
    assert!(
        worker.pod_cidr.contains(&web_addr),
        "pod web has {web_ip}, outside worker0's pod CIDR {}\n{}",
        worker.pod_cidr,
        cl.evidence()
    );
    let why = cl.wait(
        "plain-on-control0 reported unschedulable",
        Duration::from_secs(60),
        || {
            let r = cl.jsonpath(
                &["get", "pod", "plain-on-control0"],
                "{.status.phase} {.status.conditions[?(@.type==\"PodScheduled\")].message}",
            )?;
            if r.starts_with("Pending ") && r.contains("untolerated taint") {
                Ok(r)
            } else {
                Err(r)
            }
        },
    );
    // The scheduler's message counts the nodes (kube-scheduler 1.34 does not name the key);
    // the only taint control0 has is the control-plane one, asserted above.
    eprintln!("cluster: plain-on-control0 stays {why}");

    // kubectl logs and exec (kube-apiserver → kubelet, authorized by the RBAC step).
    let logs = cl.wait("kubectl logs web", Duration::from_secs(60), || {
        cl.kubectl(&["logs", "web"])
            .and_then(|l| l.contains("web-started").then_some(l.clone()).ok_or(l))
    });
    assert!(logs.contains("web-started"));
    let hello = ctl(
        cl.exec("web", &["/bin/busybox", "cat", "/www/index.html"]),
        &cl,
    );
    assert_eq!(hello.trim(), "nf-hello-from-web", "{}", cl.evidence());

    // A pod on control0 (tolerating the taint) reaches worker0's pod over the seed's routes.
    cl.apply(&pod("client", Some("control0"), true, false, SLEEP));
    let (client_node, client_ip) = cl.wait("pod client Running", Duration::from_secs(180), || {
        cl.pod_running("client")
    });
    assert_eq!(client_node, "control0");
    assert!(
        control
            .pod_cidr
            .contains(&client_ip.parse::<Ipv4Addr>().unwrap()),
        "pod client has {client_ip}, outside control0's pod CIDR {}",
        control.pod_cidr
    );
    let got = cl.wait(
        "client → web across nodes",
        Duration::from_secs(60),
        || http_get(&cl, "client", &web_ip, 8080),
    );
    assert!(got.contains("nf-hello-from-web"), "{got}");
    clock.lap("pods on both nodes, logs, exec, cross-node traffic");

    // A ClusterIP Service, through kube-proxy's iptables rules.
    cl.apply(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  \
         ports:\n  - port: 80\n    targetPort: 8080\n",
    );
    let cluster_ip = ctl(
        cl.jsonpath(&["get", "svc", "web"], "{.spec.clusterIP}"),
        &cl,
    );
    let got = cl.wait("client → Service web", Duration::from_secs(90), || {
        http_get(&cl, "client", &cluster_ip, 80)
    });
    assert!(got.contains("nf-hello-from-web"), "{got}");

    // On the node itself: its iptables has kube-proxy's rule for the Service, and the image's
    // crictl lists the containers.
    cl.apply(&pod("shell-worker0", Some("worker0"), false, true, SLEEP));
    cl.wait(
        "pod shell-worker0 Running",
        Duration::from_secs(120),
        || cl.pod_running("shell-worker0"),
    );
    let on_node = |cmd: &[&str]| cl.on_node("shell-worker0", cmd);
    let nat = ctl(on_node(&["/usr/sbin/iptables-save", "-t", "nat"]), &cl);
    assert!(
        nat.lines().any(|l| l.starts_with("-A KUBE-SERVICES")
            && l.contains(&format!("-d {cluster_ip}/32"))
            && l.contains("default/web")),
        "worker0's nat table has no KUBE-SERVICES rule for {cluster_ip}:\n{nat}"
    );
    let ps = ctl(
        on_node(&[
            "/usr/local/bin/crictl",
            "--runtime-endpoint",
            "unix:///run/containerd/containerd.sock",
            "ps",
        ]),
        &cl,
    );
    for c in ["web", "shell-worker0"] {
        assert!(
            ps.lines().any(|l| l.contains("main") && l.contains(c)),
            "`crictl ps` on worker0 does not list pod {c}'s container:\n{ps}"
        );
    }
    let kubelet_cmd = ctl(
        on_node(&["/usr/bin/ps", "-o", "args=", "-C", "kubelet"]),
        &cl,
    );
    assert!(
        kubelet_cmd.contains("--v=3"),
        "generation 2's kubelet: {kubelet_cmd}"
    );
    clock.lap("Service, iptables, crictl");

    // Rollback: worker0 reboots into generation 1 and comes back Ready, running pods.
    let boot_before = ctl(cl.node_ready("worker0"), &cl);
    let rb = nf(&up.dir, &["rollback", "worker0"]);
    assert_eq!(
        std::fs::canonicalize(up.dir.join("out/nodes/worker0/current")).unwrap(),
        up.gen1,
        "{rb}"
    );
    assert_ne!(up.gen1, up.gen2);
    cl.vms[1].stop();
    let wb = &up.worker_boot;
    let vm = boot(
        &Boot {
            project: &up.dir,
            node: &worker,
            disk: &wb.base,
            secrets: &wb.secrets,
            lan: wb.lan,
            api_port: None,
            memory_mb: 1536,
        },
        &wb.initrd,
        &up.dir.join("vm/worker0"),
    );
    cl.vms[1] = vm;
    clock.lap("rollback, worker0 restarted");
    cl.wait(
        "worker0 Ready again after the reboot",
        Duration::from_secs(300),
        || {
            let b = cl.node_ready("worker0")?;
            if b == boot_before {
                Err(format!("bootID still {b}"))
            } else {
                Ok(b)
            }
        },
    );
    clock.lap("worker0 Ready on generation 1");
    let _ = cl.kubectl(&["delete", "pod", "shell-worker0", "--wait=false"]);
    cl.apply(&pod("after-rollback", Some("worker0"), false, true, SLEEP));
    cl.wait(
        "pod after-rollback Running",
        Duration::from_secs(180),
        || cl.pod_running("after-rollback"),
    );
    let on_node = |cmd: &[&str]| cl.on_node("after-rollback", cmd);
    let kubelet_cmd = ctl(
        on_node(&["/usr/bin/ps", "-o", "args=", "-C", "kubelet"]),
        &cl,
    );
    assert!(
        kubelet_cmd.contains("--v=2"),
        "after the rollback worker0's kubelet is not generation 1's (--v=2): {kubelet_cmd}"
    );
    let cmdline = ctl(on_node(&["/usr/bin/cat", "/proc/cmdline"]), &cl);
    let g1 = crate::vmkit::layers(&up.gen1);
    assert!(
        cmdline.contains(&format!("nodeforge.config={}", g1.config)),
        "worker0 did not boot generation 1's config layer: {cmdline}"
    );
    clock.lap("pod after rollback");
    eprintln!("cluster: {}", clock.summary());
}

/// `make cluster`: the test's bring-up, left running in `$NODEFORGE_CLUSTER_DIR` (default
/// out/cluster) for a person to look at. Stop it with `make cluster-down`.
#[test]
#[ignore = "make cluster: brings a cluster up and leaves it running"]
fn cluster_up_for_a_person() {
    assert!(tools_present(), "missing tools (above)");
    let dir = std::env::var_os("NODEFORGE_CLUSTER_DIR")
        .map_or_else(|| Path::new(REPO).join("out/cluster"), PathBuf::from);
    for pid in pidfiles(&dir) {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = std::fs::canonicalize(&dir).unwrap();
    let mut clock = Clock::new();
    let up = bring_up(&dir, &mut clock, true);
    let cl = &up.cluster;
    eprintln!(
        "\ncluster: up in {:.0}s. Both nodes are Ready:\n{}\n\
         export KUBECONFIG={}\n{} get nodes -o wide\n\
         consoles: {}/vm/*/console.log; stop it: make cluster-down",
        clock.start.elapsed().as_secs_f64(),
        cl.kubectl(&["get", "nodes", "-o", "wide"])
            .unwrap_or_else(|e| e),
        cl.kubeconfig.display(),
        cl.kubectl.display(),
        dir.display()
    );
}

/// The QEMU processes of a `make cluster` directory.
fn pidfiles(dir: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(dir.join("vm")) else {
        return Vec::new();
    };
    rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("qemu.pid")).ok())
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}
