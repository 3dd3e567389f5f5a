//! Text from outside (a registry's error, a layout's or a record's fields, a tag) made safe for a
//! terminal: control characters (C0 with ESC, BEL and CR; DEL; C1), bidirectional overrides and
//! isolates, and line separators are shown escaped (`\u{1b}`), so a registry cannot move the
//! cursor, clear the screen, ring the bell or overwrite a line with "image verified OK". JSON
//! output needs none of this: serde escapes what JSON must.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
                | '\u{2028}' | '\u{2029}'
        )
}

fn escape_where(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) && !keep(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` with every control character escaped, newlines and tabs included: for one field of text
/// from outside, put into a line of nodeforge's own.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_where(s, |_| false)
}

/// `s` with every control character but `\n` and `\t` escaped: for a whole message nodeforge
/// composed of several lines, just before it is printed (what `escape` missed in a field still
/// cannot drive the terminal).
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| c == '\n' || c == '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_esc_bel_cr_c1_and_bidi_overrides_and_keeps_the_rest() {
        let hostile = "blob unknown\u{1b}[2J\u{7}\r\u{9b}31m\u{202e}KO\u{2066}\nimage verified OK";
        assert_eq!(
            escape(hostile),
            "blob unknown\\u{1b}[2J\\u{7}\\u{d}\\u{9b}31m\\u{202e}KO\\u{2066}\\u{a}image verified OK"
        );
        assert_eq!(
            escape_lines("one\u{1b}]0;title\u{7}\ntwo\tthree\u{7f}"),
            "one\\u{1b}]0;title\\u{7}\ntwo\tthree\\u{7f}"
        );
        assert!(matches!(
            escape("x86_64 kubelet 1.31.0 ünïcödé"),
            Cow::Borrowed(_)
        ));
    }
}
