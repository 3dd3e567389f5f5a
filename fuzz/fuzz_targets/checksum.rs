//! Any bytes as a checksum file: a digest or an error, and a selected digest is one the file lists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodeforge::checksum;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for name in ["runc.amd64", "kubelet", "x"] {
            if let Ok(d) = checksum::select(text, name) {
                let lines = checksum::parse(text).expect("select succeeded, so parse does");
                assert!(lines.iter().any(|l| l.digest == d));
            }
        }
    }
});
