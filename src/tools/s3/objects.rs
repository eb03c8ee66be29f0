//! Objects stamp keeps in S3 besides terraform's state: writes that create an
//! object only if it is absent or replace it only if nobody wrote it meanwhile
//! (S3's conditional writes, `If-None-Match: *` and `If-Match: ETAG`), listings
//! by prefix, and deletes. An append-only history is one `Put::IfAbsent` per entry;
//! a shared record several processes update is read with its ETag and written back
//! with `Put::IfMatch`, and a `ApiError::Precondition` answer means: read it again.

use std::cell::RefCell;
use std::time::SystemTime;

use super::{ApiError, AwsApi, Listed, Put, absent_ok, log_call};
use crate::names::BucketName;
use crate::tools::process::StageLog;

impl AwsApi {
    /// Writes `body` at `key` (JSON, encrypted at rest with the bucket's default, and
    /// SSE-S3 asked for explicitly), as `when` allows; returns the new ETag. A write
    /// the condition refused is `Err(ApiError::Precondition)`, never retried here.
    pub async fn put_object(
        &self,
        log: &mut StageLog,
        region: &str,
        bucket: &BucketName,
        key: &str,
        body: &str,
        when: Put,
    ) -> Result<Option<String>, ApiError> {
        let s3 = self.s3(region).await;
        let r = self
            .call(&RefCell::new(&mut *log), "PutObject", "S3", Some(bucket.as_str()), async || {
                let mut req = s3
                    .put_object()
                    .bucket(bucket.as_str())
                    .key(key)
                    .content_type("application/json")
                    .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                    .body(aws_sdk_s3::primitives::ByteStream::from(body.as_bytes().to_vec()));
                req = match &when {
                    Put::Always => req,
                    Put::IfAbsent => req.if_none_match("*"),
                    Put::IfMatch(etag) => req.if_match(etag),
                };
                req.send().await.map(|o| o.e_tag().map(String::from)).map_err(ApiError::from_sdk)
            })
            .await;
        let cond = match &when {
            Put::Always => String::new(),
            Put::IfAbsent => " (if absent)".into(),
            Put::IfMatch(e) => format!(" (if ETag {e})"),
        };
        log_call(log, &format!("s3 PutObject s3://{bucket}/{key}{cond}"), &r);
        r
    }

    /// Every object whose key starts with `prefix`, in key order (all pages).
    /// A bucket that does not exist lists nothing.
    pub async fn list_objects(&self, log: &mut StageLog, region: &str, bucket: &BucketName, prefix: &str) -> Result<Vec<Listed>, ApiError> {
        let s3 = self.s3(region).await;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .call(&RefCell::new(&mut *log), "ListObjectsV2", "S3", Some(bucket.as_str()), async || {
                    s3.list_objects_v2()
                        .bucket(bucket.as_str())
                        .prefix(prefix)
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(ApiError::from_sdk)
                })
                .await;
            let page = absent_ok(page);
            log_call(log, &format!("s3 ListObjectsV2 s3://{bucket}/{prefix}"), &page);
            let Some(page) = page? else { return Ok(out) };
            out.extend(page.contents().iter().filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_owned(),
                    last_modified: o.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
                    size: o.size().unwrap_or(0),
                })
            }));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Deletes `key`; with `if_match`, only if the object still has that ETag
    /// (`Err(ApiError::Precondition)` otherwise). An absent object is not an error.
    pub async fn delete_object(
        &self,
        log: &mut StageLog,
        region: &str,
        bucket: &BucketName,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<(), ApiError> {
        let s3 = self.s3(region).await;
        let r = absent_ok(
            self.call(&RefCell::new(&mut *log), "DeleteObject", "S3", Some(bucket.as_str()), async || {
                s3.delete_object()
                    .bucket(bucket.as_str())
                    .key(key)
                    .set_if_match(if_match.map(String::from))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(ApiError::from_sdk)
            })
            .await,
        );
        log_call(log, &format!("s3 DeleteObject s3://{bucket}/{key}"), &r);
        r.map(|_| ())
    }
}
