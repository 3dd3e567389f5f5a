//! DSSE, the Dead Simple Signing Envelope (in-toto and sigstore's envelope,
//! <https://github.com/secure-systems-lab/dsse/blob/master/envelope.md>): a payload, its type, and
//! signatures over the pre-authentication encoding `PAE(type, payload)`, so that a signature can
//! never be read as one over another type of payload.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys::{PrivateKey, PublicKey};

/// The payload type of an in-toto Statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// A DSSE envelope in its JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Base64 (standard alphabet, padded) of the payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    /// Base64 of the Ed25519 signature over `PAE(payloadType, payload)`.
    pub sig: String,
}

/// DSSE v1's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    v.extend_from_slice(payload);
    v
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Envelope {
    /// Sign `payload` of `payload_type` with `key`.
    pub fn sign(payload_type: &str, payload: &[u8], key: &PrivateKey) -> Self {
        let sig = key.sign(&pae(payload_type, payload));
        Self {
            payload: b64().encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![Signature {
                keyid: key.public().keyid().to_string(),
                sig: b64().encode(sig),
            }],
        }
    }

    /// The payload bytes, if the base64 is valid.
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        b64().decode(&self.payload).ok()
    }

    /// The keys among `keys` that made a valid signature in this envelope (each once, in the
    /// order of `keys`). The keyid only helps: every trusted key is tried on every signature.
    pub fn signed_by<'a>(&self, keys: &'a [PublicKey]) -> Vec<&'a PublicKey> {
        let Some(payload) = self.payload_bytes() else {
            return Vec::new();
        };
        let message = pae(&self.payload_type, &payload);
        let sigs: Vec<Vec<u8>> = self
            .signatures
            .iter()
            .filter_map(|s| b64().decode(&s.sig).ok())
            .collect();
        keys.iter()
            .filter(|k| sigs.iter().any(|s| k.verify(&message, s)))
            .collect()
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_dsse_v1() {
        // The example of the DSSE specification's protocol description.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn a_signature_verifies_only_with_its_key_and_payload() {
        let k = PrivateKey::generate().expect("key");
        let other = PrivateKey::generate().expect("key");
        let mut e = Envelope::sign(IN_TOTO, b"{}", &k);
        assert_eq!(e.signatures[0].keyid, k.public().keyid());
        let keys = [other.public(), k.public()];
        assert_eq!(e.signed_by(&keys), vec![&keys[1]]);
        assert!(e.signed_by(&keys[..1]).is_empty());
        e.payload = b64().encode(b"{\"x\":1}");
        assert!(e.signed_by(&keys).is_empty());
        let mut e = Envelope::sign(IN_TOTO, b"{}", &k);
        e.payload_type = "text/plain".into();
        assert!(e.signed_by(&keys).is_empty());
    }
}
