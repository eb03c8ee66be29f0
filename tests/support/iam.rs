//! The IAM actions AWS would authorize for the requests the fault proxy saw
//! (tests/support/fault_proxy.py `--requests`), and a small evaluator of the policy
//! files in docs/iam/ against them. Included with `#[path]` by tests/iam.rs and
//! tests/real_stacks.rs.
//!
//! A request names its service in its signature (`Credential=KEY/DATE/REGION/<service>/
//! aws4_request`). Then: a JSON API (`X-Amz-Target: TrentService.CreateKey`) is
//! `<service>:<operation>`; a query API (`Action=DescribeVpcs`) is `<service>:<Action>`;
//! S3's REST API is read from the method, the path (bucket, key) and the
//! sub-resource in the query (`?versioning`). A request this module cannot map is an
//! error, never skipped: a new kind of call must be added here and to the policies.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// The AWS account of the emulator: what `ACCOUNT_ID` in the policies stands for here.
pub const ACCOUNT_ID: &str = "123456789012";

/// One call as IAM authorizes it: the action and, for S3, the ARN of what it touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// `s3:GetObject`, `ec2:DescribeVpcs`.
    pub action: String,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key` for S3; `*` otherwise
    /// (the other services' resources are not checked).
    pub resource: String,
}

/// The IAM prefix of a signing name, where they differ.
fn prefix(service: &str) -> &str {
    match service {
        "monitoring" => "cloudwatch",
        "email" => "ses",
        other => other,
    }
}

/// S3 sub-resources (query keys) that select an operation; other keys (`x-id`,
/// `list-type`, `prefix`, `versionId`, ...) are parameters.
const SUBRESOURCES: &[&str] = &[
    "versioning",
    "encryption",
    "publicAccessBlock",
    "policy",
    "policyStatus",
    "location",
    "tagging",
    "acl",
    "versions",
    "uploads",
    "uploadId",
    "delete",
    "ownershipControls",
    "object-lock",
    "lifecycle",
    "logging",
    "cors",
    "website",
    "replication",
    "requestPayment",
    "accelerate",
    "notification",
];

/// S3 query keys that are parameters of an operation, not a sub-resource.
const PARAMETERS: &[&str] = &[
    "x-id",
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "encoding-type",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "marker",
    "versionId",
    "partNumber",
    "key-marker",
    "version-id-marker",
    "max-uploads",
    "upload-id-marker",
];

/// The IAM action of an S3 REST request.
fn s3_action(method: &str, path: &str) -> Result<Call, String> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let keys: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).map(|p| p.split('=').next().unwrap_or_default()).collect();
    let sub: Vec<&str> = keys.iter().copied().filter(|k| SUBRESOURCES.contains(k)).collect();
    let has = |k: &str| keys.contains(&k);
    if let Some(k) = keys.iter().find(|k| !SUBRESOURCES.contains(k) && !PARAMETERS.contains(k) && !k.starts_with("response-")) {
        return Err(format!("an S3 request with a query key this check does not know ({k}): {method} {path}?{query}"));
    }
    let trimmed = path.trim_start_matches('/');
    let (bucket, key) = match trimmed.split_once('/') {
        Some((b, k)) if !k.is_empty() => (b, Some(k)),
        Some((b, _)) => (b, None),
        None => (trimmed, None),
    };
    let unknown = || format!("an S3 request stamp's policies do not know: {method} {path}?{query}");
    if bucket.is_empty() {
        return match method {
            "GET" => Ok(Call { action: "s3:ListAllMyBuckets".into(), resource: "*".into() }),
            _ => Err(unknown()),
        };
    }
    let action = match (key, method, sub.as_slice()) {
        (None, "HEAD", []) => "ListBucket",
        (None, "GET", []) => "ListBucket",
        (None, "GET", ["versions"]) => "ListBucketVersions",
        (None, "GET", ["uploads"]) => "ListBucketMultipartUploads",
        (None, "GET", ["versioning"]) => "GetBucketVersioning",
        (None, "GET", ["encryption"]) => "GetEncryptionConfiguration",
        (None, "GET", ["publicAccessBlock"]) => "GetBucketPublicAccessBlock",
        (None, "GET", ["policy"]) => "GetBucketPolicy",
        (None, "GET", ["policyStatus"]) => "GetBucketPolicyStatus",
        (None, "GET", ["location"]) => "GetBucketLocation",
        (None, "GET", ["tagging"]) => "GetBucketTagging",
        (None, "GET", ["acl"]) => "GetBucketAcl",
        (None, "GET", ["ownershipControls"]) => "GetBucketOwnershipControls",
        (None, "GET", ["object-lock"]) => "GetBucketObjectLockConfiguration",
        (None, "GET", ["lifecycle"]) => "GetLifecycleConfiguration",
        (None, "GET", ["logging"]) => "GetBucketLogging",
        (None, "GET", ["cors"]) => "GetBucketCORS",
        (None, "GET", ["website"]) => "GetBucketWebsite",
        (None, "GET", ["replication"]) => "GetReplicationConfiguration",
        (None, "GET", ["requestPayment"]) => "GetBucketRequestPayment",
        (None, "GET", ["accelerate"]) => "GetAccelerateConfiguration",
        (None, "GET", ["notification"]) => "GetBucketNotification",
        (None, "PUT", []) => "CreateBucket",
        (None, "PUT", ["versioning"]) => "PutBucketVersioning",
        (None, "PUT", ["encryption"]) => "PutEncryptionConfiguration",
        (None, "PUT", ["publicAccessBlock"]) => "PutBucketPublicAccessBlock",
        (None, "PUT", ["policy"]) => "PutBucketPolicy",
        (None, "PUT", ["tagging"]) => "PutBucketTagging",
        (None, "PUT", ["acl"]) => "PutBucketAcl",
        (None, "PUT", ["ownershipControls"]) => "PutBucketOwnershipControls",
        (None, "DELETE", []) => "DeleteBucket",
        (None, "DELETE", ["policy"]) => "DeleteBucketPolicy",
        // These deletes are authorized as the matching put.
        (None, "DELETE", ["publicAccessBlock"]) => "PutBucketPublicAccessBlock",
        (None, "DELETE", ["encryption"]) => "PutEncryptionConfiguration",
        (None, "DELETE", ["tagging"]) => "PutBucketTagging",
        (None, "POST", ["delete"]) => "DeleteObject",
        (Some(_), "GET" | "HEAD", []) if has("versionId") => "GetObjectVersion",
        (Some(_), "GET" | "HEAD", []) => "GetObject",
        (Some(_), "GET", ["tagging"]) => "GetObjectTagging",
        (Some(_), "GET", ["acl"]) => "GetObjectAcl",
        (Some(_), "PUT", []) => "PutObject",
        (Some(_), "PUT", ["tagging"]) => "PutObjectTagging",
        (Some(_), "POST", ["uploads"] | ["uploadId"]) | (Some(_), "PUT", ["uploadId"]) => "PutObject",
        (Some(_), "DELETE", []) if has("versionId") => "DeleteObjectVersion",
        (Some(_), "DELETE", []) => "DeleteObject",
        _ => return Err(unknown()),
    };
    let resource = match key {
        Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
        None => format!("arn:aws:s3:::{bucket}"),
    };
    Ok(Call { action: format!("s3:{action}"), resource })
}

/// The IAM action of one request the proxy recorded.
pub fn call(r: &Value) -> Result<Call, String> {
    let s = |k: &str| r[k].as_str().unwrap_or_default();
    let (service, method, path) = (s("service"), s("method"), s("path"));
    if service.is_empty() {
        return Err(format!("an unsigned request: {method} {path} (agent {})", s("agent")));
    }
    if service == "s3" {
        return s3_action(method, path);
    }
    let operation = match (s("target"), s("action")) {
        (target, _) if !target.is_empty() => target.rsplit('.').next().unwrap_or_default().to_owned(),
        (_, action) if !action.is_empty() => action.to_owned(),
        _ => return Err(format!("a {service} request without X-Amz-Target or Action: {method} {path}")),
    };
    Ok(Call { action: format!("{}:{operation}", prefix(service)), resource: "*".into() })
}

/// Every distinct call of `requests`; the requests that could not be mapped are the error.
pub fn calls(requests: &[Value]) -> Result<BTreeSet<Call>, Vec<String>> {
    let (ok, bad): (Vec<_>, Vec<_>) = requests.iter().map(call).partition(Result::is_ok);
    if !bad.is_empty() {
        let mut bad: Vec<String> = bad.into_iter().filter_map(Result::err).collect();
        bad.sort();
        bad.dedup();
        return Err(bad);
    }
    Ok(ok.into_iter().filter_map(Result::ok).collect())
}

/// `*` and `?` wildcards, case-insensitively (as IAM compares actions).
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(rest, &t[1..]),
        }
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    go(&p, &t)
}

/// One Allow or Deny statement of a policy.
#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    actions: Vec<String>,
    resources: Vec<String>,
}

/// A permissions policy file, its placeholders filled in (`ACCOUNT_ID`).
#[derive(Debug, Clone)]
pub struct Policy {
    pub file: String,
    statements: Vec<Statement>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        _ => vec![],
    }
}

impl Policy {
    pub fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v: Value =
            serde_json::from_str(&text.replace("ACCOUNT_ID", ACCOUNT_ID)).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        assert_eq!(v["Version"], "2012-10-17", "{}: the policy language version", path.display());
        let statements = v["Statement"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no Statement list", path.display()))
            .iter()
            .map(|st| {
                for k in ["NotAction", "NotResource"] {
                    assert!(st.get(k).is_none(), "{}: {k} is not supported by this check", path.display());
                }
                let effect = st["Effect"].as_str().unwrap_or_default();
                assert!(effect == "Allow" || effect == "Deny", "{}: Effect {effect:?}", path.display());
                Statement { allow: effect == "Allow", actions: strings(&st["Action"]), resources: strings(&st["Resource"]) }
            })
            .collect();
        Self { file: path.display().to_string(), statements }
    }

    fn matches(st: &Statement, c: &Call) -> bool {
        st.actions.iter().any(|a| glob(a, &c.action))
            && (c.resource == "*" || st.resources.iter().any(|r| r == "*" || glob(r, &c.resource)))
    }

    /// Whether the policy allows the call: an Allow statement matches its action (and,
    /// for S3, its bucket or object) and no Deny does.
    pub fn allows(&self, c: &Call) -> bool {
        self.statements.iter().any(|st| st.allow && Self::matches(st, c))
            && !self.statements.iter().any(|st| !st.allow && Self::matches(st, c))
    }

    /// Whether it allows `action` on anything at all.
    pub fn allows_action(&self, action: &str) -> bool {
        self.statements.iter().any(|st| st.allow && st.actions.iter().any(|a| glob(a, action)))
    }

    /// The calls it does not allow.
    pub fn missing<'a>(&self, calls: impl IntoIterator<Item = &'a Call>) -> Vec<&'a Call> {
        calls.into_iter().filter(|c| !self.allows(c)).collect()
    }
}

/// The requests of a time window (one stamp run), by the proxy's clock.
pub fn between(requests: &[Value], from: f64, to: f64) -> Vec<Value> {
    requests.iter().filter(|r| r["time"].as_f64().is_some_and(|t| t >= from && t <= to)).cloned().collect()
}

/// The calls made, grouped by action, for a failure message.
pub fn listing(calls: &[&Call]) -> String {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in calls {
        by.entry(c.action.as_str()).or_default().push(c.resource.as_str());
    }
    by.iter().map(|(a, r)| format!("  {a} on {}", r.join(", "))).collect::<Vec<_>>().join("\n")
}

/// Panics listing, for each (policy, what was run, its calls), the calls the policy
/// does not allow; all of them at once.
pub fn assert_cover(checks: &[(&Policy, &str, &[Call])]) {
    let mut report = String::new();
    for (policy, what, calls) in checks {
        let missing = policy.missing(calls.iter());
        if !missing.is_empty() {
            report.push_str(&format!(
                "{} does not allow what {what} needs:\n{}\n(every call of {what}:\n{})\n",
                policy.file,
                listing(&missing),
                listing(&calls.iter().collect::<Vec<_>>())
            ));
        }
    }
    assert!(report.is_empty(), "{report}");
}

/// Runs a command (a stamp run) and returns what it returned and the distinct calls
/// the proxy saw meanwhile.
pub fn recorded<T>(requests: impl Fn() -> Vec<Value>, run: impl FnOnce() -> T) -> (T, Vec<Call>) {
    let from = now();
    let out = run();
    let to = now();
    let calls =
        calls(&between(&requests(), from, to)).unwrap_or_else(|bad| panic!("requests no IAM action is known for:\n{}", bad.join("\n")));
    (out, calls.into_iter().collect())
}

/// The S3 writes among `calls` (a plan must make none).
pub fn s3_writes(calls: &[Call]) -> Vec<&Call> {
    calls.iter().filter(|c| c.action.starts_with("s3:Put") || c.action.starts_with("s3:Delete") || c.action == "s3:CreateBucket").collect()
}

/// Unix time now, as the proxy records it.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_requests_map_to_their_actions() {
        let a = |m: &str, p: &str| s3_action(m, p).unwrap().action;
        assert_eq!(a("HEAD", "/b"), "s3:ListBucket");
        assert_eq!(a("GET", "/b?list-type=2&prefix=env%3A%2F"), "s3:ListBucket");
        assert_eq!(a("GET", "/b?versioning"), "s3:GetBucketVersioning");
        assert_eq!(a("PUT", "/b"), "s3:CreateBucket");
        assert_eq!(a("GET", "/b/acme/vpc?x-id=GetObject"), "s3:GetObject");
        assert_eq!(a("PUT", "/b/acme/vpc.tflock?x-id=PutObject"), "s3:PutObject");
        assert_eq!(a("DELETE", "/b/acme/vpc.tflock"), "s3:DeleteObject");
        assert_eq!(s3_action("GET", "/b/k").unwrap().resource, "arn:aws:s3:::b/k");
        assert!(s3_action("PUT", "/b?intelligent-tiering").is_err(), "an unknown key is not guessed at");
        assert!(s3_action("PATCH", "/b").is_err());
        assert!(glob("ec2:Describe*", "ec2:describevpcs") && !glob("ec2:Describe*", "ec2:CreateVpc"));
        assert!(glob("arn:aws:s3:::tfstate-*/*", "arn:aws:s3:::tfstate-1-acme/acme/vpc"));
    }
}
