//! Where the rollout record lives: `s3://<[rollout] bucket>/stamp/rollouts/current.json`
//! (finished rollouts are archived beside it by id). The bucket is created and
//! hardened as a state bucket is. Every write is conditional on the ETag read
//! (`Put::IfMatch`), a new record only if none exists (`Put::IfAbsent`): a write
//! that lost to another process's reads the record again and redoes its change.
//! Within one process the updates take turns and start from the record this process
//! last read or wrote: a customer's start or end costs one conditional PUT, and only
//! a write by someone else (a pause, a cancel) costs a read. The customers' starts
//! and ends are committed in groups (`update_queued`): those that arrive while a
//! write is in flight go out together in the next one, so eight customers starting
//! at once wait for two writes, not eight.

use std::rc::Rc;

use crate::error::Error;
use crate::fleet::rollout_record::{RECORD_VERSION, Record};
use crate::names::BucketName;
use crate::shared::context::FleetContext;
use crate::tools::aws::{Aws, api_error};
use crate::tools::process::StageLog;
use crate::tools::s3::{ApiError, AwsApi, Put};

pub(crate) const CURRENT_KEY: &str = "stamp/rollouts/current.json";

/// Where a finished rollout is kept.
pub(crate) fn archive_key(id: &str) -> String {
    format!("stamp/rollouts/{id}.json")
}

pub(crate) struct Store {
    api: Rc<AwsApi>,
    region: String,
    pub bucket: BucketName,
    /// One call at a time writes to the log (a heartbeat and a customer's end may overlap).
    log: tokio::sync::Mutex<StageLog>,
    /// The record as this process last read or wrote it, with its ETag; held while an
    /// update runs, so this process's updates never race each other.
    last: tokio::sync::Mutex<Option<(Record, String)>>,
    /// Changes waiting for the next group write (`update_queued`).
    queue: std::cell::RefCell<Vec<Queued>>,
}

/// A change to the record: it may refuse (then nothing of it is written).
type ChangeFn<'a> = dyn FnMut(&mut Record) -> Result<(), Error> + 'a;

/// A change to the record, owned (it waits in the queue for the next group write).
pub(crate) type Change = Box<ChangeFn<'static>>;

/// A queued change and where its result goes.
struct Queued {
    change: Change,
    result: Slot,
}

/// Where a queued change's result is left by the turn that wrote it.
type Slot = Rc<std::cell::RefCell<Option<Result<(Record, String), Error>>>>;

impl Store {
    /// The fleet's rollout bucket (`[rollout] bucket` with the account id and the
    /// fleet's region); created and hardened when `create` (a rollout that starts).
    pub(crate) async fn open(ctx: &FleetContext, create: bool) -> Result<Self, Error> {
        let fleet = &ctx.fleet;
        let region = fleet.region.clone();
        let env = ctx.tool_env(&region)?;
        let api = ctx.aws_api(&env);
        let aws = Aws::with_api(fleet, ctx.tools().aws.clone(), env, api.clone());
        let log_path = fleet.paths.work.join("rollout.log");
        std::fs::create_dir_all(&fleet.paths.work).map_err(|e| Error::io(format!("creating {}", fleet.paths.work.display()), e))?;
        let mut log = StageLog::append(log_path)?;
        let account = if fleet.rollout.bucket.contains("{{account_id}}") { ctx.account_id(&aws, &mut log).await? } else { String::new() };
        let bucket = crate::config::render_rollout_bucket(&fleet.rollout.bucket, &account, region.as_str())
            .map_err(|m| Error::usage_hint(format!("[rollout] bucket: {m}"), "shorten the template"))?;
        if create {
            let lock = ctx.lock(&format!("bucket:{bucket}"));
            let _held = lock.lock().await;
            aws.ensure_state_bucket("rollout", &mut log, &bucket, &region, &mut |_| {}).await?;
        }
        Ok(Self {
            api,
            region: region.to_string(),
            bucket,
            log: tokio::sync::Mutex::new(log),
            last: tokio::sync::Mutex::new(None),
            queue: std::cell::RefCell::default(),
        })
    }

    pub(crate) fn location(&self) -> String {
        format!("s3://{}/{CURRENT_KEY}", self.bucket)
    }

    /// The current rollout and its ETag, or `None`.
    pub(crate) async fn read(&self) -> Result<Option<(Record, String)>, Error> {
        let got = {
            let mut log = self.log.lock().await;
            self.api.get_object(&mut log, &self.region, &self.bucket, CURRENT_KEY).await
        };
        let Some(o) = got.map_err(|e| api_error(format!("cannot read the rollout record {}", self.location()), e))? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_str(&o.text).map_err(|e| {
            Error::stage_hint(
                format!("the rollout record {} does not parse: {e}", self.location()),
                "it was written by something other than stamp: move it aside (aws s3 mv) to start a new rollout",
            )
        })?;
        if record.version > RECORD_VERSION {
            return Err(Error::stage_hint(
                format!("the rollout record {} has format {}; this stamp reads {RECORD_VERSION}", self.location(), record.version),
                "run the stamp that started it (or a newer one)",
            ));
        }
        Ok(Some((record, o.etag.unwrap_or_default())))
    }

    async fn put(&self, key: &str, r: &Record, when: Put) -> Result<Result<String, ()>, Error> {
        let body = serde_json::to_string_pretty(r).expect("a record serialises");
        let put = {
            let mut log = self.log.lock().await;
            self.api.put_object(&mut log, &self.region, &self.bucket, key, &body, when).await
        };
        match put {
            Ok(etag) => Ok(Ok(etag.unwrap_or_default())),
            Err(ApiError::Precondition { .. }) => Ok(Err(())),
            Err(e) => Err(api_error(format!("cannot write the rollout record s3://{}/{key}", self.bucket), e)),
        }
    }

    /// Writes a new record if there is none: `Ok(Err(()))` when one exists.
    pub(crate) async fn create(&self, r: &Record) -> Result<Result<String, ()>, Error> {
        self.put(CURRENT_KEY, r, Put::IfAbsent).await
    }

    /// Replaces the record read with `etag`: `Ok(Err(()))` when it changed since.
    pub(crate) async fn write(&self, r: &Record, etag: &str) -> Result<Result<String, ()>, Error> {
        self.put(CURRENT_KEY, r, Put::IfMatch(etag.to_owned())).await
    }

    /// Reads the record, applies `change` and writes it back, again from a fresh
    /// read each time another process wrote in between. `change` may refuse (its
    /// error is returned, nothing written). No record: an error naming the bucket.
    pub(crate) async fn update(&self, mut change: impl FnMut(&mut Record) -> Result<(), Error>) -> Result<(Record, String), Error> {
        let mut last = self.last.lock().await;
        let (r, etag, mut refused) = self.commit(&mut last, &mut [&mut change]).await?;
        match refused.pop().flatten() {
            Some(e) => Err(e),
            None => Ok((r, etag)),
        }
    }

    /// `update` for many callers at once: the change waits in a queue, and whoever
    /// takes the turn next writes every queued change in one conditional PUT. Each
    /// change is applied to the record in the order queued; one that refuses is left
    /// out (its error returned to it) and the others are written. The result is the
    /// record as written with the caller's change in it.
    pub(crate) async fn update_queued(&self, change: Change) -> Result<(Record, String), Error> {
        let result: Slot = Rc::new(std::cell::RefCell::new(None));
        self.queue.borrow_mut().push(Queued { change, result: result.clone() });
        let mut last = self.last.lock().await;
        if let Some(done) = result.borrow_mut().take() {
            // An earlier turn wrote it with its own group.
            return done;
        }
        let mut batch = std::mem::take(&mut *self.queue.borrow_mut());
        let mut changes: Vec<&mut ChangeFn<'static>> = batch.iter_mut().map(|q| &mut *q.change as _).collect();
        let committed = self.commit(&mut last, &mut changes).await;
        drop(last);
        match committed {
            Ok((r, etag, refused)) => {
                for (q, e) in batch.iter().zip(refused) {
                    *q.result.borrow_mut() = Some(match e {
                        Some(e) => Err(e),
                        None => Ok((r.clone(), etag.clone())),
                    });
                }
            }
            // One failure for the whole group (the error is not `Clone`).
            Err(e) => {
                for q in &batch {
                    *q.result.borrow_mut() = Some(Err(Error::stage(e.to_string())));
                }
            }
        }
        result.borrow_mut().take().unwrap_or_else(|| Err(Error::stage("the rollout record update was lost")))
    }

    /// Applies `changes` in order to the record (as this process last saw it, held in
    /// `last`, else read) and writes it once; a change that refuses is left out. A
    /// refusal of what this process saw last, or a write that lost to another
    /// process's, starts again from a fresh read. Returns the record as written (as
    /// read when every change refused) and each change's refusal.
    async fn commit(
        &self,
        last: &mut Option<(Record, String)>,
        changes: &mut [&mut ChangeFn<'_>],
    ) -> Result<(Record, String, Vec<Option<Error>>), Error> {
        loop {
            // The record as last seen here; its ETag makes the write fail if anyone
            // else wrote since, and then it is read again.
            let (fresh, (base, etag)) = match last.take() {
                Some(seen) => (false, seen),
                None => (
                    true,
                    self.read().await?.ok_or_else(|| {
                        Error::stage(format!("no rollout record at {}: it was archived or removed meanwhile", self.location()))
                    })?,
                ),
            };
            let mut r = base.clone();
            let mut refused = Vec::with_capacity(changes.len());
            for change in changes.iter_mut() {
                let before = r.clone();
                let refusal = change(&mut r).err();
                if refusal.is_some() {
                    r = before;
                }
                refused.push(refusal);
            }
            let refusals = refused.iter().filter(|e| e.is_some()).count();
            if refusals > 0 && !fresh {
                // Refused on what this process saw last: decided again on what is there now.
                continue;
            }
            if refusals == changes.len() {
                *last = Some((base.clone(), etag.clone()));
                return Ok((base, etag, refused));
            }
            r.updated_at = now();
            let written = changes.len() - refusals;
            if written > 1 {
                self.log.lock().await.note(&format!("rollout record: {written} customer starts and ends in one write"));
            }
            if let Ok(new) = self.write(&r, &etag).await? {
                *last = Some((r.clone(), new.clone()));
                return Ok((r, new, refused));
            }
        }
    }

    /// Keeps a finished rollout under its id and clears the fleet's current one
    /// (only if nobody changed it since `etag`).
    pub(crate) async fn archive(&self, r: &Record, etag: &str) -> Result<(), Error> {
        self.put(&archive_key(&r.id), r, Put::Always).await?.ok();
        let deleted = {
            let mut log = self.log.lock().await;
            self.api.delete_object(&mut log, &self.region, &self.bucket, CURRENT_KEY, Some(etag)).await
        };
        match deleted {
            Ok(()) | Err(ApiError::Precondition { .. }) => Ok(()),
            Err(e) => Err(api_error(format!("cannot clear the rollout record {}", self.location()), e)),
        }
    }
}

/// Unix seconds now.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// This machine's name (the holder's host).
pub(crate) fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether process `pid` of this machine still runs.
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks the pid.
    unsafe { libc::kill(pid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}
