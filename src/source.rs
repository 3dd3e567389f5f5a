//! Positions in the text files a user writes (manifests, lockfiles, templates): byte offsets
//! turned into `path:line:col`, the dotted key at that place, and a caret snippet under the token.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where in a user's file something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    /// The text of that line, for the snippet.
    pub line_text: String,
    /// How many characters of the line the caret underlines (at least 1).
    pub width: usize,
}

impl Location {
    /// A location without a position inside the file (the file as a whole).
    pub fn file(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            line: 0,
            col: 0,
            line_text: String::new(),
            width: 0,
        }
    }

    /// A snippet in the style of rustc: the line and a caret under the span.
    pub fn snippet(&self) -> Option<String> {
        if self.line == 0 {
            return None;
        }
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        let text: String = self.line_text.chars().take(200).collect();
        let indent: String = text
            .chars()
            .take(self.col.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        Some(format!(
            "{pad} |\n{num} | {text}\n{pad} | {indent}{}",
            "^".repeat(self.width.clamp(1, 80))
        ))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.path.display())
        } else {
            write!(f, "{}:{}:{}", self.path.display(), self.line, self.col)
        }
    }
}

/// A text file held in memory with its path, to turn spans into locations.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    /// Byte offset of the start of each line, computed on first use: a location is then a binary
    /// search, so validating a manifest of 20,000 nodes does not rescan the file per node.
    line_starts: std::sync::OnceLock<Vec<usize>>,
}

impl SourceFile {
    pub fn new(path: &Path, text: String) -> Self {
        Self {
            path: path.to_path_buf(),
            text,
            line_starts: std::sync::OnceLock::new(),
        }
    }

    /// The 1-based line of byte offset `at`.
    fn line_of(&self, at: usize) -> usize {
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', self.text.as_bytes()).map(|i| i + 1))
                .collect()
        });
        starts.partition_point(|&s| s <= at)
    }

    /// The location of a byte span (clamped to the text, snapped to char boundaries).
    pub fn location(&self, span: Range<usize>) -> Location {
        let text = &self.text;
        let mut start = span.start.min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = self.line_of(start);
        let col = text[line_start..start].chars().count() + 1;
        let line_text = text[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let end = span.end.clamp(start, line_end);
        let width = text.get(start..end).map_or(1, |s| s.chars().count().max(1));
        Location {
            path: self.path.clone(),
            line,
            col,
            line_text,
            width,
        }
    }

    /// The dotted TOML key at a byte offset: the nearest `[table]` / `[[array]]` header above
    /// plus the `key =` of the line, when there is one. Best effort, for messages only.
    pub fn toml_key_at(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = self.text[line_start..line_end].trim();
        let header_of = |l: &str| -> Option<String> {
            let l = l.trim();
            let inner = l
                .strip_prefix("[[")
                .and_then(|r| r.split("]]").next())
                .or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()))?;
            Some(inner.trim().to_string())
        };
        if let Some(h) = header_of(line) {
            return Some(h);
        }
        let table = before[..line_start]
            .lines()
            .rev()
            .find_map(header_of)
            .unwrap_or_default();
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.is_empty() && !k.starts_with('#'));
        match (table.is_empty(), key) {
            (true, Some(k)) => Some(k),
            (false, Some(k)) => Some(format!("{table}.{k}")),
            (false, None) => Some(table),
            (true, None) => None,
        }
    }
}

/// Read a user's text file; non-UTF-8 content is reported with the line it starts on.
pub fn read_text(path: &Path) -> Result<SourceFile, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile::new(path, text)),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
            Err(ReadError::NotUtf8 {
                path: path.to_path_buf(),
                line,
            })
        }
    }
}

/// A user's file could not be read as text.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: the file is not valid UTF-8", path.display())]
    NotUtf8 { path: PathBuf, line: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_and_key() {
        let src = SourceFile::new(
            Path::new("m.toml"),
            "[cluster]\nname = \"x\"\r\n\n[[nodes]]\nvmid = 5\n".to_string(),
        );
        let off = src.text.find('5').expect("5");
        let loc = src.location(off..off + 1);
        assert_eq!((loc.line, loc.col), (5, 8));
        assert_eq!(loc.to_string(), "m.toml:5:8");
        assert_eq!(src.toml_key_at(off).as_deref(), Some("nodes.vmid"));
        let off = src.text.find("\"x\"").expect("x");
        assert_eq!(src.toml_key_at(off).as_deref(), Some("cluster.name"));
        assert_eq!(src.location(off..off + 3).line_text, "name = \"x\"");
        let snip = src.location(off..off + 3).snippet().expect("snippet");
        assert!(snip.ends_with("|        ^^^"), "{snip}");
    }
}
