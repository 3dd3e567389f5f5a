//! Hostile archives, network faults and secrets: refused or safely ignored with a clear message,
//! in bounded time, with nothing stored or written outside the store.

use std::io::Write;

use crate::server::Fault;
use crate::{checksum_url_of, sha256_hex, url_of, TestContext};

/// A raw tar member: name bytes as given (no validation), type flag, mode, declared size, data.
struct Member<'a> {
    name: &'a str,
    kind: u8,
    mode: u32,
    size: Option<u64>,
    link: &'a str,
    data: &'a [u8],
}

fn member<'a>(name: &'a str, data: &'a [u8]) -> Member<'a> {
    Member {
        name,
        kind: b'0',
        mode: 0o755,
        size: None,
        link: "",
        data,
    }
}

fn raw_tar(members: &[Member<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut h = [0u8; 512];
        h[..m.name.len()].copy_from_slice(m.name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{v:0width$o}\0", width = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(m.mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, m.size.unwrap_or(m.data.len() as u64));
        octal(&mut h, 136, 12, 0);
        h[156] = m.kind;
        h[157..157 + m.link.len()].copy_from_slice(m.link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(m.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Serve `archive` as containerd's tarball (with a matching checksum), lock it, and build.
fn build_with_containerd(ctx: &TestContext, archive: &[u8]) -> crate::Run {
    let url = url_of(ctx, "containerd");
    std::fs::write(ctx.served(&url), archive).unwrap();
    let name = url.rsplit('/').next().unwrap();
    std::fs::write(
        ctx.served(&checksum_url_of(ctx, "containerd")),
        format!("{}  {name}\n", sha256_hex(archive)),
    )
    .unwrap();
    ctx.net(&["lock", "--update", "containerd"]).ok();
    ctx.net(&["build"])
}

const KEY: &[u8] = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oyrHBcYJ0fVUoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n";

#[test]
fn hostile_archives_are_refused_or_safely_ignored() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let good = member("bin/containerd", b"#!/bin/sh\necho ok\n");
    let outside = ctx.path().join("evil");
    let mut tried = 0;

    // Ignored: names that climb out or are absolute never match an install rule.
    for name in [
        "bin/../../evil",
        "../evil",
        "/evil",
        "bin/..",
        "./bin/../../../evil",
    ] {
        tried += 1;
        let r = build_with_containerd(
            &ctx,
            &gz(&raw_tar(&[
                member(name, b"#!/bin/sh\n"),
                member("bin/containerd", b"#!/bin/sh\n"),
            ])),
        )
        .ok();
        assert!(!outside.exists(), "{name}: wrote outside the store");
        assert!(!r.stdout.contains("evil"));
    }
    let refused: Vec<(Vec<u8>, &str)> = vec![
        (
            gz(&raw_tar(&[
                Member {
                    kind: b'2',
                    link: "/etc/shadow",
                    data: b"",
                    ..member("bin/ctr", b"")
                },
                member("bin/containerd", b"x"),
            ])),
            "member `bin/ctr` is a symbolic link; only regular files are installed",
        ),
        (
            gz(&raw_tar(&[Member {
                kind: b'1',
                link: "bin/containerd",
                data: b"",
                ..member("bin/ctr", b"")
            }])),
            "member `bin/ctr` is a hard link",
        ),
        (
            gz(&raw_tar(&[Member {
                kind: b'3',
                data: b"",
                ..member("bin/tty", b"")
            }])),
            "member `bin/tty` is a device node",
        ),
        (
            gz(&raw_tar(&[Member {
                mode: 0o4755,
                ..member("bin/su", b"#!/bin/sh\n")
            }])),
            "member `bin/su` has setuid, setgid or sticky bits (4755); refused",
        ),
        (
            gz(&raw_tar(&[
                member("bin/containerd", b"a"),
                member("./bin/containerd", b"b"),
            ])),
            "members `bin/containerd` and `./bin/containerd` both install to /usr/bin/containerd",
        ),
        (
            gz(&raw_tar(&[Member {
                size: Some(1 << 32),
                ..member("bin/huge", b"")
            }])),
            "member `bin/huge` declares 4294967296 bytes",
        ),
        (
            {
                let g = gz(&raw_tar(&[member("bin/containerd", &[7u8; 100_000])]));
                g[..g.len() / 2].to_vec()
            },
            "cannot read the archive",
        ),
        (
            gz(&raw_tar(&[member("bin/containerd", KEY)])),
            "member `bin/containerd` holds a private key; images never carry private keys",
        ),
        (
            gz(&raw_tar(&[member("LICENSE", b"not executable")])),
            "no executable member matches `bin/*`",
        ),
    ];
    for (archive, expect) in &refused {
        tried += 1;
        build_with_containerd(&ctx, archive)
            .fails()
            .stderr_has(expect);
    }
    // Nothing of the key reached the store.
    for (path, _) in ctx.store_objects() {
        assert!(
            nodeforge::secrets::find_private_key(&std::fs::read(&path).unwrap()).is_none(),
            "{}",
            path.display()
        );
    }
    assert!(ctx.store_tmp_is_empty());
    // And a clean archive still builds afterwards.
    build_with_containerd(&ctx, &gz(&raw_tar(&[good]))).ok();
    eprintln!("hostile archives tried: {tried}");
}

#[test]
fn a_private_key_served_as_an_artifact_is_never_stored() {
    let ctx = TestContext::new();
    let url = url_of(&ctx, "kubelet");
    let mut evil = b"#!/bin/sh\n".to_vec();
    evil.extend_from_slice(KEY);
    std::fs::write(ctx.served(&url), &evil).unwrap();
    std::fs::write(
        ctx.served(&checksum_url_of(&ctx, "kubelet")),
        format!("{}\n", sha256_hex(&evil)),
    )
    .unwrap();
    ctx.net(&["lock"]).ok();
    ctx.net(&["fetch"])
        .fails()
        .stderr_has("holds a private key; refused, nothing stored");
    assert_eq!(ctx.store_objects().len(), 5);
}

#[test]
fn network_faults_end_in_bounded_time_with_a_clear_error_and_nothing_stored() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let url = url_of(&ctx, "kubelet");
    let path = ctx.served_path(&url);
    let cases: Vec<(Fault, &str)> = vec![
        (Fault::Stall(4000), "timed out"),
        // A byte every 0.3 s never trips the 1 s read timeout; the speed limit ends it.
        (Fault::Drip(300), "too slow: "),
        (Fault::Reset, "kubelet 1.31.0 (amd64)"),
        (
            Fault::Length(100),
            "size mismatch: expected 8192 bytes, the source sent 100",
        ),
        (
            Fault::Length(100_000),
            "size mismatch: expected 8192 bytes, the server announces 100000",
        ),
        (
            Fault::Redirect(format!("{}{path}", ctx.server.url())),
            "too many redirects",
        ),
        (
            Fault::Body(b"<!doctype html><title>404</title>".to_vec()),
            "size mismatch",
        ),
        (Fault::Status(500), "HTTP status 500"),
    ];
    for (fault, expect) in cases {
        ctx.server.fault(&path, fault.clone());
        let mirror = ctx.server.url();
        ctx.run(&[
            "fetch",
            "--mirrors-only",
            "--mirror",
            &mirror,
            "--retries",
            "1",
            "--timeout",
            "1",
        ])
        .fails()
        .stderr_has(expect);
        assert!(ctx.store_tmp_is_empty(), "{fault:?}");
        assert!(!ctx
            .store_objects()
            .iter()
            .any(|(p, _)| p.ends_with("kubelet")));
        ctx.run(&["fetch", "--offline"])
            .fails()
            .stderr_has("kubelet 1.31.0 (amd64)");
    }
    ctx.server.clear_faults();
    ctx.net(&["fetch"]).ok().stdout_has("fetched 1 artifact (");
}

#[test]
fn what_an_archive_installs_in_all_is_limited() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    // Two members of 600 kB each, compressed to almost nothing: within the default limit,
    // refused with a lower one (as a gzip bomb is with the default).
    let big = vec![0u8; 600_000];
    let archive = gz(&raw_tar(&[
        member("bin/containerd", &big),
        member("bin/ctr", &big),
        member("bin/containerd-shim-runc-v2", b"#!/bin/sh\n"),
    ]));
    assert!(archive.len() < 10_000);
    build_with_containerd(&ctx, &archive).ok();
    let mirror = ctx.server.url();
    // The extraction was recorded by that build; a fresh store extracts again.
    std::fs::remove_dir_all(ctx.path().join("out")).unwrap();
    crate::run_env(
        ctx.path(),
        &["build", "--mirrors-only", "--mirror", &mirror],
        &[("NODEFORGE_MAX_INSTALL_BYTES", "1000000")],
        None,
    )
    .fails()
    .stderr_has("what it installs exceeds 1000000 bytes in all at member `bin/ctr` (set NODEFORGE_MAX_INSTALL_BYTES to allow more)");
}

/// Real keys, generated once per run with `openssl` and `ssh-keygen`: (kind, PEM, DER or the
/// OpenSSH binary).
fn real_keys() -> &'static [(&'static str, String, Vec<u8>)] {
    static KEYS: std::sync::OnceLock<Vec<(&'static str, String, Vec<u8>)>> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let run = |cmd: &str, args: &[&str]| -> Vec<u8> {
            let out = std::process::Command::new(cmd).args(args).output().unwrap();
            assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
            out.stdout
        };
        let pem = |name: &str| std::fs::read_to_string(p(name)).unwrap();
        run(
            "openssl",
            &["genrsa", "-traditional", "-out", &p("rsa"), "2048"],
        );
        run(
            "openssl",
            &["genpkey", "-algorithm", "rsa", "-out", &p("p8")],
        );
        run(
            "openssl",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &p("ec"),
            ],
        );
        run(
            "openssl",
            &[
                "pkcs8",
                "-topk8",
                "-in",
                &p("ec"),
                "-v2",
                "aes256",
                "-passout",
                "pass:x",
                "-out",
                &p("p8enc"),
            ],
        );
        run(
            "openssl",
            &["dsaparam", "-genkey", "-noout", "-out", &p("dsa8"), "1024"],
        );
        run(
            "openssl",
            &["pkey", "-traditional", "-in", &p("dsa8"), "-out", &p("dsa")],
        );
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", &p("ssh")],
        );
        let der = |name: &str| run("openssl", &["pkey", "-in", &p(name), "-outform", "DER"]);
        let ssh = pem("ssh");
        let ssh_body: String = ssh.lines().filter(|l| !l.starts_with("-----")).collect();
        let ssh_bin = run_stdin("openssl", &["base64", "-d", "-A"], ssh_body.as_bytes());
        vec![
            (
                "RSA PKCS#1",
                pem("rsa"),
                run(
                    "openssl",
                    &["rsa", "-traditional", "-in", &p("rsa"), "-outform", "DER"],
                ),
            ),
            ("PKCS#8", pem("p8"), der("p8")),
            (
                "encrypted PKCS#8",
                pem("p8enc"),
                run(
                    "openssl",
                    &[
                        "pkcs8",
                        "-topk8",
                        "-in",
                        &p("ec"),
                        "-v2",
                        "aes256",
                        "-passout",
                        "pass:x",
                        "-outform",
                        "DER",
                    ],
                ),
            ),
            (
                "EC",
                pem("ec"),
                run("openssl", &["ec", "-in", &p("ec"), "-outform", "DER"]),
            ),
            (
                "DSA",
                pem("dsa"),
                run("openssl", &["dsa", "-in", &p("dsa"), "-outform", "DER"]),
            ),
            ("OpenSSH", ssh, ssh_bin),
        ]
    })
}

fn run_stdin(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}");
    out.stdout
}

fn b64(data: &[u8]) -> String {
    String::from_utf8(run_stdin("openssl", &["base64", "-A"], data)).unwrap()
}

/// A PEM with its body re-wrapped at `width` characters a line.
fn rewrap(pem: &str, width: usize) -> String {
    let lines: Vec<&str> = pem.lines().collect();
    let body: String = lines[1..lines.len() - 1].concat();
    let wrapped: Vec<&str> = body
        .as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "{}\n{}\n{}\n",
        lines[0],
        wrapped.join("\n"),
        lines[lines.len() - 1]
    )
}

/// For each real key, a template holding it as `encode` makes it is refused by `build`, naming
/// the template; nothing is written to `out/images`.
fn refused_in_every_template(encode: impl Fn(&str, &[u8]) -> String) {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let rel = "etc/kubernetes/extra-config.yaml";
    let path = ctx.path().join("manifests/kubenet").join(rel);
    for (kind, pem, bin) in real_keys() {
        let text = encode(pem, bin);
        std::fs::write(&path, &text).unwrap();
        let r = ctx.net(&["build"]);
        assert_eq!(r.code, 1, "{kind} not refused in:\n{text}\n{}", r.stderr);
        r.stderr_has(&format!("{rel}: this file contains a private key"));
    }
    assert!(
        std::fs::read_dir(ctx.path().join("out/images")).map_or(true, |mut d| d.next().is_none())
    );
}

#[test]
fn a_key_in_a_yaml_block_scalar_is_refused() {
    refused_in_every_template(|pem, _| {
        let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
        format!("tls:\n  key: |\n{indented}")
    });
}

#[test]
fn a_key_in_a_json_string_is_refused() {
    refused_in_every_template(|pem, _| format!("{{\"key\": \"{}\"}}\n", pem.replace('\n', "\\n")));
}

#[test]
fn a_base64_pem_key_is_refused() {
    refused_in_every_template(|pem, _| {
        format!(
            "users:\n- user:\n    client-key-data: {}\n",
            b64(pem.as_bytes())
        )
    });
}

#[test]
fn a_base64_der_key_is_refused() {
    refused_in_every_template(|_, der| {
        format!("users:\n- user:\n    client-key-data: {}\n", b64(der))
    });
}

#[test]
fn a_key_rewrapped_at_short_lines_is_refused() {
    refused_in_every_template(|pem, _| rewrap(pem, 40));
    refused_in_every_template(|pem, _| rewrap(pem, 16));
    refused_in_every_template(|pem, _| rewrap(pem, 8));
}

#[test]
fn certificates_public_keys_and_marker_words_are_not_refused() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("k").display().to_string();
    let run = |args: &[&str]| run_stdin("openssl", args, b"");
    run(&["genrsa", "-out", &k, "2048"]);
    let cert = String::from_utf8(run(&[
        "req", "-x509", "-new", "-key", &k, "-subj", "/CN=test", "-days", "1",
    ]))
    .unwrap();
    let cert_der = run(&[
        "req", "-x509", "-new", "-key", &k, "-subj", "/CN=test", "-days", "1", "-outform", "DER",
    ]);
    let public = String::from_utf8(run(&["pkey", "-in", &k, "-pubout"])).unwrap();
    let ssh_pub = {
        let p = dir.path().join("id").display().to_string();
        run_stdin(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", &p],
            b"",
        );
        std::fs::read_to_string(format!("{p}.pub")).unwrap()
    };
    std::fs::write(
        ctx.path()
            .join("manifests/kubenet/etc/kubernetes/extra-config.yaml"),
        format!(
            "ca: |\n{}certificate-authority-data: {}\nca-der: {}\npub: |\n{}ssh: {ssh_pub}",
            cert.lines().map(|l| format!("  {l}\n")).collect::<String>(),
            b64(cert.as_bytes()),
            b64(&cert_der),
            public
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>(),
        ),
    )
    .unwrap();
    ctx.net(&["build"]).ok();
    // A binary holding the marker text, as Go's crypto/x509 does, is installed.
    let mut go = b"\x7fELF\x02\x01\x01\x00-----BEGIN RSA PRIVATE KEY-----\x00\x00".to_vec();
    go.extend_from_slice(b"-----BEGIN EC PRIVATE KEY-----\n%s: %v\x00crypto/x509: no key\n");
    build_with_containerd(&ctx, &gz(&raw_tar(&[member("bin/containerd", &go)]))).ok();
}
