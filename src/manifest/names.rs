//! Checked names. Each rejects anything that could escape a path or confuse a URL: no `/`,
//! no `.` or `..`, no upper case, no spaces.

use std::fmt;

use serde::{Deserialize, Serialize};

fn is_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

macro_rules! name_type {
    ($name:ident, $what:literal, $max:expr, $extra:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: &str) -> Result<Self, String> {
                let extra: fn(&str) -> bool = $extra;
                if is_label(s, $max) && extra(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(format!(
                        "`{}` is not a valid {}: use lower-case letters, digits and `-` (at most {} characters)",
                        s.chars().take(80).collect::<String>(),
                        $what,
                        $max
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(NodeName, "node name", 63, |_| true);
name_type!(ComponentName, "component name", 63, |_| true);
name_type!(Arch, "architecture", 16, |s: &str| !s.contains("--"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_path_tricks() {
        for bad in ["", ".", "..", "a/b", "A", "-a", "a-", "a b", "a.b", "ä"] {
            assert!(NodeName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(NodeName::new("worker-10").is_ok());
        assert!(Arch::new("arm64").is_ok());
    }
}
