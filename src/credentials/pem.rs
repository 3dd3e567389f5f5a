//! PEM blocks (RFC 7468) as `openssl` writes them: a file may hold several (a certificate and
//! its chain, a CA bundle, `EC PARAMETERS` before an EC key). Hand-written because the blocks
//! must be split, their labels kept and legacy encryption headers (`Proc-Type: 4,ENCRYPTED`)
//! seen; `der::pem` decodes one strict document only. The body is base64 at any line width.

use base64::Engine as _;

/// One `-----BEGIN <label>-----` … `-----END <label>-----` block, decoded.
pub struct Block {
    pub label: String,
    pub der: zeroize::Zeroizing<Vec<u8>>,
    /// The block has RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`): an encrypted legacy key.
    pub encrypted_headers: bool,
}

/// Why a file is not PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    /// No `-----BEGIN` line at all.
    NoBlock,
    /// A block without its END line, or whose body is not base64.
    Malformed { label: String, reason: String },
}

impl std::fmt::Display for PemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemError::NoBlock => f.write_str("holds no PEM block (`-----BEGIN …-----`)"),
            PemError::Malformed { label, reason } => write!(f, "PEM block `{label}`: {reason}"),
        }
    }
}

/// Every PEM block of `text`, in order. Text between blocks is ignored (openssl's explanatory
/// `Certificate:` dumps, comments).
pub fn blocks(text: &str) -> Result<Vec<Block>, PemError> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let label = label.to_string();
        let end = format!("-----END {label}-----");
        let mut body = zeroize::Zeroizing::new(String::new());
        let mut ended = false;
        let mut headers = false;
        for l in lines.by_ref() {
            let l = l.trim();
            if l == end {
                ended = true;
                break;
            }
            if l.contains(':') {
                headers = true;
                continue;
            }
            body.push_str(l);
        }
        if !ended {
            return Err(PemError::Malformed {
                reason: format!("no `{end}` line"),
                label,
            });
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| PemError::Malformed {
                label: label.clone(),
                reason: format!("the body is not base64: {e}"),
            })?;
        out.push(Block {
            label,
            der: zeroize::Zeroizing::new(der),
            encrypted_headers: headers,
        });
    }
    if out.is_empty() {
        return Err(PemError::NoBlock);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_blocks_and_keeps_labels() {
        let text =
            "junk\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n\
                    -----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        let b = blocks(text).expect("pem");
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "EC PARAMETERS");
        assert_eq!(b[1].label, "CERTIFICATE");
        assert_eq!(b[1].der.as_slice(), &[0, 1, 2, 3]);
        assert!(matches!(blocks("nothing"), Err(PemError::NoBlock)));
        assert!(matches!(
            blocks("-----BEGIN X-----\nAAAA\n"),
            Err(PemError::Malformed { .. })
        ));
        let enc = blocks("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n").expect("pem");
        assert!(enc[0].encrypted_headers);
    }
}
