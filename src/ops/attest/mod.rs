//! Supply chain (issue 15): signing keys, signing images, SBOMs and provenance on demand. The
//! attestation files themselves are written and checked in `steps::attestations`, which build,
//! pull and verify share.

mod key;
mod provenance;
mod sbom;
mod sign;

pub use key::{key_generate, KeyGenOptions, KeyReport};
pub use provenance::provenance;
pub use sbom::{sbom, SbomOptions};
pub use sign::{sign, SignOptions, SignReport, SignedImage};
