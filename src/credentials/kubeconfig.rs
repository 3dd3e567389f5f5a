//! Kubeconfigs as kubelet and kube-proxy read them: the current context, its cluster (server,
//! CA) and its user (client certificate and key, embedded as `*-data` or named by path). Parsed
//! with saphyr (the YAML parser the renderer validates with); only what the checks need is
//! kept, and the embedded key is decoded into a buffer zeroed when dropped.

use base64::Engine as _;
use saphyr::{LoadableYamlNode, Yaml};

/// Where a kubeconfig's certificate, key or CA is: embedded (decoded PEM text) or a path on the
/// node.
#[derive(Debug, Clone)]
pub enum Source {
    Data(zeroize::Zeroizing<String>),
    Path(String),
}

/// The parts of a kubeconfig the checks look at, each with the key that names it.
#[derive(Debug, Clone)]
pub struct Kubeconfig {
    /// `clusters[<name>].cluster`, for messages.
    pub cluster_key: String,
    /// `users[<name>].user`, for messages.
    pub user_key: String,
    pub server: Option<String>,
    pub insecure: bool,
    pub ca: Option<Source>,
    pub client_cert: Option<Source>,
    pub client_key: Option<Source>,
    /// Another way the user authenticates (`token`, `exec` …), when it has one.
    pub other_auth: Option<String>,
}

/// A kubeconfig that cannot be used: the key (`current-context`, `users[x].user.…`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> KubeconfigError {
    KubeconfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// The entry of `list` (`clusters`, `users`, `contexts`) named `name`: its inner mapping.
fn named<'a>(
    doc: &'a Yaml<'a>,
    list: &str,
    inner: &str,
    name: &str,
) -> Result<&'a Yaml<'a>, KubeconfigError> {
    let entries = doc
        .as_mapping_get(list)
        .and_then(Yaml::as_sequence)
        .ok_or_else(|| err(list, format!("missing: a kubeconfig lists its {list}")))?;
    let entry = entries
        .iter()
        .find(|e| e.as_mapping_get("name").and_then(Yaml::as_str) == Some(name))
        .ok_or_else(|| err(list, format!("has no entry named `{name}`")))?;
    entry
        .as_mapping_get(inner)
        .filter(|v| v.is_mapping())
        .ok_or_else(|| err(format!("{list}[{name}].{inner}"), "missing"))
}

fn string(m: &Yaml<'_>, key: &str) -> Option<String> {
    m.as_mapping_get(key)
        .and_then(Yaml::as_str)
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

/// A `*-data` value: base64 of PEM text.
fn data(m: &Yaml<'_>, key: &str, at: &str) -> Result<Option<Source>, KubeconfigError> {
    let Some(v) = string(m, key) else {
        return Ok(None);
    };
    let compact: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(v.chars().filter(|c| !c.is_whitespace()).collect());
    let bytes = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| err(format!("{at}.{key}"), format!("is not base64: {e}")))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| err(format!("{at}.{key}"), "does not decode to PEM text"))?;
    Ok(Some(Source::Data(zeroize::Zeroizing::new(
        text.to_string(),
    ))))
}

/// Parse a kubeconfig and follow its current context.
pub fn parse(text: &str) -> Result<Kubeconfig, KubeconfigError> {
    let docs = Yaml::load_from_str(text).map_err(|e| {
        err(
            "YAML",
            format!("invalid at line {}: {}", e.marker().line(), e.info()),
        )
    })?;
    let [doc] = docs.as_slice() else {
        return Err(err(
            "YAML",
            format!("holds {} documents, not one", docs.len()),
        ));
    };
    if !doc.is_mapping() {
        return Err(err("YAML", "is not a mapping: not a kubeconfig"));
    }
    let context = string(doc, "current-context").ok_or_else(|| {
        err(
            "current-context",
            "is not set: kubelet and kube-proxy use the current context",
        )
    })?;
    let ctx = named(doc, "contexts", "context", &context)?;
    let at = format!("contexts[{context}].context");
    let cluster_name =
        string(ctx, "cluster").ok_or_else(|| err(format!("{at}.cluster"), "names no cluster"))?;
    let user_name =
        string(ctx, "user").ok_or_else(|| err(format!("{at}.user"), "names no user"))?;
    let cluster = named(doc, "clusters", "cluster", &cluster_name)?;
    let cluster_key = format!("clusters[{cluster_name}].cluster");
    let user = named(doc, "users", "user", &user_name)?;
    let user_key = format!("users[{user_name}].user");
    let ca = match data(cluster, "certificate-authority-data", &cluster_key)? {
        Some(d) => Some(d),
        None => string(cluster, "certificate-authority").map(Source::Path),
    };
    let client_cert = match data(user, "client-certificate-data", &user_key)? {
        Some(d) => Some(d),
        None => string(user, "client-certificate").map(Source::Path),
    };
    let client_key = match data(user, "client-key-data", &user_key)? {
        Some(d) => Some(d),
        None => string(user, "client-key").map(Source::Path),
    };
    let other_auth = ["token", "tokenFile", "exec", "auth-provider", "username"]
        .into_iter()
        .find(|k| user.as_mapping_get(k).is_some_and(|v| !v.is_null()))
        .map(str::to_string);
    Ok(Kubeconfig {
        server: string(cluster, "server"),
        insecure: cluster
            .as_mapping_get("insecure-skip-tls-verify")
            .and_then(Yaml::as_bool)
            .unwrap_or(false),
        cluster_key,
        user_key,
        ca,
        client_cert,
        client_key,
        other_auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_current_context() {
        let pem = base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE-----\n");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://x\n\
             - name: kubenet\n  cluster:\n    certificate-authority-data: {pem}\n    server: https://k:6443\n\
             users:\n- name: u\n  user:\n    client-certificate: /var/lib/kubelet/w.pem\n    client-key-data: {pem}\n\
             contexts:\n- name: default\n  context:\n    cluster: kubenet\n    user: u\ncurrent-context: default\n"
        );
        let k = parse(&text).expect("kubeconfig");
        assert_eq!(k.server.as_deref(), Some("https://k:6443"));
        assert!(matches!(k.ca, Some(Source::Data(ref d)) if d.starts_with("-----BEGIN")));
        assert!(
            matches!(k.client_cert, Some(Source::Path(ref p)) if p == "/var/lib/kubelet/w.pem")
        );
        assert!(matches!(k.client_key, Some(Source::Data(_))));
        assert_eq!(k.user_key, "users[u].user");
        let e = parse(&text.replace("current-context: default", "current-context: nope"))
            .expect_err("no such context");
        assert_eq!(e.field, "contexts");
        let e = parse("a: [").expect_err("yaml");
        assert_eq!(e.field, "YAML");
    }
}
