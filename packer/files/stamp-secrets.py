#!/usr/bin/env python3
"""Boot-time helper for the stamp frontends (called by the instance user data).

  stamp-secrets env-file   write /etc/stamp/app.env from Secrets Manager
  stamp-secrets claim      take the once-per-revision migration lock (SSM)
  stamp-secrets release    mark the migration of a revision done (or failed)

Uses the instance profile through IMDSv2 (boto3 does this by default). Secrets
are only ever written to the environment file, mode 0400, owned by the app user.
"""
import argparse
import grp
import json
import os
import pwd
import secrets
import sys
import tempfile
import time

import boto3
from botocore.exceptions import ClientError

# Same token from every instance: the first PutSecretValue creates the version,
# every later one with a different value fails with ResourceExistsException and
# that instance reads the winner's value instead. No race, no value in Terraform.
SECRET_KEY_BASE_TOKEN = "stamp-secret-key-base-initial-version-0001"


def quote(value):
    for char in ("\\", '"', "`", "$"):
        value = value.replace(char, "\\" + char)
    return value


def secret_key_base(sm, arn):
    try:
        return sm.get_secret_value(SecretId=arn)["SecretString"]
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    try:
        sm.put_secret_value(SecretId=arn, SecretString=secrets.token_hex(64),
                            ClientRequestToken=SECRET_KEY_BASE_TOKEN)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceExistsException":
            raise
    return sm.get_secret_value(SecretId=arn)["SecretString"]


def env_file(args):
    sm = boto3.client("secretsmanager", region_name=args.region)
    db = json.loads(sm.get_secret_value(SecretId=args.db_secret_arn)["SecretString"])
    values = {
        "DATABASE_HOST": args.db_host,
        "DATABASE_PORT": str(args.db_port),
        "DATABASE_NAME": args.db_name,
        "DATABASE_USERNAME": db["username"],
        "DATABASE_PASSWORD": db["password"],
        "SECRET_KEY_BASE": secret_key_base(sm, args.secret_key_base_arn),
    }
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            sys.exit(f"stamp-secrets: refusing to write {key}: it contains a line break")
    # Double-quoted with \ " ` $ escaped: read the same by systemd's
    # EnvironmentFile= and by a shell.
    body = "".join(f'{k}="{quote(v)}"\n' for k, v in values.items())
    uid = pwd.getpwnam(args.owner).pw_uid
    gid = grp.getgrnam(args.owner).gr_gid
    directory = os.path.dirname(args.out)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".app.env.")
    try:
        os.fchmod(fd, 0o400)
        os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise


def claim(args):
    """Exit 0: this instance must migrate. Exit 3: already migrated."""
    ssm = boto3.client("ssm", region_name=args.region)
    me = f"running {args.instance_id} {int(time.time())}"
    deadline = time.time() + args.wait
    while True:
        try:
            ssm.put_parameter(Name=args.name, Value=me, Type="String", Overwrite=False)
            return 0
        except ClientError as err:
            if err.response["Error"]["Code"] != "ParameterAlreadyExists":
                raise
        value = ssm.get_parameter(Name=args.name)["Parameter"]["Value"]
        if value == "done":
            return 3
        parts = value.split()
        started = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else 0
        if time.time() - started > args.stale:
            # The holder died (or failed) mid-migration: take over.
            ssm.put_parameter(Name=args.name, Value=me, Type="String", Overwrite=True)
            return 0
        if time.time() > deadline:
            sys.exit(f"stamp-secrets: still waiting for '{value}' on {args.name}")
        time.sleep(10)


def release(args):
    ssm = boto3.client("ssm", region_name=args.region)
    ssm.put_parameter(Name=args.name, Value=args.value, Type="String", Overwrite=True)
    return 0


def main():
    parser = argparse.ArgumentParser(prog="stamp-secrets")
    parser.add_argument("--region", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("env-file")
    p.add_argument("--db-secret-arn", required=True)
    p.add_argument("--db-host", required=True)
    p.add_argument("--db-port", required=True, type=int)
    p.add_argument("--db-name", required=True)
    p.add_argument("--secret-key-base-arn", required=True)
    p.add_argument("--out", default="/etc/stamp/app.env")
    p.add_argument("--owner", default="app")
    p.set_defaults(func=env_file)
    p = sub.add_parser("claim")
    p.add_argument("--name", required=True)
    p.add_argument("--instance-id", required=True)
    p.add_argument("--wait", type=int, default=1800)
    p.add_argument("--stale", type=int, default=3600)
    p.set_defaults(func=claim)
    p = sub.add_parser("release")
    p.add_argument("--name", required=True)
    # Anything but "done" (e.g. "failed <instance>") lets the next instance retry.
    p.add_argument("--value", default="done")
    p.set_defaults(func=release)
    args = parser.parse_args()
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
