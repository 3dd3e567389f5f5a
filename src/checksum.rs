//! Upstream's published checksum files. One parser reads all the shapes upstream uses:
//! - bare:   `<hex>` alone (dl.k8s.io's `.sha256`, cri-tools);
//! - single: `<hex>  <name>` or `<hex> *<name>` (containerd's `.sha256sum`, CNI plugins);
//! - multi:  several such lines, one per release asset (runc's `runc.sha256sum`),
//!   the line chosen by file name;
//! - and BSD style `SHA256 (<name>) = <hex>`, which some mirrors publish.

use crate::hash::Sha256;

/// Why a checksum file does not yield the digest of the file we want.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("the checksum file is empty")]
    Empty,
    #[error("line {line} of the checksum file is not `<sha256>  <file name>`: `{text}`")]
    Malformed { line: usize, text: String },
    #[error("the checksum file does not list `{wanted}` (it lists: {})", listed.join(", "))]
    NotListed { wanted: String, listed: Vec<String> },
    #[error("the checksum file lists `{wanted}` twice with different digests")]
    Conflicting { wanted: String },
}

/// One line of a checksum file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumLine {
    pub digest: Sha256,
    /// The file name as listed (without `*` or `./`), when the line names one.
    pub name: Option<String>,
}

fn parse_line(line: &str) -> Option<ChecksumLine> {
    let line = line.trim();
    // BSD style: SHA256 (name) = hex
    if let Some(rest) = line.strip_prefix("SHA256 (") {
        let (name, hex) = rest.rsplit_once(") = ")?;
        let digest = Sha256::parse(&hex.trim().to_ascii_lowercase()).ok()?;
        return Some(ChecksumLine {
            digest,
            name: Some(clean_name(name)),
        });
    }
    let (hex, rest) = match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim_start()),
        None => (line, ""),
    };
    let digest = Sha256::parse(&hex.to_ascii_lowercase()).ok()?;
    let name = if rest.is_empty() {
        None
    } else {
        Some(clean_name(rest.strip_prefix('*').unwrap_or(rest)))
    };
    Some(ChecksumLine { digest, name })
}

fn clean_name(name: &str) -> String {
    let name = name.trim();
    name.strip_prefix("./").unwrap_or(name).to_string()
}

fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Parse every line of a checksum file.
pub fn parse(text: &str) -> Result<Vec<ChecksumLine>, ChecksumError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(l) => out.push(l),
            None => {
                return Err(ChecksumError::Malformed {
                    line: i + 1,
                    text: line.chars().take(100).collect(),
                })
            }
        }
    }
    if out.is_empty() {
        return Err(ChecksumError::Empty);
    }
    Ok(out)
}

/// The sha256 a checksum file publishes for `file_name`.
///
/// A file holding one bare digest is taken as is (it sits next to the artifact it describes);
/// otherwise the line naming `file_name` is selected, and a file that does not list it is an error
/// rather than a guess.
pub fn select(text: &str, file_name: &str) -> Result<Sha256, ChecksumError> {
    let lines = parse(text)?;
    if let [only] = lines.as_slice() {
        if only.name.is_none() {
            return Ok(only.digest);
        }
    }
    if let Some(i) = lines.iter().position(|l| l.name.is_none()) {
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
            .nth(i)
            .map_or(1, |(n, _)| n + 1);
        return Err(ChecksumError::Malformed {
            line,
            text: "a bare digest among named lines".to_string(),
        });
    }
    let mut found: Option<Sha256> = None;
    for l in &lines {
        if l.name.as_deref().map(base_name) == Some(file_name) {
            match found {
                Some(d) if d != l.digest => {
                    return Err(ChecksumError::Conflicting {
                        wanted: file_name.to_string(),
                    })
                }
                _ => found = Some(l.digest),
            }
        }
    }
    found.ok_or_else(|| ChecksumError::NotListed {
        wanted: file_name.to_string(),
        listed: lines
            .iter()
            .filter_map(|l| l.name.clone())
            .take(20)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "bcfc299c1ab255e9d045ffaf2e324c0abaf58f599831a7c2c4a80b33f795de94";
    const B: &str = "39e7f1c61c8389ea7680690f8bd5dd733672fa16875ae598df0fd8c205df57a9";

    #[test]
    fn bare_single_multi_bsd() {
        assert_eq!(
            select(&format!("{A}\n"), "x").map(|d| d.to_hex()),
            Ok(A.into())
        );
        assert_eq!(select(A, "x").map(|d| d.to_hex()), Ok(A.into()));
        assert_eq!(
            select(&format!("{A}  runc.amd64\r\n"), "runc.amd64").map(|d| d.to_hex()),
            Ok(A.into())
        );
        assert_eq!(
            select(&format!("{A} *runc.amd64\n"), "runc.amd64").map(|d| d.to_hex()),
            Ok(A.into())
        );
        let multi = format!("{B}  runc.arm64\n{A}  runc.amd64\n{B}  libseccomp.tar.gz\n");
        assert_eq!(
            select(&multi, "runc.amd64").map(|d| d.to_hex()),
            Ok(A.into())
        );
        assert_eq!(
            select(&multi, "runc.arm64").map(|d| d.to_hex()),
            Ok(B.into())
        );
        let bsd = format!("SHA256 (./runc.amd64) = {}\n", A.to_uppercase());
        assert_eq!(select(&bsd, "runc.amd64").map(|d| d.to_hex()), Ok(A.into()));
    }

    #[test]
    fn wrong_name_empty_and_garbage_are_errors() {
        assert!(matches!(
            select(&format!("{A}  other.tgz\n"), "wanted.tgz"),
            Err(ChecksumError::NotListed { .. })
        ));
        assert_eq!(select("\n\n", "x"), Err(ChecksumError::Empty));
        assert!(matches!(
            select("<html>Not Found</html>", "x"),
            Err(ChecksumError::Malformed { line: 1, .. })
        ));
        assert!(matches!(
            select(&format!("{A}  a\n{B}  a\n"), "a"),
            Err(ChecksumError::Conflicting { .. })
        ));
        assert!(matches!(
            select(&A[..63], "x"),
            Err(ChecksumError::Malformed { .. })
        ));
    }
}
