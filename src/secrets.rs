//! Private keys must never reach an image or the shared store. Detection is by content, not by
//! name, in every encoding a config file can hold a key in:
//! - a PEM block whose type ends in `PRIVATE KEY` (PKCS#1, PKCS#8, encrypted PKCS#8, EC, DSA,
//!   OpenSSH) followed by a key's body, whatever separates the body's lines: newlines at any
//!   width, the indentation of a YAML block scalar, or JSON's literal `\n` escapes;
//! - base64 of such a PEM file, or of a DER or OpenSSH key (a kubeconfig's `client-key-data:`).
//!
//! The body must look like a key — base64 of DER (`0x30`), of `openssh-key-v1`, or the ciphertext
//! under `Proc-Type:` headers — so a binary that merely contains the words (Go's crypto/x509 does)
//! is not a key. Unframed base64 is decoded only for runs of at least [`MIN_RUN`] base64
//! characters (a random binary has none), at most [`MAX_RUN`] characters each, and must decode to
//! the DER structure of a private key: certificates and public keys pass. A base64 body framed by
//! a PEM BEGIN line is judged by its label, not decoded as unframed base64: Go's standard library
//! (`net/http/internal/testcert`, linked into e.g. crictl) embeds its public test keys as
//! `-----BEGIN RSA TESTING KEY-----`, the convention that tells scanners a key is no secret.

use memchr::memmem;

const BEGIN: &[u8] = b"-----BEGIN ";
const LABEL_END: &[u8] = b"PRIVATE KEY-----";
const OPENSSH_MAGIC: &[u8] = b"openssh-key-v1\0";
/// How far past the BEGIN line the body is looked for (headers, indentation, narrow lines).
const BODY_WINDOW: usize = 2048;
/// Base64 characters of a body decoded to check it: enough for the DER header or the magic.
const BODY_CHARS: usize = 64;
/// The shortest unframed base64 run decoded: an Ed25519 PKCS#8 key is 64 characters.
pub const MIN_RUN: usize = 64;
/// The most characters of one base64 run decoded (the key sits at its start; a file encoded
/// whole, such as a kubeconfig in a Secret, is searched this far).
pub const MAX_RUN: usize = 64 << 10;
/// Base64 inside base64 is followed this deep.
const MAX_DEPTH: u8 = 2;

const fn b64_table() -> [u8; 256] {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'/' as usize] = 63;
    t
}
static B64: [u8; 256] = b64_table();

fn is_b64(b: u8) -> bool {
    B64[b as usize] != 0xff
}

/// Decode base64 characters (no separators, padding already stripped), as far as they go.
fn decode(chars: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chars.len() / 4 * 3 + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in chars {
        let v = B64[c as usize];
        if v == 0xff {
            break;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The length of a separator at `data[i..]` inside an encoded key: ASCII whitespace, or a JSON /
/// shell escape `\n`, `\r`, `\t` (also doubly escaped, `\\n`). 0 if none.
fn separator(data: &[u8], i: usize, spaces: bool) -> usize {
    match data[i] {
        b'\n' | b'\r' => 1,
        b' ' | b'\t' if spaces => 1,
        b'\\' => {
            let mut j = i + 1;
            while j < data.len() && j < i + 4 && data[j] == b'\\' {
                j += 1;
            }
            match data.get(j) {
                Some(b'n' | b'r' | b't') => j + 1 - i,
                _ => 0,
            }
        }
        _ => 0,
    }
}

/// Base64 characters from `data[i..]`, skipping separators, up to `max` characters. Returns the
/// characters and where the run ended. Between lines, indentation is skipped too.
fn collect(data: &[u8], mut i: usize, max: usize, spaces: bool) -> (Vec<u8>, usize) {
    let mut chars = Vec::new();
    let mut line_start = false;
    while i < data.len() && chars.len() < max {
        let b = data[i];
        if is_b64(b) {
            chars.push(b);
            line_start = false;
            i += 1;
            continue;
        }
        // JSON may escape the slash.
        if data[i..].starts_with(b"\\/") {
            chars.push(b'/');
            line_start = false;
            i += 2;
            continue;
        }
        let n = separator(data, i, spaces || line_start);
        if n == 0 {
            break;
        }
        line_start = line_start || b != b' ' && b != b'\t';
        i += n;
    }
    (chars, i)
}

/// Whether decoded bytes start like a private key: DER (`SEQUENCE`) or an OpenSSH key.
fn starts_like_key(d: &[u8]) -> bool {
    d.first() == Some(&0x30) || d.starts_with(OPENSSH_MAGIC)
}

/// A DER tag and the offset of its contents, if `d[i..]` starts a well-formed header.
fn der_header(d: &[u8], i: usize) -> Option<(u8, usize)> {
    let tag = *d.get(i)?;
    let len = *d.get(i + 1)?;
    let at = match len {
        0..=0x7f => i + 2,
        0x81..=0x84 => i + 2 + usize::from(len - 0x80),
        _ => return None,
    };
    (at <= d.len()).then_some((tag, at))
}

/// Whether `d` starts with the DER of a private key (not a certificate, public key or CSR):
/// `SEQUENCE { INTEGER 0|1, INTEGER | SEQUENCE | OCTET STRING … }` (PKCS#1 RSA, DSA, PKCS#8,
/// SEC1 EC), or `SEQUENCE { SEQUENCE { OID pkcs5/pkcs12-pbe … } … }` (encrypted PKCS#8), or an
/// OpenSSH key.
fn is_key_der(d: &[u8]) -> bool {
    if d.starts_with(OPENSSH_MAGIC) {
        return true;
    }
    let Some((0x30, i)) = der_header(d, 0) else {
        return false;
    };
    match der_header(d, i) {
        Some((0x02, j)) => {
            // version INTEGER, one byte, 0 or 1; then the key's next field.
            d.get(i + 1) == Some(&1)
                && matches!(d.get(j), Some(0 | 1))
                && matches!(d.get(j + 1), Some(0x02 | 0x30 | 0x04))
        }
        Some((0x30, j)) => {
            // EncryptedPrivateKeyInfo: the algorithm is a PKCS#5 or PKCS#12 PBE scheme.
            const PKCS5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05];
            const PKCS12_PBE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01];
            match der_header(d, j) {
                Some((0x06, k)) => d[k..].starts_with(PKCS5) || d[k..].starts_with(PKCS12_PBE),
                _ => false,
            }
        }
        _ => false,
    }
}

/// A PEM private key starting at `at` (the `-----BEGIN `): its label ends in `PRIVATE KEY`, and a
/// separator, optional `Key: value` headers and a key's base64 body follow.
fn pem_key_at(data: &[u8], at: usize) -> bool {
    let rest = &data[at + BEGIN.len()..];
    // The label: upper-case words, at most 40 bytes, then "PRIVATE KEY-----".
    let Some(end) = memmem::find(&rest[..rest.len().min(64)], LABEL_END) else {
        return false;
    };
    if !rest[..end]
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ')
    {
        return false;
    }
    let body = &rest[end + LABEL_END.len()..];
    let body = &body[..body.len().min(BODY_WINDOW)];
    let mut i = 0;
    let mut encrypted = false;
    loop {
        // A body starts on a new line (or after a space, in a folded YAML scalar).
        let start = i;
        while i < body.len() {
            let n = separator(body, i, true);
            if n == 0 {
                break;
            }
            i += n;
        }
        if i == start || i >= body.len() {
            return false;
        }
        // Headers of encrypted PEM ("Proc-Type: 4,ENCRYPTED", "DEK-Info: …"): skip the line.
        let token_end = (i..body.len())
            .find(|&j| separator(body, j, false) != 0)
            .unwrap_or(body.len());
        if body[i..token_end].contains(&b':') {
            encrypted |= body[i..token_end].starts_with(b"Proc-Type:");
            i = token_end;
            continue;
        }
        let (chars, _) = collect(body, i, BODY_CHARS, true);
        return chars.len() >= 16 && (encrypted || starts_like_key(&decode(&chars)));
    }
}

/// The start of the next run of at least [`MIN_RUN`] contiguous base64 characters in
/// `data[from..]` that is not preceded by one (nor at 0 when `continued`). Skips ahead
/// [`MIN_RUN`] bytes at a time, so random or binary data costs a probe per [`MIN_RUN`] bytes.
fn next_run(data: &[u8], mut from: usize, continued: bool) -> Option<usize> {
    while from + MIN_RUN <= data.len() {
        let probe = from + MIN_RUN - 1;
        if !is_b64(data[probe]) {
            from = probe + 1;
            continue;
        }
        let mut s = probe;
        while s > from && is_b64(data[s - 1]) {
            s -= 1;
        }
        let mut e = probe + 1;
        while e < data.len() && is_b64(data[e]) {
            e += 1;
        }
        let preceded = s > 0 && is_b64(data[s - 1]);
        if e - s >= MIN_RUN && !preceded && !(continued && s == 0) {
            return Some(s);
        }
        from = e + 1;
    }
    None
}

/// Whether the base64 run at `s` is the body of a PEM block (its BEGIN line, then a line break,
/// right before it) whose label is not a private key's: a certificate, a public key, Go's
/// `TESTING KEY`. Such a body is what its label says; [`pem_key_at`] judges the private ones.
fn framed_non_key(data: &[u8], s: usize) -> bool {
    let mut i = s;
    while i > 0 && matches!(data[i - 1], b'\n' | b'\r') {
        i -= 1;
    }
    if i == s || !data[..i].ends_with(b"-----") {
        return false;
    }
    // The BEGIN line (whatever precedes it on its line: in a binary, other strings).
    let from = i.saturating_sub(BEGIN.len() + 64);
    let Some(at) = memmem::rfind(&data[from..i], BEGIN) else {
        return false;
    };
    let label = &data[from + at + BEGIN.len()..i];
    !label.ends_with(LABEL_END)
        && label
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b" -".contains(b))
}

fn scan(data: &[u8], continued: bool, depth: u8) -> Option<usize> {
    let pem = memmem::find_iter(data, BEGIN).find(|&at| pem_key_at(data, at));
    if depth >= MAX_DEPTH {
        return pem;
    }
    let limit = pem.unwrap_or(data.len());
    let mut from = 0;
    while let Some(s) = next_run(&data[..limit], from, continued) {
        let (chars, end) = collect(data, s, MAX_RUN, false);
        let decoded = decode(&chars);
        if framed_non_key(data, s) {
            // Judged by its label (a private one was found above, as `pem`).
        } else if is_key_der(&decoded) || scan(&decoded, false, depth + 1).is_some() {
            return Some(s);
        }
        // Past this run, without decoding what is beyond MAX_RUN of it.
        let (_, end) = if chars.len() >= MAX_RUN {
            collect(data, end, usize::MAX, false)
        } else {
            (Vec::new(), end)
        };
        from = end.max(s + 1);
    }
    pem
}

/// Whether `data` holds a private key in any encoding above: the byte offset of the first one
/// (of its `-----BEGIN`, or of the base64 run holding it).
pub fn find_private_key(data: &[u8]) -> Option<usize> {
    scan(data, false, 0)
}

/// `find_private_key` over a stream, in bounded memory: chunks of `chunk` bytes, each scanned
/// with the last `OVERLAP` bytes of the one before, so that a key's framing (the BEGIN line and
/// the start of its body, well under 4 KiB) or the start of a base64 run holding one is seen
/// whole wherever the chunks split it. A run that starts before the overlap was decoded in the
/// chunk before, from its start, at least `OVERLAP` characters of it.
pub fn find_private_key_in(
    r: &mut dyn std::io::Read,
    chunk: usize,
) -> std::io::Result<Option<u64>> {
    const OVERLAP: usize = 4096;
    let chunk = chunk.max(OVERLAP * 2);
    let mut buf = vec![0u8; OVERLAP + chunk];
    let (mut kept, mut base) = (0usize, 0u64); // bytes carried over; stream offset of buf[0]
    loop {
        let mut filled = kept;
        while filled < buf.len() {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(at) = scan(&buf[..filled], base > 0, 0) {
            return Ok(Some(base + at as u64));
        }
        if filled < buf.len() {
            return Ok(None);
        }
        let keep = OVERLAP.min(filled);
        buf.copy_within(filled - keep..filled, 0);
        base += (filled - keep) as u64;
        kept = keep;
    }
}

/// Whether the file at `path` holds a private key: the byte offset of the first one. Read in
/// 4 MiB chunks, so an archive member of up to 2 GiB or a large download is never held whole.
pub fn find_private_key_in_file(path: &std::path::Path) -> std::io::Result<Option<u64>> {
    find_private_key_in(&mut std::fs::File::open(path)?, 4 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_finds_a_key_wherever_the_chunks_split_it() {
        let key = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n";
        let chunk = 8192;
        for at in [
            0usize,
            100,
            8192 - 10,
            8192 + 4096 - 20,
            3 * 8192 + 7,
            50_000,
        ] {
            let mut data = vec![0u8; 60_000];
            data[at..at + key.len()].copy_from_slice(key);
            assert_eq!(
                find_private_key_in(&mut data.as_slice(), chunk).expect("read"),
                Some(at as u64),
                "key at {at}"
            );
        }
        let clean = vec![b'A'; 100_000];
        assert_eq!(
            find_private_key_in(&mut clean.as_slice(), chunk).expect("read"),
            None
        );
    }

    /// Go's `testingKey` convention (`net/http/internal/testcert`, linked into crictl 1.34): a
    /// real RSA key body under a `TESTING KEY` label is a public test fixture, not a secret; the
    /// same body under a `PRIVATE KEY` label, or unframed, is a key.
    #[test]
    fn a_go_testing_key_is_not_a_private_key() {
        let body = "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDFyXr1E4l3GM34\n\
                    wlmdsWtjHJCigAMKwnpUOS4DAgMBAAECggEBAL4mDPbcsAE8xaI7AOwkW9aU0FBV\n";
        let testing = format!(
            "docs-----BEGIN RSA TESTING KEY-----\n{body}-----END RSA TESTING KEY-----\n\x1egrpc"
        );
        assert_eq!(find_private_key(testing.as_bytes()), None);
        let private = format!("-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----\n");
        assert_eq!(find_private_key(private.as_bytes()), Some(0));
        let unframed = format!("client-key-data: {}\n", body.replace('\n', ""));
        assert_eq!(find_private_key(unframed.as_bytes()), Some(17));
    }

    #[test]
    fn real_key_shapes_are_found_and_words_are_not() {
        let rsa = b"x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(find_private_key(rsa), Some(2));
        let pkcs8 = b"-----BEGIN PRIVATE KEY-----\r\nMC4CAQAwBQYDK2VwBCIEIGJ1c3RlZA==\r\n";
        assert_eq!(find_private_key(pkcs8), Some(0));
        let enc = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n";
        assert!(find_private_key(enc).is_some());
        let ssh =
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n";
        assert!(find_private_key(ssh).is_some());
        // What a Go binary holds: the words and the framing, apart.
        let go = b"\x00-----BEGIN \x00RSA PRIVATE KEY\x00EC PRIVATE KEY-----\x00\x7fELF";
        assert_eq!(find_private_key(go), None);
        assert_eq!(
            find_private_key(b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n"),
            None
        );
        assert_eq!(
            find_private_key(b"tlsPrivateKeyFile: /var/lib/kubelet/w-key.pem"),
            None
        );
    }

    /// Real keys, generated now: (what, PEM text, DER or OpenSSH binary).
    fn real_keys() -> Vec<(&'static str, String, Vec<u8>)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name).display().to_string();
        let run = |cmd: &str, args: &[&str]| -> Vec<u8> {
            let out = std::process::Command::new(cmd)
                .args(args)
                .output()
                .expect("run openssl/ssh-keygen");
            assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
            out.stdout
        };
        let pem_of = |file: &str| std::fs::read_to_string(p(file)).expect("read key");
        run(
            "openssl",
            &["genrsa", "-traditional", "-out", &p("rsa"), "2048"],
        );
        run(
            "openssl",
            &["genpkey", "-algorithm", "ed25519", "-out", &p("p8")],
        );
        run(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-aes256",
                "-pass",
                "pass:x",
                "-out",
                &p("p8enc"),
            ],
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
            &["dsaparam", "-genkey", "-noout", "-out", &p("dsa0"), "1024"],
        );
        run(
            "openssl",
            &["pkey", "-traditional", "-in", &p("dsa0"), "-out", &p("dsa")],
        );
        run(
            "openssl",
            &[
                "genrsa",
                "-traditional",
                "-aes128",
                "-passout",
                "pass:x",
                "-out",
                &p("rsaenc"),
                "1024",
            ],
        );
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", &p("ssh")],
        );
        let der = |file: &str| run("openssl", &["pkey", "-in", &p(file), "-outform", "DER"]);
        let ssh = pem_of("ssh");
        let ssh_bin = decode(
            &ssh.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>()
                .into_bytes(),
        );
        vec![
            (
                "RSA PKCS#1",
                pem_of("rsa"),
                run(
                    "openssl",
                    &["rsa", "-traditional", "-in", &p("rsa"), "-outform", "DER"],
                ),
            ),
            ("PKCS#8", pem_of("p8"), der("p8")),
            (
                "encrypted PKCS#8",
                pem_of("p8enc"),
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
                pem_of("ec"),
                run("openssl", &["ec", "-in", &p("ec"), "-outform", "DER"]),
            ),
            (
                "DSA",
                pem_of("dsa"),
                run("openssl", &["dsa", "-in", &p("dsa"), "-outform", "DER"]),
            ),
            ("encrypted PKCS#1", pem_of("rsaenc"), der("rsa")),
            ("OpenSSH", ssh, ssh_bin),
        ]
    }

    fn b64(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in data.chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= c.len() {
                    A[(n >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        out
    }

    fn rewrap(pem: &str, width: usize) -> String {
        let mut lines = pem.lines();
        let begin = lines.next().expect("begin");
        let mut body = String::new();
        let mut rest = Vec::new();
        for l in lines {
            if l.starts_with("-----END") || l.contains(':') || l.is_empty() {
                rest.push(l);
            } else {
                body.push_str(l);
            }
        }
        let end = rest.pop().expect("end");
        let mut out = format!("{begin}\n");
        for h in rest {
            out.push_str(h);
            out.push('\n');
        }
        for c in body.as_bytes().chunks(width) {
            out.push_str(std::str::from_utf8(c).expect("ascii"));
            out.push('\n');
        }
        out + end + "\n"
    }

    #[test]
    fn real_keys_are_found_in_every_encoding() {
        for (what, pem, bin) in real_keys() {
            let yaml = format!(
                "tls:\n  key: |\n{}",
                pem.lines()
                    .map(|l| format!("    {l}\n"))
                    .collect::<String>()
            );
            let json = format!("{{\"key\": \"{}\"}}", pem.replace('\n', "\\n"));
            let json2 = format!(
                "{{\"k\": \"{}\"}}",
                json.replace('\\', "\\\\").replace('"', "\\\"")
            );
            let encodings = [
                ("PEM", pem.clone()),
                ("CRLF", pem.replace('\n', "\r\n")),
                ("YAML block", yaml),
                ("JSON string", json),
                ("JSON in JSON", json2),
                (
                    "JSON, escaped slashes",
                    format!(
                        "{{\"key\": \"{}\"}}",
                        pem.replace('\n', "\\n").replace('/', "\\/")
                    ),
                ),
                (
                    "base64 of PEM",
                    format!("client-key-data: {}\n", b64(pem.as_bytes())),
                ),
                (
                    "base64 of PEM, wrapped",
                    format!(
                        "key: |\n  {}\n",
                        b64(pem.as_bytes())
                            .as_bytes()
                            .chunks(76)
                            .map(|c| std::str::from_utf8(c).expect("ascii"))
                            .collect::<Vec<_>>()
                            .join("\n  ")
                    ),
                ),
                ("base64 of DER", format!("client-key-data: {}\n", b64(&bin))),
                ("JSON base64 of DER", format!("{{\"d\":\"{}\"}}", b64(&bin))),
                ("wrapped at 40", rewrap(&pem, 40)),
                ("wrapped at 16", rewrap(&pem, 16)),
                ("wrapped at 5", rewrap(&pem, 5)),
            ];
            for (how, text) in encodings {
                let mut data = b"# config\nname: x\n".to_vec();
                data.extend_from_slice(text.as_bytes());
                assert!(
                    find_private_key(&data).is_some(),
                    "{what}, {how}, not found:\n{text}"
                );
                // Streamed, wherever a chunk boundary falls.
                let mut big = vec![0u8; 20_000];
                big.extend_from_slice(&data);
                big.extend(std::iter::repeat_n(b'x', 20_000));
                assert!(
                    find_private_key_in(&mut big.as_slice(), 8192)
                        .expect("read")
                        .is_some(),
                    "{what}, {how}, streamed"
                );
            }
        }
    }

    #[test]
    fn certificates_public_keys_and_marker_words_are_not_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name).display().to_string();
        let run = |cmd: &str, args: &[&str]| -> Vec<u8> {
            let out = std::process::Command::new(cmd)
                .args(args)
                .output()
                .expect("run");
            assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
            out.stdout
        };
        run("openssl", &["genrsa", "-out", &p("k"), "2048"]);
        let cert = run(
            "openssl",
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &p("k"),
                "-subj",
                "/CN=test",
                "-days",
                "1",
            ],
        );
        let cert_der = run(
            "openssl",
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &p("k"),
                "-subj",
                "/CN=test",
                "-days",
                "1",
                "-outform",
                "DER",
            ],
        );
        let public = run("openssl", &["pkey", "-in", &p("k"), "-pubout"]);
        let public_der = run(
            "openssl",
            &["pkey", "-in", &p("k"), "-pubout", "-outform", "DER"],
        );
        let rsa_public = run("openssl", &["rsa", "-in", &p("k"), "-RSAPublicKey_out"]);
        let csr = run(
            "openssl",
            &["req", "-new", "-key", &p("k"), "-subj", "/CN=test"],
        );
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", &p("ssh")],
        );
        let ssh_pub = std::fs::read(p("ssh.pub")).expect("pub");
        let mut go = b"\x7fELF\x00\x00-----BEGIN RSA PRIVATE KEY-----\x00\x01\x02".to_vec();
        go.extend_from_slice(b"-----BEGIN RSA PRIVATE KEY-----ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
        go.extend_from_slice(b"-----BEGIN EC PRIVATE KEY-----\n%s: %v\x00-----BEGIN PRIVATE KEY-----\ncrypto/x509: unknown\n");
        let clean: Vec<(&str, Vec<u8>)> = vec![
            ("certificate", cert.clone()),
            (
                "certificate, YAML block",
                format!(
                    "ca: |\n{}",
                    String::from_utf8_lossy(&cert)
                        .lines()
                        .map(|l| format!("  {l}\n"))
                        .collect::<String>()
                )
                .into_bytes(),
            ),
            (
                "base64 of a certificate",
                format!("certificate-authority-data: {}\n", b64(&cert)).into_bytes(),
            ),
            (
                "base64 of a DER certificate",
                format!("ca: {}\n", b64(&cert_der)).into_bytes(),
            ),
            ("public key", public),
            ("base64 of a DER public key", b64(&public_der).into_bytes()),
            ("RSA public key", rsa_public),
            ("CSR", csr),
            ("ssh public key", ssh_pub),
            ("a Go binary's words", go),
            (
                "sha256 sums",
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  x\n"
                    .repeat(50)
                    .into_bytes(),
            ),
        ];
        for (what, data) in clean {
            assert_eq!(
                find_private_key(&data),
                None,
                "{what}:\n{}",
                String::from_utf8_lossy(&data)
            );
        }
    }

    #[test]
    fn random_data_is_scanned_without_a_hit() {
        // xorshift: deterministic, no dependency.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let data: Vec<u8> = (0..4_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(
            find_private_key_in(&mut data.as_slice(), 1 << 20).expect("read"),
            None
        );
    }
}
