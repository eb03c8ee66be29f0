//! The bad-input corpus: the real stamp (`validate`, `plan`, `deploy --auto-approve`,
//! `render`) against one emulated AWS, fed bad customer names, bad files, bad values,
//! missing stacks, tools and endpoints. Each case must exit 2 (bad input) or 1 (a
//! runtime failure), with a message that names the file, key or value AND says what
//! would be accepted; and after each case nothing exists in the emulator that was
//! not there before, and nothing changed in the fleet directory outside `.stamp/`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::{Emulator, FLEET_TOML, Fleet};

/// One bad input: how to set the fleet up, what to run, what must come out.
struct Case {
    category: &'static str,
    name: &'static str,
    setup: Box<dyn Fn(&Fleet)>,
    args: Vec<String>,
    code: i32,
    /// Every one must appear in stderr: what is wrong (file, key, value) and what is accepted.
    says: Vec<String>,
    /// Environment variables stamp runs with (`with_env`).
    env: Vec<(&'static str, &'static str)>,
}

impl Case {
    fn with_env(mut self, k: &'static str, v: &'static str) -> Self {
        self.env.push((k, v));
        self
    }
}

fn case(category: &'static str, name: &'static str, args: &[&str], code: i32, says: &[&str], setup: impl Fn(&Fleet) + 'static) -> Case {
    Case {
        category,
        name,
        setup: Box::new(setup),
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        says: says.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
    }
}

/// A case whose only change is acme's customer file.
fn customer(category: &'static str, name: &'static str, text: &'static str, args: &[&str], says: &[&str]) -> Case {
    case(category, name, args, 2, says, move |f| {
        f.customer("acme", text);
    })
}

/// A case whose only change is stamp.toml: `edit` turns the test fleet's file into the bad one.
fn fleet_toml(name: &'static str, args: &[&str], code: i32, says: &[&str], edit: impl Fn(&str) -> String + 'static) -> Case {
    fleet_toml_in("stamp.toml", name, args, code, says, edit)
}

fn fleet_toml_in(
    category: &'static str,
    name: &'static str,
    args: &[&str],
    code: i32,
    says: &[&str],
    edit: impl Fn(&str) -> String + 'static,
) -> Case {
    case(category, name, args, code, says, move |f| {
        f.write_config(&edit(FLEET_TOML));
    })
}

fn with_fleet_key(section: &str, line: &str) -> impl Fn(&str) -> String + 'static {
    let (section, line) = (format!("[{section}]\n"), line.to_owned());
    move |t: &str| {
        if t.contains(&section) { t.replacen(&section, &format!("{section}{line}\n"), 1) } else { format!("{t}\n{section}{line}\n") }
    }
}

fn write(f: &Fleet, rel: &str, bytes: &[u8]) {
    let p = f.path().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

const V: &str = "validate";
const NONE_NAMED: &[&str] = &["no customer given", "name customers, or pass --all or --tag TAG", "never default to the whole fleet"];

fn cases() -> Vec<Case> {
    let long = "a".repeat(200);
    let long: &'static str = Box::leak(long.into_boxed_str());
    let name_rule = "lower-case letters, digits and hyphens";
    let mut c = vec![
        // ------------------------------------------------------------ customer names
        case("customer name", "with a space", &[V, "acme corp"], 2, &["`acme corp`", name_rule], |_| {}),
        case("customer name", "upper case", &[V, "ACME"], 2, &["`ACME`", name_rule], |_| {}),
        case("customer name", "dot dot", &[V, ".."], 2, &["`..`", name_rule], |_| {}),
        case("customer name", "path separator", &[V, "../etc/passwd"], 2, &["`../etc/passwd`", name_rule], |_| {}),
        case(
            "customer name",
            "shell metacharacters",
            &["deploy", "acme;touch${IFS}pwned", "--auto-approve"],
            2,
            &["`acme;touch${IFS}pwned`", name_rule],
            |_| {},
        ),
        case("customer name", "200 characters", &[V, long], 2, &[long, "3 to 40 characters"], |_| {}),
        case("customer name", "non-ASCII", &[V, "açme"], 2, &["`açme`", name_rule], |_| {}),
        case("customer name", "not a customer", &["plan", "globex"], 2, &["customers/globex.toml", "known customers: acme"], |_| {}),
        case("customer name", "file name is not a name (--all)", &[V, "--all"], 2, &["customers/Big Corp.toml", name_rule], |f| {
            f.customer("Big Corp", "git_id = \"v1\"\n");
        }),
        // ------------------------------------------------------------ customer files
        customer(
            "customer file",
            "unknown key",
            "gitid = \"v1\"\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 1", "`gitid`", "expected one of", "`git_id`"],
        ),
        customer(
            "customer file",
            "wrong type",
            "git_id = 5\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 1", "integer `5`", "expected a string"],
        ),
        customer(
            "customer file",
            "TOML syntax error",
            "git_id = \"v1\nregion = \"eu-west-1\"\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 1", "string"],
        ),
        customer(
            "customer file",
            "duplicate key",
            "git_id = \"v1\"\ngit_id = \"v2\"\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 2", "duplicate key", "once in each table"],
        ),
        customer("customer file", "empty file", "", &[V, "acme"], &["customers/acme.toml", "missing key `git_id`", "add `git_id = "]),
        customer(
            "customer file",
            "git_id with shell metacharacters",
            "git_id = \"v1; rm -rf /\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "`v1; rm -rf /`", "letters, digits"],
        ),
        customer(
            "customer file",
            "region that is not a region",
            "git_id = \"v1\"\nregion = \"mars\"\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 2", "`mars`", "such as `eu-west-1`"],
        ),
        customer(
            "customer file",
            "env that does not exist",
            "git_id = \"v1\"\nenv = \"qa\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "`qa`", "production, staging"],
        ),
        customer(
            "customer file",
            "env name with a slash",
            "git_id = \"v1\"\nenv = \"prod/eu\"\n",
            &[V, "acme"],
            &["customers/acme.toml", "`prod/eu`", "lower-case letters, digits"],
        ),
        customer(
            "customer file",
            "negative number",
            "git_id = \"v1\"\n[app]\npuma_workers = -1\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 3", "puma_workers = -1", "1 to 64"],
        ),
        customer(
            "customer file",
            "huge number",
            "git_id = \"v1\"\n[app]\npuma_threads = 4000000000\n",
            &[V, "acme"],
            &["customers/acme.toml", "puma_threads = 4000000000", "1 to 64"],
        ),
        customer(
            "customer file",
            "number too big for TOML",
            "git_id = \"v1\"\n[app]\npuma_threads = 99999999999999999999\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 3", "integer"],
        ),
        customer(
            "customer file",
            "tag with a space",
            "git_id = \"v1\"\ntags = [\"big customer\"]\n",
            &[V, "acme"],
            &["customers/acme.toml", "`big customer`", "letters, digits"],
        ),
        customer(
            "customer file",
            "tags not a list",
            "git_id = \"v1\"\ntags = \"eu\"\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 2", "expected a sequence"],
        ),
        customer(
            "customer file",
            "undeclared [vpc.vars] variable",
            "git_id = \"v1\"\n[vpc.vars]\ncidr = \"10.0.0.0/16\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml:3", "`cidr`", "its variables are: ", "cidr_block"],
        ),
        customer(
            "customer file",
            "undeclared [frontends.vars] variable",
            "git_id = \"v1\"\n[frontends.vars]\nsize = 3\n",
            &["plan", "acme"],
            &["customers/acme.toml:3", "`size`", "its variables are: ", "min_size"],
        ),
        customer(
            "customer file",
            "wrong type for a declared variable",
            "git_id = \"v1\"\n[frontends.vars]\nmin_size = \"two\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml:3", "`min_size`", "\"two\"", "expected a number"],
        ),
        customer(
            "customer file",
            "list for a string variable",
            "git_id = \"v1\"\n[vpc.vars]\ncidr_block = [\"10.0.0.0/16\"]\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml:3", "`cidr_block`", "expected a string"],
        ),
        customer(
            "customer file",
            "variable stamp sets",
            "git_id = \"v1\"\n[vpc.vars]\nregion = \"eu-west-1\"\n",
            &[V, "acme"],
            &["customers/acme.toml:3", "`region` is set by stamp", "top of the customer file"],
        ),
        customer(
            "customer file",
            "packer variable the template lacks",
            "git_id = \"v1\"\n[packer.vars]\nbase_image = \"ubuntu\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml:3", "`base_image`", "its variables are: ", "instance_type"],
        ),
        // ------------------------------------------------------------ values that become code
        // Each of these is written into the app's nginx configuration, Ruby or an
        // ERB-evaluated YAML file, or read by git: hostile, it would become code.
        customer(
            "generated code",
            "[app] server_name with `;` (an nginx directive)",
            "git_id = \"v1\"\n[app]\nserver_name = \"example.com; return 302 https://evil.example\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "line 3", "[app] server_name", "`example.com;` is not a host name", "host names separated by spaces"],
        ),
        customer(
            "generated code",
            "[app] server_name with a line break",
            "git_id = \"v1\"\n[app]\nserver_name = \"example.com\\ninclude /etc/passwd\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "line 3", "[app] server_name", "\\n", "host names separated by spaces"],
        ),
        customer(
            "generated code",
            "[app] dir with Ruby interpolation",
            "git_id = \"v1\"\n[app]\ndir = \"/srv/#{`touch /tmp/pwned`}\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "line 3", "[app] dir", "`#` is not allowed", "an absolute path of letters, digits"],
        ),
        customer(
            "generated code",
            "[app] dir with ERB",
            "git_id = \"v1\"\n[app]\ndir = \"/srv/<%= `id` %>\"\n",
            &["plan", "acme"],
            &["customers/acme.toml", "line 3", "[app] dir", "`<` is not allowed", "an absolute path"],
        ),
        customer(
            "generated code",
            "[app] dir with a quote (ends the Ruby string)",
            "git_id = \"v1\"\n[app]\ndir = '/srv/app\"; system(\"id\"); \"'\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "line 3", "[app] dir", "is not allowed", "an absolute path"],
        ),
        customer(
            "generated code",
            "[app] dir that is relative",
            "git_id = \"v1\"\n[app]\ndir = \"srv/app\"\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 3", "[app] dir", "not absolute", "such as \"/srv/app\""],
        ),
        customer(
            "generated code",
            "app_repo that git reads as an option",
            "git_id = \"v1\"\napp_repo = \"--upload-pack=touch /tmp/pwned\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "line 2", "app_repo", "starts with `-`", "an https://, ssh:// or file:// URL"],
        ),
        customer(
            "generated code",
            "app_repo with ERB",
            "git_id = \"v1\"\napp_repo = \"https://example.com/<%= `id` %>.git\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "line 2", "app_repo", "`<` is not allowed", "an https://, ssh:// or file:// URL"],
        ),
        customer(
            "generated code",
            "app_repo in git's ext:: form (runs a command)",
            "git_id = \"v1\"\napp_repo = \"ext::sh\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "line 2", "app_repo", "`ext::` runs a command", "an https://, ssh:// or file:// URL"],
        ),
        customer(
            "generated code",
            "app_repo over plain-text http",
            "git_id = \"v1\"\napp_repo = \"http://example.com/app.git\"\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 2", "app_repo", "not encrypted", "use https:// or ssh://"],
        ),
        customer(
            "generated code",
            "git_id that git refuses as a ref",
            "git_id = \"v1..v2\"\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml", "line 1", "git_id", "`..`", "a branch, tag or commit"],
        ),
        fleet_toml_in(
            "generated code",
            "fleet file: [app] server_name with `{`",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["stamp.toml", "[app] server_name", "`_{` is not a host name", "host names separated by spaces"],
            with_fleet_key("app", "server_name = \"_{\""),
        ),
        fleet_toml_in(
            "generated code",
            "fleet file: app_repo that git reads as an option",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["stamp.toml", "[fleet] app_repo", "starts with `-`", "an https://, ssh:// or file:// URL"],
            |t| t.replace("app_repo = \"{app_repo}\"", "app_repo = \"-oProxyCommand=touch /tmp/pwned\""),
        ),
        // ------------------------------------------------------------ settings
        case(
            "settings",
            "STAMP_KILL_GRACE not a number",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["STAMP_KILL_GRACE", "`soon`", "whole number of seconds"],
            |_| {},
        )
        .with_env("STAMP_KILL_GRACE", "soon"),
        case(
            "settings",
            "STAMP_RETRY_BASE_MS negative",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["STAMP_RETRY_BASE_MS", "`-5`", "milliseconds"],
            |_| {},
        )
        .with_env("STAMP_RETRY_BASE_MS", "-5"),
        case("settings", "STAMP_PLAN_JOBS zero", &["plan", "acme"], 2, &["STAMP_PLAN_JOBS", "`0`", "from 1 to 256"], |_| {})
            .with_env("STAMP_PLAN_JOBS", "0"),
        case(
            "settings",
            "STAMP_TOOL_MEMORY_MIB with a unit",
            &["plan", "acme"],
            2,
            &["STAMP_TOOL_MEMORY_MIB", "`400M`", "MiB from 1 to 1048576"],
            |_| {},
        )
        .with_env("STAMP_TOOL_MEMORY_MIB", "400M"),
        case(
            "settings",
            "STAMP_LOCK_TIMEOUT not a duration",
            &["plan", "acme"],
            2,
            &["STAMP_LOCK_TIMEOUT", "`forever`", "a duration"],
            |_| {},
        )
        .with_env("STAMP_LOCK_TIMEOUT", "forever"),
        case("settings", "STAMP_PROGRESS unknown", &["plan", "acme"], 2, &["STAMP_PROGRESS", "`fancy`", "auto, terminal, plain"], |_| {})
            .with_env("STAMP_PROGRESS", "fancy"),
        case("settings", "STAMP_CONFIG empty", &["plan", "acme"], 2, &["STAMP_CONFIG", "set but empty", "fleet file"], |_| {})
            .with_env("STAMP_CONFIG", ""),
        case(
            "secrets",
            "secret file that is a FIFO",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["customers/acme.toml:3", "`build_token`", "token.fifo is a named pipe (FIFO)", "regular file"],
            |f| {
                std::fs::create_dir_all(f.path().join("secrets")).unwrap();
                let path = std::ffi::CString::new(f.path().join("secrets/token.fifo").to_str().unwrap()).unwrap();
                // SAFETY: mkfifo(3) with a valid NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
                f.customer("acme", "git_id = \"v1\"\n[secrets]\nbuild_token = { file = \"../secrets/token.fifo\" }\n");
            },
        ),
        case(
            "secrets",
            "secret file that is a directory",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["customers/acme.toml:3", "`build_token`", "is a directory", "regular file"],
            |f| {
                std::fs::create_dir_all(f.path().join("secrets")).unwrap();
                f.customer("acme", "git_id = \"v1\"\n[secrets]\nbuild_token = { file = \"../secrets\" }\n");
            },
        ),
        customer(
            "secrets",
            "secret file that is a device",
            "git_id = \"v1\"\n[secrets]\nbuild_token = { file = \"/dev/zero\" }\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml:3", "`build_token`", "/dev/zero is a device", "regular file"],
        ),
        // ------------------------------------------------------------ [secrets]
        customer(
            "secrets",
            "environment variable not set",
            "git_id = \"v1\"\n[secrets]\ndb_instance_class = { env = \"STAMP_BAD_INPUT_NEVER_SET\" }\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml:3", "`db_instance_class`", "STAMP_BAD_INPUT_NEVER_SET is not set", "set STAMP_BAD_INPUT_NEVER_SET to"],
        ),
        customer(
            "secrets",
            "unknown key in the entry",
            "git_id = \"v1\"\n[secrets]\ndb_instance_class = { envv = \"PATH\" }\n",
            &[V, "acme"],
            &["customers/acme.toml", "line 3", "unknown key `envv`", "{ env = \"ENV_VAR\" }", "{ file = \"path\" }"],
        ),
        customer(
            "secrets",
            "value written in clear",
            "git_id = \"v1\"\n[secrets]\ndb_instance_class = \"db.hush\"\n",
            &["plan", "acme"],
            &["customers/acme.toml", "line 3", "`db_instance_class`", "never written in a TOML file", "{ env = \"ENV_VAR\" }"],
        ),
        customer(
            "secrets",
            "variable no stack or template declares",
            "git_id = \"v1\"\n[secrets]\ndb_password = { env = \"PATH\" }\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml:3", "`db_password`", "not a variable of any stack nor of the packer template", "db_instance_class"],
        ),
        customer(
            "secrets",
            "also given in clear under [frontends.vars]",
            "git_id = \"v1\"\n[frontends.vars]\ndb_instance_class = \"x\"\n[secrets]\ndb_instance_class = { env = \"PATH\" }\n",
            &["deploy", "acme", "--auto-approve"],
            &["customers/acme.toml:5", "also set under [frontends.vars] (", "customers/acme.toml:3", "give it in one place"],
        ),
        case(
            "secrets",
            "empty secret file",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["`build_token`", "token.txt is empty", "write the secret's value"],
            |f| {
                write(f, "secrets/token.txt", b"\n");
                f.customer("acme", "git_id = \"v1\"\n[secrets]\nbuild_token = { file = \"../secrets/token.txt\" }\n");
            },
        ),
        fleet_toml_in(
            "secrets",
            "fleet file: environment variable not set",
            &["plan", "acme"],
            2,
            &["stamp.toml:", "`build_token`", "STAMP_BAD_INPUT_NEVER_SET is not set"],
            with_fleet_key("secrets", "build_token = { env = \"STAMP_BAD_INPUT_NEVER_SET\" }"),
        ),
        // A byte-order mark itself is accepted (Windows editors write one); the line
        // numbers after it must still be right.
        case(
            "customer file",
            "byte-order mark, then a bad key",
            &[V, "acme"],
            2,
            &["customers/acme.toml", "line 2", "`gti_id`", "expected one of"],
            |f| {
                write(f, "customers/acme.toml", b"\xEF\xBB\xBFgit_id = \"v1\"\ngti_id = \"v1\"\n");
            },
        ),
        case(
            "customer file",
            "invalid UTF-8",
            &[V, "acme"],
            2,
            &["customers/acme.toml", "line 1", "not UTF-8", "save the file as UTF-8"],
            |f| {
                write(f, "customers/acme.toml", b"git_id = \"v\xff1\"\n");
            },
        ),
        case("customer file", "a directory", &[V, "acme"], 2, &["customers/acme.toml", "is a directory", "regular file"], |f| {
            std::fs::remove_file(f.path().join("customers/acme.toml")).unwrap();
            std::fs::create_dir(f.path().join("customers/acme.toml")).unwrap();
        }),
        case(
            "customer file",
            "a symlink out of the repository",
            &[V, "acme"],
            2,
            &["customers/acme.toml", "outside", "regular file"],
            |f| {
                let outside = f.path().parent().unwrap().join(format!("stamp-outside-{}.toml", std::process::id()));
                std::fs::write(&outside, "git_id = \"v1\"\n").unwrap();
                let gone = outside.clone();
                UNDO.with(|u| u.borrow_mut().push(Box::new(move || drop(std::fs::remove_file(gone)))));
                std::fs::remove_file(f.path().join("customers/acme.toml")).unwrap();
                std::os::unix::fs::symlink(&outside, f.path().join("customers/acme.toml")).unwrap();
            },
        ),
        case("customer file", "a huge file", &[V, "acme"], 2, &["customers/acme.toml", "MB", "at most"], |f| {
            let mut text = String::from("git_id = \"v1\"\n");
            text.push_str(&format!("# {}\n", "x".repeat(20 << 20)));
            write(f, "customers/acme.toml", text.as_bytes());
        }),
        // ------------------------------------------------------------ command line
        case(
            "command line",
            "--env that does not exist",
            &["plan", "acme", "--env", "qa"],
            2,
            &["--env qa", "production, staging"],
            |_| {},
        ),
        case(
            "command line",
            "status --env that does not exist",
            &["status", "acme", "--env", "qa"],
            2,
            &["--env qa", "production, staging"],
            |_| {},
        ),
        case(
            "command line",
            "outputs --env that does not exist",
            &["outputs", "acme", "--env", "qa"],
            2,
            &["--env qa", "production, staging"],
            |_| {},
        ),
        case("command line", "--env with a slash", &["plan", "acme", "--env", "prod/eu"], 2, &["`prod/eu`", "lower-case letters"], |_| {}),
        case("command line", "--tag nobody has", &["plan", "--tag", "nope"], 2, &["the tag nope", "no customer has tags yet"], |_| {}),
        // One rule (fleet::selection::Use): with no customer named, what runs terraform refuses.
        case("command line", "deploy naming no customer", &["deploy", "--auto-approve"], 2, NONE_NAMED, |_| {}),
        case("command line", "plan naming no customer", &["plan"], 2, NONE_NAMED, |_| {}),
        case("command line", "drift naming no customer", &["drift"], 2, NONE_NAMED, |_| {}),
        case("command line", "destroy naming no customer", &["destroy", "--auto-approve"], 2, NONE_NAMED, |_| {}),
        // ------------------------------------------------------------ stamp.toml
        case("stamp.toml", "missing", &[V, "acme"], 2, &["stamp.toml", "cannot read the fleet file", "--config"], |f| {
            std::fs::remove_file(f.path().join("stamp.toml")).unwrap();
        }),
        case("stamp.toml", "a directory", &[V, "acme"], 2, &["stamp.toml", "is a directory", "regular file"], |f| {
            std::fs::remove_file(f.path().join("stamp.toml")).unwrap();
            std::fs::create_dir(f.path().join("stamp.toml")).unwrap();
        }),
        fleet_toml(
            "unknown key",
            &[V, "acme"],
            2,
            &["stamp.toml", "`regoin`", "expected one of", "`region`"],
            with_fleet_key("fleet", "regoin = \"eu-west-1\""),
        ),
        fleet_toml("unknown section", &[V, "acme"], 2, &["stamp.toml", "`terraform`", "expected one of"], |t| {
            format!("{t}\n[terraform]\nversion = \"1.11\"\n")
        }),
        fleet_toml("wrong type", &[V, "acme"], 2, &["stamp.toml", "string \"production\"", "expected a sequence"], |t| {
            t.replace("envs = [\"production\", \"staging\"]", "envs = \"production\"")
        }),
        fleet_toml("TOML syntax error", &[V, "acme"], 2, &["stamp.toml", "line 3"], |t| {
            t.replace("region = \"eu-west-1\"", "region = eu-west-1")
        }),
        fleet_toml("empty envs", &[V, "acme"], 2, &["stamp.toml", "[fleet] envs", "at least one env"], |t| {
            t.replace("envs = [\"production\", \"staging\"]", "envs = []")
        }),
        fleet_toml("default_env not in envs", &[V, "acme"], 2, &["stamp.toml", "`qa`", "production, staging"], |t| {
            t.replace("default_env = \"production\"", "default_env = \"qa\"")
        }),
        fleet_toml("region that is not a region", &[V, "acme"], 2, &["stamp.toml", "`europe`", "such as `eu-west-1`"], |t| {
            t.replace("region = \"eu-west-1\"", "region = \"europe\"")
        }),
        fleet_toml(
            "account_id not 12 digits",
            &[V, "acme"],
            2,
            &["stamp.toml", "`12345`", "12 digits"],
            with_fleet_key("aws", "account_id = \"12345\""),
        ),
        fleet_toml("endpoint that is not a URL", &[V, "acme"], 2, &["stamp.toml", "`localhost:5000`", "http://127.0.0.1:5000"], |t| {
            t.replace("endpoint = \"{endpoint}\"", "endpoint = \"localhost:5000\"")
        }),
        fleet_toml(
            "state_bucket with upper case",
            &[V, "acme"],
            2,
            &["stamp.toml", "[fleet] state_bucket", "lower-case"],
            with_fleet_key("fleet", "state_bucket = \"TFState-{{customer}}\""),
        ),
        fleet_toml(
            "state_bucket with underscores",
            &[V, "acme"],
            2,
            &["stamp.toml", "[fleet] state_bucket", "tf_state"],
            with_fleet_key("fleet", "state_bucket = \"tf_state-{{customer}}\""),
        ),
        fleet_toml(
            "state_bucket over 63 characters",
            &[V, "acme"],
            2,
            &["stamp.toml", "[fleet] state_bucket", "63"],
            with_fleet_key("fleet", "state_bucket = \"terraform-state-for-the-customer-named-{{customer}}-in-{{region}}\""),
        ),
        fleet_toml(
            "state_bucket with a prefix AWS reserves",
            &[V, "acme"],
            2,
            &["stamp.toml", "[fleet] state_bucket", "AWS reserves the prefix `sthree-`"],
            with_fleet_key("fleet", "state_bucket = \"sthree-{{customer}}\""),
        ),
        fleet_toml(
            "state_bucket with a suffix AWS reserves",
            &[V, "acme"],
            2,
            &["stamp.toml", "[fleet] state_bucket", "AWS reserves the suffix `-s3alias`"],
            with_fleet_key("fleet", "state_bucket = \"tfstate-{{customer}}-s3alias\""),
        ),
        fleet_toml(
            "state_bucket with an unknown placeholder",
            &[V, "acme"],
            2,
            &["stamp.toml", "[fleet] state_bucket", "`team` is not a placeholder", "{{customer}}, {{region}}, {{account_id}}"],
            with_fleet_key("fleet", "state_bucket = \"tfstate-{{team}}\""),
        ),
        fleet_toml(
            "canary that is not a name",
            &[V, "acme"],
            2,
            &["stamp.toml", "[fleet] canary", "`Acme`", name_rule],
            with_fleet_key("fleet", "canary = [\"Acme\"]"),
        ),
        fleet_toml(
            "[vpc.vars] variable the stack lacks",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["stamp.toml:", "`subnets`", "its variables are: "],
            |t| format!("{t}\n[vpc.vars]\nsubnets = 3\n"),
        ),
        case("stamp.toml", "invalid UTF-8", &[V, "acme"], 2, &["stamp.toml", "not UTF-8", "save the file as UTF-8"], |f| {
            let mut t = std::fs::read(f.path().join("stamp.toml")).unwrap();
            t.extend_from_slice(b"\n# \xff\xfe\n");
            write(f, "stamp.toml", &t);
        }),
        case("stamp.toml", "a huge file", &[V, "acme"], 2, &["stamp.toml", "MB", "at most"], |f| {
            let mut t = std::fs::read(f.path().join("stamp.toml")).unwrap();
            t.extend_from_slice(format!("\n# {}\n", "x".repeat(20 << 20)).as_bytes());
            write(f, "stamp.toml", &t);
        }),
        // ------------------------------------------------------------ stacks and templates
        fleet_toml_in(
            "stacks and templates",
            "missing stack directory",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["tests/standin/nowhere", "[paths] terraform"],
            |t| t.replace("tests/standin/terraform", "tests/standin/nowhere"),
        ),
        fleet_toml_in(
            "stacks and templates",
            "missing env stack",
            &["deploy", "acme", "--auto-approve", "--env", "qa"],
            2,
            &["frontends/qa", "stacks for: production, staging"],
            |t| t.replace("envs = [\"production\", \"staging\"]", "envs = [\"production\", \"staging\", \"qa\"]"),
        ),
        fleet_toml_in(
            "stacks and templates",
            "packer template that does not exist",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["tests/standin/packer/nowhere.json", "[paths] packer"],
            |t| t.replace("packer/template.json", "packer/nowhere.json"),
        ),
        case(
            "stacks and templates",
            "packer template that is not JSON",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["template.json", "JSON", "line 1"],
            |f| {
                write(f, "packer/template.json", b"{ \"variables\": nope }\n");
                f.write_config(&FLEET_TOML.replace("{repo}/tests/standin/packer/template.json", "packer/template.json"));
            },
        ),
        case(
            "stacks and templates",
            "stack file that is not HCL",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["vpc/main.tf", "HCL"],
            |f| {
                let tf = f.path().join("stacks");
                copy_tree(&common::repo().join("tests/standin/terraform"), &tf);
                std::fs::write(tf.join("vpc/main.tf"), "variable \"x\" {\n").unwrap();
                f.write_config(&FLEET_TOML.replace("{repo}/tests/standin/terraform", "stacks"));
            },
        ),
        case(
            "stacks and templates",
            "a sensitive input also set in the stack's terraform.tfvars",
            &["deploy", "acme", "--auto-approve"],
            2,
            &[
                "frontends/production/terraform.tfvars",
                "`db_instance_class`",
                "TF_VAR_db_instance_class",
                "would be silently ignored",
                "customers/acme.toml:3",
                "remove `db_instance_class` from terraform.tfvars",
            ],
            |f| {
                let tf = f.path().join("stacks");
                copy_tree(&common::repo().join("tests/standin/terraform"), &tf);
                std::fs::write(tf.join("frontends/production/terraform.tfvars"), "db_instance_class = \"db.t3.micro\"\n").unwrap();
                f.write_config(&FLEET_TOML.replace("{repo}/tests/standin/terraform", "stacks"));
                f.customer("acme", "git_id = \"v1\"\n[frontends.vars]\ndb_instance_class = \"db.r6g.large\"\n");
            },
        ),
        // ------------------------------------------------------------ tools and endpoints
        fleet_toml_in(
            "tools and endpoints",
            "missing tool",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["/nonexistent/bin/terraform", "[tools] terraform"],
            |t| t.replace("{tools}/terraform", "/nonexistent/bin/terraform"),
        ),
        fleet_toml_in(
            "tools and endpoints",
            "tool that is a directory",
            &["deploy", "acme", "--auto-approve"],
            2,
            &["[tools] aws", "/tmp"],
            |t| t.replace("{tools}/aws", "/tmp"),
        ),
        fleet_toml_in(
            "tools and endpoints",
            "unreachable endpoint",
            &["deploy", "acme", "--auto-approve"],
            1,
            &["nothing answers at http://127.0.0.1:9", "[aws] endpoint"],
            |t| t.replace("endpoint = \"{endpoint}\"", "endpoint = \"http://127.0.0.1:9\""),
        ),
        // ------------------------------------------------------------ the work directory
        case(
            "work directory",
            "read-only",
            &["deploy", "acme", "--auto-approve"],
            1,
            &["/.stamp/", "Operation not permitted", "writable work directory"],
            |f| {
                read_only(&f.path().join(".stamp"));
            },
        ),
        case("work directory", "locked by another run: render", &["render", "acme"], 2, &[".stamp/acme/.lock", "another stamp run"], |f| {
            hold_lock(f);
        }),
        case(
            "work directory",
            "locked by another run: deploy",
            &["deploy", "acme", "--auto-approve"],
            2,
            &[".stamp/acme/.lock", "another stamp run"],
            |f| {
                hold_lock(f);
            },
        ),
    ];
    c.sort_by_key(|c| c.category);
    c
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

thread_local! {
    /// Held locks and read-only directories, undone after each case.
    static UNDO: std::cell::RefCell<Vec<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Another run's lock on acme's work directory, held until the case is over.
fn hold_lock(f: &Fleet) {
    let dir = f.path().join(".stamp/acme");
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(".lock")).unwrap();
    file.try_lock().unwrap();
    UNDO.with(|u| u.borrow_mut().push(Box::new(move || drop(file))));
}

/// A directory nothing can be created in, even by root (the immutable attribute);
/// writable again after the case.
fn read_only(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let dir = dir.to_path_buf();
    if root {
        let ok = std::process::Command::new("chattr").arg("+i").arg(&dir).status().is_ok_and(|s| s.success());
        assert!(ok, "chattr +i {} failed: the read-only case needs it when run as root", dir.display());
        UNDO.with(|u| {
            u.borrow_mut().push(Box::new(move || {
                let _ = std::process::Command::new("chattr").arg("-i").arg(&dir).status();
            }))
        });
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        UNDO.with(|u| {
            u.borrow_mut().push(Box::new(move || {
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
            }))
        });
    }
}

/// Everything in the fleet directory but `.stamp/`: path -> (size, modified).
fn tree(root: &Path) -> BTreeMap<PathBuf, (u64, Option<SystemTime>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u64, Option<SystemTime>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".stamp") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            out.insert(rel, (meta.len(), meta.modified().ok()));
            if meta.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// What the emulator holds that stamp could have created: buckets, VPCs that are not
/// the default one, images and instances of the account.
fn aws_things(endpoint: &str) -> Vec<String> {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET /moto-api/data.json HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    let at = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let v: serde_json::Value = serde_json::from_slice(&body[at..]).unwrap();
    let mut things = Vec::new();
    let list = |svc: &str, model: &str| v[svc][model].as_array().cloned().unwrap_or_default();
    things.extend(list("s3", "FakeBucket").iter().map(|b| format!("bucket {}", b["name"])));
    things.extend(list("ec2", "VPC").iter().filter(|x| x["is_default"] != true).map(|x| format!("vpc {}", x["id"])));
    things.extend(list("ec2", "Ami").iter().filter(|x| x["owner_id"] == "123456789012").map(|x| format!("image {}", x["id"])));
    things.extend(list("ec2", "Instance").iter().map(|x| format!("instance {}", x["id"])));
    things
}

/// Empties the emulator (moto's reset API), so one case's leftovers cannot hide the next one's.
fn reset(endpoint: &str) {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "POST /moto-api/reset HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"), "moto reset: {out}");
}

#[test]
fn bad_input_corpus() {
    let emu = Emulator::start();
    let cases = cases();
    let mut failures = Vec::new();
    let mut tried = 0;
    for c in &cases {
        tried += 1;
        let fleet = Fleet::new(&emu);
        fleet.customer("acme", "git_id = \"v1\"\n");
        (c.setup)(&fleet);
        let before_files = tree(fleet.path());
        let before_aws = aws_things(&emu.url);
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let mut cmd = fleet.stamp_cmd(&args);
        cmd.envs(c.env.iter().copied());
        let run = common::Run::from(cmd.output().expect("run stamp"), &args);
        UNDO.with(|u| u.borrow_mut().drain(..).for_each(|f| f()));
        let mut wrong = Vec::new();
        if run.code != c.code {
            wrong.push(format!("exited {} (expected {})", run.code, c.code));
        }
        let lacks: Vec<&String> = c.says.iter().filter(|s| !run.stderr.contains(s.as_str())).collect();
        if !lacks.is_empty() {
            wrong.push(format!("stderr lacks {lacks:?}"));
        }
        let after_aws = aws_things(&emu.url);
        let created: Vec<&String> = after_aws.iter().filter(|t| !before_aws.contains(t)).collect();
        if !created.is_empty() {
            wrong.push(format!("created in AWS: {created:?}"));
            reset(&emu.url);
        }
        let after_files = tree(fleet.path());
        let changed: Vec<&PathBuf> =
            after_files.keys().chain(before_files.keys()).filter(|k| before_files.get(*k) != after_files.get(*k)).collect();
        if !changed.is_empty() {
            wrong.push(format!("wrote outside the work directory: {changed:?}"));
        }
        if wrong.is_empty() {
            eprintln!("ok   {}: {}", c.category, c.name);
        } else {
            eprintln!("FAIL {}: {}: {}\n--- stderr of stamp {}\n{}", c.category, c.name, wrong.join("; "), run.args, run.stderr);
            failures.push(format!("{}: {}", c.category, c.name));
        }
    }
    let passed = tried - failures.len();
    eprintln!("bad input: {tried} cases, {passed} passed");
    println!("bad input: {tried} cases, {passed} passed");
    assert!(tried >= 40, "the corpus has {tried} cases; keep at least 40");
    assert!(failures.is_empty(), "{} cases failed:\n  {}", failures.len(), failures.join("\n  "));
}
