//! Test harness: the real tools from `.tools/` (scripts/setup-tools.sh installs
//! them), an emulated AWS (moto) on a free loopback port per test, and a fleet in
//! a temporary directory whose stacks are the stand-ins under tests/standin.
#![allow(dead_code)]

use std::net::TcpListener;
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
        Self::launch(false)
    }

    /// The emulator over HTTPS, with a certificate of `test_ca()`.
    pub fn start_tls() -> Self {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_on_port(port, tls)
    }

    /// An emulator on this port (another one, empty, where a stopped one was).
    pub fn start_on(port: u16) -> Self {
        Self::start_on_port(port, false)
    }

    fn start_on_port(port: u16, tls: bool) -> Self {
        // moto_server through scripts/moto_server.py, which fixes the places where
        // moto 5.2.1 differs from AWS for the real stacks; the venv is next to the bin dir.
        let launcher = repo().join("scripts/moto_server.py");
        let mut child = Command::new(tools().join("../venv/bin/python"))
            .arg(&launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .args(if tls {
                let ca = test_ca();
                vec!["-c".into(), ca.join("server.pem").into_os_string(), "-k".into(), ca.join("server.key").into_os_string()]
            } else {
                vec![]
            })
            // The real stacks attach AWS-managed IAM policies.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/moto_server.py");
        let url = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the emulator exited ({status}): run `{} -p {port}` to see why", launcher.display());
            }
            assert!(Instant::now() < deadline, "moto_server did not start on {url}");
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
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
app_repo = "https://example.invalid/app.git"

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

    pub fn write_config(&self, toml: &str) {
        let text = toml
            .replace("{repo}", &repo().display().to_string())
            .replace("{tools}", &tools().display().to_string())
            .replace("{endpoint}", &self.endpoint);
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
        c.current_dir(self.path())
            .args(args)
            .env("CI", "true")
            // The CLI configuration scripts/setup-tools.sh wrote (the provider mirror).
            .env("TF_CLI_CONFIG_FILE", tools().join("../terraformrc"))
            .env_remove("STAMP_AWS_ENDPOINT")
            .env_remove("STAMP_CONFIG")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            // Run under GitHub Actions or Travis, the tests still expect plain lines.
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_WORKSPACE")
            .env_remove("TRAVIS")
            .env_remove("STAMP_PROGRESS")
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

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout of stamp {} is not JSON ({e}):\n{}", self.args, self.stdout))
    }

    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(self.stderr.contains(needle), "stderr of stamp {} lacks {needle:?}:\n{}", self.args, self.stderr);
        self
    }
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
