"""Validates a stamp --json document (stdin) against docs/schema/<kind>.schema.json
(argv[1]) with JSON Schema draft 2020-12; relative $refs are the files beside it.
Prints every error with its path and exits 1 when there is one. With --check-schemas
DIR: checks that every *.schema.json in DIR is itself a valid 2020-12 schema.
Used by the tests (tests/common/mod.rs); the python of .tools/venv has jsonschema."""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource


def registry(directory):
    def retrieve(uri):
        return Resource.from_contents(json.loads((directory / uri).read_text()))

    return Registry(retrieve=retrieve)


def main():
    if sys.argv[1] == "--check-schemas":
        directory = pathlib.Path(sys.argv[2])
        bad = 0
        for path in sorted(directory.glob("*.schema.json")):
            schema = json.loads(path.read_text())
            try:
                Draft202012Validator.check_schema(schema)
            except Exception as e:  # noqa: BLE001 - any failure is reported the same way
                print(f"{path.name}: {e}")
                bad += 1
            if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
                print(f"{path.name}: $schema is not draft 2020-12")
                bad += 1
        sys.exit(1 if bad else 0)
    path = pathlib.Path(sys.argv[1])
    schema = json.loads(path.read_text())
    doc = json.load(sys.stdin)
    validator = Draft202012Validator(schema, registry=registry(path.parent))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        print(f"{where}: {e.message}")
    sys.exit(1 if errors else 0)


main()
