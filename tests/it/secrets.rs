//! Each node's secrets (`[[secrets]]`): `secrets check` against files made with openssl as the
//! README's Secrets section makes them, each refusal with its message; delivery by `show --boot
//! --secrets` (fw_cfg, libvirt) and `secrets user-data` (cloud-init); and that nothing of the
//! secrets directory reaches out/, the store, an image, an OCI layout export or an SBOM. The VM
//! test (systemd_vm.rs) boots a node with them.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use std::sync::OnceLock;

use crate::{Run, TestContext};

/// The default manifest's nodes and addresses.
pub const NODES: &[(&str, &str)] = &[
    ("control0", "192.168.1.11"),
    ("control1", "192.168.1.12"),
    ("control2", "192.168.1.13"),
    ("worker0", "192.168.1.14"),
    ("worker1", "192.168.1.15"),
    ("worker2", "192.168.1.16"),
];

pub const SERVER: &str = "https://kubernetes.kubenet:6443";

#[track_caller]
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The key algorithm of a certificate's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rsa,
    P256,
    Ed25519,
}

fn genkey(dir: &Path, out: &str, alg: Alg) {
    match alg {
        Alg::Rsa => openssl(dir, &["genrsa", "-out", out, "2048"]),
        Alg::P256 => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                out,
            ],
        ),
        Alg::Ed25519 => openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", out]),
    }
}

/// A cluster CA: `ca.pem` (copied into secrets directories) and `ca-key.pem`, kept in `ca_dir`
/// (never in a secrets directory).
pub fn make_ca(ca_dir: &Path, cn: &str, alg: Alg) {
    std::fs::create_dir_all(ca_dir).unwrap();
    genkey(ca_dir, "ca-key.pem", alg);
    openssl(
        ca_dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca-key.pem",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            "ca.pem",
        ],
    );
}

/// How to issue one certificate.
pub struct Issue<'a> {
    pub name: &'a str,
    pub subj: String,
    pub san: Option<String>,
    pub alg: Alg,
    /// Issued by `openssl ca` with validity in 2020 (expired).
    pub expired: bool,
}

/// `<name>.pem` and `<name>-key.pem` in `out`, issued by the CA of `ca_dir` (which is only
/// read: openssl picks a random serial, so tests can share one CA).
pub fn issue(ca_dir: &Path, out: &Path, i: &Issue<'_>) {
    let name = i.name;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    genkey(w, "key.pem", i.alg);
    openssl(
        w,
        &[
            "req", "-new", "-key", "key.pem", "-subj", &i.subj, "-out", "csr",
        ],
    );
    let mut ext =
        String::from("extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n");
    if let Some(san) = &i.san {
        ext.push_str(&format!("subjectAltName={san}\n"));
    }
    std::fs::write(w.join("ext"), &ext).unwrap();
    let ca = |f: &str| ca_dir.join(f).to_str().unwrap().to_string();
    if i.expired {
        std::fs::write(
            w.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index\nnew_certs_dir = .\nserial = serial\n\
             default_md = sha256\npolicy = p\n[p]\ncommonName = supplied\norganizationName = optional\n",
        )
        .unwrap();
        std::fs::write(w.join("index"), "").unwrap();
        std::fs::write(w.join("serial"), "1000\n").unwrap();
        openssl(
            w,
            &[
                "ca",
                "-batch",
                "-notext",
                "-config",
                "ca.cnf",
                "-cert",
                &ca("ca.pem"),
                "-keyfile",
                &ca("ca-key.pem"),
                "-in",
                "csr",
                "-out",
                "cert.pem",
                "-extfile",
                "ext",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20210101000000Z",
            ],
        );
    } else {
        openssl(
            w,
            &[
                "x509",
                "-req",
                "-in",
                "csr",
                "-CA",
                &ca("ca.pem"),
                "-CAkey",
                &ca("ca-key.pem"),
                "-days",
                "365",
                "-sha256",
                "-extfile",
                "ext",
                "-out",
                "cert.pem",
            ],
        );
    }
    std::fs::copy(w.join("cert.pem"), out.join(format!("{name}.pem"))).unwrap();
    std::fs::copy(w.join("key.pem"), out.join(format!("{name}-key.pem"))).unwrap();
}

/// A kubeconfig as `kubectl config set-cluster/set-credentials/set-context --embed-certs=true`
/// writes it.
pub fn kubeconfig(path: &Path, ca: &Path, cert: &Path, key: &Path, user: &str) {
    let b64 =
        |p: &Path| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap());
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {SERVER}\n  name: kubenet\n\
             contexts:\n- context:\n    cluster: kubenet\n    user: {user}\n  name: default\ncurrent-context: default\n\
             kind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(ca),
            b64(cert),
            b64(key)
        ),
    )
    .unwrap();
}

/// Every file of `dir` readable by its owner only (`chmod -R go= DIR`).
pub fn owner_only(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// A good secrets directory for `nodes` (name, address) of the default manifest, with the CA's
/// key in `ca_dir`: `ca.pem`, `<node>.pem`, `<node>-key.pem`, `<node>.kubeconfig`,
/// `kube-proxy.kubeconfig`. `alg` picks each node's key algorithm.
pub fn make_secrets(ca_dir: &Path, dir: &Path, nodes: &[(&str, &str)], alg: impl Fn(&str) -> Alg) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(ca_dir.join("ca.pem"), dir.join("ca.pem")).unwrap();
    let ca = dir.join("ca.pem");
    for (node, ip) in nodes {
        issue(
            ca_dir,
            dir,
            &Issue {
                name: node,
                subj: format!("/CN=system:node:{node}/O=system:nodes"),
                san: Some(format!("DNS:{node},IP:{ip}")),
                alg: alg(node),
                expired: false,
            },
        );
        kubeconfig(
            &dir.join(format!("{node}.kubeconfig")),
            &ca,
            &dir.join(format!("{node}.pem")),
            &dir.join(format!("{node}-key.pem")),
            &format!("system:node:{node}"),
        );
    }
    let scratch = tempfile::tempdir().unwrap();
    issue(
        ca_dir,
        scratch.path(),
        &Issue {
            name: "kube-proxy",
            subj: "/CN=system:kube-proxy/O=system:node-proxier".into(),
            san: None,
            alg: Alg::Rsa,
            expired: false,
        },
    );
    kubeconfig(
        &dir.join("kube-proxy.kubeconfig"),
        &ca,
        &scratch.path().join("kube-proxy.pem"),
        &scratch.path().join("kube-proxy-key.pem"),
        "system:kube-proxy",
    );
    owner_only(dir);
}

/// The nodes' key algorithms in the shared good set: RSA, ECDSA P-256 and Ed25519 all appear.
pub fn mixed_algorithms(node: &str) -> Alg {
    match node {
        "worker0" => Alg::P256,
        "worker1" => Alg::Ed25519,
        _ => Alg::Rsa,
    }
}

/// One good secrets directory (and its CA) for the default manifest's nodes, made once per test
/// run: each test copies it.
fn shared() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static SHARED: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let t = tempfile::tempdir().unwrap();
        let ca = t.path().join("ca");
        let dir = t.path().join("secrets");
        make_ca(&ca, "kubenet-ca", Alg::Rsa);
        make_secrets(&ca, &dir, NODES, mixed_algorithms);
        (t, ca, dir)
    })
}

/// A project (default manifest) with a good secrets directory `secrets/` for every node, outside
/// `out/` and the template tree; `ca` is the CA's directory (with its key), shared and read only.
pub struct Secrets {
    pub ctx: TestContext,
    pub ca: PathBuf,
    pub dir: PathBuf,
}

impl Secrets {
    pub fn new() -> Self {
        Self::with(TestContext::new())
    }

    pub fn with(ctx: TestContext) -> Self {
        let (_, ca, good) = shared();
        let dir = ctx.path().join("secrets");
        crate::copy_tree(good, &dir);
        owner_only(&dir);
        Self {
            ctx,
            ca: ca.clone(),
            dir,
        }
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }

    /// `dir`, as the messages print it.
    pub fn shown(&self, f: &str) -> String {
        self.path(f).display().to_string()
    }

    pub fn check(&self, extra: &[&str]) -> Run {
        let mut args = vec!["secrets", "check", "--secrets", self.dir.to_str().unwrap()];
        args.extend(extra);
        self.ctx.run(&args)
    }

    /// Issue `node`'s kubelet certificate again (its kubeconfig too), as `i` says.
    pub fn reissue(&self, i: &Issue<'_>) {
        issue(&self.ca, &self.dir, i);
        let n = i.name;
        kubeconfig(
            &self.path(&format!("{n}.kubeconfig")),
            &self.path("ca.pem"),
            &self.path(&format!("{n}.pem")),
            &self.path(&format!("{n}-key.pem")),
            &format!("system:node:{n}"),
        );
        owner_only(&self.dir);
    }
}

fn requires_openssl() -> bool {
    crate::requires("openssl", "openssl")
}

/// The `error:` lines of a run, each with its `hint:` lines.
fn errors(r: &Run) -> Vec<String> {
    r.stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect()
}

#[track_caller]
fn refused(r: Run, lines: &[String]) -> Run {
    let r = r.fails();
    let got = errors(&r);
    for l in lines {
        assert!(
            got.contains(l),
            "missing error line\n  {l}\nin:\n{}",
            r.stderr
        );
    }
    assert_eq!(
        got.len(),
        lines.len(),
        "other error lines than expected:\n{}",
        r.stderr
    );
    r
}

#[test]
fn a_good_set_passes_with_rsa_p256_and_ed25519_keys() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    let r = s.check(&[]).ok();
    assert_eq!(
        r.stdout.trim(),
        format!(
            "secrets ok: 6 nodes, 30 files in {}: 0 errors, 0 warnings",
            s.dir.display()
        )
    );
    assert_eq!(r.stderr, "");
    // --node picks nodes; a mistyped one is named with a suggestion.
    let r = s.check(&["--node", "worker1", "--json"]).ok();
    let v = r.json();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    let files = v["nodes"][0]["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "ca.pem",
            "kubelet.pem",
            "kubelet-key.pem",
            "kubelet.kubeconfig",
            "kube-proxy.kubeconfig"
        ]
    );
    assert_eq!(files[1]["to"], "/var/lib/kubelet/worker1.pem");
    assert_eq!(files[1]["file"], s.shown("worker1.pem"));
    assert_eq!(files[2]["mode"], 0o600);
    assert!(files[1]["not_after"].as_str().unwrap().ends_with('Z'));
    s.check(&["--node", "worker9"])
        .fails()
        .stderr_has("`worker9` is not a node of kubenet.toml; did you mean worker0?");
}

#[test]
fn a_p256_ca_signs_too() {
    if !requires_openssl() {
        return;
    }
    let ctx = TestContext::new();
    let (ca, dir) = (ctx.path().join("ca"), ctx.path().join("secrets"));
    make_ca(&ca, "kubenet-p256-ca", Alg::P256);
    make_secrets(&ca, &dir, &NODES[3..5], |n| {
        if n == "worker0" {
            Alg::Rsa
        } else {
            Alg::P256
        }
    });
    let d = dir.to_str().unwrap();
    ctx.run(&[
        "secrets",
        "check",
        "--secrets",
        d,
        "--node",
        "worker0",
        "--node",
        "worker1",
    ])
    .ok();
    // A certificate of the right name, signed by another key, does not pass.
    let other = ctx.path().join("impostor");
    make_ca(&other, "kubenet-p256-ca", Alg::P256);
    issue(
        &other,
        &dir,
        &Issue {
            name: "worker1",
            subj: "/CN=system:node:worker1/O=system:nodes".into(),
            san: Some("DNS:worker1,IP:192.168.1.15".into()),
            alg: Alg::P256,
            expired: false,
        },
    );
    owner_only(&dir);
    let r = ctx.run(&["secrets", "check", "--secrets", d, "--node", "worker1"]);
    refused(
        r,
        &[format!(
            "error: worker1: kubelet.pem ({d}/worker1.pem): signature: CN=system:node:worker1, O=system:nodes: its signature does not verify with the key of the CA `ca.pem` (CN=kubenet-p256-ca): another CA of that name issued it"
        )],
    );
}

#[test]
fn check_refuses_a_missing_file() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    std::fs::remove_file(s.path("worker1.kubeconfig")).unwrap();
    let r = refused(
        s.check(&[]),
        &[format!(
            "error: worker1: kubelet.kubeconfig ({}): file: missing",
            s.shown("worker1.kubeconfig")
        )],
    );
    assert!(
        r.stderr.contains("hint: put the node's file there"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout
            .starts_with("secrets check FAILED: 6 nodes, 30 files in "),
        "{}",
        r.stdout
    );
}

#[test]
fn check_refuses_a_swapped_key() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    std::fs::copy(s.path("control1-key.pem"), s.path("control0-key.pem")).unwrap();
    refused(
        s.check(&[]),
        &[format!(
            "error: control0: kubelet-key.pem ({}): public key: is not the key of `kubelet.pem` ({}): their public keys differ (RSA key vs RSA certificate CN=system:node:control0, O=system:nodes)",
            s.shown("control0-key.pem"),
            s.shown("control0.pem")
        )],
    );
}

#[test]
fn check_refuses_a_certificate_for_another_node() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    // worker2's certificate and key as worker1's (they match each other, so only the names fail).
    std::fs::copy(s.path("worker2.pem"), s.path("worker1.pem")).unwrap();
    std::fs::copy(s.path("worker2-key.pem"), s.path("worker1-key.pem")).unwrap();
    let f = s.shown("worker1.pem");
    refused(
        s.check(&["--node", "worker1"]),
        &[
            format!("error: worker1: kubelet.pem ({f}): subject: CN is `system:node:worker2`, not `system:node:worker1`"),
            format!("error: worker1: kubelet.pem ({f}): subjectAltName: lacks DNS:worker1, IP:192.168.1.15 (has DNS:worker2, IP:192.168.1.16)"),
        ],
    )
    .stderr_has("hint: the Node authorizer knows a kubelet by CN=system:node:<node name> and O=system:nodes; issue this node's certificate with -subj \"/CN=system:node:worker1/O=system:nodes\"");
}

#[test]
fn check_refuses_a_client_certificate_without_o_system_nodes() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    s.reissue(&Issue {
        name: "worker0",
        subj: "/CN=system:node:worker0".into(),
        san: Some("DNS:worker0,IP:192.168.1.14".into()),
        alg: Alg::P256,
        expired: false,
    });
    refused(
        s.check(&[]),
        &[
            format!(
                "error: worker0: kubelet.pem ({}): subject: O lacks `system:nodes` (has no O)",
                s.shown("worker0.pem")
            ),
            format!(
                "error: worker0: kubelet.kubeconfig ({}): users[system:node:worker0].user.client-certificate-data subject: O lacks `system:nodes` (has no O)",
                s.shown("worker0.kubeconfig")
            ),
        ],
    )
    .stderr_has("(the Node authorizer requires system:nodes)");
}

#[test]
fn check_refuses_an_expired_certificate() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    s.reissue(&Issue {
        name: "control2",
        subj: "/CN=system:node:control2/O=system:nodes".into(),
        san: Some("DNS:control2,IP:192.168.1.13".into()),
        alg: Alg::Ed25519,
        expired: true,
    });
    refused(
        s.check(&[]),
        &[
            format!(
                "error: control2: kubelet.pem ({}): notAfter: CN=system:node:control2, O=system:nodes: expired on 2021-01-01T00:00:00Z",
                s.shown("control2.pem")
            ),
            format!(
                "error: control2: kubelet.kubeconfig ({}): users[system:node:control2].user.client-certificate-data notAfter: CN=system:node:control2, O=system:nodes: expired on 2021-01-01T00:00:00Z",
                s.shown("control2.kubeconfig")
            ),
        ],
    );
}

#[test]
fn check_refuses_a_kubeconfig_whose_ca_is_another() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    let other = s.ctx.path().join("other-ca");
    make_ca(&other, "other-ca", Alg::P256);
    kubeconfig(
        &s.path("kube-proxy.kubeconfig"),
        &other.join("ca.pem"),
        &s.path("worker2.pem"),
        &s.path("worker2-key.pem"),
        "system:kube-proxy",
    );
    owner_only(&s.dir);
    let r = refused(
        s.check(&[]),
        &[
            format!(
                "error: control0, control1, control2 and 3 more nodes: kube-proxy.kubeconfig ({}): clusters[kubenet].cluster.certificate-authority-data: is another CA (CN=other-ca), not `ca.pem` (CN=kubenet-ca)",
                s.shown("kube-proxy.kubeconfig")
            ),
            // The client certificate put in it is worker2's, not kube-proxy's.
            format!(
                "error: control0, control1, control2 and 3 more nodes: kube-proxy.kubeconfig ({}): users[system:kube-proxy].user.client-certificate-data subject: CN is `system:node:worker2`, not `system:kube-proxy`",
                s.shown("kube-proxy.kubeconfig")
            ),
        ],
    );
    // One problem of a file many nodes share is one finding naming them all.
    let v = s.check(&["--json"]).fails().json();
    assert_eq!(
        v["problems"][0]["nodes"].as_array().unwrap().len(),
        6,
        "{v}"
    );
    drop(r);
}

#[test]
fn check_refuses_files_group_or_others_can_read() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    for (f, mode) in [("worker1-key.pem", 0o640), ("ca.pem", 0o604)] {
        std::fs::set_permissions(s.path(f), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    refused(
        s.check(&["--node", "worker1"]),
        &[
            format!("error: worker1: ca.pem ({}): mode: 0604: group or others can read it; a secret is readable only by its owner", s.shown("ca.pem")),
            format!("error: worker1: kubelet-key.pem ({}): mode: 0640: group or others can read it; a secret is readable only by its owner", s.shown("worker1-key.pem")),
        ],
    )
    .stderr_has(&format!("hint: chmod 600 {}", s.shown("ca.pem")));
}

#[test]
fn a_certificate_expiring_within_the_margin_is_a_warning() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    // The node certificates are valid for 365 days, the CA for 3650.
    let r = s
        .check(&["--node", "worker0", "--expiry-margin", "400d"])
        .ok();
    assert!(!r.stderr.contains("error:"), "{}", r.stderr);
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 3, "{}", r.stderr);
    assert!(
        warnings[0].starts_with(&format!(
            "warning: worker0: kubelet.pem ({}): notAfter: CN=system:node:worker0, O=system:nodes: expires on "
        , s.shown("worker0.pem"))) && warnings[0].ends_with("(within --expiry-margin 400d)"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains(": 0 errors, 3 warnings"), "{}", r.stdout);
    s.check(&["--expiry-margin", "3 days"])
        .fails()
        .stderr_has("error: --expiry-margin: `3 days` is not a duration (like 30d, 12h, 2w: a number and s, m, h, d or w)");
}

#[test]
fn check_json_report() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    std::fs::remove_file(s.path("worker2-key.pem")).unwrap();
    let r = s.check(&["--json"]).fails();
    let v = r.json();
    assert_eq!(v["kind"], "secrets-check-report");
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"], 1);
    assert_eq!(v["warnings"], 0);
    assert_eq!(v["secrets"], s.dir.to_str().unwrap());
    let p = &v["problems"][0];
    let mut keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["field", "file", "hint", "message", "nodes", "secret", "severity"]
    );
    assert_eq!(p["severity"], "error");
    assert_eq!(p["nodes"], serde_json::json!(["worker2"]));
    assert_eq!(p["secret"], "kubelet-key.pem");
    assert_eq!(p["field"], "file");
    assert_eq!(p["message"], "missing");
    let f = &v["nodes"][0]["files"][0];
    let mut keys: Vec<&String> = f.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["file", "kind", "mode", "name", "not_after", "owner", "to"]
    );
    // The error lines are on stderr as without --json.
    assert!(
        r.stderr.contains("error: worker2: kubelet-key.pem ("),
        "{}",
        r.stderr
    );
}

#[test]
fn a_secrets_directory_inside_out_or_the_template_tree_is_refused() {
    if !requires_openssl() {
        return;
    }
    let s = Secrets::new();
    for inside in ["out/secrets", "manifests/kubenet/secrets"] {
        let d = s.ctx.path().join(inside);
        crate::copy_tree(&s.dir, &d);
        let r = s
            .ctx
            .run(&["secrets", "check", "--secrets", d.to_str().unwrap()])
            .fails();
        assert!(
            r.stderr
                .contains(&format!("error: --secrets {}: is inside ", d.display()))
                && r.stderr.contains("secrets must live elsewhere"),
            "{}",
            r.stderr
        );
    }
    s.ctx
        .run(&["secrets", "check", "--secrets", "nosuch"])
        .fails()
        .stderr_has("error: --secrets nosuch: no such directory");
}

/// A built project (stand-in artifacts) with a good secrets directory.
fn built_with_secrets() -> Secrets {
    Secrets::with(crate::built())
}

#[test]
fn show_boot_passes_each_secret_as_a_systemd_credential() {
    if !requires_openssl() {
        return;
    }
    let s = built_with_secrets();
    let d = s.dir.to_str().unwrap();
    let r = s
        .ctx
        .run(&["show", "worker1", "--boot", "--secrets", d, "--json"])
        .ok();
    let v = r.json();
    let qemu: Vec<&str> = v["qemu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    // Every disk of `show --boot` still, then one -fw_cfg per secret, naming the file.
    assert!(qemu.contains(&"virtio-blk-pci,drive=nf0,serial=nf-payload"));
    let fw: Vec<&str> = qemu
        .windows(2)
        .filter(|w| w[0] == "-fw_cfg")
        .map(|w| w[1])
        .collect();
    assert_eq!(
        fw,
        [
            format!("name=opt/io.systemd.credentials/ca.pem,file={d}/ca.pem"),
            format!("name=opt/io.systemd.credentials/kubelet.pem,file={d}/worker1.pem"),
            format!("name=opt/io.systemd.credentials/kubelet-key.pem,file={d}/worker1-key.pem"),
            format!("name=opt/io.systemd.credentials/kubelet.kubeconfig,file={d}/worker1.kubeconfig"),
            format!("name=opt/io.systemd.credentials/kube-proxy.kubeconfig,file={d}/kube-proxy.kubeconfig"),
        ]
    );
    let creds = v["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 5);
    assert_eq!(creds[2]["to"], "/var/lib/kubelet/worker1-key.pem");
    assert_eq!(creds[2]["mode"], 0o600);
    assert_eq!(creds[2]["owner"], "root:root");
    let xml = v["libvirt_sysinfo"].as_str().unwrap();
    assert!(
        xml.contains(&format!(
            "<entry name='opt/io.systemd.credentials/kubelet.kubeconfig' file='{d}/worker1.kubeconfig'/>"
        )),
        "{xml}"
    );
    // The text output lists them, the libvirt block too.
    let r = s
        .ctx
        .run(&["show", "worker1", "--boot", "--secrets", d])
        .ok();
    assert!(r.stdout.contains(&format!(
        "  kubelet-key.pem          {d}/worker1-key.pem -> /var/lib/kubelet/worker1-key.pem (0600 root:root)"
    )), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("libvirt (inside <domain>; libvirt 6.5+):\n  <sysinfo type='fwcfg'>\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "-fw_cfg name=opt/io.systemd.credentials/ca.pem,file={d}/ca.pem"
        )),
        "{}",
        r.stdout
    );
    // Without --secrets: no credentials.
    let v = s
        .ctx
        .run(&["show", "worker1", "--boot", "--json"])
        .ok()
        .json();
    assert_eq!(v["credentials"], serde_json::json!([]));
    assert_eq!(v["libvirt_sysinfo"], serde_json::Value::Null);
    // Secrets that do not pass the check: refused, nothing printed on stdout.
    std::fs::copy(s.path("worker2.pem"), s.path("worker1.pem")).unwrap();
    let r = s
        .ctx
        .run(&["show", "worker1", "--boot", "--secrets", d])
        .fails();
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.starts_with(&format!(
            "error: worker1: kubelet.pem ({d}/worker1.pem): subject: CN is `system:node:worker2`, not `system:node:worker1`\n"
        )),
        "{}",
        r.stderr
    );
    // Other nodes' files are not its business.
    s.ctx
        .run(&["show", "worker0", "--boot", "--secrets", d])
        .ok();
}

#[test]
fn user_data_writes_a_cloud_config_with_modes_and_owners() {
    if !requires_openssl() {
        return;
    }
    use saphyr::{LoadableYamlNode, Yaml};
    let s = Secrets::new();
    let d = s.dir.to_str().unwrap();
    let out = s.ctx.path().join("worker1.user-data");
    let o = out.to_str().unwrap();
    let r = s
        .ctx
        .run(&["secrets", "user-data", "worker1", "--secrets", d, "-o", o])
        .ok();
    assert!(
        r.stdout.starts_with(&format!(
            "wrote {o} (mode 0600): 5 files for node worker1 ("
        )),
        "{}",
        r.stdout
    );
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("#cloud-config\n"));
    let docs = Yaml::load_from_str(&text).unwrap();
    let files = docs[0]
        .as_mapping_get("write_files")
        .unwrap()
        .as_sequence()
        .unwrap();
    let want = [
        ("/var/lib/kubernetes/ca.pem", "0644", "ca.pem"),
        ("/var/lib/kubelet/worker1.pem", "0644", "worker1.pem"),
        (
            "/var/lib/kubelet/worker1-key.pem",
            "0600",
            "worker1-key.pem",
        ),
        ("/var/lib/kubelet/kubeconfig", "0600", "worker1.kubeconfig"),
        (
            "/var/lib/kube-proxy/kubeconfig",
            "0600",
            "kube-proxy.kubeconfig",
        ),
    ];
    assert_eq!(files.len(), want.len());
    for (f, (path, mode, from)) in files.iter().zip(want) {
        let get = |k: &str| {
            f.as_mapping_get(k)
                .and_then(Yaml::as_str)
                .unwrap()
                .to_string()
        };
        assert_eq!(get("path"), path);
        assert_eq!(get("permissions"), mode);
        assert_eq!(get("owner"), "root:root");
        assert_eq!(get("encoding"), "b64");
        let content = base64::engine::general_purpose::STANDARD
            .decode(get("content"))
            .unwrap();
        assert_eq!(content, std::fs::read(s.path(from)).unwrap(), "{path}");
    }
    // Without -o: the cloud-config on stdout; --json wants -o.
    let r = s
        .ctx
        .run(&["secrets", "user-data", "worker1", "--secrets", d])
        .ok();
    assert_eq!(r.stdout, text);
    s.ctx
        .run(&["secrets", "user-data", "worker1", "--secrets", d, "--json"])
        .fails()
        .stderr_has("--json needs -o FILE");
    let v = s
        .ctx
        .run(&[
            "secrets",
            "user-data",
            "worker1",
            "--secrets",
            d,
            "-o",
            o,
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(v["kind"], "secrets-user-data-report");
    assert_eq!(v["files"][2]["path"], "/var/lib/kubelet/worker1-key.pem");
    assert_eq!(v["files"][2]["permissions"], "0600");
    // Never into out/, the template tree or the secrets directory; never after a failed check.
    for bad in ["out/u", "manifests/kubenet/etc/u", "secrets/u"] {
        let p = s.ctx.path().join(bad);
        let r = s
            .ctx
            .run(&[
                "secrets",
                "user-data",
                "worker1",
                "--secrets",
                d,
                "-o",
                p.to_str().unwrap(),
            ])
            .fails();
        assert!(
            r.stderr
                .contains(&format!("error: -o {}: is inside ", p.display())),
            "{}",
            r.stderr
        );
        assert!(!p.exists());
    }
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(s.path("worker1-key.pem")).unwrap();
    s.ctx
        .run(&["secrets", "user-data", "worker1", "--secrets", d, "-o", o])
        .fails()
        .stderr_has(&format!(
            "error: worker1: kubelet-key.pem ({d}/worker1-key.pem): file: missing"
        ));
    assert!(!out.exists(), "a refused check writes nothing");
}

/// Slices of every file of `dir` that would show if it were copied anywhere: a stretch of its
/// bytes, of its PEM bodies decoded (DER), and of its base64 (as cloud-init or a kubeconfig
/// carries it).
fn markers(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        out.push((format!("{name} bytes"), bytes[mid..mid + 40].to_vec()));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let m = b64.len() / 2;
        out.push((format!("{name} base64"), b64.as_bytes()[m..m + 40].to_vec()));
        let text = String::from_utf8_lossy(&bytes);
        for (i, block) in text.split("-----BEGIN ").skip(1).enumerate() {
            let body: String = block
                .lines()
                .skip(1)
                .take_while(|l| !l.starts_with("-----END"))
                .collect();
            if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body) {
                // The second half's first 24 bytes: key material in every algorithm (an
                // Ed25519 key's DER is 48 bytes, its seed the last 32).
                let m = der.len() / 2;
                out.push((
                    format!("{name} block {i} DER"),
                    der[m..m + m.min(24)].to_vec(),
                ));
            }
        }
    }
    out
}

/// Every regular file below `root` (or `root` itself), not following symlinks.
fn files_below(root: &Path) -> Vec<PathBuf> {
    if root.is_file() {
        return vec![root.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// Which marker of `markers` occurs in which file below each of `roots`.
pub fn leaks(secrets: &Path, roots: &[&Path]) -> Vec<String> {
    let m = markers(secrets);
    let mut found = Vec::new();
    let longest = m.iter().map(|(_, n)| n.len()).max().unwrap_or(0);
    for root in roots {
        for f in files_below(root) {
            // In chunks (a VM's disk image is gigabytes), each searched with the end of the
            // one before it, so that a marker across a chunk boundary is found too.
            use std::io::Read as _;
            let mut file = std::fs::File::open(&f).unwrap();
            let mut buf = vec![0u8; 16 << 20];
            let mut carry: Vec<u8> = Vec::new();
            let mut hits: Vec<&str> = Vec::new();
            loop {
                let n = file.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                let mut window = std::mem::take(&mut carry);
                window.extend_from_slice(&buf[..n]);
                for (what, needle) in &m {
                    if !hits.contains(&what.as_str())
                        && memchr::memmem::find(&window, needle).is_some()
                    {
                        hits.push(what);
                    }
                }
                carry = window[window.len().saturating_sub(longest)..].to_vec();
            }
            found.extend(hits.iter().map(|w| format!("{w} in {}", f.display())));
        }
    }
    found
}

#[test]
fn nothing_of_the_secrets_reaches_out_the_store_an_image_an_export_or_an_sbom() {
    if !requires_openssl() {
        return;
    }
    let s = built_with_secrets();
    let d = s.dir.to_str().unwrap();
    let p = |f: &str| s.ctx.path().join(f).to_str().unwrap().to_string();
    // Everything that reads the secrets, and everything that publishes what nodeforge made.
    s.check(&[]).ok();
    for node in ["control0", "worker1"] {
        s.ctx.run(&["show", node, "--boot", "--secrets", d]).ok();
    }
    s.ctx
        .run(&[
            "secrets",
            "user-data",
            "worker1",
            "--secrets",
            d,
            "-o",
            &p("worker1.user-data"),
        ])
        .ok();
    s.ctx.net(&["build"]).ok();
    s.ctx.run(&["export", "--oci-layout", &p("layout")]).ok();
    s.ctx
        .run(&["sbom", "worker1", "-o", &p("worker1.spdx.json")])
        .ok();
    s.ctx
        .run(&[
            "sbom",
            "worker1",
            "--format",
            "cyclonedx-json",
            "-o",
            &p("worker1.cdx.json"),
        ])
        .ok();
    s.ctx
        .run(&["flatten", "worker1", "-o", &p("worker1.tar.zst")])
        .ok();
    // The markers are real: the user-data carries the files (base64), the secrets hold them.
    let m = markers(&s.dir);
    assert!(m.len() > 30, "{}", m.len());
    assert!(!leaks(&s.dir, &[&s.ctx.path().join("worker1.user-data")]).is_empty());
    assert!(!leaks(&s.dir, &[&s.dir]).is_empty());
    let out = s.ctx.path().join("out");
    let layout = s.ctx.path().join("layout");
    let found = leaks(&s.dir, &[&out, &layout]);
    assert!(found.is_empty(), "secrets found: {found:#?}");
    for f in ["worker1.spdx.json", "worker1.cdx.json", "worker1.tar.zst"] {
        let found = leaks(&s.dir, &[&s.ctx.path().join(f)]);
        assert!(found.is_empty(), "secrets found: {found:#?}");
    }
    // The image carries the placement unit (names and paths only), enabled for kubelet and
    // kube-proxy.
    let m: serde_json::Value =
        crate::whole_record(&out.join("nodes/worker1/current/manifest.json"));
    let paths: Vec<&str> = m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for p in [
        "/etc/systemd/system/nodeforge-secrets.service",
        "/etc/systemd/system/kubelet.service.wants/nodeforge-secrets.service",
        "/etc/systemd/system/kube-proxy.service.wants/nodeforge-secrets.service",
        "/etc/systemd/system/multi-user.target.wants/nodeforge-secrets.service",
    ] {
        assert!(paths.contains(&p), "{p} not in the image");
    }
}
