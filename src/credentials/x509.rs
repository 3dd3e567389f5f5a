//! X.509 certificates and private keys, as the checks need them: names, validity, the
//! extensions Kubernetes reads (subjectAltName, basicConstraints, extendedKeyUsage), issuer
//! signatures (RSA PKCS#1 v1.5 with SHA-256/384/512, ECDSA P-256 with SHA-256/384, Ed25519) and
//! whether a private key (PKCS#8, PKCS#1, SEC1) is the key of a certificate. Only the public
//! half of a key is kept; its bytes are zeroed when dropped.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use const_oid::db::{rfc4519, rfc5280, rfc5912, rfc8410};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};
use x509_cert::Certificate;

use super::pem::{self, Block};

/// A parsed certificate, with the DER of what its issuer signed.
pub struct Cert {
    pub cert: Certificate,
    /// The certificate's own DER (to compare two certificates).
    pub der: Vec<u8>,
    /// The DER of its `tbsCertificate`: the bytes the signature covers.
    tbs: Vec<u8>,
}

/// Parse every `CERTIFICATE` block of a PEM text, in order. Other blocks are an error: a
/// certificate file holding a key is a mistake worth naming.
pub fn certificates(text: &str) -> Result<Vec<Cert>, String> {
    let blocks = pem::blocks(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        if b.label != "CERTIFICATE" {
            return Err(format!(
                "PEM block {} is `{}`, not `CERTIFICATE`{}",
                i + 1,
                b.label,
                if b.label.ends_with("PRIVATE KEY") {
                    ": a private key does not belong in a certificate file"
                } else {
                    ""
                }
            ));
        }
        out.push(
            Cert::from_der(&b.der)
                .map_err(|e| format!("PEM block {} is not an X.509 certificate: {e}", i + 1))?,
        );
    }
    Ok(out)
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Self, der::Error> {
        let cert = Certificate::from_der(der)?;
        let tbs = cert.tbs_certificate.to_der()?;
        Ok(Self {
            cert,
            der: der.to_vec(),
            tbs,
        })
    }

    fn attr(name: &x509_cert::name::Name, oid: ObjectIdentifier) -> Vec<String> {
        name.0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .filter(|atv| atv.oid == oid)
            .map(|atv| String::from_utf8_lossy(atv.value.value()).into_owned())
            .collect()
    }

    /// The subject's common names (normally one): the Kubernetes user.
    pub fn subject_cn(&self) -> Vec<String> {
        Self::attr(&self.cert.tbs_certificate.subject, rfc4519::COMMON_NAME)
    }

    /// The subject's organizations: the Kubernetes groups.
    pub fn subject_o(&self) -> Vec<String> {
        Self::attr(
            &self.cert.tbs_certificate.subject,
            rfc4519::ORGANIZATION_NAME,
        )
    }

    /// `CN=…, O=…` of the subject, for messages.
    pub fn subject(&self) -> String {
        describe_name(&self.cert.tbs_certificate.subject)
    }

    /// `CN=…` of the issuer, for messages.
    pub fn issuer(&self) -> String {
        describe_name(&self.cert.tbs_certificate.issuer)
    }

    pub fn not_before(&self) -> SystemTime {
        self.cert
            .tbs_certificate
            .validity
            .not_before
            .to_system_time()
    }

    pub fn not_after(&self) -> SystemTime {
        self.cert
            .tbs_certificate
            .validity
            .not_after
            .to_system_time()
    }

    /// RFC 3339 of notAfter.
    pub fn not_after_text(&self) -> String {
        self.cert
            .tbs_certificate
            .validity
            .not_after
            .to_date_time()
            .to_string()
    }

    /// RFC 3339 of notBefore.
    pub fn not_before_text(&self) -> String {
        self.cert
            .tbs_certificate
            .validity
            .not_before
            .to_date_time()
            .to_string()
    }

    fn extension<T: for<'a> Decode<'a>>(
        &self,
        oid: ObjectIdentifier,
    ) -> Option<Result<T, der::Error>> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| T::from_der(e.extn_value.as_bytes()))
    }

    /// `basicConstraints` cA, when the certificate has the extension.
    pub fn is_ca(&self) -> Option<bool> {
        match self.extension::<BasicConstraints>(rfc5280::ID_CE_BASIC_CONSTRAINTS)? {
            Ok(bc) => Some(bc.ca),
            Err(_) => Some(false),
        }
    }

    /// The extendedKeyUsage purposes, when the certificate restricts them.
    pub fn extended_key_usage(&self) -> Option<Vec<ObjectIdentifier>> {
        match self.extension::<ExtendedKeyUsage>(rfc5280::ID_CE_EXT_KEY_USAGE)? {
            Ok(eku) => Some(eku.0),
            Err(_) => Some(Vec::new()),
        }
    }

    /// Whether extendedKeyUsage (if any) allows serving TLS.
    pub fn allows_server_auth(&self) -> bool {
        self.extended_key_usage()
            .is_none_or(|e| e.contains(&rfc5280::ID_KP_SERVER_AUTH))
    }

    /// Whether extendedKeyUsage (if any) allows TLS client authentication.
    pub fn allows_client_auth(&self) -> bool {
        self.extended_key_usage()
            .is_none_or(|e| e.contains(&rfc5280::ID_KP_CLIENT_AUTH))
    }

    /// The subjectAltName's DNS names and IPv4 addresses (None: no such extension).
    pub fn san(&self) -> Option<San> {
        let names = match self.extension::<SubjectAltName>(rfc5280::ID_CE_SUBJECT_ALT_NAME)? {
            Ok(s) => s.0,
            Err(_) => Vec::new(),
        };
        let mut san = San::default();
        for n in names {
            match n {
                GeneralName::DnsName(d) => san.dns.push(d.to_string()),
                GeneralName::IpAddress(ip) => match <[u8; 4]>::try_from(ip.as_bytes()) {
                    Ok(b) => san.ips.push(Ipv4Addr::from(b).to_string()),
                    Err(_) => san.ips.push(format!("{:02x?}", ip.as_bytes())),
                },
                _ => {}
            }
        }
        Some(san)
    }

    pub fn public_key(&self) -> Result<PublicKey, String> {
        PublicKey::from_spki(&self.cert.tbs_certificate.subject_public_key_info)
    }

    /// Whether `issuer`'s key made this certificate's signature.
    pub fn signed_by(&self, issuer: &Cert) -> Verified {
        let key = match issuer.public_key() {
            Ok(k) => k,
            Err(e) => return Verified::Unsupported(e),
        };
        let Some(sig) = self.cert.signature.as_bytes() else {
            return Verified::Bad;
        };
        key.verify(&self.cert.signature_algorithm.oid, &self.tbs, sig)
    }

    /// Whether the issuer named in this certificate is `issuer`'s subject.
    pub fn names_issuer(&self, issuer: &Cert) -> bool {
        self.cert.tbs_certificate.issuer == issuer.cert.tbs_certificate.subject
    }

    pub fn self_issued(&self) -> bool {
        self.names_issuer(self)
    }

    /// A SHA-1 signature: Go's crypto/x509, and so every Kubernetes component, refuses it.
    pub fn sha1_signed(&self) -> bool {
        [
            rfc5912::SHA_1_WITH_RSA_ENCRYPTION,
            ObjectIdentifier::new_unwrap("1.2.840.10045.4.1"), // ecdsa-with-SHA1
        ]
        .contains(&self.cert.signature_algorithm.oid)
    }
}

/// A certificate's subjectAltName entries Kubernetes looks at.
#[derive(Debug, Default, Clone)]
pub struct San {
    pub dns: Vec<String>,
    pub ips: Vec<String>,
}

impl San {
    pub fn describe(&self) -> String {
        let all: Vec<String> = self
            .dns
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(self.ips.iter().map(|i| format!("IP:{i}")))
            .collect();
        if all.is_empty() {
            "no DNS name or IP address".into()
        } else {
            all.join(", ")
        }
    }
}

fn describe_name(name: &x509_cert::name::Name) -> String {
    let cn = Cert::attr(name, rfc4519::COMMON_NAME);
    let o = Cert::attr(name, rfc4519::ORGANIZATION_NAME);
    let parts: Vec<String> = cn
        .iter()
        .map(|c| format!("CN={c}"))
        .chain(o.iter().map(|o| format!("O={o}")))
        .collect();
    if parts.is_empty() {
        name.to_string()
    } else {
        parts.join(", ")
    }
}

fn algorithm_name(oid: &ObjectIdentifier) -> String {
    const NAMES: &[(ObjectIdentifier, &str)] = &[
        (
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            "sha256WithRSAEncryption",
        ),
        (
            rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
            "sha384WithRSAEncryption",
        ),
        (
            rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
            "sha512WithRSAEncryption",
        ),
        (rfc5912::SHA_1_WITH_RSA_ENCRYPTION, "sha1WithRSAEncryption"),
        (rfc5912::ECDSA_WITH_SHA_256, "ecdsa-with-SHA256"),
        (rfc5912::ECDSA_WITH_SHA_384, "ecdsa-with-SHA384"),
        (rfc8410::ID_ED_25519, "Ed25519"),
    ];
    NAMES
        .iter()
        .find(|(o, _)| o == oid)
        .map_or_else(|| oid.to_string(), |(_, n)| (*n).to_string())
}

/// The outcome of a signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Good,
    Bad,
    /// An algorithm nodeforge does not check (named).
    Unsupported(String),
}

/// A public key, from a certificate or derived from a private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Modulus and public exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    P256(p256::PublicKey),
    Ed25519([u8; 32]),
}

fn unsigned(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b[start..].to_vec()
}

impl PublicKey {
    fn from_spki(spki: &spki::SubjectPublicKeyInfoOwned) -> Result<Self, String> {
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or("the public key is not a whole number of bytes")?;
        let oid = spki.algorithm.oid;
        if oid == rfc5912::RSA_ENCRYPTION {
            let k = rsa::pkcs1::RsaPublicKey::from_der(bits)
                .map_err(|e| format!("RSA public key: {e}"))?;
            Ok(PublicKey::Rsa {
                n: unsigned(k.modulus.as_bytes()),
                e: unsigned(k.public_exponent.as_bytes()),
            })
        } else if oid == rfc5912::ID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            if curve != Some(rfc5912::SECP_256_R_1) {
                return Err(format!(
                    "an ECDSA key on curve {} (nodeforge checks P-256 only)",
                    curve.map_or_else(|| "(unnamed)".into(), |c| curve_name(&c))
                ));
            }
            p256::PublicKey::from_sec1_bytes(bits)
                .map(PublicKey::P256)
                .map_err(|e| format!("P-256 public key: {e}"))
        } else if oid == rfc8410::ID_ED_25519 {
            <[u8; 32]>::try_from(bits)
                .map(PublicKey::Ed25519)
                .map_err(|_| "an Ed25519 public key of the wrong length".into())
        } else {
            Err(format!(
                "a {} key (nodeforge checks RSA, ECDSA P-256 and Ed25519)",
                oid
            ))
        }
    }

    /// The key's algorithm, for messages.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "RSA",
            PublicKey::P256(_) => "ECDSA P-256",
            PublicKey::Ed25519(_) => "Ed25519",
        }
    }

    fn verify(&self, alg: &ObjectIdentifier, msg: &[u8], sig: &[u8]) -> Verified {
        use sha2::Digest as _;
        let ok = |r: bool| if r { Verified::Good } else { Verified::Bad };
        match self {
            PublicKey::Rsa { n, e } => {
                let Ok(key) = rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(n),
                    rsa::BigUint::from_bytes_be(e),
                ) else {
                    return Verified::Unsupported("an RSA key rsa cannot use".into());
                };
                let (scheme, hashed) = if *alg == rfc5912::SHA_256_WITH_RSA_ENCRYPTION {
                    (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                        sha2::Sha256::digest(msg).to_vec(),
                    )
                } else if *alg == rfc5912::SHA_384_WITH_RSA_ENCRYPTION {
                    (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                        sha2::Sha384::digest(msg).to_vec(),
                    )
                } else if *alg == rfc5912::SHA_512_WITH_RSA_ENCRYPTION {
                    (
                        rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                        sha2::Sha512::digest(msg).to_vec(),
                    )
                } else {
                    return Verified::Unsupported(format!(
                        "{} signatures by an RSA key",
                        algorithm_name(alg)
                    ));
                };
                ok(key.verify(scheme, &hashed, sig).is_ok())
            }
            PublicKey::P256(k) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
                let Ok(sig) = p256::ecdsa::Signature::from_der(sig) else {
                    return Verified::Bad;
                };
                let vk = p256::ecdsa::VerifyingKey::from(k);
                let prehash = if *alg == rfc5912::ECDSA_WITH_SHA_256 {
                    sha2::Sha256::digest(msg).to_vec()
                } else if *alg == rfc5912::ECDSA_WITH_SHA_384 {
                    sha2::Sha384::digest(msg).to_vec()
                } else {
                    return Verified::Unsupported(format!(
                        "{} signatures by a P-256 key",
                        algorithm_name(alg)
                    ));
                };
                ok(vk.verify_prehash(&prehash, &sig).is_ok())
            }
            PublicKey::Ed25519(k) => {
                if *alg != rfc8410::ID_ED_25519 {
                    return Verified::Unsupported(format!(
                        "{} signatures by an Ed25519 key",
                        algorithm_name(alg)
                    ));
                }
                let (Ok(vk), Ok(sig)) = (
                    ed25519_dalek::VerifyingKey::from_bytes(k),
                    ed25519_dalek::Signature::from_slice(sig),
                ) else {
                    return Verified::Bad;
                };
                ok(vk.verify_strict(msg, &sig).is_ok())
            }
        }
    }
}

fn curve_name(oid: &ObjectIdentifier) -> String {
    if *oid == rfc5912::SECP_384_R_1 {
        "P-384".into()
    } else if *oid == rfc5912::SECP_521_R_1 {
        "P-521".into()
    } else {
        oid.to_string()
    }
}

/// Why a private key cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not a key nodeforge can read (wrong label, bad DER, encrypted).
    Invalid(String),
    /// A valid key of an algorithm nodeforge does not compare.
    Unsupported(String),
}

/// The public key of the (single) private key in a PEM text: PKCS#8 `PRIVATE KEY`, PKCS#1
/// `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY` (an `EC PARAMETERS` block before it is allowed).
pub fn private_key_public(text: &str) -> Result<PublicKey, KeyError> {
    let blocks = pem::blocks(text).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let keys: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.label != "EC PARAMETERS")
        .collect();
    let [key] = keys.as_slice() else {
        return Err(KeyError::Invalid(format!(
            "holds {} PEM blocks besides EC PARAMETERS ({}); a key file holds one private key",
            keys.len(),
            keys.iter()
                .map(|b| b.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    if key.label == "ENCRYPTED PRIVATE KEY" || key.encrypted_headers {
        return Err(KeyError::Invalid(
            "is encrypted: kubelet and kube-proxy read only unencrypted keys (`openssl pkey -in KEY -out PLAIN` asks for the passphrase once)".into(),
        ));
    }
    let der: &[u8] = &key.der;
    match key.label.as_str() {
        "RSA PRIVATE KEY" => rsa_public(der),
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(der)
            .map(|k| PublicKey::P256(k.public_key()))
            .map_err(|_| {
                KeyError::Unsupported(
                    "an EC key that is not on curve P-256 (nodeforge checks P-256 only)".into(),
                )
            }),
        "PRIVATE KEY" => {
            let info = rsa::pkcs8::PrivateKeyInfo::from_der(der)
                .map_err(|e| KeyError::Invalid(format!("not a PKCS#8 private key: {e}")))?;
            let oid = info.algorithm.oid;
            if oid == rfc5912::RSA_ENCRYPTION {
                rsa_public(info.private_key)
            } else if oid == rfc5912::ID_EC_PUBLIC_KEY {
                use p256::pkcs8::DecodePrivateKey as _;
                p256::SecretKey::from_pkcs8_der(der)
                    .map(|k| PublicKey::P256(k.public_key()))
                    .map_err(|_| {
                        KeyError::Unsupported(
                            "an EC key that is not on curve P-256 (nodeforge checks P-256 only)"
                                .into(),
                        )
                    })
            } else if oid == rfc8410::ID_ED_25519 {
                use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                ed25519_dalek::SigningKey::from_pkcs8_der(der)
                    .map(|k| PublicKey::Ed25519(k.verifying_key().to_bytes()))
                    .map_err(|e| KeyError::Invalid(format!("not an Ed25519 key: {e}")))
            } else {
                Err(KeyError::Unsupported(format!(
                    "a {oid} key (nodeforge checks RSA, ECDSA P-256 and Ed25519)"
                )))
            }
        }
        other => Err(KeyError::Invalid(format!(
            "holds a `{other}` PEM block, not a private key"
        ))),
    }
}

/// The modulus and exponent of a PKCS#1 RSAPrivateKey, read from its structure (no big-number
/// arithmetic: what `openssl rsa -modulus` compares).
fn rsa_public(der: &[u8]) -> Result<PublicKey, KeyError> {
    let k = rsa::pkcs1::RsaPrivateKey::from_der(der)
        .map_err(|e| KeyError::Invalid(format!("not an RSA private key: {e}")))?;
    Ok(PublicKey::Rsa {
        n: unsigned(k.modulus.as_bytes()),
        e: unsigned(k.public_exponent.as_bytes()),
    })
}

/// How long until `t` from `now`; negative (Err) when it is past.
pub fn until(now: SystemTime, t: SystemTime) -> Result<Duration, Duration> {
    t.duration_since(now).map_err(|e| e.duration())
}
