//! Whether stdout gets colour: `--color auto|always|never`, and under `auto` the
//! conventions of no-color.org and bixense.com/clicolors (NO_COLOR wins over
//! CLICOLOR_FORCE, as in clap's own help). Decided once, at start; a leaf module.

use std::ffi::OsStr;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Auto,
    Always,
    Never,
}

/// The decision, from the flag, the two variables and whether stdout is a terminal.
pub(crate) fn decide(when: When, no_color: Option<&OsStr>, clicolor_force: Option<&OsStr>, terminal: bool) -> bool {
    match when {
        When::Always => true,
        When::Never => false,
        // Set and empty counts as unset, for both.
        _ if no_color.is_some_and(|v| !v.is_empty()) => false,
        _ if clicolor_force.is_some_and(|v| !v.is_empty() && v != "0") => true,
        When::Auto => terminal,
    }
}

static STDOUT: OnceLock<bool> = OnceLock::new();

/// Decides for this process (the first call wins).
pub(crate) fn init(when: When) {
    use std::io::IsTerminal;
    let env = |name| std::env::var_os(name);
    STDOUT.get_or_init(|| decide(when, env("NO_COLOR").as_deref(), env("CLICOLOR_FORCE").as_deref(), std::io::stdout().is_terminal()));
}

/// Colour on stdout (`init`'s decision; `auto` when nothing decided).
pub(crate) fn stdout() -> bool {
    init(When::Auto);
    *STDOUT.get().expect("decided")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_no_color_then_clicolor_force_then_the_terminal() {
        let s = |v: &'static str| Some(OsStr::new(v));
        assert!(decide(When::Always, s("1"), None, false));
        assert!(!decide(When::Never, None, s("1"), true));
        assert!(!decide(When::Auto, s("1"), s("1"), true));
        assert!(decide(When::Auto, s(""), s("1"), false), "an empty NO_COLOR is unset");
        assert!(!decide(When::Auto, None, s("0"), false), "CLICOLOR_FORCE=0 forces nothing");
        assert!(!decide(When::Auto, None, s(""), false));
        assert!(decide(When::Auto, None, None, true));
        assert!(!decide(When::Auto, None, None, false));
    }
}
