//! Values that are checked once at the edge and then trusted everywhere: a customer
//! name, an environment name, an AMI id, an S3 bucket name. Each can only hold a
//! valid value, so the engine never re-validates strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Each name type prints as the string it holds.
macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
display_as_str!(CustomerName, EnvName, Region, AmiId, BucketName);

/// A customer name: usable in DNS labels and S3 bucket names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CustomerName(String);

pub(crate) const CUSTOMER_RULE: &str = "lower-case letters, digits and hyphens, starting with a letter, 3 to 40 characters";

impl CustomerName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_len = (3..=40).contains(&s.len());
        let ok_start = s.starts_with(|c: char| c.is_ascii_lowercase());
        let ok_chars = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let ok_end = !s.ends_with('-');
        let ok_dashes = !s.contains("--");
        if ok_len && ok_start && ok_chars && ok_end && ok_dashes {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("invalid customer name `{s}`: use {CUSTOMER_RULE}, no trailing or doubled hyphen"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An environment name (`production`, `staging`, ...): a directory under
/// `terraform/frontends/` and part of a state key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "invalid env name `{s}`: use lower-case letters, digits, `-` and `_`, starting with a letter, at most 32 characters"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An AWS region name such as `eu-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub(crate) struct Region(String);

impl Region {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        // Shape check only (aa-bbbb-N, aa-bbbb-cccc-N): the list of regions grows.
        let parts: Vec<&str> = s.split('-').collect();
        let ok = parts.len() >= 3
            && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            && parts[parts.len() - 1].parse::<u8>().is_ok();
        if ok { Ok(Self(s.to_owned())) } else { Err(format!("invalid region `{s}`: expected an AWS region such as `eu-west-1`")) }
    }
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// An AMI id (`ami-` and 8 or 17 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AmiId(String);

impl AmiId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s.strip_prefix("ami-").unwrap_or("");
        if (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("`{s}` is not an AMI id (ami- followed by 8 or 17 hex digits)"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AmiId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}
impl From<AmiId> for String {
    fn from(a: AmiId) -> String {
        a.0
    }
}

/// An S3 bucket name that follows every one of AWS's general-purpose bucket naming
/// rules, the reserved prefixes and suffixes included.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct BucketName(String);

/// Prefixes AWS reserves: S3 refuses a bucket name that starts with one.
pub(crate) const BUCKET_RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
/// Suffixes AWS reserves (access point aliases, Object Lambda, Multi-Region Access
/// Points, directory and table buckets).
pub(crate) const BUCKET_RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

impl BucketName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let rule = "3 to 63 lower-case letters, digits, `.` and `-`, starting and ending with a letter or digit";
        let why = if !(3..=63).contains(&s.len()) {
            Some(format!("it has {} characters", s.len()))
        } else if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.')) {
            Some(format!("`{c}` is not allowed"))
        } else if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) || !s.ends_with(|c: char| c.is_ascii_alphanumeric()) {
            Some("it must start and end with a letter or digit".to_owned())
        } else if s.contains("..") {
            Some("it has two adjacent periods".to_owned())
        } else if s.parse::<std::net::Ipv4Addr>().is_ok() {
            Some("it is formatted as an IP address".to_owned())
        } else if let Some(p) = BUCKET_RESERVED_PREFIXES.iter().find(|p| s.starts_with(*p)) {
            Some(format!("AWS reserves the prefix `{p}`"))
        } else {
            BUCKET_RESERVED_SUFFIXES.iter().find(|x| s.ends_with(*x)).map(|x| format!("AWS reserves the suffix `{x}`"))
        };
        match why {
            None => Ok(Self(s.to_owned())),
            Some(why) => Err(format!(
                "`{s}` is not a valid S3 bucket name: {why} ({rule}; not an IP address; none of the reserved prefixes {} nor suffixes {})",
                BUCKET_RESERVED_PREFIXES.join(", "),
                BUCKET_RESERVED_SUFFIXES.join(", ")
            )),
        }
    }
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_names() {
        for ok in ["acme", "abc", "a1-b2", "globex-corp-2"] {
            assert!(CustomerName::parse(ok).is_ok(), "{ok}");
        }
        let forty = "a".repeat(40);
        assert!(CustomerName::parse(&forty).is_ok());
        for bad in ["", "ab", "Acme", "1acme", "-acme", "acme-", "ac--me", "ac_me", "acme.io", "acmé"] {
            assert!(CustomerName::parse(bad).is_err(), "{bad}");
        }
        assert!(CustomerName::parse(&"a".repeat(41)).is_err());
        let err = CustomerName::parse("Bad_Name").unwrap_err();
        assert!(err.contains("`Bad_Name`") && err.contains("lower-case"), "{err}");
    }

    #[test]
    fn env_region_ami_bucket() {
        assert!(EnvName::parse("production").is_ok());
        assert!(EnvName::parse("Prod").is_err());
        assert!(EnvName::parse("../x").is_err());
        assert!(Region::parse("eu-west-1").is_ok());
        assert!(Region::parse("us-gov-west-1").is_ok());
        assert!(Region::parse("europe").is_err());
        assert!(Region::parse("eu-west-x").is_err());
        assert!(AmiId::parse("ami-58d7e821").is_ok());
        assert!(AmiId::parse("ami-0123456789abcdef0").is_ok());
        assert!(AmiId::parse("ami-xyz").is_err());
        assert!(BucketName::parse("tfstate-123456789012-acme").is_ok());
        assert!(BucketName::parse("Bad_Bucket").is_err());
        assert!(BucketName::parse("192.168.1.1").is_err());
        assert!(BucketName::parse(&"a".repeat(64)).is_err());
        for (bad, why) in [
            ("xn--tfstate-acme", "prefix `xn--`"),
            ("sthree-tfstate-acme", "prefix `sthree-`"),
            ("amzn-s3-demo-acme", "prefix `amzn-s3-demo-`"),
            ("tfstate-acme-s3alias", "suffix `-s3alias`"),
            ("tfstate-acme--ol-s3", "suffix `--ol-s3`"),
            ("tfstate-acme.mrap", "suffix `.mrap`"),
            ("tfstate-acme--x-s3", "suffix `--x-s3`"),
            ("tfstate-acme--table-s3", "suffix `--table-s3`"),
            ("tf..state", "two adjacent periods"),
            ("tf_state", "`_` is not allowed"),
            ("-tfstate", "start and end with a letter or digit"),
        ] {
            let err = BucketName::parse(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")) && err.contains(why), "{bad}: {err}");
        }
        assert!(BucketName::parse("tfstate-s3alias-acme").is_ok(), "a reserved suffix only counts at the end");
    }
}
