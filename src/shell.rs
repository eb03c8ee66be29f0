//! A command as a person re-runs it: arguments quoted for a POSIX shell only when
//! they need it. A leaf: error texts, the interrupt notices and the tool runner print
//! commands this way.

/// POSIX shell quoting: safe words stay bare, anything else is single-quoted.
pub(crate) fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if safe { s.to_owned() } else { format!("'{}'", s.replace('\'', "'\\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("plan"), "plan");
        assert_eq!(shell_quote("-var-file=/a b/c.json"), "'-var-file=/a b/c.json'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
