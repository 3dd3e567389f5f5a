//! Rendered files are parsed back before they go into an image: by their path, YAML, JSON (CNI
//! network configs are JSON whatever their extension), TOML and systemd units. A required value
//! left empty (an empty JSON string, a YAML key with no value) is an error, not an image.

/// systemd unit file suffixes.
pub fn is_unit(name: &str) -> bool {
    [
        ".service", ".socket", ".timer", ".mount", ".target", ".path", ".slice",
    ]
    .iter()
    .any(|s| name.ends_with(s))
}

/// Check a rendered file; the error carries a line when one is known.
pub fn check(path: &str, text: &str) -> Result<(), (Option<usize>, String)> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".yaml") || name.ends_with(".yml") {
        yaml(text)
    } else if name.ends_with(".json")
        || (path.starts_with("/etc/cni/net.d/")
            && (name.ends_with(".conf") || name.ends_with(".conflist")))
    {
        json(text)
    } else if name.ends_with(".toml") {
        toml::from_str::<toml::Table>(text)
            .map(|_| ())
            .map_err(|e| {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                (line, format!("invalid TOML: {}", e.message()))
            })
    } else if is_unit(name) {
        unit(text)
    } else {
        Ok(())
    }
}

fn json(text: &str) -> Result<(), (Option<usize>, String)> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| (Some(e.line()), format!("invalid JSON: {e}")))?;
    fn empty(v: &serde_json::Value, at: &str) -> Option<String> {
        match v {
            serde_json::Value::String(s) if s.trim().is_empty() => Some(at.to_string()),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, x)| empty(x, &format!("{at}[{i}]"))),
            serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
                empty(
                    x,
                    &if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    },
                )
            }),
            _ => None,
        }
    }
    match empty(&v, "") {
        Some(key) => {
            let leaf = key.rsplit('.').next().unwrap_or(&key).to_string();
            let line = text
                .lines()
                .position(|l| l.contains(&format!("\"{leaf}\"")))
                .map(|i| i + 1);
            Err((
                line,
                format!("`{key}` is empty: a required value rendered to nothing"),
            ))
        }
        None => Ok(()),
    }
}

fn yaml(text: &str) -> Result<(), (Option<usize>, String)> {
    use saphyr::{LoadableYamlNode, Scalar, Yaml};
    let docs = Yaml::load_from_str(text).map_err(|e| {
        (
            Some(e.marker().line()),
            format!("invalid YAML: {}", e.info()),
        )
    })?;
    fn null_key(v: &Yaml<'_>, at: &str) -> Option<String> {
        match v {
            Yaml::Mapping(m) => m.iter().find_map(|(k, x)| {
                let key = match k {
                    Yaml::Value(Scalar::String(s)) => s.to_string(),
                    other => format!("{other:?}"),
                };
                let path = if at.is_empty() {
                    key
                } else {
                    format!("{at}.{key}")
                };
                if matches!(x, Yaml::Value(Scalar::Null)) {
                    Some(path)
                } else {
                    null_key(x, &path)
                }
            }),
            Yaml::Sequence(s) => s
                .iter()
                .enumerate()
                .find_map(|(i, x)| null_key(x, &format!("{at}[{i}]"))),
            _ => None,
        }
    }
    for d in &docs {
        if let Some(key) = null_key(d, "") {
            let leaf = key.rsplit('.').next().unwrap_or(&key).to_string();
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with(&format!("{leaf}:")))
                .map(|i| i + 1);
            return Err((
                line,
                format!("`{key}` has no value: a required value rendered to nothing"),
            ));
        }
    }
    Ok(())
}

fn unit(text: &str) -> Result<(), (Option<usize>, String)> {
    let mut continued = false;
    let mut seen_section = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let cont = continued;
        continued = line.ends_with('\\');
        if cont || line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            if !line.ends_with(']') {
                return Err((Some(i + 1), format!("malformed section header `{line}`")));
            }
            seen_section = true;
            continue;
        }
        match line.split_once('=') {
            Some((k, v))
                if seen_section
                    && !k.trim().is_empty()
                    && k.trim().bytes().all(|b| {
                        b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
                    }) =>
            {
                if v.trim().is_empty()
                    && matches!(k.trim(), "ExecStart" | "WantedBy" | "Description")
                {
                    return Err((Some(i + 1), format!("`{}` is empty", k.trim())));
                }
            }
            _ => {
                return Err((
                    Some(i + 1),
                    format!("`{line}` is not `Key=Value` inside a [Section]"),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_errors() {
        assert!(check(
            "/etc/cni/net.d/10-bridge.conf",
            "{\"cniVersion\": \"1.0.0\"}"
        )
        .is_ok());
        let e = check(
            "/etc/cni/net.d/10-bridge.conf",
            "{\n  \"cniVersion\": \"\"\n}",
        )
        .expect_err("invalid");
        assert_eq!(e.0, Some(2));
        assert!(e.1.contains("`cniVersion` is empty"), "{}", e.1);
        let e = check("/x/c.yaml", "a: 1\nclusterDomain:\n").expect_err("invalid");
        assert!(e.1.contains("`clusterDomain` has no value"), "{}", e.1);
        assert_eq!(e.0, Some(2));
        assert!(
            check("/x/c.yaml", "value: \"\"\n").is_ok(),
            "an explicit empty string is a value"
        );
        assert!(check("/x/c.yaml", "a: [\n").is_err());
        assert!(check("/x/c.toml", "a = ").is_err());
        assert!(check(
            "/etc/systemd/system/a.service",
            "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/a \\\n  --b\n"
        )
        .is_ok());
        assert!(check("/etc/systemd/system/a.service", "ExecStart=/bin/a\n").is_err());
        assert!(check("/etc/modules-load.d/br_netfilter.conf", "br_netfilter\n").is_ok());
    }
}
