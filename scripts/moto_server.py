#!/usr/bin/env python3
"""stamp's emulated AWS: moto 5.2.1's `moto_server`, with a few small fixes.

Usage (the same command line as moto's `moto_server` console script):

    .tools/venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p PORT

moto 5.2.1 reads back some values differently from AWS. With the real
Terraform stacks (terraform/frontends/*) the second `terraform plan` of an
unchanged customer then shows updates that AWS would never show, and one of
them (a new launch template version) starts an instance refresh, an API moto
does not implement: the provider then retries HTTP 500s for 15-30 minutes.
Each patch below restores the AWS behaviour on one point and wraps exactly one
moto function (or adds a missing action); nothing else changes. A patch says
which moto defect it fixes, what AWS does, and which moto function it wraps.

The launcher refuses to start when the installed moto is not 5.2.1 or when a
function it patches is missing (or an action it adds already exists), so a
moto upgrade cannot silently drop or shadow a patch: re-check each patch
against the new moto, then update MOTO_VERSION.

MOTO_IAM_LOAD_MANAGED_POLICIES defaults to true: the real stacks attach
AWS-managed IAM policies (AmazonSSMManagedInstanceCore,
AmazonRDSEnhancedMonitoringRole), which moto knows only when told to load them.
"""

import functools
import json
import os
import sys
import threading

MOTO_VERSION = "5.2.1"

# Read by moto when an IAM backend is created; set before moto is imported.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")


def die(message: str) -> None:
    print(f"scripts/moto_server.py: {message}", file=sys.stderr)
    sys.exit(3)


try:
    import moto
except ImportError as err:
    die(f"cannot import moto ({err}); run scripts/setup-tools.sh and start this with .tools/venv/bin/python")

if getattr(moto, "__version__", None) != MOTO_VERSION:
    die(
        f"moto {getattr(moto, '__version__', '?')} is installed, but these patches were written "
        f"for moto {MOTO_VERSION}: re-check every patch in {__file__} against it, then update MOTO_VERSION"
    )

import moto.server  # noqa: E402
from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError  # noqa: E402
from moto.autoscaling.models import AutoScalingBackend  # noqa: E402
from moto.autoscaling.responses import AutoScalingResponse  # noqa: E402
from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.core.utils import utcnow  # noqa: E402
from moto.ec2.models import EC2Backend  # noqa: E402
from moto.ec2.models.launch_templates import LaunchTemplateBackend  # noqa: E402
from moto.ec2.models.security_groups import SecurityGroupRule  # noqa: E402
from moto.moto_api._internal import mock_random  # noqa: E402
from moto.rds.models import DBInstance, DBParameterGroup  # noqa: E402
from moto.iam.access_control import IAMPolicyStatement, PermissionResult  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: E402
from moto.s3.models import FakeBucket  # noqa: E402
from moto.s3.responses import S3Response  # noqa: E402


def original(owner: type, name: str):
    """The moto function `owner.name` that a patch wraps; refuse to start if moto no longer has it."""
    value = owner.__dict__.get(name)
    if value is None:
        die(f"moto {MOTO_VERSION} should define {owner.__module__}.{owner.__qualname__}.{name}, which a patch wraps")
    return value


def absent(owner: type, name: str) -> None:
    """Refuse to start if moto now implements an action that a patch adds."""
    if hasattr(owner, name):
        die(f"moto now implements {owner.__module__}.{owner.__qualname__}.{name}; drop the patch that adds it")


# --- 1. EC2 DescribeSecurityGroupRules: Description of group-referencing rules ---------------
# Defect: for a rule whose source is another security group (ReferencedGroupInfo), moto keeps
#   the rule's description in `source_group`, but SecurityGroupRule.description reads only
#   `ip_range`, so DescribeSecurityGroupRules returns no Description for such rules.
# AWS: returns the Description of every rule, whatever its source.
# Patch: the property moto.ec2.models.security_groups.SecurityGroupRule.description falls back
#   to the source group's Description. A Description set later by ModifySecurityGroupRules,
#   which moto stores in `ip_range`, still wins.
_sg_rule_description = original(SecurityGroupRule, "description")


def _sg_rule_description_fixed(self):
    return self.ip_range.get("Description", self.source_group.get("Description"))


SecurityGroupRule.description = property(_sg_rule_description_fixed, doc=_sg_rule_description.__doc__)


# --- 2. RDS CreateDBInstance: MonitoringInterval / MonitoringRoleArn, unique DbiResourceId ------
# Defects: (a) moto.rds.models.DBInstance.__init__ drops MonitoringInterval and MonitoringRoleArn,
#   so DescribeDBInstances omits them until a ModifyDBInstance sets them (the next apply then waits
#   80 s in the provider's modify waiter). (b) It gives every DB instance the same DbiResourceId
#   "db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U"; the provider reads a DB instance by the filter
#   dbi-resource-id, so with two DB instances on one server it finds two and fails
#   ("couldn't find resource").
# AWS: DescribeDBInstances returns the MonitoringInterval and MonitoringRoleArn that were
#   requested, and each DB instance has its own DbiResourceId ("db-" + 26 upper-case letters
#   and digits), kept for its lifetime.
# Patch: wraps DBInstance.__init__; after it, sets the two monitoring fields when the request
#   has them, and a random DbiResourceId (moto's seedable random).
_db_instance_init = original(DBInstance, "__init__")


@functools.wraps(_db_instance_init)
def _db_instance_init_fixed(self, *args, **kwargs):
    _db_instance_init(self, *args, **kwargs)
    for key in ("monitoring_interval", "monitoring_role_arn"):
        if kwargs.get(key) is not None:
            setattr(self, key, kwargs[key])
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    self.dbi_resource_id = "db-" + "".join(mock_random.choice(alphabet) for _ in range(26))


DBInstance.__init__ = _db_instance_init_fixed


# --- 3. RDS DescribeDBParameters: Source of user-set parameters ------------------------------
# Defect: ModifyDBParameterGroup stores the parameters as sent, so DescribeDBParameters returns
#   them without a Source field. The provider keeps only parameters with a Source, so it reads
#   an empty set and plans the parameter blocks again on every run.
# AWS: a parameter set through ModifyDBParameterGroup has Source "user".
# Patch: wraps moto.rds.models.DBParameterGroup.update_parameters (which ModifyDBParameterGroup
#   calls); each parameter it sets gets Source "user".
_update_parameters = original(DBParameterGroup, "update_parameters")


@functools.wraps(_update_parameters)
def _update_parameters_fixed(self, new_parameters):
    new_parameters = list(new_parameters)
    _update_parameters(self, new_parameters)
    for parameter in new_parameters:
        self.parameters[parameter["ParameterName"]]["Source"] = "user"


DBParameterGroup.update_parameters = _update_parameters_fixed


# --- 4. EC2 CreateLaunchTemplate: the template's own tags leak into version 1 ----------------
# Defect: moto.ec2.responses.launch_templates.LaunchTemplates.create_launch_template appends the
#   request's top-level TagSpecifications (ResourceType "launch-template": the tags of the
#   template itself) to LaunchTemplateData.TagSpecifications of version 1. Version 1 then reads
#   back with one tag specification more than configured, the next plan makes version 2, and the
#   auto-scaling group's launch_template.version change starts an instance refresh.
# AWS: the template's own tags stay on the template; version 1's LaunchTemplateData holds the
#   TagSpecifications of the request's LaunchTemplateData only ("launch-template" is not even a
#   valid ResourceType there).
# Patch: wraps moto.ec2.models.launch_templates.LaunchTemplateBackend.create_launch_template,
#   which receives the data after that append, and removes exactly the appended entries again.
_create_launch_template = original(LaunchTemplateBackend, "create_launch_template")
if EC2Backend.create_launch_template is not _create_launch_template:
    die("moto.ec2.models.EC2Backend no longer inherits create_launch_template from LaunchTemplateBackend")


@functools.wraps(_create_launch_template)
def _create_launch_template_fixed(self, name, description, template_data, tag_spec):
    specs = template_data.get("TagSpecifications") if isinstance(template_data, dict) else None
    if tag_spec and specs:
        appended = [
            {"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            for resource_type, tags in tag_spec.items()
        ]
        if specs[-len(appended) :] == appended:
            del specs[-len(appended) :]
            if not specs:
                del template_data["TagSpecifications"]
    return _create_launch_template(self, name, description, template_data, tag_spec)


LaunchTemplateBackend.create_launch_template = _create_launch_template_fixed


# --- 5. Auto Scaling CreateAutoScalingGroup / UpdateAutoScalingGroup: DefaultInstanceWarmup ---
# Defect: moto.autoscaling.responses.AutoScalingResponse.{create,update}_auto_scaling_group do
#   not pass DefaultInstanceWarmup on, so DescribeAutoScalingGroups never returns it and every
#   plan sets it again.
# AWS: stores DefaultInstanceWarmup and returns it; on update, -1 removes it.
# Patch: wraps both response methods; after them, stores the parameter on the group.
def _with_default_instance_warmup(name):
    wrapped = original(AutoScalingResponse, name)

    @functools.wraps(wrapped)
    def fixed(self):
        result = wrapped(self)
        warmup = self._get_int_param("DefaultInstanceWarmup")
        if warmup is not None:
            group = self.autoscaling_backend.autoscaling_groups[self._get_param("AutoScalingGroupName")]
            group.default_instance_warmup = None if warmup < 0 else warmup
        return result

    setattr(AutoScalingResponse, name, fixed)


_with_default_instance_warmup("create_auto_scaling_group")
_with_default_instance_warmup("update_auto_scaling_group")


# --- 6. Auto Scaling scaling policies: names are per group, not per region ----------------
# Defect: moto.autoscaling.models.AutoScalingBackend.put_scaling_policy keys the region's
#   policies by PolicyName alone, and DeletePolicy / ExecutePolicy look them up by PolicyName
#   alone. Two groups with a policy of the same name (every customer's "cpu-target-60") share
#   one entry: the second customer's PutScalingPolicy replaces the first customer's policy,
#   whose next plan creates it again, and deleting either deletes the other's.
# AWS: a policy name is unique within its Auto Scaling group; DeletePolicy and ExecutePolicy
#   take AutoScalingGroupName with PolicyName (a name or an ARN).
# Patch: wraps that backend method to store the policy under (group name, policy name), and the
#   response methods AutoScalingResponse.delete_policy / execute_policy to pass that key to the
#   backend (whose delete_policy / execute_policy just use the key they are given).
_backend_put_scaling_policy = original(AutoScalingBackend, "put_scaling_policy")


@functools.wraps(_backend_put_scaling_policy)
def _backend_put_scaling_policy_fixed(self, name, *args, **kwargs):
    policy = _backend_put_scaling_policy(self, name, *args, **kwargs)
    if self.policies.get(name) is policy:
        del self.policies[name]
    self.policies[(policy.auto_scaling_group_name, policy.name)] = policy
    return policy


AutoScalingBackend.put_scaling_policy = _backend_put_scaling_policy_fixed


def _policy_key(response):
    name = response._get_param("PolicyName")
    group = response._get_param("AutoScalingGroupName")
    for key, policy in response.autoscaling_backend.policies.items():
        if name in (policy.name, policy.arn) and group in (None, policy.auto_scaling_group_name):
            return key
    return (group, name)  # unknown: moto's delete ignores it, execute fails as before


def _by_policy_key(action):
    wrapped = original(AutoScalingResponse, action)
    backend_method = original(AutoScalingBackend, action)

    @functools.wraps(wrapped)
    def fixed(self):
        backend_method(self.autoscaling_backend, _policy_key(self))
        return EmptyResult()

    setattr(AutoScalingResponse, action, fixed)


_by_policy_key("delete_policy")
_by_policy_key("execute_policy")


# --- 7. Auto Scaling PutScalingPolicy: Enabled, no empty PredictiveScalingConfiguration -------
# Defect: moto.autoscaling.responses.AutoScalingResponse.put_scaling_policy ignores Enabled, so
#   DescribePolicies has no Enabled (read as false), and it stores an empty
#   PredictiveScalingConfiguration for every policy, which DescribePolicies returns as an empty
#   block. Every plan then updates the policy.
# AWS: Enabled is stored (default true) and returned; PredictiveScalingConfiguration is returned
#   only when one was set (predictive scaling policies).
# Patch: wraps that response method; after it, sets `enabled` on the stored policy and drops an
#   empty predictive scaling configuration. (The stored policy is found under patch 6's key.)
_put_scaling_policy = original(AutoScalingResponse, "put_scaling_policy")


@functools.wraps(_put_scaling_policy)
def _put_scaling_policy_fixed(self):
    result = _put_scaling_policy(self)
    key = (self._get_param("AutoScalingGroupName"), self._get_param("PolicyName"))
    policy = self.autoscaling_backend.policies[key]
    policy.enabled = self._get_bool_param("Enabled", True)
    if not policy.predictive_scaling_configuration:
        policy.predictive_scaling_configuration = None
    return result


AutoScalingResponse.put_scaling_policy = _put_scaling_policy_fixed


# --- 8. Auto Scaling Start/Describe/CancelInstanceRefresh: missing actions -------------------
# Defect: moto 5.2.1 implements none of them (moto.autoscaling has no instance refresh at all):
#   the server answers HTTP 500 "not implemented", which the AWS SDK retries, so a Terraform
#   update that starts an instance refresh (a new launch template version) hangs for 15-30 min.
# AWS: StartInstanceRefresh returns an InstanceRefreshId (InstanceRefreshInProgress if one is
#   still running), DescribeInstanceRefreshes lists the group's refreshes newest first,
#   CancelInstanceRefresh cancels the running one (ActiveInstanceRefreshNotFound if none).
#   Terraform only starts a refresh (and cancels a running one first); it never waits for it.
# Patch: adds the three actions to AutoScalingResponse. A refresh completes at once (Status
#   "Successful", 100 %): moto's instances are not real, so there is nothing to replace. The
#   refreshes are kept on the group and vanish with it.
for _action in ("start_instance_refresh", "describe_instance_refreshes", "cancel_instance_refresh"):
    absent(AutoScalingResponse, _action)


class _ActiveInstanceRefreshNotFound(AutoscalingClientError):
    code = "ActiveInstanceRefreshNotFound"


def _refresh_group(response):
    name = response._get_param("AutoScalingGroupName")
    group = response.autoscaling_backend.autoscaling_groups.get(name)
    if group is None:
        raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup '{name}' not found")
    return group


def _start_instance_refresh(self):
    group = _refresh_group(self)
    now = utcnow()
    refresh = {
        "InstanceRefreshId": str(mock_random.uuid4()),
        "AutoScalingGroupName": group.name,
        "Status": "Successful",
        "StartTime": now,
        "EndTime": now,
        "PercentageComplete": 100,
        "InstancesToUpdate": 0,
        "Strategy": self._get_param("Strategy") or "Rolling",
    }
    group.__dict__.setdefault("stamp_instance_refreshes", []).insert(0, refresh)
    return ActionResult({"InstanceRefreshId": refresh["InstanceRefreshId"]})


def _describe_instance_refreshes(self):
    group = _refresh_group(self)
    ids = self._get_param("InstanceRefreshIds") or []
    refreshes = [
        r for r in group.__dict__.get("stamp_instance_refreshes", []) if not ids or r["InstanceRefreshId"] in ids
    ]
    return ActionResult({"InstanceRefreshes": refreshes})


def _cancel_instance_refresh(self):
    group = _refresh_group(self)
    # Refreshes complete when they start, so none is ever InProgress.
    raise _ActiveInstanceRefreshNotFound(f"No in progress or pending Instance Refresh found for Auto Scaling group {group.name}")


AutoScalingResponse.start_instance_refresh = _start_instance_refresh
AutoScalingResponse.describe_instance_refreshes = _describe_instance_refreshes
AutoScalingResponse.cancel_instance_refresh = _cancel_instance_refresh


# --- 9. S3 GetBucketVersioning: the wrong root element -----------------------------------------
# Defect: moto.s3.responses.S3Response.get_bucket_versioning serializes its answer with the root
#   element <GetBucketVersioningResponse>. The AWS CLI (botocore) ignores the root's name; the
#   AWS SDK for Rust, which stamp uses for its state buckets, rejects the answer ("invalid root,
#   expected VersioningConfiguration").
# AWS: the root element is <VersioningConfiguration> (with <Status> once versioning was set).
# Patch: wraps that response method and renames the root element of its body.
_get_bucket_versioning = original(S3Response, "get_bucket_versioning")


@functools.wraps(_get_bucket_versioning)
def _get_bucket_versioning_fixed(self):
    status, headers, body = _get_bucket_versioning(self)
    if isinstance(body, bytes):
        body = body.replace(b"GetBucketVersioningResponse", b"VersioningConfiguration")
    else:
        body = body.replace("GetBucketVersioningResponse", "VersioningConfiguration")
    return status, headers, body


S3Response.get_bucket_versioning = _get_bucket_versioning_fixed



# --- 10. S3 bucket policies: conditions on aws:SecureTransport ---------------------------------
# Defect: moto.s3.models.FakeBucket.get_permission evaluates a bucket policy without its
#   conditions (moto's condition code knows only StringEquals and treats any other operator as
#   met). The standard TLS-only statement (Deny s3:* when Bool aws:SecureTransport is "false")
#   then denies every request, over HTTPS too, so stamp's hardened state bucket could not be
#   used on the emulator.
# AWS: a statement applies only when its conditions hold; aws:SecureTransport is "true" for a
#   request that came over TLS.
# Patch: wraps DomainDispatcherApplication.__call__ to note, per request thread, whether the
#   request came over TLS, and wraps FakeBucket.get_permission to skip the statements whose
#   Bool/BoolIfExists conditions on aws:SecureTransport do not hold (other conditions are left to
#   moto, as before).
_REQUEST = threading.local()
_dispatch = original(DomainDispatcherApplication, "__call__")


@functools.wraps(_dispatch)
def _dispatch_noting_tls(self, environ, start_response):
    _REQUEST.secure = environ.get("wsgi.url_scheme") == "https"
    return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _dispatch_noting_tls
_get_permission = original(FakeBucket, "get_permission")


def _secure_transport_holds(statement) -> bool:
    secure = "true" if getattr(_REQUEST, "secure", False) else "false"
    for operator, keys in (statement.get("Condition") or {}).items():
        if operator not in ("Bool", "BoolIfExists"):
            continue
        for key, expected in keys.items():
            if key.lower() != "aws:securetransport":
                continue
            values = expected if isinstance(expected, list) else [expected]
            if secure not in [str(v).lower() for v in values]:
                return False
    return True


@functools.wraps(_get_permission)
def _get_permission_fixed(self, action, resource):
    if self.policy is None:
        return _get_permission(self, action, resource)
    document = json.loads(self.policy.decode())
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    permitted = False
    for statement in statements:
        if not _secure_transport_holds(statement):
            continue
        result = IAMPolicyStatement(statement).is_action_permitted(action, resource)
        if result == PermissionResult.DENIED:
            return result
        permitted = permitted or result == PermissionResult.PERMITTED
    return PermissionResult.PERMITTED if permitted else PermissionResult.NEUTRAL


FakeBucket.get_permission = _get_permission_fixed


# --- 11. S3 HeadBucket: another account's bucket answers 200 -------------------------------------
# Defect: moto.s3.responses.S3Response.head_bucket answers 200 for a bucket of any account (its
#   bucket names are global, as in AWS, but it checks no access), so a state bucket name that
#   another account owns looks like one's own.
# AWS: HeadBucket on a bucket of another account that grants no access answers 403.
# Patch: wraps that response method; a bucket whose owner is not the calling account answers
#   403 (moto tells accounts apart by the x-moto-account-id header or the access key).
_head_bucket = original(S3Response, "head_bucket")


@functools.wraps(_head_bucket)
def _head_bucket_fixed(self):
    status, headers, body = _head_bucket(self)
    if status == 200:
        bucket = self.backend.get_bucket(self.bucket_name)
        if getattr(bucket, "account_id", self.current_account) != self.current_account:
            return 403, {}, ""
    return status, headers, body


S3Response.head_bucket = _head_bucket_fixed

if __name__ == "__main__":
    # As moto's `moto_server` console script (moto.server:main) does.
    sys.exit(moto.server.main())
