//! Database error messages, made safe to return.
//!
//! Databases quote the data they refuse: PostgreSQL's `DETAIL: Failing row contains (…)`
//! and `Key (email)=(ann@example.com) already exists`, `invalid input syntax for type
//! integer: "Ada Lovelace"`; MariaDB's `Duplicate entry 'ann@example.com' for key …` and
//! `Incorrect integer value: '…'`. Value detectors alone miss names, dates and hashes, so
//! every place a message can carry a value is blanked by its shape first, keeping what
//! makes the message actionable (the code, the column and constraint names).

const BLANK: &str = "…";

/// `message` with every quoted or listed value replaced by `…`.
pub fn redact_values(message: &str) -> String {
    let mut text = blank_after(message, "Failing row contains (", ')');
    text = blank_key_values(&text);
    text = blank_quoted(&text, '\'', |_| true);
    // PostgreSQL quotes identifiers and values alike in double quotes; a value follows a
    // colon (`…type integer: "abc"`), an identifier follows a word (`column "email"`).
    blank_quoted(&text, '"', |before| before.ends_with(": "))
}

/// Blanks from just after `marker` to the last `close` on the same line.
fn blank_after(text: &str, marker: &str, close: char) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let start = at + marker.len();
        out.push_str(&rest[..start]);
        let line_end = rest[start..].find('\n').map_or(rest.len(), |i| start + i);
        // Gatehouse appends ` (code …)` to the message; the list ends before it.
        let segment = &rest[start..line_end];
        let limit = segment.rfind(" (code ").unwrap_or(segment.len());
        match segment[..limit].rfind(close) {
            Some(end) => {
                out.push_str(BLANK);
                rest = &rest[start + end..];
            }
            None => {
                out.push_str(BLANK);
                rest = &rest[line_end..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `Key (a, b)=(x, y)` → `Key (a, b)=(…)`.
fn blank_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(")=(") {
        let start = at + 3;
        out.push_str(&rest[..start]);
        out.push_str(BLANK);
        let line_end = rest[start..].find('\n').map_or(rest.len(), |i| start + i);
        // The values end at the `)` before " already exists" / " is not present" / line end.
        let close = rest[start..line_end]
            .find(") ")
            .or_else(|| rest[start..line_end].rfind(')'))
            .map_or(line_end, |i| start + i);
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// Replaces the inside of `quote`-delimited segments whose preceding text satisfies
/// `is_value`. A doubled quote inside a segment is part of it.
fn blank_quoted(text: &str, quote: char, is_value: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    let mut last = 0;
    while let Some((i, c)) = chars.next() {
        if c != quote {
            continue;
        }
        // Find the closing quote, skipping doubled quotes.
        let mut end = None;
        while let Some((j, d)) = chars.next() {
            if d == quote {
                if chars.peek().is_some_and(|&(_, e)| e == quote) {
                    chars.next();
                    continue;
                }
                end = Some(j);
                break;
            }
        }
        let Some(end) = end else { break };
        if is_value(&text[..i]) {
            out.push_str(&text[last..=i]);
            out.push_str(BLANK);
            out.push(quote);
            last = end + quote.len_utf8();
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_messages_keep_names_and_lose_values() {
        let failing = "null value in column \"email\" of relation \"customers\" violates not-null constraint\nDETAIL: Failing row contains (4, Alan Turing, null, 1969-06-23, $argon2id$v=19$m=65536). (code 23502)";
        let safe = redact_values(failing);
        assert!(
            safe.contains("column \"email\" of relation \"customers\""),
            "{safe}"
        );
        assert!(
            !safe.contains("Alan Turing") && !safe.contains("1969") && !safe.contains("argon2"),
            "{safe}"
        );
        assert!(safe.contains("(code 23502)"), "{safe}");

        let key = "duplicate key value violates unique constraint \"customers_email_key\"\nDETAIL: Key (email)=(ann@example.com) already exists. (code 23505)";
        let safe = redact_values(key);
        assert!(safe.contains("Key (email)=(…) already exists"), "{safe}");
        assert!(!safe.contains("ann@"), "{safe}");

        let syntax = "invalid input syntax for type integer: \"Ada Lovelace\" (code 22P02)";
        assert_eq!(
            redact_values(syntax),
            "invalid input syntax for type integer: \"…\" (code 22P02)"
        );
    }

    #[test]
    fn mariadb_messages_lose_quoted_values() {
        let duplicate = "Duplicate entry 'ann@example.com' for key 'email' (code 23000)";
        let safe = redact_values(duplicate);
        assert!(!safe.contains("ann@"), "{safe}");
        let incorrect = "Incorrect integer value: 'O''Brien' for column `test`.`t`.`x` at row 1";
        let safe = redact_values(incorrect);
        assert!(!safe.contains("Brien"), "{safe}");
        assert!(safe.contains("`test`.`t`.`x`"), "{safe}");
    }
}
