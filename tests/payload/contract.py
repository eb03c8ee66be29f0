#!/usr/bin/env python3
"""Print the interface of a Terraform stack directory as JSON.

    python tests/payload/contract.py DIR
    -> {"variables": [sorted names], "outputs": [sorted names]}

Reads every *.tf file directly in DIR (not in subdirectories) with python-hcl2,
so it needs no provider and no `terraform init`. Exits 1 on a parse error.
"""
import json
import pathlib
import sys

import hcl2


def names(blocks):
    found = []
    for block in blocks or []:
        for name in block:
            if not name.startswith("__"):  # parser bookkeeping (__start_line__ ...)
                found.append(name.strip('"'))
    return found


def interface(directory):
    variables, outputs = [], []
    for path in sorted(pathlib.Path(directory).glob("*.tf")):
        with open(path, encoding="utf-8") as handle:
            try:
                doc = hcl2.load(handle)
            except Exception as err:  # hcl2 raises lark errors of several kinds
                raise SystemExit(f"contract.py: cannot parse {path}: {err}")
        variables += names(doc.get("variable"))
        outputs += names(doc.get("output"))
    return {"variables": sorted(variables), "outputs": sorted(outputs)}


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if not pathlib.Path(argv[1]).is_dir():
        print(f"contract.py: {argv[1]} is not a directory", file=sys.stderr)
        return 2
    print(json.dumps(interface(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
