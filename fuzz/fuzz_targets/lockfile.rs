//! Any bytes as a lockfile: an error, or a lockfile whose canonical text reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodeforge::lock::Lockfile;
use nodeforge::source::SourceFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let path = std::path::Path::new("fuzz.lock");
        if let Ok(lock) = Lockfile::parse(&SourceFile::new(path, text.to_string())) {
            let again = Lockfile::parse(&SourceFile::new(path, lock.to_text()))
                .expect("the writer's output must read back");
            assert_eq!(again, lock);
        }
    }
});
