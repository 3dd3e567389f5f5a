//! Private keys must never reach an image or the shared store. Detection is by content, not by
//! name: a PEM block whose type ends in `PRIVATE KEY` (PKCS#1, PKCS#8, EC, encrypted, OpenSSH)
//! followed by base64 — the framing a real key has. A binary that merely contains the words (Go's
//! crypto/x509 does) is not a key.

use memchr::memmem;

const BEGIN: &[u8] = b"-----BEGIN ";

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// Whether `data` holds a PEM-framed private key. The byte offset of the first one.
pub fn find_private_key(data: &[u8]) -> Option<usize> {
    for at in memmem::find_iter(data, BEGIN) {
        let rest = &data[at + BEGIN.len()..];
        // The label: upper-case words, at most 40 bytes, then "PRIVATE KEY-----".
        let Some(end) = memmem::find(&rest[..rest.len().min(64)], b"PRIVATE KEY-----") else {
            continue;
        };
        if !rest[..end]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' ')
        {
            continue;
        }
        let mut body = &rest[end + b"PRIVATE KEY-----".len()..];
        // Headers of encrypted PEM ("Proc-Type: …") may come first; skip blank and header lines.
        while let Some(nl) = body.iter().position(|b| *b == b'\n') {
            let line = body[..nl].strip_suffix(b"\r").unwrap_or(&body[..nl]);
            if line.is_empty() || line.contains(&b':') {
                body = &body[nl + 1..];
                continue;
            }
            if line.len() >= 16 && line.iter().all(|b| is_b64(*b)) {
                return Some(at);
            }
            break;
        }
    }
    None
}

/// `find_private_key` over a stream, in bounded memory: chunks of `chunk` bytes, each scanned
/// with the last `OVERLAP` bytes of the one before, so that a key's framing (the BEGIN line and
/// its first base64 line, well under 4 KiB) is seen whole wherever the chunks split it.
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
        if let Some(at) = find_private_key(&buf[..filled]) {
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
}
