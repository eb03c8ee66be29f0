//! AWS through the real AWS CLI: the caller's account, the hardened state bucket,
//! reading a state object back, and the AMIs stamp baked. With an emulated AWS
//! every call carries `--endpoint-url`.

use std::rc::Rc;

use serde_json::Value;

use crate::error::Error;
use crate::names::{AmiId, BucketName, Region};
use crate::tools::process::{StageLog, Stream, Tail, ToolCommand};
use crate::tools::s3::{ApiError, AwsApi, Hardening};

/// Everything needed to call the AWS CLI the same way each time.
#[derive(Clone)]
pub(crate) struct Aws {
    pub program: std::path::PathBuf,
    pub endpoint: Option<String>,
    pub env: Vec<(String, String)>,
    pub cwd: std::path::PathBuf,
    /// S3 and STS through the SDK, shared by every customer of a run.
    pub api: Rc<AwsApi>,
    /// The region of the tools' environment (the customer's).
    pub region: String,
}

/// Tags stamp puts on (and looks for on) the AMIs it bakes.
pub(crate) const TAG_CUSTOMER: &str = "stamp:customer";
/// The git_id (branch, tag or hash) the image was baked for, as the customer wrote it.
pub(crate) const TAG_GIT_ID: &str = "stamp:git_id";
/// The commit the image holds: what its git_id named when it was baked.
pub(crate) const TAG_COMMIT: &str = "stamp:commit";

/// What an image's tags say it was baked from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageRevision {
    pub git_id: Option<String>,
    pub commit: Option<String>,
}
pub(crate) const TAG_TEMPLATE_HASH: &str = "stamp:template_hash";
/// What makes two customers' images the same (see `fleet::bakes`).
pub(crate) const TAG_IMAGE_KEY: &str = "stamp:image_key";

impl Aws {
    /// The AWS CLI at `program`, as the fleet reaches AWS (endpoint), with the tools' environment.
    pub(crate) fn new(fleet: &crate::config::Fleet, program: std::path::PathBuf, env: Vec<(String, String)>) -> Self {
        let api = Rc::new(AwsApi::new(fleet, &env));
        Self::with_api(fleet, program, env, api)
    }

    /// As `new`, with the run's shared SDK clients.
    pub(crate) fn with_api(fleet: &crate::config::Fleet, program: std::path::PathBuf, env: Vec<(String, String)>, api: Rc<AwsApi>) -> Self {
        let region = env.iter().find(|(k, _)| k == "AWS_REGION").map(|(_, v)| v.clone()).unwrap_or_else(|| "us-east-1".into());
        Self { program, endpoint: fleet.aws.endpoint.clone(), env, cwd: fleet.root.clone(), api, region }
    }

    pub(crate) fn command<I: IntoIterator<Item = S>, S: Into<std::ffi::OsString>>(&self, args: I) -> ToolCommand {
        // One attempt per call: stamp retries transient failures itself (`run`), so
        // that each retry is logged with its reason and the total stays bounded.
        let once = [("AWS_MAX_ATTEMPTS".to_owned(), "1".to_owned()), ("AWS_RETRY_MODE".to_owned(), "standard".to_owned())];
        let mut c = ToolCommand::new(&self.program, &self.cwd).envs(&self.env).envs(&once).stop_with(libc::SIGTERM);
        if let Some(e) = &self.endpoint {
            c = c.arg("--endpoint-url").arg(e);
        }
        c.args(args).show_env(&["AWS_PROFILE", "AWS_DEFAULT_REGION"])
    }

    /// Runs `aws args...`: (exit code, stdout, stderr). Exit codes outside `ok` are a
    /// tool failure. A failure whose AWS error code (or the CLI's connection error)
    /// is transient is retried through `crate::retry`, each retry logged with its
    /// reason; after the last attempt its result is returned as it is.
    pub(crate) async fn run(&self, stage: &str, log: &mut StageLog, args: &[&str], ok: &[i32]) -> Result<(i32, String, String), Error> {
        let what = operation_name(args);
        let r = crate::tools::process::logged(
            log,
            &what,
            async |log: &mut StageLog, _| {
                let mut stderr = String::new();
                let r = self
                    .command(args.iter().copied())
                    .run(stage, log, ok, true, &mut |s, l| {
                        if s == Stream::Stderr {
                            stderr.push_str(l);
                            stderr.push('\n');
                        }
                        Tail::Raw
                    })
                    .await;
                match r {
                    Ok(out) if out.code == 0 => Ok((0, out.stdout, stderr)),
                    Ok(out) => Err(CliAttempt { result: Ok((out.code, out.stdout, stderr.clone())), stderr }),
                    Err(e) => Err(CliAttempt { result: Err(e), stderr }),
                }
            },
            |a: &CliAttempt| match &a.result {
                Err(Error::Tool(_)) | Ok(_) => cli_failure(&a.stderr).transient_reason(&service_name(args)),
                Err(_) => None,
            },
        )
        .await;
        match r {
            Ok(v) => Ok(v),
            Err(CliAttempt { result: Err(Error::Tool(mut f)), stderr }) => {
                if f.hint.is_none() {
                    f.hint = self.cli_hint(&cli_failure(&stderr));
                }
                Err(Error::Tool(f))
            }
            Err(CliAttempt { result, .. }) => result,
        }
    }

    /// A hint for a failed CLI call, by what its error was.
    fn cli_hint(&self, e: &ApiError) -> Option<String> {
        match e.last() {
            ApiError::Unreachable { .. } => Some(match &self.endpoint {
                Some(url) => {
                    format!("nothing answers at {url} ([aws] endpoint or STAMP_AWS_ENDPOINT): start the emulator there or fix the URL")
                }
                None => "AWS cannot be reached from here: check the network or proxy; `stamp doctor` checks it".into(),
            }),
            ApiError::AccessDenied { code, .. } => {
                Some(format!("the credentials lack the permission for this call ({code}): see the command above"))
            }
            ApiError::NoCredentials { .. } => Some("check AWS credentials (AWS_PROFILE, [aws] profile, or AWS_ACCESS_KEY_ID)".into()),
            ApiError::Throttled { .. } => Some("AWS is throttling this account; run again later or lower --parallel".into()),
            _ => None,
        }
    }

    /// The caller's account id (STS, through the SDK).
    pub(crate) async fn account_id(&self, _stage: &str, log: &mut StageLog) -> Result<String, Error> {
        self.api.account_id(log).await.map_err(|e| {
            let hint = match (&e, &self.endpoint) {
                (ApiError::Unreachable { .. }, Some(url)) => format!(
                    "nothing answers at {url} ([aws] endpoint or STAMP_AWS_ENDPOINT): start the emulator there or fix the URL; `stamp doctor` checks it"
                ),
                (ApiError::Unreachable { .. }, None) => {
                    "AWS cannot be reached from here: check the network or proxy; `stamp doctor` checks it".to_owned()
                }
                _ => "check AWS credentials (AWS_PROFILE, [aws] profile, or AWS_ACCESS_KEY_ID) and [aws] endpoint".to_owned(),
            };
            Error::stage_hint(format!("cannot ask AWS who the caller is (sts get-caller-identity): {e}"), hint)
        })
    }

    /// 0: ours and reachable; 404: missing; 403: someone else's (or not readable with these credentials).
    pub(crate) async fn bucket_status(&self, _stage: &str, log: &mut StageLog, bucket: &BucketName) -> Result<u16, Error> {
        match self.api.head_bucket(log, &self.region, bucket).await {
            Ok(()) => Ok(0),
            Err(ApiError::NotFound { .. }) => Ok(404),
            Err(ApiError::Forbidden { .. } | ApiError::AccessDenied { .. }) => Ok(403),
            Err(e) => Err(api_error(format!("cannot tell whether bucket {bucket} exists"), e)),
        }
    }

    /// Creates the state bucket if missing (as `aws s3 mb` does), then checks the hardening
    /// (versioning, default encryption, the four public-access-block flags, a
    /// TLS-only policy) and applies whatever is missing or was changed since.
    /// Returns whether it was created and what was (re)applied.
    pub(crate) async fn ensure_state_bucket(
        &self,
        stage: &str,
        log: &mut StageLog,
        bucket: &BucketName,
        region: &Region,
        report: &mut dyn FnMut(&str),
    ) -> Result<(bool, Vec<Hardening>), Error> {
        let created = match self.bucket_status(stage, log, bucket).await? {
            0 => false,
            404 => {
                report("creating bucket");
                let created = match self.api.create_bucket(log, region.as_str(), bucket).await {
                    Ok(created) => created,
                    Err(ApiError::Other { code, .. }) if code == "BucketAlreadyExists" => return Err(taken(bucket)),
                    Err(e) => return Err(api_error(format!("cannot create state bucket {bucket}"), e)),
                };
                // S3 is eventually consistent right after a create: NoSuchBucket for it
                // is retried (`AwsApi::created_bucket`) until it answers.
                self.api.created_bucket(bucket);
                self.api
                    .head_bucket(log, &self.region, bucket)
                    .await
                    .map_err(|e| api_error(format!("bucket {bucket} is not usable after it was created"), e))?;
                created
            }
            _ => return Err(taken(bucket)),
        };
        report("checking hardening");
        let missing =
            self.api.check_hardening(log, &self.region, bucket).await.map_err(|e| api_error(format!("checking bucket {bucket}"), e))?;
        for h in &missing {
            report(&format!("applying {}", h.describe()));
            self.api
                .harden(log, &self.region, bucket, *h)
                .await
                .map_err(|e| api_error(format!("applying {} to bucket {bucket}", h.describe()), e))?;
        }
        Ok((created, missing))
    }

    /// The content of `s3://bucket/key`, or `None` when there is no such object.
    pub(crate) async fn read_object(
        &self,
        _stage: &str,
        log: &mut StageLog,
        bucket: &BucketName,
        key: &str,
    ) -> Result<Option<String>, Error> {
        match self.api.get_object(log, &self.region, bucket, key).await {
            Ok(o) => Ok(o.map(|o| o.text)),
            Err(e) => Err(api_error(format!("cannot read s3://{bucket}/{key}"), e)),
        }
    }

    /// AMIs of this account carrying every one of these tags, newest first:
    /// (id, creation date, snapshot ids).
    pub(crate) async fn find_images(
        &self,
        stage: &str,
        log: &mut StageLog,
        tags: &[(&str, &str)],
    ) -> Result<Vec<(AmiId, String, Vec<String>)>, Error> {
        // Only stamp's images: they all carry its template-hash tag.
        let mut filters: Vec<String> = vec![format!("Name=tag-key,Values={TAG_TEMPLATE_HASH}")];
        filters.extend(tags.iter().map(|(k, v)| format!("Name=tag:{k},Values={v}")));
        let mut args = vec!["ec2", "describe-images", "--owners", "self", "--output", "json", "--filters"];
        args.extend(filters.iter().map(String::as_str));
        let (_, out, _) = self.run(stage, log, &args, &[0]).await?;
        Ok(parse_images(&out, TAG_TEMPLATE_HASH)?.into_iter().map(|(id, created, snaps, _)| (id, created, snaps)).collect())
    }

    /// The tags of one AMI.
    pub(crate) async fn image_tags(
        &self,
        stage: &str,
        log: &mut StageLog,
        ami: &AmiId,
    ) -> Result<std::collections::BTreeMap<String, String>, Error> {
        let (_, out, _) = self
            .run(
                stage,
                log,
                &["ec2", "describe-images", "--image-ids", ami.as_str(), "--query", "Images[0].Tags", "--output", "json"],
                &[0],
            )
            .await?;
        let v: Option<Vec<Value>> =
            serde_json::from_str(&out).map_err(|e| Error::stage(format!("describe-images --image-ids {ami} printed no JSON: {e}")))?;
        Ok(v.unwrap_or_default()
            .iter()
            .filter_map(|t| Some((t.get("Key")?.as_str()?.to_owned(), t.get("Value")?.as_str()?.to_owned())))
            .collect())
    }

    /// Whether `ami` is registered (and not deregistered) in this account's region.
    pub(crate) async fn image_exists(&self, stage: &str, log: &mut StageLog, ami: &AmiId) -> Result<bool, Error> {
        let (code, out, stderr) =
            self.run(stage, log, &["ec2", "describe-images", "--image-ids", ami.as_str(), "--output", "json"], &[0, 254, 255]).await?;
        if code != 0 {
            return match error_code(&stderr).as_deref() {
                Some("InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable" | "InvalidAMIID.Malformed") => Ok(false),
                _ => Err(Error::stage(format!("aws ec2 describe-images --image-ids {ami} failed: {}", stderr.trim()))),
            };
        }
        let v: Value = serde_json::from_str(&out).map_err(|e| Error::stage(format!("describe-images printed no JSON: {e}")))?;
        Ok(v.get("Images").and_then(Value::as_array).is_some_and(|a| {
            a.iter().any(|i| {
                i.get("ImageId").and_then(Value::as_str) == Some(ami.as_str())
                    && !matches!(i.get("State").and_then(Value::as_str), Some("deregistered" | "failed" | "invalid"))
            })
        }))
    }

    /// The app revision of each of stamp's AMIs in the region: its `stamp:git_id`
    /// and `stamp:commit` tags (either may be missing on an older image).
    pub(crate) async fn image_revisions(
        &self,
        stage: &str,
        log: &mut StageLog,
    ) -> Result<std::collections::BTreeMap<String, ImageRevision>, Error> {
        let query = format!("Images[].[ImageId, Tags[?Key=='{TAG_GIT_ID}'].Value | [0], Tags[?Key=='{TAG_COMMIT}'].Value | [0]]");
        let filter = format!("Name=tag-key,Values={TAG_TEMPLATE_HASH}");
        let (_, out, _) = self
            .run(
                stage,
                log,
                &["ec2", "describe-images", "--owners", "self", "--filters", &filter, "--query", &query, "--output", "json"],
                &[0],
            )
            .await?;
        let v: Vec<(String, Option<String>, Option<String>)> =
            serde_json::from_str(&out).map_err(|e| Error::stage(format!("describe-images printed no JSON: {e}")))?;
        Ok(v.into_iter().map(|(id, git_id, commit)| (id, ImageRevision { git_id, commit })).collect())
    }

    /// Whether deletion protection is on right now (the state may be older: the
    /// operator may just have turned it off). A resource that is gone is not protected.
    pub(crate) async fn still_protected(
        &self,
        stage: &str,
        log: &mut StageLog,
        p: &crate::tools::terraform::Protected,
    ) -> Result<bool, Error> {
        use crate::tools::terraform::Protected;
        let (args, query): (Vec<&str>, &str) = match p {
            Protected::Database { identifier } => {
                (vec!["rds", "describe-db-instances", "--db-instance-identifier", identifier.as_str()], "DBInstances[0].DeletionProtection")
            }
            Protected::LoadBalancer { arn } => (
                vec!["elbv2", "describe-load-balancer-attributes", "--load-balancer-arn", arn.as_str()],
                "Attributes[?Key=='deletion_protection.enabled'].Value | [0]",
            ),
        };
        let mut full = args.clone();
        full.extend(["--query", query, "--output", "text"]);
        let (code, out, stderr) = self.run(stage, log, &full, &[0, 254, 255]).await?;
        if code == 0 {
            return Ok(out.trim().eq_ignore_ascii_case("true"));
        }
        // Gone: by the error code, never by the message's wording.
        if matches!(error_code(&stderr).as_deref(), Some("DBInstanceNotFound" | "DBInstanceNotFoundFault" | "LoadBalancerNotFound")) {
            return Ok(false);
        }
        let e = cli_failure(&stderr);
        let which = match p {
            Protected::Database { identifier } => format!("database {identifier}"),
            Protected::LoadBalancer { arn } => format!("load balancer {arn}"),
        };
        let message = format!("cannot tell whether deletion protection is on for {which}: {}; nothing was destroyed", stderr.trim());
        Err(match self.cli_hint(&e) {
            Some(h) => Error::stage_hint(message, h),
            None => Error::stage(message),
        })
    }

    /// Deregisters an AMI and deletes its snapshots; an image or snapshot that is
    /// already gone (another customer of the run removed it) is not an error.
    pub(crate) async fn delete_image(&self, stage: &str, log: &mut StageLog, ami: &AmiId, snapshots: &[String]) -> Result<(), Error> {
        let gone = |code: i32, stderr: &str, codes: &[&str]| code == 0 || error_code(stderr).is_some_and(|c| codes.contains(&c.as_str()));
        let (code, _, stderr) = self.run(stage, log, &["ec2", "deregister-image", "--image-id", ami.as_str()], &[0, 254, 255]).await?;
        if !gone(code, &stderr, &["InvalidAMIID.Unavailable", "InvalidAMIID.NotFound"]) {
            return Err(Error::stage(format!("deregistering {ami}: {}", stderr.trim())));
        }
        for s in snapshots {
            let (code, _, stderr) = self.run(stage, log, &["ec2", "delete-snapshot", "--snapshot-id", s], &[0, 254, 255]).await?;
            if !gone(code, &stderr, &["InvalidSnapshot.NotFound"]) {
                return Err(Error::stage(format!("deleting snapshot {s} of {ami}: {}", stderr.trim())));
            }
        }
        Ok(())
    }
}

/// One AMI of a `describe-images` answer: id, creation date, snapshot ids, and the
/// value of the tag asked for (when it has one).
pub(crate) type ListedImage = (AmiId, String, Vec<String>, Option<String>);

/// The AMIs of a `describe-images --output json` answer, newest first, with the
/// value of their tag `tag`.
pub(crate) fn parse_images(out: &str, tag: &str) -> Result<Vec<ListedImage>, Error> {
    let v: Value = serde_json::from_str(out).map_err(|e| Error::stage(format!("describe-images printed no JSON: {e}")))?;
    let mut images: Vec<ListedImage> = v
        .get("Images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let id = AmiId::parse(i.get("ImageId")?.as_str()?).ok()?;
            let created = i.get("CreationDate").and_then(Value::as_str).unwrap_or_default().to_owned();
            let snaps = i
                .get("BlockDeviceMappings")
                .and_then(Value::as_array)
                .map(|m| m.iter().filter_map(|b| b.get("Ebs")?.get("SnapshotId")?.as_str().map(String::from)).collect())
                .unwrap_or_default();
            let value = i
                .get("Tags")
                .and_then(Value::as_array)
                .and_then(|t| t.iter().find(|t| t.get("Key").and_then(Value::as_str) == Some(tag)))
                .and_then(|t| t.get("Value")?.as_str())
                .map(String::from);
            Some((id, created, snaps, value))
        })
        .collect();
    images.sort_by(|a, b| b.1.cmp(&a.1));
    Ok(images)
}

/// The AWS error code an AWS CLI error message carries: "An error occurred (Code) when ...".
pub(crate) fn error_code(stderr: &str) -> Option<String> {
    let i = stderr.find("An error occurred (")? + "An error occurred (".len();
    let rest = &stderr[i..];
    Some(rest[..rest.find(')')?].to_owned())
}

/// A failed AWS CLI call, classified as the SDK's errors are (`ApiError`): by the
/// AWS error code it prints ("An error occurred (SlowDown) when calling ..."), a
/// bare HTTP status in its place ("An error occurred (503) ..."), or, when no
/// answer came, botocore's connection errors (EndpointConnectionError: the endpoint
/// refuses or does not exist; ConnectionClosedError, ReadTimeoutError: the
/// connection was dropped or timed out mid-request).
pub(crate) fn cli_failure(stderr: &str) -> ApiError {
    let message = stderr.trim().lines().last().unwrap_or_default().to_owned();
    if let Some(code) = error_code(stderr) {
        return match code.parse::<u16>() {
            Ok(status) => crate::tools::s3::classify_answer(None, Some(status), message),
            Err(_) => crate::tools::s3::classify_answer(Some(&code), None, message),
        };
    }
    // botocore's exception texts (botocore/exceptions.py), fixed formats.
    if stderr.contains("Could not connect to the endpoint URL") || stderr.contains("Connect timeout on endpoint URL") {
        return ApiError::Unreachable { detail: message };
    }
    if stderr.contains("Connection was closed before we received a valid response")
        || stderr.contains("Read timeout on endpoint URL")
        || stderr.contains("Connection reset by peer")
    {
        return ApiError::Transient { what: format!("connection dropped ({message})") };
    }
    if stderr.contains("Unable to locate credentials") {
        return ApiError::NoCredentials { detail: message };
    }
    ApiError::Other { code: "error".into(), status: None, message }
}

/// "DescribeImages"-like name of a CLI call for the retry line: `ec2 describe-images`.
fn operation_name(args: &[&str]) -> String {
    args.iter().take(2).copied().collect::<Vec<_>>().join(" ")
}

/// The service a CLI call talks to, for the retry line ("from EC2").
fn service_name(args: &[&str]) -> String {
    match args.first().copied().unwrap_or_default() {
        "s3" | "s3api" => "S3".into(),
        "ec2" => "EC2".into(),
        "rds" => "RDS".into(),
        "elbv2" => "ELBv2".into(),
        other => other.to_uppercase(),
    }
}

/// One attempt of a CLI call that did not succeed: its result as `run` returns it,
/// and its stderr (what it is classified by).
struct CliAttempt {
    result: Result<(i32, String, String), Error>,
    stderr: String,
}

impl crate::retry::Retryable for CliAttempt {
    fn exhausted(self, attempts: u32) -> Self {
        let note = format!("(stamp: still failing after {attempts} attempts)");
        match self.result {
            Ok((code, out, err)) => CliAttempt { result: Ok((code, out, format!("{err}{note}\n"))), stderr: self.stderr },
            Err(e) => CliAttempt { result: Err(e.exhausted(attempts)), stderr: self.stderr },
        }
    }

    fn interrupted(self) -> Self {
        CliAttempt { result: Err(Error::Interrupted(None)), stderr: self.stderr }
    }
}

fn taken(bucket: &BucketName) -> Error {
    Error::stage_hint(
        format!("state bucket name {bucket} is taken by another AWS account (or this one may not use it)"),
        "bucket names are global: set [fleet] state_bucket in stamp.toml to a name with {{account_id}} in it",
    )
}

/// A failed SDK call as a stage error, with a hint that fits its kind.
pub(crate) fn api_error(what: String, e: ApiError) -> Error {
    if e == ApiError::Interrupted {
        return Error::Interrupted(None);
    }
    let hint = match e.last() {
        ApiError::Unreachable { .. } => Some("check the network, or [aws] endpoint / STAMP_AWS_ENDPOINT when using an emulator"),
        ApiError::NoCredentials { .. } => Some("check AWS credentials (AWS_PROFILE, [aws] profile, or AWS_ACCESS_KEY_ID)"),
        ApiError::AccessDenied { .. } => Some(
            "the credentials lack a permission on the state bucket (s3:ListBucket, s3:GetBucket*, s3:PutBucket*, s3:GetObject, s3:PutObject)",
        ),
        ApiError::Throttled { .. } => Some("AWS is throttling this account; run again later or lower --parallel"),
        ApiError::Transient { .. } => Some("AWS (or the way to it) kept failing; run again later"),
        _ => None,
    };
    match hint {
        Some(h) => Error::stage_hint(format!("{what}: {e}"), h),
        None => Error::stage(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_error_code_is_read_from_the_cli_message() {
        let m = "\nmake_bucket failed: s3://x An error occurred (BucketAlreadyOwnedByYou) when calling the CreateBucket operation: Your previous request";
        assert_eq!(super::error_code(m).as_deref(), Some("BucketAlreadyOwnedByYou"));
        assert_eq!(super::error_code("connection refused"), None);
    }

    /// Stderr of the real AWS CLI (v1, AWS_MAX_ATTEMPTS=1) against the fault proxy.
    #[test]
    fn cli_failures_are_classified_by_code_status_and_connection_error() {
        use super::cli_failure;
        use crate::tools::s3::ApiError;
        let transient = |s: &str| cli_failure(s).transient_reason("S3");
        let slow = "make_bucket failed: s3://b2 An error occurred (SlowDown) when calling the CreateBucket operation (reached max retries: 0): injected by the test's fault proxy";
        assert_eq!(transient(slow).as_deref(), Some("SlowDown from S3"));
        let limit = "\nAn error occurred (RequestLimitExceeded) when calling the DescribeImages operation (reached max retries: 0): Request limit exceeded.";
        assert!(matches!(cli_failure(limit), ApiError::Throttled { .. }));
        let head = "\nAn error occurred (503) when calling the HeadBucket operation (reached max retries: 0): Service Unavailable";
        assert_eq!(transient(head).as_deref(), Some("HTTP 503 from S3"));
        let closed = "\nConnection was closed before we received a valid response from endpoint URL: \"http://127.0.0.1:45012/\".";
        assert!(transient(closed).is_some_and(|r| r.starts_with("connection dropped")));
        let refused = "\nCould not connect to the endpoint URL: \"http://127.0.0.1:45999/\"";
        assert!(matches!(cli_failure(refused), ApiError::Unreachable { .. }));
        assert_eq!(transient(refused), None);
        let denied = "\nAn error occurred (UnauthorizedOperation) when calling the DeregisterImage operation: You are not authorized to perform this operation.";
        assert!(matches!(cli_failure(denied), ApiError::AccessDenied { .. }));
        assert_eq!(transient(denied), None);
        let invalid = "\nAn error occurred (InvalidParameterValue) when calling the DescribeImages operation: bad filter";
        assert!(matches!(cli_failure(invalid), ApiError::Other { .. }));
        assert_eq!(transient(invalid), None);
        let gone =
            "\nAn error occurred (InvalidAMIID.NotFound) when calling the DeregisterImage operation: The image id '[ami-1]' does not exist";
        assert_eq!(transient(gone), None);
        let internal = "\nAn error occurred (InternalError) when calling the DescribeImages operation (reached max retries: 0): We encountered an internal error.";
        assert_eq!(transient(internal).as_deref(), Some("InternalError from S3"));
    }
}
