//! The state buckets, the state objects and the caller's account through the AWS
//! SDK for Rust (S3 and STS) instead of one AWS CLI process per call. A call costs
//! milliseconds here where the CLI costs about half a second of CPU, which is what
//! a fleet of customers on a small CI machine (and `stamp status` over a hundred of
//! them) runs out of. The SDK resolves credentials as the AWS CLI does (environment,
//! profiles, SSO, credential_process, instance roles), and its errors carry AWS's
//! error code, by which stamp tells them apart (`ApiError`). The SDK makes one
//! attempt per call: stamp's own policy (`crate::retry`) retries throttling, 5xx
//! and dropped connections, and logs each retry with its reason.
//!
//! A bucket is created here too, as `aws s3 mb` makes it (CreateBucket, with the
//! region as its LocationConstraint outside us-east-1): that CLI process was a third
//! of a customer's CPU in a fleet run, and the one step every customer ran at once.
//! CloudWatch alarms (`alarms.rs`) go through the same base config and retries.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};

use crate::names::BucketName;
use crate::tools::process::StageLog;

mod alarm_states;
mod alarms;
mod errors;
mod hardening;
mod objects;

pub(crate) use alarm_states::{AlarmState, missing_error, missing_names};
pub use errors::ApiError;
pub(crate) use errors::classify_answer;
pub(crate) use hardening::{Hardening, policy_denies_insecure_transport, tls_only_policy};

/// How stamp reaches AWS through the SDK: the fleet's endpoint and profile, and
/// the same credentials the tools get. One per run; clients per region.
pub struct AwsApi {
    endpoint: Option<String>,
    profile: Option<String>,
    /// Static keys stamp gives the tools for an emulator (`find::tool_env`).
    static_keys: Option<(String, String)>,
    /// PEM certificates trusted besides the system's (`AWS_CA_BUNDLE`).
    ca_bundle: Option<Vec<u8>>,
    base: tokio::sync::OnceCell<aws_config::SdkConfig>,
    s3: RefCell<BTreeMap<String, aws_sdk_s3::Client>>,
    cloudwatch: RefCell<BTreeMap<String, aws_sdk_cloudwatch::Client>>,
    /// Buckets stamp created in this run: S3 may answer NoSuchBucket for them for a
    /// moment (eventual consistency), which is then retried, not taken as an answer.
    created: RefCell<std::collections::BTreeSet<String>>,
}

/// The SDK's own HTTPS client (hyper and rustls, as its `default-https-client`
/// builds it) on ring instead of aws-lc-rs: one crypto library in the binary, the
/// one ureq (the smoke test) uses. It trusts the system's roots and, when given, the
/// `AWS_CA_BUNDLE` certificates, as the AWS CLI, terraform and packer do.
fn https_client(ca_bundle: Option<&[u8]>) -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let mut trust = TrustStore::default().with_native_roots(true);
    if let Some(pem) = ca_bundle {
        trust = trust.with_pem_certificate(pem.to_vec());
    }
    let context = TlsContext::builder().with_trust_store(trust).build().unwrap_or_default();
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).tls_context(context).build_https()
}

/// When a write may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Whatever is there.
    Always,
    /// Only if no object has the key (`If-None-Match: *`).
    IfAbsent,
    /// Only if the object still has this ETag (`If-Match`).
    IfMatch(String),
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub last_modified: Option<SystemTime>,
    pub size: i64,
}

/// An object's text, when it was last written, and its ETag (for a write that
/// must not overwrite a newer one: `Put::IfMatch`).
pub struct Object {
    pub text: String,
    pub last_modified: Option<SystemTime>,
    pub etag: Option<String>,
}

impl AwsApi {
    /// `env` is the tools' environment (`find::tool_env`): the emulator keys, if
    /// stamp set any, are used here too.
    pub(crate) fn new(fleet: &crate::config::Fleet, env: &[(String, String)]) -> Self {
        // Checked when the fleet file was loaded (config::check_ca_bundle).
        let ca_bundle = fleet.aws.ca_bundle.as_ref().and_then(|p| std::fs::read(p).ok());
        Self::for_endpoint(fleet.aws.endpoint.clone(), fleet.aws.profile.clone(), ca_bundle, env)
    }

    /// As `new`, from the fleet's `[aws]` values themselves.
    pub fn for_endpoint(endpoint: Option<String>, profile: Option<String>, ca_bundle: Option<Vec<u8>>, env: &[(String, String)]) -> Self {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let static_keys = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(a), Some(s)) => Some((a, s)),
            _ => None,
        };
        Self {
            endpoint,
            profile,
            static_keys,
            ca_bundle,
            base: tokio::sync::OnceCell::new(),
            s3: RefCell::default(),
            cloudwatch: RefCell::default(),
            created: RefCell::default(),
        }
    }

    async fn base(&self) -> &aws_config::SdkConfig {
        self.base
            .get_or_init(|| async {
                let mut l = aws_config::defaults(BehaviorVersion::latest())
                    // One attempt per call: stamp retries (`call`), so that each
                    // retry is logged with its reason and the total stays bounded.
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(10))
                            .operation_attempt_timeout(Duration::from_secs(60))
                            .build(),
                    );
                if let Some(p) = &self.profile {
                    l = l.profile_name(p);
                }
                l = l.http_client(https_client(self.ca_bundle.as_deref()));
                if let Some(e) = &self.endpoint {
                    l = l.endpoint_url(e);
                }
                if let Some((id, secret)) = &self.static_keys {
                    l = l.credentials_provider(aws_sdk_s3::config::Credentials::new(id, secret, None, None, "stamp-tool-env"));
                }
                // A region for STS and the loader; S3 clients get the customer's.
                if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                    l = l.region(aws_config::Region::new("us-east-1"));
                }
                l.load().await
            })
            .await
    }

    async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        if let Some(c) = self.s3.borrow().get(region) {
            return c.clone();
        }
        let conf = aws_sdk_s3::config::Builder::from(self.base().await)
            .region(aws_sdk_s3::config::Region::new(region.to_owned()))
            // An emulator serves every bucket on one host.
            .force_path_style(self.endpoint.is_some())
            .build();
        let c = aws_sdk_s3::Client::from_conf(conf);
        self.s3.borrow_mut().insert(region.to_owned(), c.clone());
        c
    }

    /// Whether AWS is reached over plain HTTP (an emulator's endpoint).
    pub(crate) fn plain_http(&self) -> bool {
        self.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))
    }

    /// Marks `bucket` as created by stamp in this run (see `created`).
    pub(crate) fn created_bucket(&self, bucket: &BucketName) {
        self.created.borrow_mut().insert(bucket.to_string());
    }

    /// Why `e` may go away on another attempt: a transient answer, or a bucket
    /// stamp just created that S3 does not show yet.
    fn transient(&self, e: &ApiError, service: &str, bucket: Option<&str>) -> Option<String> {
        if let Some(r) = e.transient_reason(service) {
            return Some(r);
        }
        match (e, bucket) {
            (ApiError::NotFound { code }, Some(b))
                if (code == "NoSuchBucket" || code == "NotFound") && self.created.borrow().contains(b) =>
            {
                Some(format!("{code} (404) from {service} right after stamp created {b} (not visible yet)"))
            }
            _ => None,
        }
    }

    /// One SDK call (`f`, one attempt each time) with stamp's retries: each retry is
    /// in the stage log and shown as the stage's step, with its reason.
    async fn call<T>(
        &self,
        log: &RefCell<&mut StageLog>,
        op: &str,
        service: &str,
        bucket: Option<&str>,
        mut f: impl AsyncFnMut() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        crate::retry::run(
            &mut (),
            op,
            |_: &mut (), m: &str| log.borrow_mut().progress(m),
            async |_: &mut (), _| f().await,
            |e: &ApiError| self.transient(e, service, bucket),
        )
        .await
    }

    /// The caller's account id (STS GetCallerIdentity).
    pub(crate) async fn account_id(&self, log: &mut StageLog) -> Result<String, ApiError> {
        let sts = aws_sdk_sts::Client::new(self.base().await);
        let r = self
            .call(&RefCell::new(&mut *log), "GetCallerIdentity", "STS", None, async || {
                sts.get_caller_identity().send().await.map_err(ApiError::from_sdk)
            })
            .await;
        log_call(log, "sts GetCallerIdentity", &r);
        r?.account().map(String::from).ok_or(ApiError::Other { code: "NoAccount".into(), status: None, message: "no Account".into() })
    }

    /// HeadBucket: `Ok(())` when this account can use it.
    pub(crate) async fn head_bucket(&self, log: &mut StageLog, region: &str, bucket: &BucketName) -> Result<(), ApiError> {
        let s3 = self.s3(region).await;
        let r = self
            .call(&RefCell::new(&mut *log), "HeadBucket", "S3", Some(bucket.as_str()), async || {
                s3.head_bucket().bucket(bucket.as_str()).send().await.map(|_| ()).map_err(ApiError::from_sdk)
            })
            .await;
        log_call(log, &format!("s3 HeadBucket {bucket}"), &r);
        r
    }

    /// CreateBucket, as `aws s3 mb s3://BUCKET --region REGION` makes it. `Ok(true)`:
    /// created now; `Ok(false)`: this account owns it already (another stamp, another
    /// CI job of the fleet, made it a moment ago; or a retried create whose first
    /// attempt got through). `BucketAlreadyExists` (someone else's name) is an error.
    pub(crate) async fn create_bucket(&self, log: &mut StageLog, region: &str, bucket: &BucketName) -> Result<bool, ApiError> {
        let s3 = self.s3(region).await;
        let r = self
            .call(&RefCell::new(&mut *log), "CreateBucket", "S3", None, async || {
                let mut req = s3.create_bucket().bucket(bucket.as_str());
                // us-east-1 takes no constraint (AWS refuses one naming it).
                if region != "us-east-1" {
                    req = req.create_bucket_configuration(
                        CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build(),
                    );
                }
                match req.send().await.map_err(ApiError::from_sdk) {
                    Ok(_) => Ok(true),
                    Err(ApiError::Other { code, .. }) if code == "BucketAlreadyOwnedByYou" => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await;
        log_call(log, &format!("s3 CreateBucket {bucket} (LocationConstraint {region}, as `aws s3 mb` makes it)"), &r);
        r
    }

    /// The hardening settings that differ from stamp's (empty: all in place).
    pub(crate) async fn check_hardening(&self, log: &mut StageLog, region: &str, bucket: &BucketName) -> Result<Vec<Hardening>, ApiError> {
        let s3 = self.s3(region).await;
        let b = bucket.as_str();
        let notes = RefCell::new(&mut *log);
        let (v, enc, pab, pol) = tokio::join!(
            self.call(&notes, "GetBucketVersioning", "S3", Some(b), async || {
                s3.get_bucket_versioning().bucket(b).send().await.map_err(ApiError::from_sdk)
            }),
            self.call(&notes, "GetBucketEncryption", "S3", Some(b), async || {
                s3.get_bucket_encryption().bucket(b).send().await.map_err(ApiError::from_sdk)
            }),
            self.call(&notes, "GetPublicAccessBlock", "S3", Some(b), async || {
                s3.get_public_access_block().bucket(b).send().await.map_err(ApiError::from_sdk)
            }),
            self.call(&notes, "GetBucketPolicy", "S3", Some(b), async || {
                s3.get_bucket_policy().bucket(b).send().await.map_err(ApiError::from_sdk)
            }),
        );
        let mut missing = Vec::new();
        log_call(log, &format!("s3 GetBucketVersioning {b}"), &v);
        if v?.status() != Some(&BucketVersioningStatus::Enabled) {
            missing.push(Hardening::Versioning);
        }
        let enc = absent_ok(enc);
        log_call(log, &format!("s3 GetBucketEncryption {b}"), &enc);
        let encrypted = enc?.and_then(|o| o.server_side_encryption_configuration).is_some_and(|c| {
            c.rules().iter().any(|r| r.apply_server_side_encryption_by_default().is_some_and(|d| !d.sse_algorithm().as_str().is_empty()))
        });
        if !encrypted {
            missing.push(Hardening::Encryption);
        }
        let pab = absent_ok(pab);
        log_call(log, &format!("s3 GetPublicAccessBlock {b}"), &pab);
        let blocked = pab?.and_then(|o| o.public_access_block_configuration).is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        });
        if !blocked {
            missing.push(Hardening::PublicAccessBlock);
        }
        let pol = absent_ok(pol);
        log_call(log, &format!("s3 GetBucketPolicy {b}"), &pol);
        let tls = pol?.and_then(|o| o.policy).is_some_and(|p| policy_denies_insecure_transport(&p));
        // Over a plain-HTTP endpoint (an emulator) a TLS-only policy would deny every
        // request, terraform's own included (moto enforces it).
        if !tls && !self.plain_http() {
            missing.push(Hardening::TlsOnlyPolicy);
        }
        Ok(missing)
    }

    /// Applies one hardening setting.
    pub(crate) async fn harden(&self, log: &mut StageLog, region: &str, bucket: &BucketName, what: Hardening) -> Result<(), ApiError> {
        let s3 = self.s3(region).await;
        let b = bucket.as_str();
        let r = self
            .call(&RefCell::new(&mut *log), what.put_operation(), "S3", Some(b), async || match what {
                Hardening::Versioning => s3
                    .put_bucket_versioning()
                    .bucket(b)
                    .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(ApiError::from_sdk),
                Hardening::Encryption => {
                    let by_default = ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .map_err(|e| ApiError::Other { code: "Build".into(), status: None, message: e.to_string() })?;
                    let rule = ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(by_default)
                        .bucket_key_enabled(true)
                        .build();
                    let conf = ServerSideEncryptionConfiguration::builder().rules(rule).build().map_err(|e| ApiError::Other {
                        code: "Build".into(),
                        status: None,
                        message: e.to_string(),
                    })?;
                    s3.put_bucket_encryption()
                        .bucket(b)
                        .server_side_encryption_configuration(conf)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(ApiError::from_sdk)
                }
                Hardening::PublicAccessBlock => s3
                    .put_public_access_block()
                    .bucket(b)
                    .public_access_block_configuration(
                        PublicAccessBlockConfiguration::builder()
                            .block_public_acls(true)
                            .ignore_public_acls(true)
                            .block_public_policy(true)
                            .restrict_public_buckets(true)
                            .build(),
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(ApiError::from_sdk),
                Hardening::TlsOnlyPolicy => {
                    s3.put_bucket_policy().bucket(b).policy(tls_only_policy(b)).send().await.map(|_| ()).map_err(ApiError::from_sdk)
                }
            })
            .await;
        log_call(log, &format!("s3 {} {b}", what.put_operation()), &r);
        r
    }

    /// The object's text, or `None` when the bucket or the object does not exist.
    pub async fn get_object(&self, log: &mut StageLog, region: &str, bucket: &BucketName, key: &str) -> Result<Option<Object>, ApiError> {
        let s3 = self.s3(region).await;
        let r = self
            .call(&RefCell::new(&mut *log), "GetObject", "S3", Some(bucket.as_str()), async || {
                let o = s3.get_object().bucket(bucket.as_str()).key(key).send().await.map_err(ApiError::from_sdk)?;
                let last_modified = o.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
                let etag = o.e_tag().map(String::from);
                // A connection cut in the middle of the body is retried with the request.
                let bytes = o
                    .body
                    .collect()
                    .await
                    .map_err(|e| ApiError::Transient { what: format!("reading s3://{bucket}/{key} was cut short ({e})") })?
                    .into_bytes();
                Ok((bytes, last_modified, etag))
            })
            .await;
        let r = absent_ok(r);
        log_call(log, &format!("s3 GetObject s3://{bucket}/{key}"), &r);
        let Some((bytes, last_modified, etag)) = r? else { return Ok(None) };
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::Other {
            code: "NotUtf8".into(),
            status: None,
            message: format!("s3://{bucket}/{key} is not UTF-8"),
        })?;
        Ok(Some(Object { text, last_modified, etag }))
    }
}

/// A "not found" answer as `None`.
fn absent_ok<T>(r: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every SDK call is in the stage log, with its answer (never the data).
fn log_call<T>(log: &mut StageLog, what: &str, r: &Result<T, ApiError>) {
    match r {
        Ok(_) => log.note(&format!("{what}: ok")),
        Err(e) => log.note(&format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_code_and_status_never_by_message() {
        let c = |code: Option<&str>, status: Option<u16>| classify_answer(code, status, "Access Denied NoSuchBucket SlowDown".into());
        assert!(matches!(c(Some("NoSuchBucket"), Some(404)), ApiError::NotFound { .. }));
        assert!(matches!(c(None, Some(404)), ApiError::NotFound { .. }));
        assert!(matches!(c(Some("AccessDenied"), Some(403)), ApiError::AccessDenied { .. }));
        assert!(matches!(c(None, Some(403)), ApiError::Forbidden { .. }), "HeadBucket: a 403 without a body");
        assert_eq!(c(Some("SlowDown"), Some(503)).transient_reason("S3").as_deref(), Some("SlowDown (503) from S3"));
        assert_eq!(c(Some("Throttling"), Some(400)).transient_reason("STS").as_deref(), Some("Throttling (400) from STS"));
        assert_eq!(c(Some("InternalError"), Some(500)).transient_reason("S3").as_deref(), Some("InternalError (500) from S3"));
        assert_eq!(c(None, Some(502)).transient_reason("S3").as_deref(), Some("HTTP 502 from S3"));
        // Codes the SDK's own classifiers retry, which a hand-written list had missed.
        assert_eq!(
            c(Some("PriorRequestNotComplete"), Some(400)).transient_reason("S3").as_deref(),
            Some("PriorRequestNotComplete (400) from S3")
        );
        assert!(matches!(c(Some("LimitExceededException"), Some(400)), ApiError::Throttled { .. }));
        assert_eq!(
            c(Some("RequestTimeoutException"), Some(408)).transient_reason("STS").as_deref(),
            Some("RequestTimeoutException (408) from STS")
        );
        // Not transient: answers, permissions, validation.
        for (code, status) in [(Some("NoSuchKey"), Some(404)), (Some("AccessDenied"), Some(403)), (Some("InvalidArgument"), Some(400))] {
            assert_eq!(c(code, status).transient_reason("S3"), None, "{code:?}");
        }
        assert!(matches!(c(Some("ExpiredToken"), Some(400)), ApiError::NoCredentials { .. }));
        // A conditional write that lost is an answer, not a retry.
        assert!(matches!(c(Some("PreconditionFailed"), Some(412)), ApiError::Precondition { .. }));
        assert!(matches!(c(Some("ConditionalRequestConflict"), Some(409)), ApiError::Precondition { .. }));
        assert_eq!(c(Some("PreconditionFailed"), Some(412)).transient_reason("S3"), None);
        let gave_up = crate::retry::Retryable::exhausted(c(Some("SlowDown"), Some(503)), 5);
        assert_eq!(gave_up.to_string(), "throttled (SlowDown, HTTP 503), still after 5 attempts");
        assert_eq!(gave_up.transient_reason("S3"), None, "a GaveUp is final");
    }

    #[test]
    fn the_tls_policy_stamp_puts_is_recognised_and_a_weaker_one_is_not() {
        assert!(policy_denies_insecure_transport(&tls_only_policy("b")));
        let allow =
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#;
        assert!(!policy_denies_insecure_transport(allow));
        let partial = r#"{"Statement":{"Effect":"Deny","Action":"s3:GetObject","Condition":{"Bool":{"aws:SecureTransport":false}}}}"#;
        assert!(!policy_denies_insecure_transport(partial));
        let own = r#"{"Statement":{"Effect":"Deny","Action":["s3:*"],"Condition":{"Bool":{"aws:SecureTransport":false}}}}"#;
        assert!(policy_denies_insecure_transport(own));
        assert!(!policy_denies_insecure_transport("not json"));
    }
}
