//! credentials: htpasswd logins, the bearer-token flow, docker's credential helpers,
//! `login`/`logout`, and a protected artifact mirror.

use super::*;

/// With htpasswd auth: no credentials, or wrong ones, give a clear error naming the registry and
/// what to do; the right ones (from an auth file, or the environment) work.
#[test]
fn registry_logins() {
    let Some(registry) = LocalRegistry::start_with(Some(("fleet", "s3cret"))) else {
        return;
    };
    let ctx = built();
    let repo = registry.repo("kubenet");
    let host = registry.host();
    push_to(&ctx, &registry, &repo, &["--node", "worker1"])
        .fails()
        .stderr_has(&format!("registry {host} refused"))
        .stderr_has("it requires a login (no credentials were sent)")
        .stderr_has(&format!("hint: log in with `docker login {host}`"));
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[
            ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
            ("NODEFORGE_REGISTRY_PASSWORD", "wrong"),
        ],
    )
    .fails()
    .stderr_has("the user name or password is wrong")
    .stderr_has("credentials from $NODEFORGE_REGISTRY_USERNAME");
    // docker's config.json under $HOME.
    let docker = ctx.path().join("home/.docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "ZmxlZXQ6czNjcmV0"}}}}}}"#),
    )
    .unwrap();
    push_to(&ctx, &registry, &repo, &["--node", "worker1"]).ok();
    // podman's auth file named by REGISTRY_AUTH_FILE, on a host.
    let h = Host::new();
    let auth = h.join("auth.json");
    let auth_s = auth.display().to_string();
    let auth_file = |password: &str| {
        let entry = format!(r#"{{"username": "fleet", "password": "{password}"}}"#);
        std::fs::write(&auth, format!(r#"{{"auths": {{"{host}": {entry}}}}}"#)).unwrap();
    };
    let reference = format!("{repo}:worker1");
    let pull = |envs: &[(&str, &str)]| h.run(&registry, &["pull", &reference], envs);
    auth_file("s3cret");
    pull(&[]).fails().stderr_has("it requires a login");
    pull(&[("REGISTRY_AUTH_FILE", &auth_s)]).ok();
    // docker's DOCKER_AUTH_CONFIG takes precedence over the auth files (here a wrong password
    // in REGISTRY_AUTH_FILE's), and over nothing it has no entry for.
    auth_file("wrong");
    let env_config = format!(r#"{{"auths": {{"{host}": {{"auth": "ZmxlZXQ6czNjcmV0"}}}}}}"#);
    pull(&[
        ("REGISTRY_AUTH_FILE", &auth_s),
        ("DOCKER_AUTH_CONFIG", &env_config),
    ])
    .ok();
    let elsewhere = r#"{"auths": {"elsewhere.example": {"auth": "eDp5"}}}"#;
    pull(&[
        ("REGISTRY_AUTH_FILE", &auth_s),
        ("DOCKER_AUTH_CONFIG", elsewhere),
    ])
    .fails()
    .stderr_has(&format!("credentials from {auth_s}"));
}

/// The distribution spec's bearer-token flow against a registry configured for token auth: the
/// registry's challenge names a token service (a loopback server here, handing out a JWT signed
/// with a key the registry trusts, only for the right user and password); push and pull get a
/// token with their credentials and use it; wrong credentials are refused by the token service.
#[test]
fn bearer_token_flow() {
    use base64::Engine as _;
    if !crate::requires("docker-registry", "docker-registry")
        || !crate::requires("openssl", "openssl")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=nodeforge-test-token",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .output()
        .unwrap()
        .stdout;
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [b64.encode(&der)]});
    let claims = serde_json::json!({
        "iss": "nodeforge-test-issuer", "sub": "fleet", "aud": "nodeforge-test",
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "nodeforge-test",
        "access": [{"type": "repository", "name": "kubenet", "actions": ["pull", "push"]}],
    });
    let input = format!(
        "{}.{}",
        url.encode(header.to_string()),
        url.encode(claims.to_string())
    );
    std::fs::write(dir.path().join("input"), &input).unwrap();
    let sig = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .arg(dir.path().join("input"))
        .output()
        .unwrap()
        .stdout;
    let token = format!("{input}.{}", url.encode(sig));

    // The token service: a token for fleet:s3cret, 401 for anyone else.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let token_port = listener.local_addr().unwrap().port();
    let want = format!("Basic {}", b64.encode("fleet:s3cret"));
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let asked_by_server = asked.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            let mut auth = String::new();
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if request.is_empty() {
                    request = line.trim().to_string();
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                if let Some(v) = line
                    .strip_prefix("authorization: ")
                    .or_else(|| line.strip_prefix("Authorization: "))
                {
                    auth = v.trim().to_string();
                }
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            // OAuth2's refresh-token grant: a form in the body of a POST.
            let mut form = vec![0u8; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut form);
            let form = String::from_utf8_lossy(&form).into_owned();
            let refresh = request.starts_with("POST ")
                && form.split('&').any(|p| p == "grant_type=refresh_token")
                && form.split('&').any(|p| p == "refresh_token=idtok-fleet");
            asked_by_server
                .lock()
                .unwrap()
                .push(format!("{request} {form}"));
            let (status, body) = if refresh {
                ("200 OK", format!("{{\"access_token\": \"{token}\"}}"))
            } else if auth == want {
                ("200 OK", format!("{{\"token\": \"{token}\"}}"))
            } else {
                ("401 Unauthorized", "{}".to_string())
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let auth = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: nodeforge-test\n    issuer: nodeforge-test-issuer\n    rootcertbundle: {}\n",
        cert.display()
    );
    let registry = LocalRegistry::start_in(dir, &auth);
    let ctx = built();
    let repo = registry.repo("kubenet");
    let login = [
        ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
        ("NODEFORGE_REGISTRY_PASSWORD", "s3cret"),
    ];
    push_to(&ctx, &registry, &repo, &["--node", "worker1"])
        .fails()
        .stderr_has("its token service requires a login")
        .stderr_has("hint: log in with");
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[
            ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
            ("NODEFORGE_REGISTRY_PASSWORD", "nope"),
        ],
    )
    .fails()
    .stderr_has("its token service refused the user name or password");
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &login,
    )
    .ok();
    let requests = asked.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.contains("service=nodeforge-test")
            && r.contains("scope=repository%3Akubenet%3Apull%2Cpush")),
        "{requests:?}"
    );
    let host_tmp = Host::new();
    let outs = &host_tmp.outs;
    let r = reg(
        host_tmp.path(),
        &registry,
        &["--out", outs, "pull", &format!("{repo}:worker1"), "--json"],
        &login,
    )
    .ok()
    .json();
    assert_eq!(
        r["image_id"],
        crate::current_id_in(&ctx.path().join("out"), "worker1").as_str()
    );

    // `login` against the token service: a token for the user and password, or a refusal.
    let auth = host_tmp.path().join("auth.json");
    let auth_s = auth.display().to_string();
    let login_env = |password: &'static str| {
        [
            ("REGISTRY_AUTH_FILE", auth_s.clone()),
            ("NODEFORGE_REGISTRY_PASSWORD", password.to_string()),
        ]
    };
    let login_args = [
        "login",
        &registry.host(),
        "--username",
        "fleet",
        "--insecure-registry",
        &registry.host(),
        "--json",
    ];
    let env = login_env("nope");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_env(host_tmp.path(), &login_args, &env, None)
        .fails()
        .stderr_has("its token service refused the user name or password");
    assert!(!auth.exists());
    let env = login_env("s3cret");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = run_env(host_tmp.path(), &login_args, &env, None)
        .ok()
        .json();
    assert_eq!(r["verified"], true, "{r}");
    assert!(auth.exists());

    // An identity token from a credential helper (user `<token>`): traded at the token service
    // with OAuth2's refresh-token grant, then used as any token.
    let host_tmp = fresh_host();
    let h = host_tmp.path();
    let bin = h.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    credential_helper(&bin, "nfidt", &registry.host(), "<token>", "idtok-fleet");
    std::fs::write(
        h.join("config.json"),
        format!(r#"{{"credHelpers": {{"{}": "nfidt"}}}}"#, registry.host()),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let config_dir = h.display().to_string();
    let outs = h.join("out").display().to_string();
    let r = reg(
        h,
        &registry,
        &["--out", &outs, "pull", &format!("{repo}:worker1"), "--json"],
        &[("PATH", &path), ("DOCKER_CONFIG", &config_dir)],
    )
    .ok()
    .json();
    assert_eq!(
        r["image_id"],
        crate::current_id_in(&ctx.path().join("out"), "worker1").as_str()
    );
    let requests = asked.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.starts_with("POST /token")
            && r.contains("grant_type=refresh_token")
            && r.contains("scope=repository%3Akubenet%3Apull")
            && r.contains("service=nodeforge-test")),
        "{requests:?}"
    );
}

/// An OCI mirror behind htpasswd auth is read with the credentials push and pull use: without
/// any, fetch fails naming the registry, repository, artifact and digest and says to log in; a
/// repository `mirror push` did not fill says so and gives the command that fills it; with the
/// login in docker's config.json (and `--insecure-registry` as push and pull take it), every
/// artifact comes from the mirror and the build matches the first builder's.
#[test]
fn a_protected_oci_mirror_is_read_with_the_registry_login() {
    use base64::Engine as _;
    let Some(registry) = LocalRegistry::start_with(Some(("fleet", "s3cret"))) else {
        return;
    };
    let host = registry.host();
    let ctx = built();
    let login = [
        ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
        ("NODEFORGE_REGISTRY_PASSWORD", "s3cret"),
    ];
    let home = ctx.path().join("home");
    let target = format!("oci://{host}/artifacts");
    run_home(
        ctx.path(),
        &home,
        &["mirror", "push", &target, "--insecure-registry", &host],
        &[],
    )
    .fails()
    .stderr_has("it requires a login");
    run_home(
        ctx.path(),
        &home,
        &["mirror", "push", &target, "--insecure-registry", &host],
        &login,
    )
    .ok();

    let b = second_builder(&ctx);
    let bhome = b.path().join("home");
    let fetch = |mirror: &str, envs: &[(&str, &str)]| {
        run_home(
            b.path(),
            &bhome,
            &[
                "fetch",
                "--mirrors-only",
                "--mirror",
                mirror,
                "--insecure-registry",
                &host,
                "--retries",
                "0",
            ],
            envs,
        )
    };
    // No credentials: refused, said with the registry, repository, artifact and digest.
    let r = fetch(&target, &[])
        .fails()
        .stderr_has(&format!(
            "registry {host} refused reading the mirrored artifact sha256:"
        ))
        .stderr_has("in repository artifacts: it requires a login (no credentials were sent)")
        .stderr_has(&format!("hint: log in with `docker login {host}`"));
    let lock = std::fs::read_to_string(b.lockfile()).unwrap();
    let some_sha = lock
        .lines()
        .find_map(|l| l.trim().strip_prefix("sha256 = \""))
        .map(|l| l.trim_end_matches('"').to_string())
        .unwrap();
    assert!(
        r.stderr
            .contains(&format!("sha256:{some_sha} in repository artifacts")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("kubelet "),
        "names the artifact: {}",
        r.stderr
    );
    // The wrong repository: the mirror lacks the artifacts; the hint fills it.
    fetch(&format!("oci://{host}/nosuch"), &login)
        .fails()
        .stderr_has(&format!(
            "registry {host} has no blob sha256:{some_sha} in repository nosuch"
        ))
        .stderr_has(&format!(
            "hint: the mirror lacks this artifact: fill it with `nodeforge mirror push oci://{host}/nosuch --insecure-registry {host}`"
        ));
    // With another mirror after it: the artifacts come from that one, and each says that the
    // registry's copy was bypassed, and why.
    let fixture = b.server.url();
    let r = run_home(
        b.path(),
        &bhome,
        &[
            "fetch",
            "--mirrors-only",
            "--mirror",
            &target,
            "--mirror",
            &fixture,
            "--insecure-registry",
            &host,
            "--out",
            "out-fallback",
        ],
        &[],
    )
    .ok();
    assert!(
        r.stderr.contains(&format!(
            "could not give it (registry {host} refused reading the mirrored artifact sha256:{some_sha}"
        )) && r.stderr.contains(&format!("fetched from {fixture}/")),
        "{}",
        r.stderr
    );
    // Wrong credentials in the environment: said as such.
    fetch(
        &target,
        &[
            ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
            ("NODEFORGE_REGISTRY_PASSWORD", "wrong"),
        ],
    )
    .fails()
    .stderr_has("the user name or password is wrong")
    .stderr_has("credentials from $NODEFORGE_REGISTRY_USERNAME");
    // docker's config.json, as `docker login` writes it: every artifact from the mirror.
    std::fs::create_dir_all(bhome.join(".docker")).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("fleet:s3cret");
    std::fs::write(
        bhome.join(".docker/config.json"),
        format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let r = run_home(
        b.path(),
        &bhome,
        &[
            "fetch",
            "--mirrors-only",
            "--mirror",
            &target,
            "--insecure-registry",
            &host,
            "--json",
        ],
        &[],
    )
    .ok()
    .json();
    let prefix = format!("http://{host}/v2/artifacts/blobs/sha256:");
    let arts = r["artifacts"].as_array().unwrap();
    assert!(!arts.is_empty());
    for a in arts {
        assert_eq!(a["status"], "fetched", "{a}");
        assert!(a["source"].as_str().unwrap().starts_with(&prefix), "{a}");
    }
    run_home(b.path(), &bhome, &["build", "--offline"], &[]).ok();
    assert_eq!(
        crate::current_id_in(&b.path().join("out"), "worker1"),
        crate::current_id_in(&ctx.path().join("out"), "worker1")
    );
}

/// docker's credential helpers, run as docker's CLI runs them: `credsStore` is asked before the
/// `auths` entries (which hold a wrong password here), `credHelpers` for the registry before
/// `credsStore`; a helper that is missing or fails stops the pull with its name, the registry
/// and what to do, never an anonymous attempt.
#[test]
fn docker_credential_helpers() {
    use base64::Engine as _;
    let Some(registry) = LocalRegistry::start_with(Some(("fleet", "s3cret"))) else {
        return;
    };
    let host = registry.host();
    let ctx = built();
    let repo = registry.repo("kubenet");
    reg(
        ctx.path(),
        &registry,
        &["push", &repo, "--node", "worker1"],
        &[
            ("NODEFORGE_REGISTRY_USERNAME", "fleet"),
            ("NODEFORGE_REGISTRY_PASSWORD", "s3cret"),
        ],
    )
    .ok();

    let host_tmp = fresh_host();
    let h = host_tmp.path().to_path_buf();
    let bin = h.join("bin");
    let docker = h.join("docker");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&docker).unwrap();
    credential_helper(&bin, "nftest", &host, "fleet", "s3cret");
    let mut fail = std::fs::File::create(bin.join("docker-credential-nffail")).unwrap();
    std::io::Write::write_all(
        &mut fail,
        b"#!/bin/sh\necho 'the keychain is locked' >&2\nexit 3\n",
    )
    .unwrap();
    drop(fail);
    std::fs::set_permissions(
        bin.join("docker-credential-nffail"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let docker_s = docker.display().to_string();
    let outs = h.join("out").display().to_string();
    let wrong = base64::engine::general_purpose::STANDARD.encode("fleet:wrong");
    let pull = |config: String| {
        std::fs::write(docker.join("config.json"), config).unwrap();
        reg(
            &h,
            &registry,
            &["--out", &outs, "pull", &format!("{repo}:worker1"), "--json"],
            &[("PATH", &path), ("DOCKER_CONFIG", &docker_s)],
        )
    };
    // credsStore before auths.
    let r = pull(format!(
        r#"{{"auths": {{"{host}": {{"auth": "{wrong}"}}}}, "credsStore": "nftest"}}"#
    ))
    .ok()
    .json();
    assert_eq!(
        r["image_id"],
        crate::current_id_in(&ctx.path().join("out"), "worker1").as_str()
    );
    let asked = std::fs::read_to_string(bin.join("asked")).unwrap();
    assert!(
        asked.lines().all(|l| l == format!("nftest {host}")),
        "{asked}"
    );
    // credHelpers for this registry before credsStore: a missing helper is an error naming it.
    pull(format!(
        r#"{{"credsStore": "nftest", "credHelpers": {{"{host}": "nfmissing"}}}}"#
    ))
    .fails()
    .stderr_has(&format!(
        "credential helper docker-credential-nfmissing (named by `credHelpers.{host}` in {docker_s}/config.json) for registry {host} is not installed (not found in $PATH)"
    ))
    .stderr_has("hint: install docker-credential-nfmissing in $PATH");
    // A helper that fails: its words, its name.
    pull(r#"{"credsStore": "nffail"}"#.to_string())
        .fails()
        .stderr_has(&format!(
            "credential helper docker-credential-nffail (named by `credsStore` in {docker_s}/config.json) for registry {host} failed"
        ))
        .stderr_has("the keychain is locked");
    // A helper with nothing for this registry: anonymous, which the registry refuses.
    pull(
        r#"{"credHelpers": {"elsewhere.example": "nffail"}, "credsStore": "nftest2"}"#.to_string(),
    )
    .fails()
    .stderr_has("docker-credential-nftest2");
    credential_helper(&bin, "nftest2", "other.example", "x", "y");
    pull(r#"{"credsStore": "nftest2"}"#.to_string())
        .fails()
        .stderr_has("it requires a login (no credentials were sent)");
    // credHelpers for the registry wins over a broken credsStore.
    pull(format!(
        r#"{{"credsStore": "nffail", "credHelpers": {{"http://{host}/v1/": "nftest"}}}}"#
    ))
    .ok();
}

/// `nodeforge login` with the password on stdin: wrong credentials are refused by the registry
/// and nothing is written; right ones go into `$REGISTRY_AUTH_FILE` (mode 0600, other entries
/// kept) where pull finds them; `logout` removes them again. A file that keeps logins in a
/// credential helper is not written.
#[test]
fn login_and_logout() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let Some(registry) = LocalRegistry::start_with(Some(("fleet", "s3cret"))) else {
        return;
    };
    let host = registry.host();
    let tmp = fresh_host();
    let h = tmp.path();
    let auth = h.join("containers/auth.json");
    let auth_s = auth.display().to_string();
    let login = |password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nodeforge"))
            .current_dir(h)
            .args(["login", &host, "--username", "fleet", "--password-stdin"])
            .args(["--insecure-registry", &host, "--json"])
            .env("HOME", h)
            .env("REGISTRY_AUTH_FILE", &auth)
            .env_remove("NODEFORGE_REGISTRY_USERNAME")
            .env_remove("NODEFORGE_REGISTRY_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let outs = h.join("out").display().to_string();
    let pull = || {
        reg(
            h,
            &registry,
            &["--out", &outs, "pull", &format!("{host}/kubenet:nosuch")],
            &[("REGISTRY_AUTH_FILE", &auth_s)],
        )
    };
    login("wrong").fails().stderr_has(&format!(
        "registry {host} refused the login: the user name or password is wrong"
    ));
    assert!(!auth.exists(), "nothing written for a refused login");
    pull().fails().stderr_has("it requires a login");

    std::fs::create_dir_all(auth.parent().unwrap()).unwrap();
    std::fs::write(&auth, r#"{"auths": {"other.example": {"auth": "eDp5"}}}"#).unwrap();
    let r = login("s3cret").ok().json();
    assert_eq!(r["kind"], "login-report");
    assert_eq!(r["verified"], true);
    assert_eq!(r["file"], auth_s.as_str());
    let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let entries = || -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
        v["auths"].clone()
    };
    let v = entries();
    assert_eq!(v[&host]["auth"], "ZmxlZXQ6czNjcmV0", "{v}");
    assert_eq!(v["other.example"]["auth"], "eDp5", "kept: {v}");
    // Authenticated: the registry answers that the tag does not exist.
    pull()
        .fails()
        .stderr_has(&format!("registry {host} has no manifest `nosuch`"));

    let logout = || {
        reg(
            h,
            &registry,
            &["logout", &host, "--json"],
            &[("REGISTRY_AUTH_FILE", &auth_s)],
        )
        .ok()
        .json()
    };
    assert_eq!(logout()["removed"], true);
    let v = entries();
    assert!(v.get(&host).is_none(), "{v}");
    assert!(v.get("other.example").is_some(), "{v}");
    assert_eq!(
        std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777,
        0o600
    );
    pull().fails().stderr_has("it requires a login");
    assert_eq!(logout()["removed"], false);

    // Logins kept by a credential helper: not written where they would never be read.
    std::fs::write(&auth, r#"{"credsStore": "desktop"}"#).unwrap();
    login("s3cret")
        .fails()
        .stderr_has("keeps the login for")
        .stderr_has("docker-credential-desktop");
    assert_eq!(
        std::fs::read_to_string(&auth).unwrap(),
        r#"{"credsStore": "desktop"}"#
    );
}

/// Logins to many registries at once each keep their entry in the auth file: it is read,
/// changed and written back under a lock, so no login writes the file without another's entry.
#[test]
fn concurrent_logins_keep_every_entry() {
    use std::io::{Read, Write};
    let host = fresh_host();
    let auth = host.path().join("auth.json");
    // Registries that ask for no login: `GET /v2/` answers 200.
    let addrs: Vec<String> = (0..12)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { return };
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf);
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            });
            addr
        })
        .collect();
    let children: Vec<_> = addrs
        .iter()
        .map(|a| {
            Command::new(env!("CARGO_BIN_EXE_nodeforge"))
                .args(["login", a, "--username", "fleet", "--insecure-registry", a])
                .current_dir(host.path())
                .env("HOME", host.path())
                .env("REGISTRY_AUTH_FILE", &auth)
                .env("NODEFORGE_REGISTRY_PASSWORD", "s3cret")
                .env_remove("NODEFORGE_REGISTRY_USERNAME")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    let mut kept: Vec<String> = file["auths"].as_object().unwrap().keys().cloned().collect();
    kept.sort();
    let mut want = addrs.clone();
    want.sort();
    assert_eq!(kept, want);
}
