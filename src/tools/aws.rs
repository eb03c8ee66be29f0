//! AWS through the real AWS CLI: the caller's account, the hardened state bucket,
//! reading a state object back, and the AMIs stamp baked. With an emulated AWS
//! every call carries `--endpoint-url`.

use serde_json::Value;

use crate::error::Error;
use crate::names::{AmiId, BucketName, Region};
use crate::tools::process::{StageLog, Stream, Tail, ToolCommand};

/// Everything needed to call the AWS CLI the same way each time.
#[derive(Debug, Clone)]
pub struct Aws {
    pub program: std::path::PathBuf,
    pub endpoint: Option<String>,
    pub env: Vec<(String, String)>,
    pub cwd: std::path::PathBuf,
}

/// Tags stamp puts on (and looks for on) the AMIs it bakes.
pub const TAG_CUSTOMER: &str = "stamp:customer";
pub const TAG_GIT_ID: &str = "stamp:git_id";
pub const TAG_TEMPLATE_HASH: &str = "stamp:template_hash";
/// What makes two customers' images the same (see `fleet::bakes`).
pub const TAG_IMAGE_KEY: &str = "stamp:image_key";

impl Aws {
    /// The AWS CLI at `program`, as the fleet reaches AWS (endpoint), with the tools' environment.
    pub fn new(fleet: &crate::config::Fleet, program: std::path::PathBuf, env: Vec<(String, String)>) -> Self {
        Self { program, endpoint: fleet.aws.endpoint.clone(), env, cwd: fleet.root.clone() }
    }

    pub fn command<I: IntoIterator<Item = S>, S: Into<std::ffi::OsString>>(&self, args: I) -> ToolCommand {
        let mut c = ToolCommand::new(&self.program, &self.cwd).envs(&self.env).stop_with(libc::SIGTERM);
        if let Some(e) = &self.endpoint {
            c = c.arg("--endpoint-url").arg(e);
        }
        c.args(args).show_env(&["AWS_PROFILE", "AWS_DEFAULT_REGION"])
    }

    async fn run(&self, stage: &str, log: &mut StageLog, args: &[&str], ok: &[i32]) -> Result<(i32, String, String), Error> {
        let mut stderr = String::new();
        let out = self
            .command(args.iter().copied())
            .run(stage, log, ok, true, &mut |s, l| {
                if s == Stream::Stderr {
                    stderr.push_str(l);
                    stderr.push('\n');
                }
                Tail::Raw
            })
            .await?;
        Ok((out.code, out.stdout, stderr))
    }

    pub async fn account_id(&self, stage: &str, log: &mut StageLog) -> Result<String, Error> {
        let (_, out, _) = self
            .run(stage, log, &["sts", "get-caller-identity", "--output", "json"], &[0])
            .await
            .map_err(|e| {
                let unreachable = matches!(&e, Error::Tool(f) if f.tail.iter().any(|l| l.contains("Could not connect to the endpoint URL")));
                match (&self.endpoint, unreachable) {
                    (Some(url), true) => with_hint(
                        e,
                        &format!("nothing answers at {url} ([aws] endpoint or STAMP_AWS_ENDPOINT): start the emulator there or fix the URL; `stamp doctor` checks it"),
                    ),
                    (None, true) => with_hint(e, "AWS cannot be reached from here: check the network or proxy; `stamp doctor` checks it"),
                    _ => with_hint(e, "check AWS credentials (AWS_PROFILE, [aws] profile, or AWS_ACCESS_KEY_ID) and [aws] endpoint"),
                }
            })?;
        let v: Value = serde_json::from_str(&out).map_err(|e| Error::stage(format!("sts get-caller-identity printed no JSON: {e}")))?;
        v.get("Account").and_then(Value::as_str).map(String::from).ok_or_else(|| Error::stage("sts get-caller-identity printed no Account"))
    }

    /// 0: ours and reachable; 404: missing; 403: someone else's.
    pub async fn bucket_status(&self, stage: &str, log: &mut StageLog, bucket: &BucketName) -> Result<u16, Error> {
        let (code, _, stderr) = self.run(stage, log, &["s3api", "head-bucket", "--bucket", bucket.as_str()], &[0, 254, 255]).await?;
        if code == 0 {
            return Ok(0);
        }
        if stderr.contains("404") || stderr.contains("Not Found") || stderr.contains("NoSuchBucket") {
            Ok(404)
        } else if stderr.contains("403") || stderr.contains("Forbidden") {
            Ok(403)
        } else {
            Err(Error::stage(format!("cannot tell whether bucket {bucket} exists: {}", stderr.trim())))
        }
    }

    /// Creates the state bucket if missing (`aws s3 mb`), then (re)applies the
    /// hardening: versioning, default encryption, public access block, TLS-only policy.
    /// Returns whether it was created.
    pub async fn ensure_state_bucket(
        &self,
        stage: &str,
        log: &mut StageLog,
        bucket: &BucketName,
        region: &Region,
        report: &mut dyn FnMut(&str),
    ) -> Result<bool, Error> {
        let created = match self.bucket_status(stage, log, bucket).await? {
            0 => false,
            404 => {
                report("creating bucket");
                self.run(stage, log, &["s3", "mb", &format!("s3://{bucket}"), "--region", region.as_str()], &[0]).await?;
                true
            }
            _ => {
                return Err(Error::stage_hint(
                    format!("state bucket {bucket} exists but belongs to another account (403)"),
                    "bucket names are global: set [fleet] state_bucket in stamp.toml to a name with {{account_id}} in it",
                ));
            }
        };
        report("hardening bucket");
        let b = bucket.as_str();
        self.run(stage, log, &["s3api", "put-bucket-versioning", "--bucket", b, "--versioning-configuration", "Status=Enabled"], &[0])
            .await?;
        self.run(
            stage,
            log,
            &[
                "s3api",
                "put-bucket-encryption",
                "--bucket",
                b,
                "--server-side-encryption-configuration",
                r#"{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"},"BucketKeyEnabled":true}]}"#,
            ],
            &[0],
        )
        .await?;
        self.run(
            stage,
            log,
            &[
                "s3api",
                "put-public-access-block",
                "--bucket",
                b,
                "--public-access-block-configuration",
                "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true",
            ],
            &[0],
        )
        .await?;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [format!("arn:aws:s3:::{b}"), format!("arn:aws:s3:::{b}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }]
        });
        // The emulator is reached over plain HTTP: a TLS-only policy would lock stamp out.
        if self.endpoint.is_none() {
            self.run(stage, log, &["s3api", "put-bucket-policy", "--bucket", b, "--policy", &policy.to_string()], &[0]).await?;
        }
        Ok(created)
    }

    /// The content of `s3://bucket/key`, or `None` when there is no such object.
    pub async fn read_object(&self, stage: &str, log: &mut StageLog, bucket: &BucketName, key: &str) -> Result<Option<String>, Error> {
        let (code, out, stderr) = self.run(stage, log, &["s3", "cp", &format!("s3://{bucket}/{key}"), "-"], &[0, 1, 254, 255]).await?;
        if code == 0 {
            return Ok(Some(out));
        }
        if stderr.contains("404") || stderr.contains("Not Found") || stderr.contains("NoSuchKey") || stderr.contains("NoSuchBucket") {
            return Ok(None);
        }
        Err(Error::stage(format!("cannot read s3://{bucket}/{key}: {}", stderr.trim())))
    }

    /// AMIs of this account carrying every one of these tags, newest first:
    /// (id, creation date, snapshot ids).
    pub async fn find_images(
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
        let v: Value = serde_json::from_str(&out).map_err(|e| Error::stage(format!("describe-images printed no JSON: {e}")))?;
        let mut images: Vec<(AmiId, String, Vec<String>)> = v
            .get("Images")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|i| {
                        let id = AmiId::parse(i.get("ImageId")?.as_str()?).ok()?;
                        let created = i.get("CreationDate").and_then(Value::as_str).unwrap_or_default().to_owned();
                        let snaps = i
                            .get("BlockDeviceMappings")
                            .and_then(Value::as_array)
                            .map(|m| m.iter().filter_map(|b| b.get("Ebs")?.get("SnapshotId")?.as_str().map(String::from)).collect())
                            .unwrap_or_default();
                        Some((id, created, snaps))
                    })
                    .collect()
            })
            .unwrap_or_default();
        images.sort_by(|a, b| b.1.cmp(&a.1));
        Ok(images)
    }

    /// Whether deletion protection is on right now (the state may be older: the
    /// operator may just have turned it off). A resource that is gone is not protected.
    pub async fn still_protected(&self, stage: &str, log: &mut StageLog, p: &crate::terraform::Protected) -> Result<bool, Error> {
        use crate::terraform::Protected;
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
        if stderr.contains("DBInstanceNotFound") || stderr.contains("LoadBalancerNotFound") {
            return Ok(false);
        }
        Err(Error::stage(format!("cannot tell whether deletion protection is on: {}", stderr.trim())))
    }

    /// Deregisters an AMI and deletes its snapshots; an image or snapshot that is
    /// already gone (another customer of the run removed it) is not an error.
    pub async fn delete_image(&self, stage: &str, log: &mut StageLog, ami: &AmiId, snapshots: &[String]) -> Result<(), Error> {
        let gone = |code: i32, stderr: &str, codes: &[&str]| code == 0 || codes.iter().any(|c| stderr.contains(&format!("({c})")));
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

fn with_hint(e: Error, hint: &str) -> Error {
    match e {
        Error::Tool(mut f) => {
            f.hint = Some(hint.to_owned());
            Error::Tool(f)
        }
        other => other,
    }
}
