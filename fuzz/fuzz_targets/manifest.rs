//! Any bytes as a manifest: an error value or a manifest, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodeforge::manifest::Manifest;
use nodeforge::source::SourceFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let src = SourceFile::new(std::path::Path::new("fuzz.toml"), text.to_string());
        if let Ok(m) = Manifest::parse(&src) {
            // Whatever validated must render its artifacts.
            let _ = m.artifacts();
        }
    }
});
