#!/usr/bin/env python3
"""Runs a GitHub Actions job offline, step by step, the way the runner does, for
the tests of the shipped workflows (tests/ci_*.rs).

What it does as the runner does:
- a `run:` step's script, its `${{ }}` expressions substituted first, is written to
  a file and run as `bash --noprofile --norc -eo pipefail FILE` (`shell: bash`),
  `bash -e FILE` (no shell given) or `sh -e FILE`, in the workspace, with the env
  of the workflow, the job and the step, and GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH
  and GITHUB_STEP_SUMMARY files honoured between steps;
- `if:` (default `success()`), `continue-on-error`, `id` and `steps.<id>.outputs`,
  `outcome` and `conclusion`, job `outputs:`, `environment:` (the secrets given for
  that environment, and the repository's), `needs.<job>.result/outputs`;
- composite actions: a local one (`./`, or the action under test for
  `--action REPO=DIR`, e.g. `OWNER/stamp=<repo root>`), its inputs with their
  defaults, its own `steps` context, GITHUB_ACTION_PATH.
What it cannot do offline it replaces by what the action does, and says so in the
job's `replaced` list: actions/checkout (the workspace already is the checkout),
actions/upload-artifact and actions/download-artifact (a directory per artifact
under --state), hashicorp/setup-terraform and hashicorp/setup-packer (the
directories of --tool-dir put on PATH), aws-actions/configure-aws-credentials (the
--aws-env variables, the emulator's, written to GITHUB_ENV). Any other `uses:` is
an error.

Expressions: literals, contexts with `.name`, `['name']` and `.*`, `! == != < <= >
>= && ||`, parentheses, and the functions success, failure, cancelled, always,
contains, startsWith, endsWith, format, join, toJSON, fromJSON.

  gha_runner.py run-job --workflow FILE --job ID --workspace DIR --state DIR [opts]
      runs one job (one matrix entry); prints {"result", "outputs", "environment",
      "steps": [...], "summary", "replaced"} as JSON on stdout; step output on stderr.
  gha_runner.py matrix --workflow FILE --job ID --needs JSON ...
      prints the job's matrix entries (a JSON list; [] when the job would not run).
  gha_runner.py render-step --workflow FILE --job ID --step ID --out FILE [opts]
      writes the step's script as the runner would and prints {"argv", "env", "if"}.
Common options: --github JSON (github context overrides), --vars JSON,
--steps JSON (render-step: the steps context of the steps before it),
--secrets JSON ({"": repository secrets, "<environment>": its secrets}),
--matrix JSON, --needs JSON, --job-status success|failure|cancelled,
--aws-env JSON, --tool-dir DIR (repeatable), --action NAME=DIR (repeatable), --with NAME:INPUT=VALUE (an input of that action
set whatever the step says, e.g. a local download-url; repeatable),
--path DIR (prepended to PATH, repeatable), --env K=V and --unset K (the runner
machine's env).
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import yaml


# ------------------------------------------------------------------ expressions


class ExprError(Exception):
    pass


class ActionFailed(Exception):
    """An action stand-in failing its step, as the action would (a message, exit 1)."""


TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|0x[0-9a-fA-F]+)|(?P<str>'(?:[^']|'')*')"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[!<>().,\[\]*])|(?P<id>[A-Za-z_][A-Za-z0-9_-]*))"
)


def tokenize(text):
    out, i = [], 0
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = TOKEN.match(text, i)
        if not m or m.end() == i:
            raise ExprError(f"cannot read expression at {text[i:]!r}")
        i = m.end()
        if m.group("num") is not None:
            n = m.group("num")
            out.append(("lit", int(n, 16) if n.startswith("0x") else (float(n) if any(c in n for c in ".eE") else int(n))))
        elif m.group("str") is not None:
            out.append(("lit", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            word = m.group("id")
            lit = {"true": True, "false": False, "null": None}
            out.append(("lit", lit[word]) if word in lit else ("id", word))
    return out


def to_num(v):
    if v is None:
        return 0
    if isinstance(v, bool):
        return 1 if v else 0
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        s = v.strip()
        if s == "":
            return 0
        try:
            return int(s, 16) if s.lower().startswith("0x") else float(s)
        except ValueError:
            return float("nan")
    return float("nan")


def truthy(v):
    if isinstance(v, float) and v != v:
        return False
    return not (v is None or v is False or v == 0 or v == "")


def equal(a, b):
    # GitHub's coercion: same types compare directly (strings ignoring case),
    # different primitive types compare as numbers; objects by identity.
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    if type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool)):
        if isinstance(a, str):
            return a.lower() == b.lower()
        return a == b
    return to_num(a) == to_num(b)


def to_str(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v, indent=2)
    return str(v)


class Parser:
    def __init__(self, text, ctx):
        self.toks, self.i, self.ctx = tokenize(text), 0, ctx

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, op=None):
        t = self.peek()
        if op is not None and t != ("op", op):
            raise ExprError(f"expected {op!r}, found {t[1]!r}")
        self.i += 1
        return t

    def parse(self):
        v = self.or_()
        if self.i != len(self.toks):
            raise ExprError(f"unexpected {self.peek()[1]!r}")
        return v

    def or_(self):
        v = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            rhs = self.and_()
            v = v if truthy(v) else rhs
        return v

    def and_(self):
        v = self.cmp()
        while self.peek() == ("op", "&&"):
            self.take()
            rhs = self.cmp()
            v = rhs if truthy(v) else v
        return v

    def cmp(self):
        v = self.unary()
        while self.peek()[0] == "op" and self.peek()[1] in ("==", "!=", "<", "<=", ">", ">="):
            op = self.take()[1]
            rhs = self.unary()
            if op == "==":
                v = equal(v, rhs)
            elif op == "!=":
                v = not equal(v, rhs)
            else:
                a, b = (v.lower(), rhs.lower()) if isinstance(v, str) and isinstance(rhs, str) else (to_num(v), to_num(rhs))
                v = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        return v

    def unary(self):
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self):
        v = self.primary()
        while True:
            t = self.peek()
            if t == ("op", "."):
                self.take()
                name = self.take()
                if name == ("op", "*"):
                    v = [x for x in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else [])]
                    v = Star(v)
                    continue
                v = index(v, name[1])
            elif t == ("op", "["):
                self.take()
                key = self.or_()
                self.take("]")
                v = index(v, key)
            else:
                return v

    def primary(self):
        kind, val = self.take()
        if kind == "lit":
            return val
        if kind == "op" and val == "(":
            v = self.or_()
            self.take(")")
            return v
        if kind == "id":
            if self.peek() == ("op", "("):
                self.take()
                args = []
                if self.peek() != ("op", ")"):
                    args.append(self.or_())
                    while self.peek() == ("op", ","):
                        self.take()
                        args.append(self.or_())
                self.take(")")
                return call(val, args, self.ctx)
            if val not in self.ctx:
                raise ExprError(f"unknown context {val!r}")
            return self.ctx[val]
        raise ExprError(f"unexpected {val!r}")


class Star(list):
    """The result of `.*`: a following `.name` applies to each element."""


def index(v, key):
    if isinstance(v, Star):
        return Star([index(x, key) for x in v])
    if isinstance(v, dict):
        if isinstance(key, str):
            for k in v:
                if isinstance(k, str) and k.lower() == key.lower():
                    return v[k]
        return None
    if isinstance(v, list) and isinstance(key, (int, float)) and not isinstance(key, bool):
        k = int(key)
        return v[k] if 0 <= k < len(v) else None
    return None


def call(name, args, ctx):
    status = ctx.get("__status__", "success")
    n = name.lower()
    if n == "success":
        return status == "success"
    if n == "failure":
        return status == "failure"
    if n == "cancelled":
        return status == "cancelled"
    if n == "always":
        return True
    if n == "contains":
        hay, needle = args
        if isinstance(hay, list):
            return any(equal(x, needle) for x in hay)
        return to_str(needle).lower() in to_str(hay).lower()
    if n == "startswith":
        return to_str(args[0]).lower().startswith(to_str(args[1]).lower())
    if n == "endswith":
        return to_str(args[0]).lower().endswith(to_str(args[1]).lower())
    if n == "format":
        fmt, rest = to_str(args[0]), args[1:]
        return re.sub(r"\{(\d+)\}", lambda m: to_str(rest[int(m.group(1))]), fmt.replace("{{", "\0").replace("}}", "\1")).replace("\0", "{").replace("\1", "}")
    if n == "join":
        sep = to_str(args[1]) if len(args) > 1 else ","
        return sep.join(to_str(x) for x in args[0]) if isinstance(args[0], list) else to_str(args[0])
    if n == "tojson":
        return json.dumps(args[0], indent=2)
    if n == "fromjson":
        return json.loads(to_str(args[0]))
    raise ExprError(f"unknown function {name}()")


def evaluate(expr, ctx):
    return Parser(expr, ctx).parse()


def condition(text, ctx):
    """An `if:` value: with or without ${{ }}; status functions apply."""
    if text is None:
        text = "success()"
    if isinstance(text, bool):
        return text
    text = str(text).strip()
    m = re.fullmatch(r"\$\{\{((?:(?!\}\}).)*)\}\}", text, re.S)
    if m:
        text = m.group(1)
    if not re.search(r"\b(success|failure|cancelled|always)\s*\(", text):
        text = f"success() && ({text})"
    return truthy(evaluate(text, ctx))


def substitute(value, ctx):
    """Substitutes ${{ }} in a string (a whole-value expression keeps its type)."""
    if isinstance(value, dict):
        return {k: substitute(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, ctx) for v in value]
    if not isinstance(value, str):
        return value
    m = re.fullmatch(r"\s*\$\{\{((?:(?!\}\}).)*)\}\}\s*", value, re.S)
    if m:
        return evaluate(m.group(1), ctx)
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: to_str(evaluate(m.group(1), ctx)), value, flags=re.S)


def sub_str(value, ctx):
    return to_str(substitute(value, ctx))


# ------------------------------------------------------------------ the runner


def read_kv_file(path):
    """GITHUB_OUTPUT / GITHUB_ENV: `k=v` lines and `k<<DELIM` ... `DELIM` blocks."""
    out = {}
    if not os.path.exists(path):
        return out
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            body = []
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise SystemExit(f"{path}: no closing {delim!r} for {key}")
            i += 1
            out[key] = "\n".join(body)
        elif "=" in line:
            key, val = line.split("=", 1)
            out[key] = val
        else:
            raise SystemExit(f"{path}: invalid line {line!r}")
    return out


def shell_argv(shell, script):
    if shell is None:
        return ["bash", "-e", script]
    if shell == "bash":
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail", script]
    if shell == "sh":
        return ["sh", "-e", script]
    if "{0}" in shell:
        return [a.replace("{0}", script) for a in shell.split()]
    raise SystemExit(f"shell {shell!r} is not supported here")


class Job:
    def __init__(self, a, wf, job_id):
        self.a, self.wf, self.job_id = a, wf, job_id
        self.job = wf["jobs"][job_id]
        self.workspace = os.path.abspath(a.workspace)
        self.state = os.path.abspath(a.state)
        os.makedirs(self.state, exist_ok=True)
        self.temp = tempfile.mkdtemp(prefix="runner-temp-", dir=self.state)
        self.env_file = os.path.join(self.temp, "env")
        self.path_file = os.path.join(self.temp, "path")
        open(self.env_file, "w").close()
        open(self.path_file, "w").close()
        self.added_env, self.added_path = {}, []
        self.summary = []
        self.replaced = []
        self.status = "success"
        self.secrets = {}
        self.environment = None
        self.github = default_github(a, self.workspace)
        declared = self.job.get("needs") or []
        declared = [declared] if isinstance(declared, str) else declared
        unknown = set(declared) - set(a.needs_ctx)
        if unknown and a.command != "render-step":
            raise SystemExit(f"job {job_id} needs {sorted(unknown)}: give their results with --needs")
        # The needs context holds the jobs this one needs, and only those.
        self.needs = {k: v for k, v in a.needs_ctx.items() if k in declared}
        self.base_env = dict(os.environ)
        for kv in a.env or []:
            k, v = kv.split("=", 1)
            self.base_env[k] = v
        for k in a.unset or []:
            self.base_env.pop(k, None)

    # contexts -------------------------------------------------------------
    def contexts(self, steps, env, extra=None):
        ctx = {
            "github": self.github,
            "env": env,
            "vars": self.a.vars_ctx,
            "secrets": self.secrets,
            "matrix": self.a.matrix_ctx,
            "needs": self.needs,
            "steps": steps,
            "job": {"status": self.status},
            "runner": {"os": "Linux", "arch": "X64", "temp": self.temp, "tool_cache": os.path.join(self.state, "tool-cache"), "name": "offline"},
            "strategy": {"fail-fast": False, "job-index": 0, "job-total": 1, "max-parallel": 1},
            "inputs": self.a.inputs_ctx,
            "__status__": self.status,
        }
        ctx.update(extra or {})
        return ctx

    def run(self):
        a = self.a
        pre = self.contexts({}, {}, {"secrets": {}})
        if not condition(self.job.get("if"), dict(pre, __status__=needs_status(self.needs))):
            return {"result": "skipped", "outputs": {}, "steps": [], "summary": "", "replaced": [], "environment": None}
        envname = self.job.get("environment")
        if isinstance(envname, dict):
            envname = envname.get("name")
        envname = sub_str(envname, pre) if envname is not None else None
        self.environment = envname
        self.secrets = dict(a.secrets_by_env.get("", {}))
        if envname:
            self.secrets.update(a.secrets_by_env.get(envname, {}))
        self.secrets.setdefault("GITHUB_TOKEN", "offline-token")
        env = {}
        for layer in (self.wf.get("env") or {}, self.job.get("env") or {}):
            ctx = self.contexts({}, dict(env))
            for k, v in layer.items():
                env[k] = sub_str(v, ctx)
        self.wf_env = env
        defaults = ((self.wf.get("defaults") or {}).get("run") or {}).copy()
        defaults.update(((self.job.get("defaults") or {}).get("run") or {}))
        self.defaults = defaults
        steps_ctx = {}
        records = []
        for i, step in enumerate(self.job.get("steps") or []):
            rec = self.step(step, i, steps_ctx, self.wf_env, None)
            records.append(rec)
        outputs = {}
        ctx = self.contexts(steps_ctx, self.current_env(self.wf_env))
        for k, v in (self.job.get("outputs") or {}).items():
            outputs[k] = sub_str(v, ctx)
        return {
            "result": self.status,
            "outputs": outputs,
            "environment": envname,
            "steps": records,
            "summary": "".join(self.summary),
            "replaced": self.replaced,
        }

    def current_env(self, layer):
        env = dict(layer)
        env.update(self.added_env)
        return env

    def step(self, step, index, steps_ctx, env_layer, action):
        """One step of the job (action None) or of a composite action."""
        sid = step.get("id") or f"__{'a' if action else 'j'}{index}"
        status = self.status if action is None else action["status"]
        env_now = self.current_env(env_layer)
        extra = {"inputs": action["inputs"]} if action else {}
        if action:
            extra["github"] = dict(self.github, action_path=action["path"])
        ctx = self.contexts(steps_ctx, env_now, extra)
        ctx["__status__"] = status
        ctx["job"] = {"status": status}
        name = sub_str(step.get("name") or step.get("run") or step.get("uses") or sid, ctx).strip().split("\n")[0]
        run_it = condition(step.get("if"), ctx)
        rec = {"name": name, "id": step.get("id"), "outputs": {}}
        if not run_it:
            rec.update(outcome="skipped", conclusion="skipped")
            steps_ctx[sid] = {"outcome": "skipped", "conclusion": "skipped", "outputs": {}}
            return rec
        step_env = dict(env_now)
        for k, v in (step.get("env") or {}).items():
            step_env[k] = sub_str(v, dict(ctx, env=step_env))
        print(f"##[step] {name}", file=sys.stderr, flush=True)
        if "run" in step:
            ok, outputs = self.run_script(step, ctx, step_env, action)
        else:
            ok, outputs = self.uses(step, ctx, step_env, rec)
        outcome = "success" if ok else "failure"
        cont = truthy(substitute(step.get("continue-on-error", False), ctx))
        conclusion = "success" if (ok or cont) else "failure"
        rec.update(outcome=outcome, conclusion=conclusion, outputs=outputs)
        steps_ctx[sid] = {"outcome": outcome, "conclusion": conclusion, "outputs": outputs}
        if conclusion == "failure":
            if action is None:
                self.status = "failure"
            else:
                action["status"] = "failure"
        return rec

    def step_files(self):
        d = tempfile.mkdtemp(prefix="step-", dir=self.temp)
        files = {k: os.path.join(d, k) for k in ("output", "summary")}
        for f in files.values():
            open(f, "w").close()
        return files

    def process_env(self, step_env, files, action):
        env = dict(self.base_env)
        env.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": self.workspace,
                "GITHUB_REPOSITORY": self.github["repository"],
                "GITHUB_REPOSITORY_OWNER": self.github["repository_owner"],
                "GITHUB_SHA": self.github["sha"],
                "GITHUB_REF": self.github["ref"],
                "GITHUB_REF_NAME": self.github["ref_name"],
                "GITHUB_EVENT_NAME": self.github["event_name"],
                "GITHUB_RUN_ID": str(self.github["run_id"]),
                "GITHUB_RUN_ATTEMPT": str(self.github["run_attempt"]),
                "GITHUB_WORKFLOW": self.wf.get("name", ""),
                "GITHUB_WORKFLOW_REF": self.github["workflow_ref"],
                "GITHUB_JOB": self.job_id,
                "GITHUB_SERVER_URL": self.github["server_url"],
                "GITHUB_API_URL": self.github["api_url"],
                "GITHUB_OUTPUT": files["output"],
                "GITHUB_STEP_SUMMARY": files["summary"],
                "GITHUB_ENV": self.env_file,
                "GITHUB_PATH": self.path_file,
                "RUNNER_TEMP": self.temp,
                "RUNNER_OS": "Linux",
                "RUNNER_ARCH": "X64",
            }
        )
        if action:
            env["GITHUB_ACTION_PATH"] = action["path"]
            for k, v in action["inputs"].items():
                env["INPUT_" + k.upper().replace(" ", "_")] = to_str(v)
        env.update(step_env)
        env["PATH"] = os.pathsep.join(list(reversed(self.added_path)) + self.a.path + [env.get("PATH", os.defpath)])
        return env

    def after_step(self, files):
        outputs = read_kv_file(files["output"])
        added = read_kv_file(self.env_file)
        self.added_env.update(added)
        self.added_path = [line for line in open(self.path_file, encoding="utf-8").read().split("\n") if line.strip()]
        self.summary.append(open(files["summary"], encoding="utf-8").read())
        return outputs

    def run_script(self, step, ctx, step_env, action):
        files = self.step_files()
        script = os.path.join(os.path.dirname(files["output"]), f"{uuid.uuid4()}.sh")
        with open(script, "w", encoding="utf-8") as f:
            f.write(sub_str(step["run"], dict(ctx, env=step_env)))
        shell = step.get("shell") or (None if action else self.defaults.get("shell"))
        if action and not shell:
            raise SystemExit(f"a composite action's run step needs a shell: {step['run'][:60]!r}")
        wd = step.get("working-directory") or (None if action else self.defaults.get("working-directory"))
        cwd = os.path.join(self.workspace, sub_str(wd, ctx)) if wd else self.workspace
        env = self.process_env(step_env, files, action)
        code = subprocess.call(shell_argv(shell, script), cwd=cwd, env=env, stdout=sys.stderr, stdin=subprocess.DEVNULL)
        outputs = self.after_step(files)
        if code != 0:
            print(f"##[error]Process completed with exit code {code}.", file=sys.stderr, flush=True)
        return code == 0, outputs

    # uses -------------------------------------------------------------------
    def uses(self, step, ctx, step_env, rec):
        ref = step["uses"]
        with_ = {k: substitute(v, dict(ctx, env=step_env)) for k, v in (step.get("with") or {}).items()}
        name = ref.split("@")[0]
        local = None
        if ref.startswith("./"):
            local = os.path.join(self.workspace, ref[2:])
        elif name in self.a.actions:
            local = self.a.actions[name]
        if local is not None:
            for k, v in self.a.overrides.get(name, {}).items():
                with_[k] = v
                note = f"{ref}: input {k} given by the test: {v}"
                if note not in self.replaced:
                    self.replaced.append(note)
            return self.composite(local, with_, step_env, rec)
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise SystemExit(f"`uses: {ref}` cannot run offline and has no stand-in here")
        try:
            what = builtin(self, with_, step_env)
        except ActionFailed as e:
            print(f"##[error]{e}", file=sys.stderr, flush=True)
            self.replaced.append(f"{ref}: failed: {e}")
            rec["replaced"] = f"failed: {e}"
            return False, {}
        self.replaced.append(f"{ref}: {what}")
        rec["replaced"] = what
        return True, {}

    def composite(self, path, with_, step_env, rec):
        meta_file = next((os.path.join(path, f) for f in ("action.yml", "action.yaml") if os.path.exists(os.path.join(path, f))), None)
        if meta_file is None:
            raise SystemExit(f"no action.yml in {path}")
        meta = yaml.safe_load(open(meta_file, encoding="utf-8"))
        if meta["runs"]["using"] != "composite":
            raise SystemExit(f"{meta_file}: only composite actions run here")
        declared = meta.get("inputs") or {}
        unknown = set(with_) - set(declared)
        if unknown:
            raise SystemExit(f"{meta_file}: unexpected inputs {sorted(unknown)}")
        inputs = {}
        dctx = self.contexts({}, self.current_env(self.wf_env))
        for k, spec in declared.items():
            if k in with_:
                inputs[k] = to_str(with_[k])
            else:
                if (spec or {}).get("required") and "default" not in (spec or {}):
                    raise SystemExit(f"{meta_file}: input {k} is required")
                inputs[k] = sub_str((spec or {}).get("default", ""), dctx)
        action = {"path": os.path.abspath(path), "inputs": inputs, "status": "success"}
        steps_ctx = {}
        rec["steps"] = []
        # A composite's steps see the caller's env and the calling step's env.
        for i, s in enumerate(meta["runs"].get("steps") or []):
            rec["steps"].append(self.step(s, i, steps_ctx, step_env, action))
        outputs = {}
        octx = self.contexts(steps_ctx, self.current_env(step_env), {"inputs": inputs})
        for k, spec in (meta.get("outputs") or {}).items():
            outputs[k] = sub_str(spec.get("value", ""), octx)
        return action["status"] == "success", outputs


def builtin_checkout(job, with_, env):
    return "not run: the workspace is already the repository's copy (made by the test)"


def artifact_dir(job, name):
    return os.path.join(job.state, "artifacts", name)


def builtin_upload(job, with_, env):
    name = to_str(with_.get("name") or "artifact")
    dest = artifact_dir(job, name)
    if os.path.exists(dest):
        if not truthy(with_.get("overwrite", False)):
            raise ActionFailed(f"upload-artifact: an artifact named {name} already exists in this run (overwrite: false)")
        shutil.rmtree(dest)
    patterns = [p.strip() for p in to_str(with_.get("path", "")).split("\n") if p.strip() and not p.strip().startswith("!")]
    found = []
    for p in patterns:
        found.extend(glob.glob(os.path.join(job.workspace, p), recursive=True))
    if not found:
        if to_str(with_.get("if-no-files-found") or "warn") == "error":
            raise ActionFailed(f"upload-artifact: no files for {patterns}")
        return f"copied nothing (no files match {patterns}) into the run's artifact {name}"
    # The artifact's root, as upload-artifact computes it: the common ancestor of the
    # patterns' search paths (a pattern's part before its first wildcard; a file's
    # directory), not of the files found.
    files = []
    for f in found:
        if os.path.isdir(f):
            for root, _, names in os.walk(f):
                files.extend(os.path.join(root, n) for n in names)
        else:
            files.append(f)
    roots = []
    for p in patterns:
        parts = p.rstrip("/").split("/")
        literal = []
        for part in parts:
            if any(c in part for c in "*?["):
                break
            literal.append(part)
        path = os.path.join(job.workspace, *literal)
        roots.append(os.path.dirname(path) if len(literal) == len(parts) and os.path.isfile(path) else path)
    base = os.path.commonpath(roots)
    for f in files:
        target = os.path.join(dest, os.path.relpath(f, base))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(f, target)
    return f"copied {len(files)} file(s) into the run's artifact {name} (kept {with_.get('retention-days', 'the default')} day(s))"


def builtin_download(job, with_, env):
    name = to_str(with_.get("name"))
    src = artifact_dir(job, name)
    if not os.path.isdir(src):
        raise ActionFailed(f"download-artifact: no artifact {name} in this run")
    dest = os.path.join(job.workspace, to_str(with_.get("path") or "."))
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return f"copied the run's artifact {name} into {os.path.relpath(dest, job.workspace)}"


def builtin_tool(kind):
    def put_on_path(job, with_, env):
        for d in job.a.tool_dir:
            with open(job.path_file, "a", encoding="utf-8") as f:
                f.write(d + "\n")
        job.added_path = [line for line in open(job.path_file, encoding="utf-8").read().split("\n") if line.strip()]
        return f"not downloaded: the test's {kind} ({', '.join(job.a.tool_dir)}) put on PATH"

    return put_on_path


def builtin_credentials(job, with_, env):
    region = to_str(with_.get("aws-region"))
    values = dict(job.a.aws_env)
    values.update({"AWS_REGION": region, "AWS_DEFAULT_REGION": region})
    with open(job.env_file, "a", encoding="utf-8") as f:
        for k, v in values.items():
            f.write(f"{k}={v}\n")
    job.added_env.update(values)
    role = to_str(with_.get("role-to-assume"))
    return f"no OIDC here: the emulator's credentials and endpoint written to GITHUB_ENV instead of assuming {role or '(no role)'}"


BUILTINS = {
    "actions/checkout": builtin_checkout,
    "actions/upload-artifact": builtin_upload,
    "actions/download-artifact": builtin_download,
    "hashicorp/setup-terraform": builtin_tool("terraform"),
    "hashicorp/setup-packer": builtin_tool("packer"),
    "aws-actions/configure-aws-credentials": builtin_credentials,
}


def needs_status(needs):
    """The status a job's `if:` sees: success() only when every needed job succeeded
    (a skipped one makes it false, as failure() is), failure() when one failed."""
    results = [(n or {}).get("result", "success") for n in needs.values()]
    if "failure" in results:
        return "failure"
    if "cancelled" in results:
        return "cancelled"
    if any(r != "success" for r in results):
        return "skipped-dependency"
    return "success"


def default_github(a, workspace):
    g = {
        "repository": "OWNER/fleet",
        "repository_owner": "OWNER",
        "sha": "0" * 40,
        "ref": "refs/heads/main",
        "ref_name": "main",
        "base_ref": "",
        "head_ref": "",
        "event_name": "push",
        "event": {},
        "run_id": 1,
        "run_number": 1,
        "run_attempt": 1,
        "workflow": "",
        "workflow_ref": "OWNER/fleet/.github/workflows/deploy.yml@refs/heads/main",
        "workspace": workspace,
        "server_url": "https://github.com",
        "api_url": "https://api.github.com",
        "token": "offline-token",
        "actor": "offline",
        "action_path": "",
    }
    g.update(a.github_ctx)
    return g


def load_workflow(path):
    wf = yaml.safe_load(open(path, encoding="utf-8"))
    if True in wf:  # YAML 1.1 reads the key `on` as true
        wf["on"] = wf.pop(True)
    return wf


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["run-job", "matrix", "render-step"])
    ap.add_argument("--workflow", required=True)
    ap.add_argument("--job", required=True)
    ap.add_argument("--step")
    ap.add_argument("--out")
    ap.add_argument("--workspace", default=".")
    ap.add_argument("--state", default=None)
    ap.add_argument("--github", default="{}")
    ap.add_argument("--vars", default="{}")
    ap.add_argument("--secrets", default="{}")
    ap.add_argument("--inputs", default="{}")
    ap.add_argument("--matrix", default="{}")
    ap.add_argument("--needs", default="{}")
    ap.add_argument("--steps", default="{}")
    ap.add_argument("--job-status", default="success", choices=["success", "failure", "cancelled"])
    ap.add_argument("--aws-env", default="{}")
    ap.add_argument("--tool-dir", action="append", default=[])
    ap.add_argument("--action", action="append", default=[])
    ap.add_argument("--with", dest="with_", action="append", default=[])
    ap.add_argument("--path", action="append", default=[])
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--unset", action="append", default=[])
    a = ap.parse_args()
    a.github_ctx = json.loads(a.github)
    a.vars_ctx = json.loads(a.vars)
    a.secrets_by_env = json.loads(a.secrets)
    a.inputs_ctx = json.loads(a.inputs)
    a.matrix_ctx = json.loads(a.matrix)
    a.needs_ctx = json.loads(a.needs)
    a.aws_env = json.loads(a.aws_env)
    a.actions = dict(x.split("=", 1) for x in a.action)
    # ACTION:INPUT=VALUE: an input the test gives an action whatever the step says.
    a.overrides = {}
    for x in a.with_:
        target, kv = x.split(":", 1)
        k, v = kv.split("=", 1)
        a.overrides.setdefault(target, {})[k] = v
    a.state = a.state or tempfile.mkdtemp(prefix="gha-state-")
    wf = load_workflow(a.workflow)
    if a.job not in wf["jobs"]:
        raise SystemExit(f"{a.workflow}: no job {a.job}")

    if a.command == "matrix":
        job = wf["jobs"][a.job]
        job_obj = Job(a, wf, a.job)
        job_obj.secrets = {}
        ctx = job_obj.contexts({}, {})
        if not condition(job.get("if"), dict(ctx, __status__=needs_status(job_obj.needs))):
            print("[]")
            return
        m = substitute((job.get("strategy") or {}).get("matrix"), ctx)
        if m is None:
            print("[{}]")
            return
        if not isinstance(m, dict):
            raise SystemExit(f"matrix is not an object: {m!r}")
        include = m.get("include") or []
        keys = [k for k in m if k not in ("include", "exclude")]
        if keys:
            raise SystemExit("only include-lists are supported here")
        print(json.dumps(include))
        return

    if a.command == "render-step":
        job = Job(a, wf, a.job)
        job.status = a.job_status
        pre = job.contexts({}, {}, {"secrets": {}})
        envname = wf["jobs"][a.job].get("environment")
        envname = sub_str(envname, pre) if envname else None
        job.secrets = dict(a.secrets_by_env.get("", {}))
        if envname:
            job.secrets.update(a.secrets_by_env.get(envname, {}))
        env = {}
        for layer in (wf.get("env") or {}, wf["jobs"][a.job].get("env") or {}):
            ctx = job.contexts({}, dict(env))
            for k, v in layer.items():
                env[k] = sub_str(v, ctx)
        steps = wf["jobs"][a.job].get("steps") or []
        step = next((s for s in steps if s.get("id") == a.step), None)
        if step is None or "run" not in step:
            raise SystemExit(f"{a.workflow}: job {a.job} has no run step with id {a.step}")
        ctx = job.contexts(json.loads(a.steps), env)
        runs = condition(step.get("if"), ctx)
        step_env = dict(env)
        for k, v in (step.get("env") or {}).items():
            step_env[k] = sub_str(v, dict(ctx, env=step_env))
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(sub_str(step["run"], dict(ctx, env=step_env)))
        defaults = ((wf.get("defaults") or {}).get("run") or {}).copy()
        defaults.update(((wf["jobs"][a.job].get("defaults") or {}).get("run") or {}))
        shell = step.get("shell") or defaults.get("shell")
        print(json.dumps({"argv": shell_argv(shell, a.out), "env": step_env, "if": runs, "environment": envname}))
        return

    result = Job(a, wf, a.job).run()
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except ExprError as e:
        raise SystemExit(f"expression: {e}")
