//! How many customers the machine's memory lets run side by side. Each customer runs
//! one tool at a time, and a terraform with hashicorp/aws holds about 400 MiB: 8 of
//! them on a 2 GB runner swap or get killed. So `--parallel` is also bounded by the
//! memory available when the run starts (MemAvailable, or the cgroup's headroom if
//! lower) over the size of one tool's process tree: `STAMP_TOOL_MEMORY_MIB` if set,
//! else the largest tree seen in this run (its private memory: the binaries' pages
//! are shared by every instance), never less than `DEFAULT_TOOL_MIB`.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tokio::sync::Notify;

/// One terraform with hashicorp/aws 5.x and its provider while it plans or applies: issue
/// 19 measured 389 MiB; `make bench-fleet-real` saw a customer's tree peak at 352 MiB private.
pub(crate) const DEFAULT_TOOL_MIB: u64 = 400;
const MIB: u64 = 1 << 20;

/// The memory a run may fill, in bytes, and where the figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    pub bytes: u64,
    /// The cgroup's limit binds, not the machine's MemAvailable.
    pub cgroup: bool,
}

/// The budget of this process now: `None` where /proc/meminfo cannot be read (then
/// memory bounds nothing).
pub(crate) fn budget() -> Option<Budget> {
    let machine = mem_available(&std::fs::read_to_string("/proc/meminfo").ok()?)?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| cgroup_headroom(&c, Path::new("/sys/fs/cgroup"), |p| std::fs::read_to_string(p).ok()));
    Some(match cgroup {
        Some(c) if c < machine => Budget { bytes: c, cgroup: true },
        _ => Budget { bytes: machine, cgroup: false },
    })
}

/// MemAvailable of a /proc/meminfo text, in bytes.
pub(crate) fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The least room left under a memory limit of this process's cgroup or of one of its
/// ancestors, in bytes: v2 (`0::/path`, memory.max - memory.current) or v1 (`N:memory:/path`,
/// memory.limit_in_bytes - memory.usage_in_bytes). `None` when no limit is set.
pub(crate) fn cgroup_headroom(proc_self_cgroup: &str, root: &Path, read: impl Fn(&Path) -> Option<String>) -> Option<u64> {
    let number = |p: PathBuf| read(&p).and_then(|s| s.trim().parse::<u64>().ok());
    let mut least: Option<u64> = None;
    for line in proc_self_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let (base, limit, usage) = match controllers {
            "" => (root.to_path_buf(), "memory.max", "memory.current"),
            c if c.split(',').any(|c| c == "memory") => (root.join("memory"), "memory.limit_in_bytes", "memory.usage_in_bytes"),
            _ => continue,
        };
        // The cgroup itself, then each ancestor up to the root of the hierarchy.
        let mut dir = Some(Path::new(path.trim_start_matches('/')));
        while let Some(d) = dir {
            let at = base.join(d);
            // "max" (v2) does not parse; v1's "no limit" is a page-rounded i64::MAX.
            if let (Some(l), Some(u)) = (number(at.join(limit)), number(at.join(usage)))
                && l < (1 << 60)
            {
                let room = l.saturating_sub(u);
                least = Some(least.map_or(room, |x| x.min(room)));
            }
            dir = d.parent();
        }
    }
    least
}

/// Customers side by side: `parallel`, unless `budget` holds fewer tools of `tool`
/// bytes; always at least one (a run that cannot hold one still runs, one at a time).
pub(crate) fn lanes(budget: u64, tool: u64, parallel: usize) -> usize {
    let fits = budget / tool.max(1);
    usize::try_from(fits).unwrap_or(usize::MAX).clamp(1, parallel.max(1))
}

/// The note shown the first time memory holds a customer back.
/// `in_flight` is `parallel`, or twice it when applies lend their turns.
pub(crate) fn note(lanes: usize, parallel: usize, in_flight: usize, tool: u64, budget: Budget, measured: bool) -> String {
    let size = if measured { "the largest tool process tree seen in this run" } else { "STAMP_TOOL_MEMORY_MIB or the default" };
    let whose = if budget.cgroup { "left under this cgroup's memory limit" } else { "available (MemAvailable)" };
    let not = if lanes >= parallel && in_flight > parallel {
        format!("in flight, not {in_flight} (--parallel {parallel}, and as many lent to applies waiting on AWS)")
    } else {
        format!("side by side, not --parallel {parallel}")
    };
    format!(
        "note: {lanes} customer(s) {not}: {} MiB {whose} holds {lanes} tool(s) of {} MiB \
         ({size}); set STAMP_TOOL_MEMORY_MIB to size one differently",
        budget.bytes / MIB,
        tool.div_ceil(MIB),
    )
}

/// The memory bound of one run, shared by its waves.
pub(crate) struct Memory {
    budget: Option<Budget>,
    /// The size of one tool's process tree, in bytes.
    tool: Cell<u64>,
    /// `STAMP_TOOL_MEMORY_MIB` was set: no measuring.
    fixed: bool,
    measured: Cell<bool>,
    noted: Cell<bool>,
}

impl Memory {
    /// Reads the budget now (before any tool of the run starts).
    pub(crate) fn of_this_machine(tool_mib: Option<u64>) -> Self {
        Self::new(budget(), tool_mib)
    }

    pub(crate) fn new(budget: Option<Budget>, tool_mib: Option<u64>) -> Self {
        Self {
            budget,
            tool: Cell::new(tool_mib.unwrap_or(DEFAULT_TOOL_MIB) * MIB),
            fixed: tool_mib.is_some(),
            measured: Cell::new(false),
            noted: Cell::new(false),
        }
    }

    /// Whether a measured tree can change the size.
    pub(crate) fn measures(&self) -> bool {
        !self.fixed && self.budget.is_some()
    }

    /// A tool's process tree was seen holding `bytes`: the size only grows (an early,
    /// small tool, an init before its provider starts, must not open lanes a later
    /// plan does not fit in).
    pub(crate) fn observe(&self, bytes: u64) {
        if !self.fixed && bytes > self.tool.get() {
            self.tool.set(bytes);
            self.measured.set(true);
        }
    }

    pub(crate) fn lanes(&self, parallel: usize) -> usize {
        match self.budget {
            Some(b) => lanes(b.bytes, self.tool.get(), parallel),
            None => parallel.max(1),
        }
    }

    /// The note, the first time memory holds a customer back; then `None`.
    fn held_back(&self, parallel: usize, in_flight: usize) -> Option<String> {
        let b = self.budget?;
        if self.noted.replace(true) {
            return None;
        }
        Some(note(self.lanes(in_flight), parallel, in_flight, self.tool.get(), b, self.measured.get()))
    }
}

/// The lanes of one wave: at most `parallel` customers at work, and no more in
/// flight than memory holds, started in the order they asked (the canaries' order,
/// then the plans'). With `lending`, a customer whose terraform apply waits on AWS
/// lends its lane (`Lane::lend`): another customer may start, up to twice
/// `parallel` in flight (and what memory holds: each runs one tool at a time), and
/// the lender gets a lane back before any customer not started yet.
pub(crate) struct Lanes {
    parallel: usize,
    /// Customers in flight at most: `parallel`, or twice it when lending.
    in_flight: usize,
    memory: Rc<Memory>,
    /// Customers holding a lane.
    running: Cell<usize>,
    /// Customers in flight whose lane is lent (an apply waiting on AWS).
    lent: Cell<usize>,
    /// Lenders waiting for a lane back: they go first.
    returning: Cell<usize>,
    issued: Cell<u64>,
    next: Cell<u64>,
    changed: Notify,
}

impl Lanes {
    /// The lanes of `parallel`, which an apply may lend when `lending`.
    pub(crate) fn new(parallel: usize, memory: Rc<Memory>, lending: bool) -> Rc<Self> {
        let parallel = parallel.max(1);
        Rc::new(Self {
            parallel,
            in_flight: if lending { parallel * 2 } else { parallel },
            memory,
            running: Cell::new(0),
            lent: Cell::new(0),
            returning: Cell::new(0),
            issued: Cell::new(0),
            next: Cell::new(0),
            changed: Notify::new(),
        })
    }

    /// Waits for this caller's turn and a free lane; `note` gets the memory note the
    /// first time memory, not `--parallel`, is what makes a customer wait.
    pub(crate) async fn enter(self: &Rc<Self>, note: impl Fn(&str)) -> Lane {
        let ticket = self.issued.replace(self.issued.get() + 1);
        loop {
            // Registered before the check: a lane freed in between still wakes us.
            let changed = self.changed.notified();
            if self.next.get() == ticket && self.returning.get() == 0 {
                let running = self.running.get();
                let flying = running + self.lent.get();
                if running < self.parallel && flying < self.memory.lanes(self.in_flight) {
                    self.next.set(ticket + 1);
                    self.running.set(running + 1);
                    self.changed.notify_waiters();
                    return Lane { lanes: self.clone(), lent: Cell::new(false) };
                }
                if running < self.parallel
                    && flying < self.in_flight
                    && let Some(n) = self.memory.held_back(self.parallel, self.in_flight)
                {
                    note(&n);
                }
            }
            changed.await;
        }
    }

    /// Customers in their lanes now.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.running.get()
    }
}

/// A customer's lane, given back when dropped.
pub(crate) struct Lane {
    lanes: Rc<Lanes>,
    lent: Cell<bool>,
}

impl crate::stages::contract::Lend for Lane {
    fn lend(&self) {
        if self.lent.replace(true) {
            return;
        }
        let l = &self.lanes;
        l.running.set(l.running.get() - 1);
        l.lent.set(l.lent.get() + 1);
        l.changed.notify_waiters();
    }

    fn take_back(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
        Box::pin(async move {
            if !self.lent.get() {
                return;
            }
            let l = &self.lanes;
            // Counted while waiting, and uncounted however the wait ends (a dropped
            // future included): new customers wait for the returning ones.
            struct Returning<'a>(&'a Lanes);
            impl Drop for Returning<'_> {
                fn drop(&mut self) {
                    self.0.returning.set(self.0.returning.get() - 1);
                    self.0.changed.notify_waiters();
                }
            }
            l.returning.set(l.returning.get() + 1);
            let _returning = Returning(l);
            loop {
                let changed = l.changed.notified();
                if l.running.get() < l.parallel {
                    l.lent.set(l.lent.get() - 1);
                    l.running.set(l.running.get() + 1);
                    self.lent.set(false);
                    l.changed.notify_waiters();
                    return;
                }
                changed.await;
            }
        })
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let l = &self.lanes;
        if self.lent.get() {
            l.lent.set(l.lent.get() - 1);
        } else {
            l.running.set(l.running.get() - 1);
        }
        l.changed.notify_waiters();
    }
}

/// The private memory of each process tree under this process's children, in bytes:
/// one per tool run (with the relay in front of it, and the providers it starts).
/// Read from /proc/PID/task/TID/children; empty where the kernel has no such file.
pub(crate) fn tool_trees() -> Vec<u64> {
    children_of(std::process::id()).into_iter().map(tree_private).collect()
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut kids = Vec::new();
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            kids.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    kids
}

fn tree_private(pid: u32) -> u64 {
    let (mut total, mut todo) = (0, vec![pid]);
    while let Some(p) = todo.pop() {
        total += std::fs::read_to_string(format!("/proc/{p}/statm")).ok().and_then(|s| private_pages(&s)).unwrap_or(0) * page_size();
        todo.extend(children_of(p));
    }
    total
}

/// The resident pages of a /proc/PID/statm text that no other process shares: resident
/// minus shared (file-backed) ones. The binaries' pages are not counted: the kernel holds
/// them once for every instance (hashicorp/aws's are ~400 MiB of its ~560 MiB RSS).
fn private_pages(statm: &str) -> Option<u64> {
    let mut f = statm.split_whitespace().skip(1).map(|n| n.parse::<u64>().ok());
    let (resident, shared) = (f.next()??, f.next()??);
    Some(resident.saturating_sub(shared))
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running system; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const GIB: u64 = 1 << 30;

    #[test]
    fn lanes_are_what_the_budget_holds_within_parallel_and_never_none() {
        assert_eq!(lanes(16 * GIB, 400 * MIB, 8), 8, "a 16 GB runner holds 8 and more");
        assert_eq!(lanes(7 * GIB, 400 * MIB, 32), 17);
        assert_eq!(lanes(2 * GIB, 400 * MIB, 8), 5);
        assert_eq!(lanes(1199 * MIB, 400 * MIB, 8), 2, "rounded down: a third would not fit");
        assert_eq!(lanes(1200 * MIB, 400 * MIB, 8), 3);
        assert_eq!(lanes(100 * MIB, 400 * MIB, 8), 1, "less than one tool's worth still runs one");
        assert_eq!(lanes(0, 0, 0), 1);
    }

    #[test]
    fn a_process_counts_its_resident_pages_less_the_shared_ones() {
        // A hashicorp/aws provider mid-plan: 138,171 resident pages, 103,037 of them its binary's.
        assert_eq!(private_pages("1285021 138171 103037 172509 0 263245 0\n"), Some(35_134));
        assert_eq!(private_pages("10 5 9 1 0 1 0"), Some(0), "never below zero");
        assert_eq!(private_pages(""), None);
    }

    #[test]
    fn mem_available_is_read_in_kib() {
        let meminfo = "MemTotal:       24684512 kB\nMemFree:          559848 kB\nMemAvailable:   22912000 kB\n";
        assert_eq!(mem_available(meminfo), Some(22_912_000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> + use<> {
        let m: BTreeMap<PathBuf, String> = entries.iter().map(|(p, v)| (PathBuf::from(p), v.to_string())).collect();
        move |p: &Path| m.get(p).cloned()
    }

    #[test]
    fn the_tightest_cgroup_limit_of_the_process_or_its_ancestors_binds() {
        let root = Path::new("/cg");
        // v2: the job's cgroup has no limit ("max"); its parent has 2 GiB with 1.5 used.
        let read = files(&[
            ("/cg/ci/job/memory.max", "max\n"),
            ("/cg/ci/job/memory.current", "100\n"),
            ("/cg/ci/memory.max", &format!("{}\n", 2 * GIB)),
            ("/cg/ci/memory.current", &format!("{}\n", 3 * GIB / 2)),
        ]);
        assert_eq!(cgroup_headroom("0::/ci/job\n", root, &read), Some(GIB / 2));
        // v1: the memory line, a real limit; "no limit" is a huge number and ignored.
        let read = files(&[
            ("/cg/memory/box/memory.limit_in_bytes", &format!("{}", 4 * GIB)),
            ("/cg/memory/box/memory.usage_in_bytes", &format!("{}", GIB)),
            ("/cg/memory/memory.limit_in_bytes", "9223372036854771712"),
            ("/cg/memory/memory.usage_in_bytes", "5"),
        ]);
        assert_eq!(cgroup_headroom("5:cpu:/\n4:memory:/box\n0::/\n", root, &read), Some(3 * GIB));
        // Used above the limit (reclaim pending): no room, not an overflow.
        let read = files(&[("/cg/memory.max", "10"), ("/cg/memory.current", "20")]);
        assert_eq!(cgroup_headroom("0::/\n", root, &read), Some(0));
        assert_eq!(cgroup_headroom("0::/\n", root, files(&[])), None, "no limit anywhere");
    }

    #[test]
    fn a_measured_tree_only_ever_raises_the_size_and_a_set_size_stays() {
        let b = Some(Budget { bytes: 2 * GIB, cgroup: false });
        let m = Memory::new(b, None);
        assert_eq!(m.lanes(8), 5);
        m.observe(100 * MIB);
        assert_eq!(m.lanes(8), 5, "a small tree opens no lane");
        m.observe(700 * MIB);
        assert_eq!(m.lanes(8), 2);
        let set = Memory::new(b, Some(1024));
        set.observe(1900 * MIB);
        assert_eq!(set.lanes(8), 2, "STAMP_TOOL_MEMORY_MIB is taken as the size");
        assert!(!set.measures());
        assert_eq!(Memory::new(None, Some(1 << 20)).lanes(8), 8, "no /proc/meminfo: memory bounds nothing");
    }

    #[test]
    fn the_note_says_how_many_lanes_and_why() {
        let n = note(2, 8, 8, 400 * MIB, Budget { bytes: 1000 * MIB, cgroup: false }, false);
        assert_eq!(
            n,
            "note: 2 customer(s) side by side, not --parallel 8: 1000 MiB available (MemAvailable) holds 2 tool(s) of 400 MiB \
             (STAMP_TOOL_MEMORY_MIB or the default); set STAMP_TOOL_MEMORY_MIB to size one differently"
        );
        let n = note(1, 4, 8, 389 * MIB + 1, Budget { bytes: 512 * MIB, cgroup: true }, true);
        assert!(n.contains("512 MiB left under this cgroup's memory limit holds 1 tool(s) of 390 MiB"), "{n}");
        assert!(n.contains("largest tool process tree seen"), "{n}");
        // Memory holds --parallel, not the lent turns on top of it.
        let n = note(10, 8, 16, 400 * MIB, Budget { bytes: 4000 * MIB, cgroup: false }, false);
        assert!(
            n.starts_with("note: 10 customer(s) in flight, not 16 (--parallel 8, and as many lent to applies waiting on AWS): 4000 MiB"),
            "{n}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn lanes_start_customers_in_order_no_more_than_memory_holds_and_note_once() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                // 1000 MiB at 400 MiB a tool: 2 lanes of --parallel 4.
                let memory = Rc::new(Memory::new(Some(Budget { bytes: 1000 * MIB, cgroup: false }), Some(400)));
                let lanes = Lanes::new(4, memory, false);
                let notes = Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
                let order = Rc::new(std::cell::RefCell::new(Vec::new()));
                let most = Rc::new(Cell::new(0));
                let mut tasks = Vec::new();
                for i in 0..6 {
                    let (lanes, notes, order, most) = (lanes.clone(), notes.clone(), order.clone(), most.clone());
                    tasks.push(tokio::task::spawn_local(async move {
                        let _lane = lanes.enter(|n| notes.borrow_mut().push(n.to_owned())).await;
                        order.borrow_mut().push(i);
                        most.set(most.get().max(lanes.running()));
                        // Later customers finish first: the order of starts is still the asking order.
                        tokio::time::sleep(std::time::Duration::from_millis(30 - 5 * i)).await;
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                assert_eq!(*order.borrow(), vec![0, 1, 2, 3, 4, 5]);
                assert_eq!(most.get(), 2, "never more than memory holds");
                assert_eq!(notes.borrow().len(), 1, "{:?}", notes.borrow());
                assert!(notes.borrow()[0].starts_with("note: 2 customer(s) side by side, not --parallel 4"), "{:?}", notes.borrow());
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn parallel_alone_holding_customers_back_is_no_memory_note() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let lanes = Lanes::new(2, Rc::new(Memory::new(Some(Budget { bytes: 64 * GIB, cgroup: false }), None)), false);
                let notes = Rc::new(Cell::new(0));
                let mut tasks = Vec::new();
                for _ in 0..5 {
                    let (lanes, notes) = (lanes.clone(), notes.clone());
                    tasks.push(tokio::task::spawn_local(async move {
                        let _lane = lanes.enter(|_| notes.set(notes.get() + 1)).await;
                        assert!(lanes.running() <= 2);
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                assert_eq!(notes.get(), 0);
            })
            .await;
    }

    /// An apply lends its lane: more customers start, never more than --parallel at
    /// work nor twice it in flight, and a lender gets a lane back before the
    /// customers not started yet.
    #[tokio::test(flavor = "current_thread")]
    async fn a_lent_lane_starts_another_customer_within_twice_parallel_and_lenders_return_first() {
        use crate::stages::contract::Lend;
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let lanes = Lanes::new(2, Rc::new(Memory::new(Some(Budget { bytes: 64 * GIB, cgroup: false }), None)), true);
                let most = Rc::new(Cell::new((0, 0)));
                let events = Rc::new(std::cell::RefCell::new(Vec::new()));
                let see = {
                    let (lanes, most) = (lanes.clone(), most.clone());
                    move || {
                        let (r, f) = most.get();
                        assert!(lanes.running.get() <= 2, "never more than --parallel at work");
                        most.set((r.max(lanes.running.get()), f.max(lanes.running.get() + lanes.lent.get())));
                    }
                };
                let mut tasks = Vec::new();
                for i in 0..8 {
                    let (lanes, events, see) = (lanes.clone(), events.clone(), see.clone());
                    tasks.push(tokio::task::spawn_local(async move {
                        let lane = lanes.enter(|_| {}).await;
                        events.borrow_mut().push(format!("start {i}"));
                        see();
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        lane.lend();
                        see();
                        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
                        lane.take_back().await;
                        events.borrow_mut().push(format!("back {i}"));
                        see();
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                assert_eq!(most.get(), (2, 4), "2 at work, 4 in flight at most");
                let ev = events.borrow();
                let at = |e: &str| ev.iter().position(|x| x == e).unwrap();
                // Customers 0-3 are in flight (two lent) when 0 and 1 come back; 4 starts
                // only once a lane is free and nobody returns.
                assert!(at("back 0") < at("start 4") && at("back 1") < at("start 4"), "{ev:?}");
                assert_eq!((lanes.running.get(), lanes.lent.get(), lanes.returning.get()), (0, 0, 0));
            })
            .await;
    }

    /// A lane dropped while lent (the apply failed and the customer ended) or while
    /// waiting to come back frees what it counted.
    #[tokio::test(flavor = "current_thread")]
    async fn a_lane_dropped_while_lent_or_returning_frees_its_counts() {
        use crate::stages::contract::Lend;
        let lanes = Lanes::new(1, Rc::new(Memory::new(None, None)), true);
        let a = lanes.enter(|_| {}).await;
        a.lend();
        let b = lanes.enter(|_| {}).await;
        {
            let back = a.take_back();
            tokio::pin!(back);
            let waited = tokio::time::timeout(std::time::Duration::from_millis(10), &mut back).await;
            assert!(waited.is_err(), "b is at work: a waits");
            assert_eq!(lanes.returning.get(), 1);
        }
        assert_eq!(lanes.returning.get(), 0, "a wait dropped is no longer counted");
        drop(a);
        assert_eq!((lanes.running.get(), lanes.lent.get()), (1, 0));
        drop(b);
        assert_eq!((lanes.running.get(), lanes.lent.get()), (0, 0));
    }
}
