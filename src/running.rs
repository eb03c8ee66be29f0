//! What is running now: a pipeline's stage registers itself (`stage`), the tool
//! runner adds the command it runs (`tool`), a stack adds its state lock
//! (`set_lock`). A leaf: the tool runner below and the interrupt printer above both
//! read it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::shell::shell_quote;

/// Where a stack's state lock lives, and how to reach it by hand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StateLock {
    pub customer: String,
    pub bucket: String,
    /// The state key; the lock is `<key>.tflock` beside it.
    pub key: String,
    pub region: String,
    /// The stack's working directory (where `terraform force-unlock` runs).
    pub dir: PathBuf,
    /// The fleet's emulated endpoint, for the AWS CLI command.
    pub endpoint: Option<String>,
    /// The fleet file, when `stamp status` needs `--config` to find it.
    pub config: Option<PathBuf>,
}

impl StateLock {
    /// The lock of a customer's stack: its state at `key` in `bucket`, its working
    /// copy `<work>/<customer>/terraform/<rel>`. `--config` is named in the commands
    /// only when stamp would not find the fleet file by default (`./stamp.toml`).
    pub(crate) fn of_stack(fleet: &crate::config::Fleet, customer: &str, region: &str, bucket: &str, key: &str, rel: &Path) -> Self {
        let default_config = std::env::current_dir().map(|d| d.join("stamp.toml")).ok();
        let same = |a: &Path, b: &Path| a == b || a.canonicalize().ok().is_some_and(|a| b.canonicalize().is_ok_and(|b| a == b));
        let config = match default_config {
            Some(d) if same(&fleet.config_path, &d) => None,
            _ => Some(fleet.config_path.clone()),
        };
        StateLock {
            customer: customer.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            region: region.to_owned(),
            dir: fleet.paths.work.join(customer).join("terraform").join(rel),
            endpoint: fleet.aws.endpoint.clone(),
            config,
        }
    }

    pub(crate) fn object(&self) -> String {
        format!("s3://{}/{}.tflock", self.bucket, self.key)
    }

    /// `stamp status <customer>`: shows the lock, its ID and a release command.
    pub(crate) fn status_command(&self) -> String {
        match &self.config {
            Some(c) => format!("stamp --config {} status {}", shell_quote(&c.to_string_lossy()), self.customer),
            None => format!("stamp status {}", self.customer),
        }
    }

    /// The AWS CLI printing the lock object (its "ID" is the lock ID).
    pub(crate) fn aws_command(&self) -> String {
        let mut s = format!("aws s3 cp {} - --region {}", shell_quote(&self.object()), self.region);
        if let Some(e) = &self.endpoint {
            s.push_str(&format!(" --endpoint-url {}", shell_quote(e)));
        }
        s
    }

    pub(crate) fn unlock_command(&self, id: &str) -> String {
        format!("terraform -chdir={} force-unlock {id}", shell_quote(&self.dir.to_string_lossy()))
    }
}

/// One running stage (or a tool run outside any stage).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Running {
    /// Empty outside a customer's pipeline.
    pub customer: String,
    pub stage: String,
    /// The tool's command, short (program name and arguments).
    pub command: Option<String>,
    pub dir: Option<PathBuf>,
    pub lock: Option<StateLock>,
}

static REGISTRY: Mutex<BTreeMap<u64, Running>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

tokio::task_local! {
    /// The registry entry of the stage the current task runs.
    static CURRENT: u64;
}

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<u64, Running>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registration; dropping it takes it back.
pub(crate) struct Entry {
    id: u64,
    /// The whole entry is this guard's (a stage, a tool outside a stage); else only
    /// the tool's command in a stage's entry.
    owned: bool,
}

impl Entry {
    /// Runs `f` as this stage: the tools it runs and the lock it sets are the stage's.
    pub(crate) async fn scope<F: Future>(&self, f: F) -> F::Output {
        CURRENT.scope(self.id, f).await
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut r = registry();
        if self.owned {
            r.remove(&self.id);
        } else if let Some(e) = r.get_mut(&self.id) {
            e.command = None;
            e.dir = None;
        }
    }
}

/// Registers a running stage of a customer.
pub(crate) fn stage(customer: &str, stage: &str) -> Entry {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    registry().insert(id, Running { customer: customer.to_owned(), stage: stage.to_owned(), ..Running::default() });
    Entry { id, owned: true }
}

/// Registers a running tool: in the current stage, or on its own outside any.
pub(crate) fn tool(stage: &str, command: String, dir: &Path) -> Entry {
    if let Ok(id) = CURRENT.try_with(|id| *id)
        && let Some(e) = registry().get_mut(&id)
    {
        e.command = Some(command);
        e.dir = Some(dir.to_path_buf());
        return Entry { id, owned: false };
    }
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let running = Running { stage: stage.to_owned(), command: Some(command), dir: Some(dir.to_path_buf()), ..Running::default() };
    registry().insert(id, running);
    Entry { id, owned: true }
}

/// The current stage works on this state (its lock is checked on an interrupt).
pub(crate) fn set_lock(lock: StateLock) {
    if let Ok(id) = CURRENT.try_with(|id| *id)
        && let Some(e) = registry().get_mut(&id)
    {
        e.lock = Some(lock);
    }
}

/// What is running now, in the order it started.
pub(crate) fn running() -> Vec<Running> {
    registry().values().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> StateLock {
        StateLock {
            customer: "acme".into(),
            bucket: "tfstate-1-acme".into(),
            key: "acme/vpc".into(),
            region: "eu-west-1".into(),
            dir: "/w/acme/terraform/vpc".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            config: None,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn tools_register_in_their_stage_and_leave_with_it() {
        let stage_entry = stage("registry-test", "vpc");
        stage_entry
            .scope(async {
                set_lock(lock());
                let t = tool("vpc", "terraform plan".into(), Path::new("/w"));
                let r = running().into_iter().find(|r| r.customer == "registry-test").unwrap();
                assert_eq!((r.command.as_deref(), r.lock.is_some()), (Some("terraform plan"), true));
                drop(t);
                let r = running().into_iter().find(|r| r.customer == "registry-test").unwrap();
                assert_eq!(r.command, None);
            })
            .await;
        drop(stage_entry);
        assert!(!running().iter().any(|r| r.customer == "registry-test"));
    }
}
