//! Bounding and cleaning text that comes from outside the process (the DCS API, a tenant's spec)
//! before it reaches a Kubernetes object, an event, a log line or a terminal.
//!
//! Every string an upstream or a tenant controls can be arbitrarily long and can hold any
//! Unicode: a 2 MiB `error_msg`, CJK text (three bytes a character), terminal escape sequences.
//! Kubernetes limits are in bytes (an event note is refused above 1024 bytes), so the bounds here
//! are in bytes too, and cuts always land on a UTF-8 character boundary.

use std::borrow::Cow;

/// Appended where a text was cut, so a reader knows it is not the whole story.
pub const TRUNCATION_MARK: &str = "…[truncated]";

/// `text` in at most `max_bytes` bytes of UTF-8, cut on a character boundary and marked with
/// [`TRUNCATION_MARK`] when anything was dropped (the mark counts against the budget; when the
/// budget cannot even hold the mark, the text is cut without one).
pub fn truncate_bytes(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let (keep, mark) = match max_bytes.checked_sub(TRUNCATION_MARK.len()) {
        Some(room) => (room, TRUNCATION_MARK),
        None => (max_bytes, ""),
    };
    let cut = floor_char_boundary(text, keep);
    Cow::Owned(format!("{}{mark}", &text[..cut]))
}

/// The largest index `<= index` that is a character boundary of `text`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    (0..=index)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// `text` without terminal control sequences: ESC-introduced sequences (CSI `ESC [ … final`,
/// OSC `ESC ] … BEL|ST`, two-byte escapes), C1 controls (U+0080–U+009F, e.g. the 8-bit CSI) and
/// the other C0 controls and DEL. Newlines and tabs are kept, so multi-line text stays readable.
///
/// Upstream text printed by the CLI goes through this, so a task field cannot move the cursor,
/// retitle the window or hide earlier output.
pub fn strip_terminal_controls(text: &str) -> Cow<'_, str> {
    let is_unsafe = |c: char| is_control(c) && c != '\n' && c != '\t';
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    for next in chars.by_ref() {
                        if ('@'..='~').contains(&next) {
                            break;
                        }
                    }
                }
                // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \).
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(next) = chars.next() {
                        if next == '\u{7}' {
                            break;
                        }
                        if next == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                // A two-character escape (ESC c, ESC 7, ...): drop both.
                _ => {}
            },
            c if is_unsafe(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_control(c: char) -> bool {
    c.is_control() || ('\u{80}'..='\u{9f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_kept_as_is() {
        assert!(matches!(truncate_bytes("abc", 3), Cow::Borrowed("abc")));
        assert_eq!(truncate_bytes("", 0), "");
    }

    #[test]
    fn long_text_is_cut_and_marked_within_the_budget() {
        let long = "x".repeat(100);
        let cut = truncate_bytes(&long, 20);
        assert_eq!(cut.len(), 20);
        assert!(cut.ends_with(TRUNCATION_MARK));
        assert!(cut.starts_with("xxxxx"));
    }

    #[test]
    fn cjk_is_cut_on_a_character_boundary() {
        // 3 bytes each: 40 characters are 120 bytes.
        let text = "任务".repeat(20);
        for budget in 14..40 {
            let cut = truncate_bytes(&text, budget);
            assert!(cut.len() <= budget, "{budget}: {}", cut.len());
            assert!(cut.ends_with(TRUNCATION_MARK));
        }
    }

    #[test]
    fn a_budget_smaller_than_the_mark_cuts_without_it() {
        assert_eq!(truncate_bytes("abcdef", 4), "abcd");
        assert_eq!(truncate_bytes("任务任务", 4), "任");
        assert_eq!(truncate_bytes("任务", 0), "");
    }

    #[test]
    fn terminal_sequences_are_removed() {
        assert_eq!(
            strip_terminal_controls("\u{1b}[31mred\u{1b}[0m text"),
            "red text"
        );
        assert_eq!(strip_terminal_controls("a\u{1b}]0;owned title\u{7}b"), "ab");
        assert_eq!(
            strip_terminal_controls("a\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\b"),
            "alinkb"
        );
        assert_eq!(
            strip_terminal_controls("a\u{9b}2Jb\rc\u{8}d\u{7f}"),
            "a2Jbcd"
        );
        assert_eq!(strip_terminal_controls("line\n\tindent"), "line\n\tindent");
        assert_eq!(strip_terminal_controls("任务 ok"), "任务 ok");
        assert_eq!(strip_terminal_controls("trailing\u{1b}"), "trailing");
    }

    proptest! {
        #[test]
        fn truncation_never_exceeds_the_budget(text in any::<String>(), budget in 0usize..64) {
            let cut = truncate_bytes(&text, budget);
            prop_assert!(cut.len() <= budget || text.len() <= budget);
            prop_assert!(text.starts_with(cut.trim_end_matches(TRUNCATION_MARK)));
        }

        #[test]
        fn stripped_text_holds_no_controls(text in any::<String>()) {
            let clean = strip_terminal_controls(&text);
            prop_assert!(!clean.chars().any(|c| is_control(c) && c != '\n' && c != '\t'));
        }
    }
}
