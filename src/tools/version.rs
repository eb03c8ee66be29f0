//! Tool versions and Terraform's version constraints (`required_version = ">= 1.10,
//! < 2.0"`, `"~> 1.10.0"`), for `stamp doctor`: the version a tool prints, and
//! whether it meets what stamp and each stack require.

use std::cmp::Ordering;

/// A release number: up to three numeric parts (missing ones are 0); a
/// pre-release suffix (`-beta1`) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version(pub u64, pub u64, pub u64);

impl Version {
    /// `1.11.4`, `v1.11.4`, `1.10`, `1.11.0-beta1`.
    pub(crate) fn parse(text: &str) -> Option<(Self, usize)> {
        let t = text.trim().trim_start_matches('v');
        let core = t.split(['-', '+']).next()?;
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut n = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            n[i] = p.parse().ok()?;
        }
        Some((Version(n[0], n[1], n[2]), parts.len()))
    }

    /// The first version in a tool's `version` output: "Terraform v1.11.4",
    /// "OpenTofu v1.8.2", "Packer v1.6.6", "aws-cli/1.45.11 Python/3.12.8 ...", "1.6.6".
    pub(crate) fn find_in(output: &str) -> Option<Self> {
        output
            .split(|c: char| c.is_whitespace() || c == '/' || c == '(' || c == ')')
            .filter(|w| w.trim_start_matches('v').starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
            .find_map(|w| Version::parse(w).map(|(v, _)| v))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Whether `v` meets a Terraform version constraint: comma-separated conditions,
/// each `=`, `!=`, `>`, `>=`, `<`, `<=` or `~>` (the rightmost part given may
/// grow: `~> 1.10` is `>= 1.10, < 2.0`, `~> 1.10.0` is `>= 1.10.0, < 1.11.0`) and a
/// version. `Err` names a condition that cannot be read.
pub(crate) fn meets(v: Version, constraint: &str) -> Result<bool, String> {
    for cond in constraint.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (op, rest) =
            ["~>", ">=", "<=", "!=", ">", "<", "="].iter().find_map(|op| cond.strip_prefix(op).map(|r| (*op, r))).unwrap_or(("=", cond));
        let (want, parts) = Version::parse(rest).ok_or_else(|| format!("`{cond}` is not a version condition"))?;
        let ok = match op {
            "=" => v == want,
            "!=" => v != want,
            ">" => v > want,
            ">=" => v >= want,
            "<" => v < want,
            "<=" => v <= want,
            _ => {
                let upper = match parts {
                    1 | 2 => Version(want.0 + 1, 0, 0),
                    _ => Version(want.0, want.1 + 1, 0),
                };
                v.cmp(&want) != Ordering::Less && v < upper
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap().0
    }

    #[test]
    fn versions_are_read_from_what_the_tools_print() {
        assert_eq!(Version::find_in("Terraform v1.11.4\non linux_amd64\n"), Some(Version(1, 11, 4)));
        assert_eq!(Version::find_in("OpenTofu v1.8.2"), Some(Version(1, 8, 2)));
        assert_eq!(Version::find_in("Packer v1.6.6"), Some(Version(1, 6, 6)));
        assert_eq!(Version::find_in("1.6.6"), Some(Version(1, 6, 6)));
        assert_eq!(Version::find_in("aws-cli/1.45.11 Python/3.12.8 Linux/6.1 botocore/1.40.11"), Some(Version(1, 45, 11)));
        assert_eq!(Version::find_in("Terraform v1.12.0-beta1"), Some(Version(1, 12, 0)));
        assert_eq!(Version::find_in("no version here"), None);
    }

    #[test]
    fn constraints_are_read_as_terraform_reads_them() {
        assert_eq!(meets(v("1.11.4"), ">= 1.10"), Ok(true));
        assert_eq!(meets(v("1.9.8"), ">= 1.10"), Ok(false));
        assert_eq!(meets(v("1.11.4"), ">= 1.6, < 2.0.0"), Ok(true));
        assert_eq!(meets(v("2.0.0"), ">= 1.6, < 2.0.0"), Ok(false));
        assert_eq!(meets(v("1.11.4"), "~> 1.10"), Ok(true));
        assert_eq!(meets(v("2.0.0"), "~> 1.10"), Ok(false));
        assert_eq!(meets(v("1.10.5"), "~> 1.10.0"), Ok(true));
        assert_eq!(meets(v("1.11.0"), "~> 1.10.0"), Ok(false));
        assert_eq!(meets(v("1.11.4"), "1.11.4"), Ok(true));
        assert_eq!(meets(v("1.11.4"), "= 1.11.3"), Ok(false));
        assert_eq!(meets(v("1.11.4"), "!= 1.11.4"), Ok(false));
        assert_eq!(meets(v("1.11.4"), "> 1.11.4"), Ok(false));
        assert_eq!(meets(v("1.11.4"), "<= 1.11.4"), Ok(true));
        assert!(meets(v("1.11.4"), ">= one").unwrap_err().contains("`>= one`"));
    }
}
