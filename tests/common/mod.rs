//! Test harness: the real tools from `.tools/` (scripts/setup-tools.sh installs
//! them), an emulated AWS (moto) on a loopback port of its own per test, a git
//! repository standing for the app, and a fleet in a temporary directory whose
//! stacks are the stand-ins under tests/standin.
//!
//! Hermetic: what stamp runs with is set here, not inherited (no CI variables of
//! the machine the tests run on), and every port is bound by the socket that
//! serves it (no pick-then-bind race).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.tools/bin` (or STAMP_TEST_TOOLS), checked once so a missing install fails
/// with the one command that fixes it.
pub fn tools() -> PathBuf {
    let dir = std::env::var_os("STAMP_TEST_TOOLS").map(PathBuf::from).unwrap_or_else(|| repo().join(".tools/bin"));
    for t in ["terraform", "aws", "moto_server", "packer"] {
        assert!(dir.join(t).exists(), "{} is missing: run scripts/setup-tools.sh (make test does)", dir.join(t).display());
    }
    dir
}

pub fn tool(name: &str) -> PathBuf {
    tools().join(name)
}

/// An emulated AWS, stopped when dropped.
pub struct Emulator {
    pub url: String,
    child: Child,
}

/// The environment variables of CI systems (and of stamp itself) that change what
/// stamp or a tool does: removed from every command a test runs, whatever machine
/// the tests run on. A test that wants one sets it after `hermetic`.
pub const CI_VARIABLES: [&str; 14] = [
    "CI",
    "GITHUB_ACTIONS",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_OUTPUT",
    "GITHUB_WORKSPACE",
    "GITHUB_ENV",
    "TRAVIS",
    "GITLAB_CI",
    "BUILDKITE",
    "STAMP_PROGRESS",
    "STAMP_CONFIG",
    "STAMP_AWS_ENDPOINT",
    "STAMP_KILL_GRACE",
    "STAMP_RETRY_BASE_MS",
];

/// Removes `CI_VARIABLES` (and the user's AWS identity and git configuration) from
/// a command's environment.
pub fn hermetic(c: &mut Command) -> &mut Command {
    for k in CI_VARIABLES {
        c.env_remove(k);
    }
    c.env_remove("STAMP_PLAN_JOBS")
        .env_remove("STAMP_TOOL_MEMORY_MIB")
        .env_remove("STAMP_LOCK_TIMEOUT")
        .env_remove("STAMP_TERRAFORM")
        .env_remove("STAMP_PACKER")
        .env_remove("STAMP_AWS")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        // Colour is decided by each test that looks at it.
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
}

/// A TCP socket on 127.0.0.1:`port` (0: a free one) with SO_REUSEPORT, listening
/// or only bound. Only bound, it holds the port while nothing answers there
/// (connections are refused); a listening one may join it on the same port.
fn loopback_socket(port: u16, listen: bool) -> OwnedFd {
    // SAFETY: plain socket(2)/setsockopt(2)/bind(2)/listen(2) calls on a descriptor
    // this function owns; the structures passed live across each call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            let r = libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&one as *const libc::c_int).cast(), size_of::<libc::c_int>() as u32);
            assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
        }
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
            sin_zero: [0; 8],
        };
        let r = libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), size_of::<libc::sockaddr_in>() as u32);
        assert_eq!(r, 0, "bind 127.0.0.1:{port}: {}", std::io::Error::last_os_error());
        if listen {
            assert_eq!(libc::listen(fd, 128), 0, "listen: {}", std::io::Error::last_os_error());
        }
        owned
    }
}

fn socket_port(fd: &OwnedFd) -> u16 {
    // SAFETY: getsockname(2) into a sockaddr_in of the right size.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        let mut len = size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(libc::getsockname(fd.as_raw_fd(), (&mut addr as *mut libc::sockaddr_in).cast(), &mut len), 0);
        u16::from_be(addr.sin_port)
    }
}

/// A loopback port held (bound, not listening) by the test: nothing answers there
/// and nothing else can take it. `Emulator::start_on` may still serve on it.
pub struct HeldPort {
    fd: OwnedFd,
    pub port: u16,
}

impl HeldPort {
    /// A free port, held.
    pub fn new() -> Self {
        Self::on(0)
    }

    fn on(port: u16) -> Self {
        let fd = loopback_socket(port, false);
        let port = socket_port(&fd);
        Self { fd, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Default for HeldPort {
    fn default() -> Self {
        Self::new()
    }
}

/// The certificate authority of the HTTPS emulators of this test process
/// (scripts/tls_cert.py), made once; the tools get it as AWS_CA_BUNDLE.
pub fn test_ca() -> &'static Path {
    static CA: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("stamp-test-ca-{}", std::process::id()));
        let ok = Command::new(tools().join("../venv/bin/python"))
            .arg(repo().join("scripts/tls_cert.py"))
            .arg(&dir)
            .status()
            .expect("run scripts/tls_cert.py");
        assert!(ok.success(), "scripts/tls_cert.py failed");
        dir
    })
}

impl Emulator {
    pub fn start() -> Self {
        Self::launch(loopback_socket(0, true), false)
    }

    /// The emulator over HTTPS, with a certificate of `test_ca()`.
    pub fn start_tls() -> Self {
        Self::launch(loopback_socket(0, true), true)
    }

    /// An emulator on this port (another one, empty, where a stopped one was: see
    /// `kill_holding_port`).
    pub fn start_on(port: u16) -> Self {
        Self::launch(loopback_socket(port, true), false)
    }

    /// moto (through scripts/moto_server.py) serving on `listener`, a socket this
    /// process bound and hands over (werkzeug serves an inherited socket given as
    /// WERKZEUG_SERVER_FD): the port is never free between choosing and binding it.
    fn launch(listener: OwnedFd, tls: bool) -> Self {
        let port = socket_port(&listener);
        // scripts/moto_server.py fixes the places where moto differs from AWS for the
        // real stacks; the venv is next to the bin dir.
        let launcher = repo().join("scripts/moto_server.py");
        let fd: RawFd = listener.as_raw_fd();
        let mut cmd = Command::new(tools().join("../venv/bin/python"));
        cmd.arg(&launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .args(if tls {
                let ca = test_ca();
                vec!["-c".into(), ca.join("server.pem").into_os_string(), "-k".into(), ca.join("server.key").into_os_string()]
            } else {
                vec![]
            })
            // The real stacks attach AWS-managed IAM policies.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .env("WERKZEUG_RUN_MAIN", "true")
            .env("WERKZEUG_SERVER_FD", fd.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: fcntl(2) on a descriptor inherited across the fork, in the child
        // before exec: async-signal-safe, touches no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start scripts/moto_server.py");
        // Only moto holds the socket now: if it dies, the port closes.
        drop(listener);
        let url = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
        // The socket listens already: ready means moto answers (over TLS, it ends a
        // plain-text request: any answer or end will do).
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the emulator exited ({status}): run `{} -p {port}` to see why", launcher.display());
            }
            assert!(Instant::now() < deadline, "moto_server did not answer on {url}");
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut b = [0u8; 1];
                match s.read(&mut b) {
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(_) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { url, child }
    }
}

impl Emulator {
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Stops it now (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it now (SIGKILL), as a crash would, keeping its port: nothing answers
    /// there until `Emulator::start_on(port)` serves it again.
    pub fn kill_holding_port(self) -> HeldPort {
        let held = HeldPort::on(self.port());
        self.kill();
        held
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A git repository the test makes and commits to (`git` with no configuration of
/// the user's): an app repository whose branches move between deploys.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
}

impl GitRepo {
    /// A new repository with branch `main` and no commit.
    pub fn new() -> Self {
        let r = Self { dir: tempfile::tempdir().unwrap() };
        r.git(&["init", "--quiet", "--initial-branch=main"]);
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the repository; panics on failure; returns stdout, trimmed.
    pub fn git(&self, args: &[&str]) -> String {
        let mut c = Command::new("git");
        hermetic(&mut c);
        let out = c
            .current_dir(self.path())
            .args([
                "-c",
                "user.name=stamp tests",
                "-c",
                "user.email=tests@stamp.invalid",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
            ])
            .args(args)
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A new commit on the current branch; its hash.
    pub fn commit(&self, message: &str) -> String {
        std::fs::write(self.path().join("REVISION"), message).unwrap();
        self.git(&["add", "REVISION"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

impl Default for GitRepo {
    fn default() -> Self {
        Self::new()
    }
}

/// The commit `rev` (a tag or branch of `app_repo()`) names.
pub fn app_commit(rev: &str) -> String {
    let mut c = Command::new("git");
    hermetic(&mut c);
    let out =
        c.arg("-C").arg(app_repo()).args(["rev-parse", "--verify", "--end-of-options", &format!("{rev}^{{commit}}")]).output().unwrap();
    assert!(out.status.success(), "no {rev} in the app repository");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The app repository every test fleet names (`app_repo`), made once per test
/// process: branches `main` and `master` and the tags v1, v2, v3, v1.0.0, v2.0.0 and
/// v3.0.0, each on a commit of its own, so the test fleets' git_ids resolve offline.
pub fn app_repo() -> &'static Path {
    static REPO: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    REPO.get_or_init(|| {
        let r = GitRepo::new();
        for tag in ["v1", "v2", "v3", "v1.0.0", "v2.0.0", "v3.0.0"] {
            r.commit(tag);
            r.git(&["tag", tag]);
        }
        r.git(&["branch", "master"]);
        r.dir.keep()
    })
}

/// A fault-injecting proxy (tests/support/fault_proxy.py) in front of an emulator:
/// point a fleet's endpoint at `url` and arm faults with `set_rules`. Stopped when
/// dropped.
pub struct FaultProxy {
    pub url: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl FaultProxy {
    pub fn start(emu: &Emulator) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        std::fs::write(dir.path().join("rules.json"), "[]").unwrap();
        let mut child = Command::new(tools().join("../venv/bin/python"))
            .arg(repo().join("tests/support/fault_proxy.py"))
            .args(["--upstream", &emu.url])
            .arg("--rules")
            .arg(dir.path().join("rules.json"))
            .arg("--log")
            .arg(dir.path().join("faults.jsonl"))
            .arg("--requests")
            .arg(dir.path().join("requests.jsonl"))
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tests/support/fault_proxy.py");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().to_owned();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the fault proxy exited ({status})");
            }
            assert!(Instant::now() < deadline, "the fault proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { url: format!("http://127.0.0.1:{port}"), dir, child }
    }

    /// Replaces the rules (see tests/support/fault_proxy.py); takes effect at the
    /// next request.
    pub fn set_rules(&self, rules: serde_json::Value) {
        let tmp = self.dir.path().join("rules.json.tmp");
        std::fs::write(&tmp, serde_json::to_string(&rules).unwrap()).unwrap();
        std::fs::rename(tmp, self.dir.path().join("rules.json")).unwrap();
    }

    /// Every request the proxy received so far, in order, one JSON object each
    /// (method, path, service, target, action, agent, time: tests/support/fault_proxy.py).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The faults applied so far, one JSON object each.
    pub fn faults(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("faults.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fleet in a temporary directory.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
}

pub const FLEET_TOML: &str = r#"
[fleet]
region = "eu-west-1"
default_env = "production"
envs = ["production", "staging"]
app_repo = "{app_repo}"

[paths]
terraform = "{repo}/tests/standin/terraform"
packer = "{repo}/tests/standin/packer/template.json"
app_templates = "{repo}/templates/app"

[aws]
endpoint = "{endpoint}"

[tools]
terraform = "{tools}/terraform"
packer = "{tools}/packer"
aws = "{tools}/aws"

[packer]
only = ["emulator"]

# The stand-ins' public_url is an emulated load balancer, which serves no HTTP: the
# smoke tests (tests/smoke.rs) turn the check on against servers of their own.
[smoke]
enabled = false
"#;

impl Fleet {
    pub fn new(emu: &Emulator) -> Self {
        Self::with_toml(emu, FLEET_TOML)
    }

    /// A fleet from a stamp.toml text with `{repo}`, `{tools}`, `{endpoint}` filled in.
    pub fn with_toml(emu: &Emulator, toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let f = Self { dir, endpoint: emu.url.clone() };
        f.write_config(toml);
        std::fs::create_dir_all(f.path().join("customers")).unwrap();
        f
    }

    /// A fleet whose stamp (and so terraform, packer and the AWS CLI) talks to the
    /// emulator through `proxy`; the test's own `aws` calls go there too.
    pub fn behind(proxy: &FaultProxy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let f = Self { dir, endpoint: proxy.url.clone() };
        f.write_config(FLEET_TOML);
        std::fs::create_dir_all(f.path().join("customers")).unwrap();
        f
    }

    /// Writes stamp.toml from a text with `{repo}`, `{tools}`, `{endpoint}` and
    /// `{app_repo}` (`app_repo()`) filled in.
    pub fn write_config(&self, toml: &str) {
        let text = toml
            .replace("{repo}", &repo().display().to_string())
            .replace("{tools}", &tools().display().to_string())
            .replace("{endpoint}", &self.endpoint)
            .replace("{app_repo}", &app_repo().display().to_string());
        std::fs::write(self.path().join("stamp.toml"), text).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn customer(&self, name: &str, toml: &str) -> &Self {
        std::fs::write(self.path().join("customers").join(format!("{name}.toml")), toml).unwrap();
        self
    }

    pub fn stamp_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stamp"));
        // Run under GitHub Actions or Travis, the tests still expect plain lines:
        // nothing of the machine's CI is inherited, and CI=true is set on purpose.
        hermetic(&mut c)
            .current_dir(self.path())
            .args(args)
            .env("CI", "true")
            // The CLI configuration scripts/setup-tools.sh wrote (the provider mirror).
            .env("TF_CLI_CONFIG_FILE", tools().join("../terraformrc"))
            .stdin(Stdio::null());
        self.trust(&mut c);
        c
    }

    /// Lets a command trust this fleet's emulator: over HTTPS, the test CA as
    /// AWS_CA_BUNDLE (the AWS CLI, terraform, packer and stamp read it) and as
    /// SSL_CERT_FILE (the stand-ins' Python, through OpenSSL); else neither.
    pub fn trust(&self, c: &mut Command) {
        c.env_remove("AWS_CA_BUNDLE").env_remove("SSL_CERT_FILE");
        if self.endpoint.starts_with("https://") {
            c.env("AWS_CA_BUNDLE", test_ca().join("ca.pem")).env("SSL_CERT_FILE", test_ca().join("ca.pem"));
        }
    }

    pub fn stamp(&self, args: &[&str]) -> Run {
        let out = self.stamp_cmd(args).output().expect("run stamp");
        Run::from(out, args)
    }

    /// The AWS CLI against this fleet's emulator; panics on failure.
    pub fn aws(&self, args: &[&str]) -> String {
        let out = self.aws_raw(args);
        assert!(out.status.success(), "aws {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn aws_raw(&self, args: &[&str]) -> Output {
        let mut c = Command::new(tool("aws"));
        self.trust(&mut c);
        c.args(["--endpoint-url", &self.endpoint, "--region", "eu-west-1", "--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_PAGER", "")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .unwrap()
    }

    pub fn aws_json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.aws(args)).unwrap()
    }

    /// A CloudWatch alarm `name` on the emulator (metric Stamp/Test 5xx, Sum >= 1 over
    /// one 60 s period); a test sets its state with `set-alarm-state`.
    pub fn put_alarm(&self, name: &str) {
        self.aws(&[
            "cloudwatch",
            "put-metric-alarm",
            "--alarm-name",
            name,
            "--namespace",
            "Stamp/Test",
            "--metric-name",
            "5xx",
            "--statistic",
            "Sum",
            "--period",
            "60",
            "--evaluation-periods",
            "1",
            "--threshold",
            "1",
            "--comparison-operator",
            "GreaterThanOrEqualToThreshold",
        ]);
    }

    pub fn buckets(&self) -> Vec<String> {
        let v = self.aws_json(&["s3api", "list-buckets"]);
        v["Buckets"].as_array().map(|a| a.iter().map(|b| b["Name"].as_str().unwrap().to_owned()).collect()).unwrap_or_default()
    }

    /// A state object from S3, parsed.
    pub fn state(&self, bucket: &str, key: &str) -> serde_json::Value {
        let out = self.aws_raw(&["s3", "cp", &format!("s3://{bucket}/{key}"), "-"]);
        assert!(out.status.success(), "no state at s3://{bucket}/{key}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The customer's run journal (`.stamp/<customer>/journal.json`), parsed.
    pub fn journal(&self, customer: &str) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.path().join(".stamp").join(customer).join("journal.json")).ok()?;
        Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("the journal of {customer} does not parse ({e}):\n{text}")))
    }

    pub fn log(&self, customer: &str, stage: &str) -> String {
        std::fs::read_to_string(self.path().join(".stamp").join(customer).join("logs").join(format!("{stage}.log"))).unwrap_or_default()
    }
}

/// The result of one stamp run, with everything printed on failure.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: String,
}

impl Run {
    pub fn from(out: Output, args: &[&str]) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.join(" "),
        }
    }

    pub fn ok(self) -> Self {
        self.code(0)
    }

    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "stamp {} exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    /// stdout as JSON. A `--json` document (it has a `kind`) is checked against its
    /// schema, docs/schema/<kind>.schema.json, so every test that reads one checks
    /// the contract too.
    pub fn json(&self) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout of stamp {} is not JSON ({e}):\n{}", self.args, self.stdout));
        if let Some(kind) = v.get("kind").and_then(|k| k.as_str())
            && let Err(errors) = check_schema(kind, &self.stdout)
        {
            panic!(
                "stamp {}: the --json document breaks docs/schema/{kind}.schema.json:\n{errors}\n--- stdout\n{}",
                self.args, self.stdout
            );
        }
        v
    }

    /// The one customer's entry of a `--json` document (`customers[0]`), checked
    /// against the schema like `json`.
    pub fn report(&self) -> serde_json::Value {
        let mut v = self.json();
        let customers = v["customers"].as_array_mut().unwrap_or_else(|| panic!("stamp {}: no customers list:\n{}", self.args, self.stdout));
        assert_eq!(customers.len(), 1, "stamp {}: one customer expected:\n{}", self.args, self.stdout);
        customers.remove(0)
    }

    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(self.stderr.contains(needle), "stderr of stamp {} lacks {needle:?}:\n{}", self.args, self.stderr);
        self
    }
}

/// Validates a `--json` document (`text`) against docs/schema/<kind>.schema.json
/// (tests/support/json_schema.py, with the jsonschema of .tools/venv); `Err` holds
/// every violation, one per line.
pub fn check_schema(kind: &str, text: &str) -> Result<(), String> {
    let schema = repo().join("docs/schema").join(format!("{kind}.schema.json"));
    if !schema.exists() {
        return Err(format!("no schema {} for kind {kind:?}", schema.display()));
    }
    let mut child = Command::new(tools().join("../venv/bin/python"))
        .arg(repo().join("tests/support/json_schema.py"))
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python of .tools/venv");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) if out.stderr.is_empty() => Err(String::from_utf8_lossy(&out.stdout).into_owned()),
        _ => panic!(
            "tests/support/json_schema.py failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Processes whose command line contains `marker` or whose working directory is
/// under `dir`, as "pid: command line" (a tool run with relative arguments is found
/// by its working directory; `pgrep -f <dir>` would miss it).
pub fn processes(marker: &str, dir: Option<&Path>) -> Vec<String> {
    let dir = dir.map(|d| d.canonicalize().unwrap());
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).map(|c| String::from_utf8_lossy(&c).replace('\0', " ")).unwrap_or_default();
        let in_dir = std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| dir.as_ref().is_some_and(|d| cwd.starts_with(d)));
        if !cmd.is_empty() && ((!marker.is_empty() && cmd.contains(marker)) || in_dir) {
            found.push(format!("{name}: {cmd}"));
        }
    }
    found
}

/// The status of a stage in a run report (`--json`).
/// A terraform tree holding only the stand-in vpc stack (and the script it runs,
/// `../standin_aws.py`), for tests that bring their own frontends stack.
pub fn standin_vpc_only(tree: &Path) {
    let src = repo().join("tests/standin/terraform");
    std::fs::create_dir_all(tree.join("vpc")).unwrap();
    for f in ["main.tf", "standin.sh"] {
        std::fs::copy(src.join("vpc").join(f), tree.join("vpc").join(f)).unwrap();
    }
    std::fs::copy(src.join("standin_aws.py"), tree.join("standin_aws.py")).unwrap();
}

pub fn stage_status(report: &serde_json::Value, stage: &str) -> String {
    report["stages"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == stage))
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no stage {stage} in {report:#}"))
}
