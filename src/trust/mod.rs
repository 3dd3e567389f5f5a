//! What vouches for an image: Ed25519 keys (`keys`), DSSE envelopes (`dsse`), and the in-toto
//! Statement an image signature carries, checked against an image record. Pure: bytes in,
//! verdicts out; `ops` reads and writes the files (`layout::OutDir::attestations`).
//!
//! An image signature is a DSSE envelope (payload type `application/vnd.in-toto+json`) over an
//! in-toto Statement v1 whose subjects are what identifies the image: its id (blake3 of its
//! layers), each layer's dm-verity root hash, the sha256 of its record's canonical bytes
//! ([`record_sha256`]: so the provenance and every verity parameter are signed, not only what the
//! id covers) and the sha256 of its SBOM. The predicate (`IMAGE_PREDICATE`) repeats them with
//! their roles and each layer's full verity parameters, so that a verifier needs nothing else.
//! A signature made before the record was signed ("an older format") vouches for nothing.

pub mod dsse;
pub mod keys;
pub mod pkcs7;
pub mod provenance;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use dsse::Envelope;
pub use keys::{KeyError, PrivateKey, PublicKey};

use crate::image::{ImageManifest, VerityInfo, IMAGE_RECORD};

/// in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The predicate of an image signature.
pub const IMAGE_PREDICATE: &str = "https://nodeforge.dev/attestation/image/v1";

/// An in-toto Statement v1 with predicate `P`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement<P> {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: P,
}

/// A subject: a name and its digests (in-toto's DigestSet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn new(name: &str, alg: &str, value: &str) -> Self {
        Self {
            name: name.to_string(),
            digest: BTreeMap::from([(alg.to_string(), value.to_string())]),
        }
    }
}

/// What an image signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePredicate {
    pub image: String,
    pub node: String,
    pub arch: String,
    pub layers: Vec<SignedLayer>,
    /// The SBOM beside the image (`sbom.spdx.json`) and its sha256.
    pub sbom: Option<SignedFile>,
    /// The image's record (`manifest.json`) and the sha256 of its canonical bytes
    /// ([`record_sha256`]). Absent in signatures of the older format, which are not trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<SignedFile>,
    /// What orders this image among the node's signed images (absent in signatures made before
    /// nodeforge wrote it, and for an image the signing host has no generation of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
}

/// What orders the signed images of one node: the generation of the node the signing host
/// recorded the image as (its newest, when it is several), the lockfile it was built from and
/// when that generation was made. Signed with the image, so a registry cannot change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    pub generation: u32,
    pub lock_id: String,
    /// Seconds since the epoch, the generation's `built_at_unix`.
    pub built_at_unix: u64,
}

impl Freshness {
    /// `self` is older than `other`: made earlier, or in the same second as an earlier
    /// generation. The time comes first: a builder whose `out/` was started anew counts its
    /// generations from 1 again, its clock does not go back.
    pub fn older_than(&self, other: &Freshness) -> bool {
        (self.built_at_unix, self.generation) < (other.built_at_unix, other.generation)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedLayer {
    pub role: String,
    pub name: String,
    pub id: String,
    pub root_hash: String,
    /// Every dm-verity parameter the record gives the layer (absent in the older format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity: Option<VerityInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedFile {
    pub name: String,
    pub sha256: String,
}

/// The statement an image signature signs, from the image's record (with its layers' verity
/// parameters), its SBOM's name and sha256, and what orders it among the node's images.
pub fn image_statement(
    m: &ImageManifest,
    sbom: Option<SignedFile>,
    freshness: Option<Freshness>,
) -> Result<Statement<ImagePredicate>, String> {
    let mut layers = Vec::new();
    for l in &m.layers {
        let v = l.verity.as_ref().ok_or_else(|| {
            format!(
                "image {}: its record pins no root hash for its {} layer",
                m.id, l.role
            )
        })?;
        layers.push(SignedLayer {
            role: l.role.to_string(),
            name: l.name.clone(),
            id: l.id.clone(),
            root_hash: v.root_hash.clone(),
            verity: Some(v.clone()),
        });
    }
    let record = SignedFile {
        name: IMAGE_RECORD.to_string(),
        sha256: record_sha256(m)?,
    };
    let mut subject = vec![Subject::new(&format!("image/{}", m.id), "blake3", &m.id)];
    for l in &layers {
        subject.push(Subject::new(
            &format!("{}.raw", l.name),
            "dm-verity-sha256",
            &l.root_hash,
        ));
    }
    subject.push(Subject::new(&record.name, "sha256", &record.sha256));
    if let Some(s) = &sbom {
        subject.push(Subject::new(&s.name, "sha256", &s.sha256));
    }
    Ok(Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject,
        predicate_type: IMAGE_PREDICATE.into(),
        predicate: ImagePredicate {
            image: m.id.clone(),
            node: m.node.clone(),
            arch: m.arch.clone(),
            layers,
            sbom,
            record: Some(record),
            freshness,
        },
    })
}

/// The sha256 (hex) of image record `m`'s canonical bytes: its JSON value with every object's
/// keys sorted and no whitespace. A function of what the record says, not of how its file is
/// laid out (indentation, field order), so a signature survives a record written again by a
/// nodeforge that orders its fields otherwise.
pub fn record_sha256(m: &ImageManifest) -> Result<String, String> {
    let v = serde_json::to_value(m).map_err(|e| format!("image {}: its record: {e}", m.id))?;
    let mut bytes = Vec::new();
    canonical_json(&v, &mut bytes);
    Ok(crate::hash::Sha256::of(&bytes).to_hex())
}

/// `v` as compact JSON with object keys sorted (byte order), recursively.
fn canonical_json(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    let scalar = |v: &Value, out: &mut Vec<u8>| {
        // Strings, numbers, booleans and null: serde_json writes them one way only.
        out.extend(serde_json::to_vec(v).unwrap_or_default());
    };
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                scalar(&Value::String(k.clone()), out);
                out.push(b':');
                canonical_json(&map[k.as_str()], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        other => scalar(other, out),
    }
}

/// Canonical JSON of a statement (compact, fields in declaration order, maps sorted).
pub fn to_payload<T: Serialize>(s: &T) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_default()
}

/// One signature file of an image, as checked.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureCheck {
    pub file: PathBuf,
    /// Key ids the envelope names.
    pub keyids: Vec<String>,
    /// The trusted keys with a valid signature in it (empty: untrusted or invalid).
    pub trusted_by: Vec<String>,
    /// Why its statement does not vouch for this image, if it does not.
    pub mismatch: Option<String>,
    /// What its statement says orders the image (trust it only with `trusted_by` and no
    /// `mismatch`).
    pub freshness: Option<Freshness>,
}

/// Check the signature envelopes of image `m` (each a file's bytes) against trusted `keys`:
/// a signature counts when a trusted key made it and its statement names exactly this image's
/// id and layer root hashes, and (when it names one) the SBOM's current sha256.
pub fn check_signatures(
    m: &ImageManifest,
    envelopes: &[(PathBuf, Vec<u8>)],
    sbom_sha256: Option<&str>,
    keys: &[PublicKey],
) -> Vec<SignatureCheck> {
    envelopes
        .iter()
        .map(|(file, bytes)| check_one(m, file, bytes, sbom_sha256, keys))
        .collect()
}

fn check_one(
    m: &ImageManifest,
    file: &Path,
    bytes: &[u8],
    sbom_sha256: Option<&str>,
    keys: &[PublicKey],
) -> SignatureCheck {
    let mut c = SignatureCheck {
        file: file.to_path_buf(),
        keyids: Vec::new(),
        trusted_by: Vec::new(),
        mismatch: None,
        freshness: None,
    };
    let env: Envelope = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => {
            c.mismatch = Some(format!("not a DSSE envelope: {e}"));
            return c;
        }
    };
    c.keyids = env.signatures.iter().map(|s| s.keyid.clone()).collect();
    if env.payload_type != dsse::IN_TOTO {
        c.mismatch = Some(format!(
            "payload type {:?} is not an in-toto statement",
            env.payload_type
        ));
        return c;
    }
    let signed_by: Vec<String> = env
        .signed_by(keys)
        .into_iter()
        .map(|k| k.keyid().to_string())
        .collect();
    let statement: Statement<ImagePredicate> = match env
        .payload_bytes()
        .ok_or_else(|| "its payload is not base64".to_string())
        .and_then(|p| serde_json::from_slice(&p).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            c.mismatch = Some(format!("not an image statement: {e}"));
            return c;
        }
    };
    c.mismatch = statement_mismatch(m, &statement, sbom_sha256);
    c.freshness = statement.predicate.freshness.clone();
    if c.mismatch.is_none() && signed_by.is_empty() {
        // Said apart from an unknown key: the envelope claims a trusted key that did not sign it.
        if let Some(k) = keys
            .iter()
            .find(|k| c.keyids.iter().any(|id| id == k.keyid()))
        {
            c.mismatch = Some(format!(
                "it names trusted key {}, but no signature in it verifies with that key (forged or damaged)",
                k.keyid()
            ));
        }
    }
    c.trusted_by = signed_by;
    c
}

/// How a signed statement differs from image `m`, if it does.
fn statement_mismatch(
    m: &ImageManifest,
    s: &Statement<ImagePredicate>,
    sbom_sha256: Option<&str>,
) -> Option<String> {
    if s.statement_type != STATEMENT_TYPE || s.predicate_type != IMAGE_PREDICATE {
        return Some(format!(
            "its statement is {} with predicate {}, not an image signature",
            s.statement_type, s.predicate_type
        ));
    }
    let p = &s.predicate;
    if p.image != m.id {
        return Some(format!("it signs image {}, not {}", p.image, m.id));
    }
    // Made before the record's canonical bytes and the full verity parameters were signed: the
    // provenance and verity parameters beside the root hashes are not covered, so it vouches for
    // none of the record.
    if p.record.is_none() || p.layers.iter().any(|l| l.verity.is_none()) {
        return Some(
            "signature of an older format: it does not cover the image's record (provenance, verity parameters); sign the image again with `nodeforge sign`"
                .into(),
        );
    }
    // The image id covers the layers, not the record's node and arch: a record that says another
    // node would install the signed image as that node's.
    if p.node != m.node || p.arch != m.arch {
        return Some(format!(
            "it signs image {} as node {} ({}), the image's record says node {} ({})",
            p.image, p.node, p.arch, m.node, m.arch
        ));
    }
    let want = match image_statement(m, p.sbom.clone(), p.freshness.clone()) {
        Ok(w) => w,
        Err(e) => return Some(e),
    };
    if want.predicate.layers != p.layers {
        let pinned = |ls: &[SignedLayer]| {
            ls.iter()
                .map(|l| format!("{} {}", l.role, l.root_hash))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if pinned(&p.layers) != pinned(&want.predicate.layers) {
            return Some(format!(
                "it signs root hashes {}, the image's record pins {}",
                pinned(&p.layers),
                pinned(&want.predicate.layers)
            ));
        }
        return Some(format!(
            "it signs other dm-verity parameters than the image's record gives its layers ({})",
            p.layers
                .iter()
                .zip(&want.predicate.layers)
                .filter(|(a, b)| a != b)
                .map(|(_, b)| b.role.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let (Some(signed), Some(have)) = (&p.record, &want.predicate.record) {
        if signed.sha256 != have.sha256 {
            return Some(format!(
                "it signs record sha256 {}, the image's record hashes to {}: its provenance or verity parameters are not the ones signed",
                signed.sha256, have.sha256
            ));
        }
    }
    if want.subject != s.subject {
        return Some("its subjects are not the ones its predicate names".into());
    }
    if let Some(sbom) = &p.sbom {
        match sbom_sha256 {
            Some(actual) if actual == sbom.sha256 => {}
            Some(actual) => {
                return Some(format!(
                    "it signs SBOM sha256 {}, {} hashes to {actual}",
                    sbom.sha256, sbom.name
                ))
            }
            None => return Some(format!("the SBOM it signs ({}) is missing", sbom.name)),
        }
    }
    None
}

/// The keys a verifier trusts: public keys given one by one (`--key`) and trusted-keys files,
/// each holding any number of `BEGIN PUBLIC KEY` PEM blocks (text outside them is ignored, so
/// comments may name whose each key is).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    pub keys: Vec<PublicKey>,
}

impl TrustedKeys {
    pub fn load(key_files: &[PathBuf], bundles: &[PathBuf]) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for p in key_files {
            keys.push(PublicKey::read(p)?);
        }
        for p in bundles {
            let text = std::fs::read_to_string(p).map_err(|source| KeyError::Read {
                path: p.clone(),
                source,
            })?;
            const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
            const END: &str = "-----END PUBLIC KEY-----";
            let mut rest = text.as_str();
            let mut n = 0;
            while let Some(at) = rest.find(BEGIN) {
                let block = &rest[at..];
                let end =
                    block
                        .find(END)
                        .map(|e| e + END.len())
                        .ok_or_else(|| KeyError::Parse {
                            path: p.clone(),
                            what: "trusted-keys file",
                            reason: format!("public key {} has no {END} line", n + 1),
                        })?;
                keys.push(PublicKey::from_pem(&block[..end]).map_err(|reason| {
                    KeyError::Parse {
                        path: p.clone(),
                        what: "trusted-keys file",
                        reason: format!("public key {}: {reason}", n + 1),
                    }
                })?);
                n += 1;
                rest = &block[end..];
            }
            if n == 0 {
                return Err(KeyError::Parse {
                    path: p.clone(),
                    what: "trusted-keys file",
                    reason: "it holds no BEGIN PUBLIC KEY block".into(),
                });
            }
        }
        keys.sort_by(|a, b| a.keyid().cmp(b.keyid()));
        keys.dedup();
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_image() -> ImageManifest {
        let verity = |h: &str| crate::image::VerityInfo {
            root_hash: h.repeat(64),
            salt: String::new(),
            uuid: String::new(),
            hash_algorithm: "sha256".into(),
            data_block_size: 4096,
            hash_block_size: 4096,
            data_blocks: 1,
            erofs_uuid: String::new(),
        };
        let layer = |role: crate::image::Role, id: &str, h: &str| crate::image::LayerRef {
            role,
            name: role.name().to_string(),
            id: id.repeat(64),
            verity: Some(verity(h)),
        };
        ImageManifest {
            format: crate::image::IMAGE_FORMAT,
            id: "c".repeat(64),
            node: "worker1".into(),
            arch: "x86_64".into(),
            layers: vec![
                layer(crate::image::Role::Payload, "a", "1"),
                layer(crate::image::Role::Config, "b", "2"),
            ],
            entries: Vec::new(),
            provenance: BTreeMap::new(),
            verity: None,
        }
    }

    #[test]
    fn an_envelope_claiming_a_trusted_key_it_was_not_signed_with_says_so() {
        let (made_with, trusted) = (
            PrivateKey::generate().expect("key"),
            PrivateKey::generate().expect("key"),
        );
        let m = signed_image();
        let statement = image_statement(&m, None, None).expect("statement");
        let mut env = Envelope::sign(dsse::IN_TOTO, &to_payload(&statement), &made_with);
        env.signatures[0].keyid = trusted.public().keyid().to_string();
        let envelopes = vec![(PathBuf::from("image.k.dsse.json"), env.to_json())];
        let c = check_signatures(&m, &envelopes, None, &[trusted.public()]);
        assert!(c[0].trusted_by.is_empty());
        let why = c[0].mismatch.as_deref().unwrap_or_default();
        assert!(
            why.contains(&format!(
                "it names trusted key {}, but no signature",
                trusted.public().keyid()
            )),
            "{why}"
        );
    }

    #[test]
    fn freshness_is_signed_and_orders_by_build_time_then_generation() {
        let f = |generation, built_at_unix| Freshness {
            generation,
            lock_id: "blake3:".to_string() + &"0".repeat(64),
            built_at_unix,
        };
        assert!(f(1, 100).older_than(&f(2, 100)));
        assert!(
            f(9, 100).older_than(&f(1, 101)),
            "a builder that started anew"
        );
        assert!(!f(2, 100).older_than(&f(2, 100)));
        assert!(!f(3, 100).older_than(&f(2, 100)));
        // Carried in the signed payload, and an edited one no longer verifies.
        let key = PrivateKey::generate().expect("key");
        let m = signed_image();
        let statement = image_statement(&m, None, Some(f(2, 100))).expect("statement");
        let env = Envelope::sign(dsse::IN_TOTO, &to_payload(&statement), &key);
        let keys = vec![key.public()];
        let c = check_signatures(&m, &[(PathBuf::from("s"), env.to_json())], None, &keys);
        assert_eq!(c[0].freshness, Some(f(2, 100)));
        assert!(c[0].mismatch.is_none() && !c[0].trusted_by.is_empty());
        let mut edited = statement;
        edited.predicate.freshness = Some(f(7, 200));
        let mut forged = env;
        forged.payload = Envelope::sign(dsse::IN_TOTO, &to_payload(&edited), &key).payload;
        let c = check_signatures(&m, &[(PathBuf::from("s"), forged.to_json())], None, &keys);
        assert!(
            c[0].trusted_by.is_empty(),
            "an edited freshness still verified"
        );
    }

    #[test]
    fn a_signature_covers_the_records_node_and_arch() {
        let key = PrivateKey::generate().expect("key");
        let m = signed_image();
        let statement = image_statement(&m, None, None).expect("statement");
        let env = Envelope::sign(dsse::IN_TOTO, &to_payload(&statement), &key);
        let envelopes = vec![(PathBuf::from("image.k.dsse.json"), env.to_json())];
        let keys = vec![key.public()];
        let ok = check_signatures(&m, &envelopes, None, &keys);
        assert_eq!(
            (ok[0].mismatch.as_deref(), ok[0].trusted_by.len()),
            (None, 1)
        );
        // The same layers (so the same id) in a record that says another node, or arch.
        let mut other = m.clone();
        other.node = "worker2".into();
        let c = check_signatures(&other, &envelopes, None, &keys);
        let why = c[0].mismatch.as_deref().unwrap_or_default();
        assert!(
            why.contains("as node worker1 (x86_64), the image's record says node worker2"),
            "{why}"
        );
        let mut other = m;
        other.arch = "aarch64".into();
        assert!(check_signatures(&other, &envelopes, None, &keys)[0]
            .mismatch
            .is_some());
    }

    #[test]
    fn a_signature_covers_the_records_provenance_and_verity_parameters() {
        let key = PrivateKey::generate().expect("key");
        let keys = vec![key.public()];
        let mut m = signed_image();
        m.provenance.insert(
            "/usr/bin/kubelet".into(),
            crate::image::Provenance::Artifact {
                component: "kubelet".into(),
                version: "1.31.0".into(),
                arch: "x86_64".into(),
                url: "https://dl.k8s.io/kubelet".into(),
                sha256: "0".repeat(64),
                member: None,
            },
        );
        let statement = image_statement(&m, None, None).expect("statement");
        let envelopes = vec![(
            PathBuf::from("s"),
            Envelope::sign(dsse::IN_TOTO, &to_payload(&statement), &key).to_json(),
        )];
        assert!(check_signatures(&m, &envelopes, None, &keys)[0]
            .mismatch
            .is_none());
        // A forged provenance: the id (and so the root hashes) unchanged.
        let mut forged = m.clone();
        if let Some(crate::image::Provenance::Artifact { url, version, .. }) =
            forged.provenance.get_mut("/usr/bin/kubelet")
        {
            *url = "https://evil.example/kubelet".into();
            *version = "1.24.0".into();
        }
        let c = check_signatures(&forged, &envelopes, None, &keys);
        let why = c[0].mismatch.as_deref().unwrap_or_default();
        assert!(why.contains("it signs record sha256"), "{why}");
        // A forged verity parameter other than the root hash.
        let mut forged = m;
        if let Some(v) = forged.layers[0].verity.as_mut() {
            v.data_blocks = 1 << 40;
        }
        let c = check_signatures(&forged, &envelopes, None, &keys);
        let why = c[0].mismatch.as_deref().unwrap_or_default();
        assert!(
            why.contains(
                "other dm-verity parameters than the image's record gives its layers (payload)"
            ),
            "{why}"
        );
    }

    #[test]
    fn a_signature_of_the_older_format_is_not_trusted_and_says_so() {
        let key = PrivateKey::generate().expect("key");
        let m = signed_image();
        let mut statement = image_statement(&m, None, None).expect("statement");
        statement.predicate.record = None;
        for l in &mut statement.predicate.layers {
            l.verity = None;
        }
        statement.subject.retain(|s| s.name != IMAGE_RECORD);
        let env = Envelope::sign(dsse::IN_TOTO, &to_payload(&statement), &key);
        let c = check_signatures(
            &m,
            &[(PathBuf::from("s"), env.to_json())],
            None,
            &[key.public()],
        );
        let why = c[0].mismatch.as_deref().unwrap_or_default();
        assert!(why.starts_with("signature of an older format"), "{why}");
    }

    #[test]
    fn the_record_hash_is_of_canonical_bytes_not_of_the_files_layout() {
        let m = signed_image();
        let compact: ImageManifest =
            serde_json::from_slice(&serde_json::to_vec(&m).expect("json")).expect("parse");
        let pretty: ImageManifest =
            serde_json::from_slice(&serde_json::to_vec_pretty(&m).expect("json")).expect("parse");
        let h = record_sha256(&m).expect("hash");
        assert_eq!(record_sha256(&compact).expect("hash"), h);
        assert_eq!(record_sha256(&pretty).expect("hash"), h);
        let mut bytes = Vec::new();
        canonical_json(
            &serde_json::json!({"b": [1, {"d": 1, "c": "x"}], "a": null}),
            &mut bytes,
        );
        assert_eq!(bytes, br#"{"a":null,"b":[1,{"c":"x","d":1}]}"#);
        let mut other = m;
        other.node = "worker2".into();
        assert_ne!(record_sha256(&other).expect("hash"), h);
    }

    #[test]
    fn a_trusted_keys_file_holds_any_number_of_pem_blocks() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (
            PrivateKey::generate().expect("key"),
            PrivateKey::generate().expect("key"),
        );
        let bundle = dir.path().join("trusted.pem");
        let text = format!(
            "# a\n{}\n# b\n{}",
            a.public().to_pem().expect("pem"),
            b.public().to_pem().expect("pem")
        );
        std::fs::write(&bundle, &text).expect("write");
        let keys = TrustedKeys::load(&[], std::slice::from_ref(&bundle)).expect("load");
        assert_eq!(keys.keys.len(), 2);
        assert!(keys.keys.contains(&a.public()) && keys.keys.contains(&b.public()));
        std::fs::write(&bundle, "no keys here\n").expect("write");
        let e = TrustedKeys::load(&[], std::slice::from_ref(&bundle)).expect_err("empty");
        assert!(
            e.to_string().contains("holds no BEGIN PUBLIC KEY block"),
            "{e}"
        );
        std::fs::write(&bundle, &text[..text.len() - 30]).expect("write");
        let e = TrustedKeys::load(&[], std::slice::from_ref(&bundle)).expect_err("cut");
        assert!(e.to_string().contains("public key 2"), "{e}");
    }
}
