//! Text that reaches syslog or a terminal: control characters escaped, length bounded.

use std::fmt::Write;

/// Longest line the module logs; syslog truncates silently, so truncate visibly instead.
pub const MAX_LOG_LINE: usize = 2048;

/// Escapes control characters (newlines could forge log lines, escape sequences could
/// rewrite a terminal) and backslashes, so the escaping itself stays unambiguous.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Cuts `line` to [`MAX_LOG_LINE`] bytes on a character boundary, marking the cut.
pub fn bounded(mut line: String) -> String {
    if line.len() > MAX_LOG_LINE {
        let mut cut = MAX_LOG_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...[truncated]");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_backslashes_are_escaped() {
        assert_eq!(escape("a\nb"), "a\\u{a}b");
        assert_eq!(escape("x\x1b[0m\u{7f}\u{85}"), "x\\u{1b}[0m\\u{7f}\\u{85}");
        assert_eq!(escape("a\\u{a}"), "a\\\\u{a}");
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn long_lines_are_cut_visibly() {
        let line = bounded("é".repeat(MAX_LOG_LINE));
        assert!(line.len() <= MAX_LOG_LINE + 14);
        assert!(line.ends_with("...[truncated]"));
        assert_eq!(bounded("short".into()), "short");
    }
}
