//! The settings a state bucket must have (versioning, encryption, no public access,
//! TLS only), and the bucket policy that denies plain HTTP.

/// The state bucket as stamp wants it; `check_hardening` says what differs.
pub(crate) const TLS_POLICY_SID: &str = "DenyInsecureTransport";

/// One setting of a hardened state bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hardening {
    Versioning,
    Encryption,
    PublicAccessBlock,
    TlsOnlyPolicy,
}

impl Hardening {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Hardening::Versioning => "versioning",
            Hardening::Encryption => "default encryption",
            Hardening::PublicAccessBlock => "public access block",
            Hardening::TlsOnlyPolicy => "TLS-only policy",
        }
    }

    pub(super) fn put_operation(self) -> &'static str {
        match self {
            Hardening::Versioning => "PutBucketVersioning",
            Hardening::Encryption => "PutBucketEncryption",
            Hardening::PublicAccessBlock => "PutPublicAccessBlock",
            Hardening::TlsOnlyPolicy => "PutBucketPolicy",
        }
    }
}

/// The bucket policy stamp puts: deny every request not made over TLS.
pub(crate) fn tls_only_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": TLS_POLICY_SID,
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
    .to_string()
}

/// Whether a bucket policy denies all of S3 to requests without TLS (stamp's
/// statement or one of the operator's own with the same effect).
pub(crate) fn policy_denies_insecure_transport(policy: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(policy) else { return false };
    let statements = match v.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(s) => vec![s.clone()],
        None => return false,
    };
    statements.iter().any(|s| {
        let is = |k: &str, want: &str| s.get(k).and_then(|x| x.as_str()).is_some_and(|x| x == want);
        let action_all = match s.get("Action") {
            Some(serde_json::Value::String(a)) => a == "s3:*" || a == "*",
            Some(serde_json::Value::Array(a)) => a.iter().any(|x| x.as_str().is_some_and(|x| x == "s3:*" || x == "*")),
            _ => false,
        };
        let insecure =
            s.pointer("/Condition/Bool/aws:SecureTransport").is_some_and(|x| x.as_str() == Some("false") || x.as_bool() == Some(false));
        is("Effect", "Deny") && action_all && insecure
    })
}
