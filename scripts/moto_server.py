#!/usr/bin/env python3
"""stamp's emulated AWS: moto's `moto_server` (5.2.1 or newer), with a few small fixes.

Usage (the same command line as moto's `moto_server` console script):

    .tools/venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p PORT
    .tools/venv/bin/python scripts/moto_server.py --check   # which patches this moto needs

moto reads back some values differently from AWS. With the real Terraform stacks
(terraform/frontends/*) the second `terraform plan` of an unchanged customer then
shows updates that AWS would never show, and one of them (a new launch template
version) starts an instance refresh, an API moto 5.2.1 does not implement: the
provider then retries HTTP 500s for 15-30 minutes. Each patch below restores the AWS
behaviour on one point and wraps exactly one moto function (or adds a missing
action); nothing else changes. A patch says which moto defect it fixes, what AWS
does, and which moto function it wraps.

Each patch also has a probe: a few calls to the installed moto (through boto3 under
moto's in-process mock, in a process of its own) that show whether moto still has the
defect. A patch is applied only when its probe shows the defect; one that is no longer
needed says so at start ("patch 2 (...) is no longer needed with moto X"), to be
deleted once MOTO_MIN_VERSION has the fix. The verdicts depend only on the moto
version and this file, so they are kept (`~/.cache/stamp/moto-probes.json`) and probed
again when either changes. A probe that cannot run (moto changed its API)
counts as "still needed", and a needed patch whose moto function is gone refuses to
start, so a moto upgrade cannot silently drop or shadow a patch.

MOTO_IAM_LOAD_MANAGED_POLICIES defaults to true: the real stacks attach
AWS-managed IAM policies (AmazonSSMManagedInstanceCore,
AmazonRDSEnhancedMonitoringRole), which moto knows only when told to load them.
"""

import functools
import hashlib
import json
import os
import subprocess
import sys
import threading

# The oldest moto these patches and their probes were written against.
MOTO_MIN_VERSION = "5.2.1"

# Read by moto when an IAM backend is created; set before moto is imported.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")


def note(message: str) -> None:
    print(f"scripts/moto_server.py: {message}", file=sys.stderr)


def die(message: str) -> None:
    note(message)
    sys.exit(3)


def version_tuple(text: str) -> tuple:
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


try:
    import moto
except ImportError as err:
    die(f"cannot import moto ({err}); run scripts/setup-tools.sh and start this with .tools/venv/bin/python")

MOTO_VERSION = getattr(moto, "__version__", "0")
if version_tuple(MOTO_VERSION) < version_tuple(MOTO_MIN_VERSION):
    die(f"moto {MOTO_VERSION} is installed; these patches need moto {MOTO_MIN_VERSION} or newer (scripts/setup-tools.sh pins one)")


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


# (number, title, probe, apply): probe() is true while moto has the defect; apply() fixes it.
PATCHES = []


def patch(number, title: str, probe):
    def register(apply):
        PATCHES.append((number, title, probe, apply))
        return apply

    return register


REGION = "eu-west-1"


def client(service: str, account: str = ""):
    """A boto3 client for a probe (moto's in-process mock answers it); `account`: as
    another AWS account (moto's x-moto-account-id header)."""
    import boto3

    c = boto3.client(service, region_name=REGION, aws_access_key_id="probe", aws_secret_access_key="probe")
    if account:
        c.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__("x-moto-account-id", account))
    return c


# --- 1. EC2 DescribeSecurityGroupRules: Description of group-referencing rules ---------------
# Defect: for a rule whose source is another security group (ReferencedGroupInfo), moto keeps
#   the rule's description in `source_group`, but SecurityGroupRule.description reads only
#   `ip_range`, so DescribeSecurityGroupRules returns no Description for such rules.
# AWS: returns the Description of every rule, whatever its source.
# Patch: the property moto.ec2.models.security_groups.SecurityGroupRule.description falls back
#   to the source group's Description. A Description set later by ModifySecurityGroupRules,
#   which moto stores in `ip_range`, still wins.
def probe_1() -> bool:
    ec2 = client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    a = ec2.create_security_group(GroupName="probe-1a", Description="a", VpcId=vpc)["GroupId"]
    b = ec2.create_security_group(GroupName="probe-1b", Description="b", VpcId=vpc)["GroupId"]
    rule = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": b, "Description": "probe"}]}
    ec2.authorize_security_group_ingress(GroupId=a, IpPermissions=[rule])
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [a]}])["SecurityGroupRules"]
    return any(r.get("ReferencedGroupInfo") and r.get("Description") != "probe" for r in rules)


@patch(1, "EC2 DescribeSecurityGroupRules: Description of group-referencing rules", probe_1)
def apply_1():
    from moto.ec2.models.security_groups import SecurityGroupRule

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
# Patches 2a and 2b, one per defect (moto 5.2.3 fixed (a)): each wraps DBInstance.__init__;
#   after it, 2a sets the two monitoring fields when the request has them, 2b a random
#   DbiResourceId (moto's seedable random).
def probe_db_instances():
    """Two DB instances created with monitoring, as DescribeDBInstances returns them."""
    rds = client("rds")
    for name in ("probe-2a", "probe-2b"):
        if not any(d["DBInstanceIdentifier"] == name for d in rds.describe_db_instances()["DBInstances"]):
            rds.create_db_instance(
                DBInstanceIdentifier=name,
                Engine="postgres",
                DBInstanceClass="db.t3.micro",
                MasterUsername="probe",
                MasterUserPassword="probe-password",
                AllocatedStorage=20,
                MonitoringInterval=60,
                MonitoringRoleArn="arn:aws:iam::123456789012:role/probe",
            )
    return [d for d in rds.describe_db_instances()["DBInstances"] if d["DBInstanceIdentifier"].startswith("probe-2")]


def probe_2a() -> bool:
    return not all(d.get("MonitoringInterval") == 60 and d.get("MonitoringRoleArn") for d in probe_db_instances())


def probe_2b() -> bool:
    found = probe_db_instances()
    return len({d.get("DbiResourceId") for d in found}) != len(found)


@patch("2a", "RDS CreateDBInstance: MonitoringInterval / MonitoringRoleArn", probe_2a)
def apply_2a():
    from moto.rds.models import DBInstance

    _db_instance_init = original(DBInstance, "__init__")

    @functools.wraps(_db_instance_init)
    def _db_instance_init_fixed(self, *args, **kwargs):
        _db_instance_init(self, *args, **kwargs)
        for key in ("monitoring_interval", "monitoring_role_arn"):
            if kwargs.get(key) is not None:
                setattr(self, key, kwargs[key])

    DBInstance.__init__ = _db_instance_init_fixed


@patch("2b", "RDS CreateDBInstance: a DbiResourceId of its own for each DB instance", probe_2b)
def apply_2b():
    from moto.moto_api._internal import mock_random
    from moto.rds.models import DBInstance

    _db_instance_init = original(DBInstance, "__init__")

    @functools.wraps(_db_instance_init)
    def _db_instance_init_fixed(self, *args, **kwargs):
        _db_instance_init(self, *args, **kwargs)
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
def probe_3() -> bool:
    rds = client("rds")
    rds.create_db_parameter_group(DBParameterGroupName="probe-3", DBParameterGroupFamily="postgres16", Description="probe")
    parameter = {"ParameterName": "log_min_duration_statement", "ParameterValue": "1000", "ApplyMethod": "immediate"}
    rds.modify_db_parameter_group(DBParameterGroupName="probe-3", Parameters=[parameter])
    found = rds.describe_db_parameters(DBParameterGroupName="probe-3")["Parameters"]
    return not any(p["ParameterName"] == "log_min_duration_statement" and p.get("Source") == "user" for p in found)


@patch(3, "RDS DescribeDBParameters: Source of user-set parameters", probe_3)
def apply_3():
    from moto.rds.models import DBParameterGroup

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
def probe_4() -> bool:
    ec2 = client("ec2")
    ec2.create_launch_template(
        LaunchTemplateName="probe-4",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}]},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "t", "Value": "u"}]}],
    )
    version = ec2.describe_launch_template_versions(LaunchTemplateName="probe-4")["LaunchTemplateVersions"][0]
    return len(version["LaunchTemplateData"].get("TagSpecifications", [])) != 1


@patch(4, "EC2 CreateLaunchTemplate: the template's own tags leak into version 1", probe_4)
def apply_4():
    from moto.ec2.models import EC2Backend
    from moto.ec2.models.launch_templates import LaunchTemplateBackend

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


def probe_groups(names) -> None:
    """Auto Scaling groups for the probes (with DefaultInstanceWarmup 60), on a launch template."""
    ec2, asg = client("ec2"), client("autoscaling")
    if not ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": ["probe-asg"]}])["LaunchTemplates"]:
        ec2.create_launch_template(LaunchTemplateName="probe-asg", LaunchTemplateData={"ImageId": "ami-12c6146b"})
    for name in names:
        asg.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": "probe-asg", "Version": "1"},
            MinSize=0,
            MaxSize=1,
            AvailabilityZones=[REGION + "a"],
            DefaultInstanceWarmup=60,
        )


TARGET_60 = {"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"}, "TargetValue": 60.0}


# --- 5. Auto Scaling CreateAutoScalingGroup / UpdateAutoScalingGroup: DefaultInstanceWarmup ---
# Defect: moto.autoscaling.responses.AutoScalingResponse.{create,update}_auto_scaling_group do
#   not pass DefaultInstanceWarmup on, so DescribeAutoScalingGroups never returns it and every
#   plan sets it again.
# AWS: stores DefaultInstanceWarmup and returns it; on update, -1 removes it.
# Patch: wraps both response methods; after them, stores the parameter on the group.
def probe_5() -> bool:
    probe_groups(["probe-5"])
    group = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["probe-5"])["AutoScalingGroups"][0]
    return group.get("DefaultInstanceWarmup") != 60


@patch(5, "Auto Scaling Create/UpdateAutoScalingGroup: DefaultInstanceWarmup", probe_5)
def apply_5():
    from moto.autoscaling.responses import AutoScalingResponse

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
def probe_6() -> bool:
    probe_groups(["probe-6a", "probe-6b"])
    asg = client("autoscaling")
    for group in ("probe-6a", "probe-6b"):
        asg.put_scaling_policy(AutoScalingGroupName=group, PolicyName="probe", PolicyType="TargetTrackingScaling", TargetTrackingConfiguration=TARGET_60)
    return len(asg.describe_policies(AutoScalingGroupName="probe-6a")["ScalingPolicies"]) != 1


@patch(6, "Auto Scaling scaling policies: names are per group, not per region", probe_6)
def apply_6():
    from moto.autoscaling.models import AutoScalingBackend
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import EmptyResult

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
def probe_7() -> bool:
    probe_groups(["probe-7"])
    asg = client("autoscaling")
    asg.put_scaling_policy(AutoScalingGroupName="probe-7", PolicyName="probe-7", PolicyType="TargetTrackingScaling", TargetTrackingConfiguration=TARGET_60)
    policy = asg.describe_policies(AutoScalingGroupName="probe-7")["ScalingPolicies"][0]
    return policy.get("Enabled") is not True or "PredictiveScalingConfiguration" in policy


@patch(7, "Auto Scaling PutScalingPolicy: Enabled, no empty PredictiveScalingConfiguration", probe_7)
def apply_7():
    from moto.autoscaling.responses import AutoScalingResponse

    _put_scaling_policy = original(AutoScalingResponse, "put_scaling_policy")

    @functools.wraps(_put_scaling_policy)
    def _put_scaling_policy_fixed(self):
        result = _put_scaling_policy(self)
        group, name = self._get_param("AutoScalingGroupName"), self._get_param("PolicyName")
        # Keyed by (group, name) under patch 6; found the same way where moto keys them itself.
        policies = self.autoscaling_backend.policies.values()
        policy = next(p for p in policies if p.auto_scaling_group_name == group and p.name == name)
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
def probe_8() -> bool:
    probe_groups(["probe-8"])
    asg = client("autoscaling")
    try:
        asg.start_instance_refresh(AutoScalingGroupName="probe-8")
        asg.describe_instance_refreshes(AutoScalingGroupName="probe-8")
    except NotImplementedError:
        return True
    return False


@patch(8, "Auto Scaling Start/Describe/CancelInstanceRefresh: missing actions", probe_8)
def apply_8():
    from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.moto_api._internal import mock_random

    for action in ("start_instance_refresh", "describe_instance_refreshes", "cancel_instance_refresh"):
        absent(AutoScalingResponse, action)

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
def probe_9() -> bool:
    s3 = client("s3")
    s3.create_bucket(Bucket="probe-9", CreateBucketConfiguration={"LocationConstraint": REGION})
    bodies = []
    s3.meta.events.register("after-call.s3.GetBucketVersioning", lambda http_response, **_: bodies.append(http_response.content))
    s3.get_bucket_versioning(Bucket="probe-9")
    return b"<VersioningConfiguration" not in bodies[0]


@patch(9, "S3 GetBucketVersioning: the wrong root element", probe_9)
def apply_9():
    from moto.s3.responses import S3Response

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
def probe_10() -> bool:
    """A request over HTTPS (boto3's default) must pass a TLS-only bucket policy."""
    s3 = client("s3")
    s3.create_bucket(Bucket="probe-10", CreateBucketConfiguration={"LocationConstraint": REGION})
    resources = ["arn:aws:s3:::probe-10", "arn:aws:s3:::probe-10/*"]
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    s3.put_bucket_policy(Bucket="probe-10", Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]}))
    try:
        s3.put_object(Bucket="probe-10", Key="k", Body=b"x")
    except s3.exceptions.ClientError:
        return True
    return False


_REQUEST = threading.local()


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


@patch(10, "S3 bucket policies: conditions on aws:SecureTransport", probe_10)
def apply_10():
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.s3.models import FakeBucket

    _dispatch = original(DomainDispatcherApplication, "__call__")

    @functools.wraps(_dispatch)
    def _dispatch_noting_tls(self, environ, start_response):
        _REQUEST.secure = environ.get("wsgi.url_scheme") == "https"
        return _dispatch(self, environ, start_response)

    DomainDispatcherApplication.__call__ = _dispatch_noting_tls
    _get_permission = original(FakeBucket, "get_permission")

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
def probe_11() -> bool:
    client("s3").create_bucket(Bucket="probe-11", CreateBucketConfiguration={"LocationConstraint": REGION})
    other = client("s3", account="111111111111")
    try:
        other.head_bucket(Bucket="probe-11")
    except other.exceptions.ClientError:
        return False
    return True


@patch(11, "S3 HeadBucket: another account's bucket answers 200", probe_11)
def apply_11():
    from moto.s3.responses import S3Response

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


# --- 12. CloudWatch DescribeAlarms: the Smithy RPC v2 CBOR protocol -----------------------------
# Defect: moto 5.2.1 serves CloudWatch in the query and JSON protocols only (the AWS CLI's). The
#   AWS SDK for Rust, through which stamp reads a rollout's alarms, speaks the protocol AWS lists
#   first for CloudWatch, Smithy RPC v2 CBOR: POST /service/GraniteServiceVersion20100801/
#   operation/DescribeAlarms with a CBOR body. moto has no route for that path and answers 404.
# AWS: answers the same operation in CBOR (content-type application/cbor, header
#   smithy-protocol: rpc-v2-cbor), with MetricAlarms and CompositeAlarms as in the other
#   protocols; an alarm name that does not exist is simply not in the answer.
# Patch: adds that route to moto's CloudWatch URLs for DescribeAlarms (AlarmNames, or every
#   alarm), answered from moto's own backend (the alarms the AWS CLI created and set); any
#   other operation on that route answers an UnknownOperationException naming this patch.
CBOR_PATH = "/service/GraniteServiceVersion20100801/operation/"


def cbor_decode(data: bytes):
    """A CBOR item (RFC 8949) as Python values: what the SDK sends (maps, arrays, text, numbers)."""
    import struct

    def item(i: int):
        head = data[i]
        major, info = head >> 5, head & 0x1F
        i += 1
        if major == 7:
            simple = {20: False, 21: True, 22: None, 23: None}
            if info in simple:
                return simple[info], i
            size, fmt = {25: (2, ">e"), 26: (4, ">f"), 27: (8, ">d")}[info]
            return struct.unpack(fmt, data[i : i + size])[0], i + size
        if info < 24:
            n = info
        elif info == 31:
            n = None  # indefinite length, up to a break (0xff)
        else:
            size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
            n, i = int.from_bytes(data[i : i + size], "big"), i + size
        if major == 0:
            return n, i
        if major == 1:
            return -1 - n, i
        if major in (2, 3):
            if n is None:
                chunks = []
                while data[i] != 0xFF:
                    chunk, i = item(i)
                    chunks.append(chunk)
                joined = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
                return (joined if major == 2 else joined.decode()), i + 1
            raw = data[i : i + n]
            return (raw if major == 2 else raw.decode()), i + n
        if major == 4:
            out = []
            while (n is None and data[i] != 0xFF) or (n is not None and len(out) < n):
                v, i = item(i)
                out.append(v)
            return out, (i + 1 if n is None else i)
        if major == 5:
            out, count = {}, 0
            while (n is None and data[i] != 0xFF) or (n is not None and count < n):
                k, i = item(i)
                v, i = item(i)
                out[k], count = v, count + 1
            return out, (i + 1 if n is None else i)
        return item(i)  # major 6: a tag; the value inside it

    return item(0)[0] if data else {}


def cbor_encode(value) -> bytes:
    """Python values as CBOR; a datetime as an epoch-seconds timestamp (tag 1), as Smithy does."""
    import datetime
    import struct

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | info]) + n.to_bytes(size, "big")
        raise ValueError(n)

    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return b"\xc1" + cbor_encode(value.timestamp())
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, (list, tuple)):
        return head(4, len(value)) + b"".join(cbor_encode(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor_encode(k) + cbor_encode(v) for k, v in value.items())
    raise TypeError(type(value))


def cbor_describe_alarms(body: bytes, headers):
    """A DescribeAlarms request in CBOR, as the SDK for Rust sends it (the probe's and the test's)."""
    h = {"Content-Type": "application/cbor", "Accept": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    h.update(headers)
    return CBOR_PATH + "DescribeAlarms", cbor_encode(body), h


def probe_12() -> bool:
    from moto.moto_server.werkzeug_app import create_backend_app

    client("cloudwatch").put_metric_alarm(
        AlarmName="probe-12", MetricName="m", Namespace="n", Statistic="Sum", Period=60, EvaluationPeriods=1,
        Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
    )
    auth = {"Authorization": f"AWS4-HMAC-SHA256 Credential=probe/20260101/{REGION}/monitoring/aws4_request, SignedHeaders=host, Signature=0"}
    path, body, headers = cbor_describe_alarms({"AlarmNames": ["probe-12"]}, auth)
    answer = create_backend_app("cloudwatch").test_client().post(path, data=body, headers=headers)
    if answer.status_code != 200 or answer.headers.get("smithy-protocol") != "rpc-v2-cbor":
        return True
    alarms = cbor_decode(answer.data).get("MetricAlarms") or []
    return [a.get("AlarmName") for a in alarms] != ["probe-12"]


@patch(12, "CloudWatch DescribeAlarms: the Smithy RPC v2 CBOR protocol", probe_12)
def apply_12():
    from moto.cloudwatch import urls
    from moto.cloudwatch.responses import CloudWatchResponse

    route = "{0}" + CBOR_PATH + "(?P<operation>[A-Za-z]+)$"
    if route in urls.url_paths:
        return

    def answer(status: int, body: dict):
        return status, {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}, cbor_encode(body)

    def alarm_fields(a) -> dict:
        fields = {
            "AlarmName": a.name,
            "AlarmArn": a.alarm_arn,
            "StateValue": a.state_value,
            "StateReason": a.state_reason or "",
            "StateUpdatedTimestamp": a.state_updated_timestamp,
        }
        if a.description:
            fields["AlarmDescription"] = a.description
        if a.rule is None:
            fields.update({"MetricName": a.metric_name or "", "Namespace": a.namespace or ""})
        else:
            fields["AlarmRule"] = a.rule
        return fields

    def _cbor_dispatch(request, full_url, headers):
        operation = full_url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if operation != "DescribeAlarms":
            return answer(400, {"__type": "UnknownOperationException", "message": f"{operation} over rpc-v2-cbor: scripts/moto_server.py patch 12 serves DescribeAlarms only"})
        response = CloudWatchResponse()
        response.setup_class(request, full_url, headers, use_raw_body=True)
        params = cbor_decode(response.raw_body or b"") or {}
        backend = response.cloudwatch_backend
        names = params.get("AlarmNames") or []
        alarms = backend.get_alarms_by_alarm_names(names) if names else backend.describe_alarms()
        alarms = list(alarms)
        return answer(
            200,
            {
                "MetricAlarms": [alarm_fields(a) for a in alarms if a.rule is None],
                "CompositeAlarms": [alarm_fields(a) for a in alarms if a.rule is not None],
            },
        )

    urls.url_paths[route] = _cbor_dispatch


# --- The probes, their verdicts, and the start ------------------------------------------------
def probe_all() -> dict:
    """Each probe against this moto, unpatched: {number: true (the defect is there), false
    (fixed), or "error: ..." (the probe could not run)}."""
    from moto import mock_aws

    found = {}
    with mock_aws():
        for number, _, probe, _ in PATCHES:
            try:
                found[str(number)] = bool(probe())
            except Exception as err:  # noqa: BLE001 - a probe that cannot run counts as "needed"
                found[str(number)] = f"error: {type(err).__name__}: {err}"[:300]
    return found


def verdicts() -> dict:
    """The probes' verdicts for this moto and this file: kept in the user's cache
    (~/.cache/stamp/moto-probes.json), probed when missing (in a process of its own, so that
    the server's moto keeps no probe's state)."""
    with open(__file__, "rb") as f:
        key = f"moto {MOTO_VERSION}, moto_server.py {hashlib.sha256(f.read()).hexdigest()[:16]}"
    cache_dir = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "stamp")
    cache = os.path.join(cache_dir, "moto-probes.json")
    try:
        with open(cache) as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), dict):
        return known[key]
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="false")
    out = subprocess.run([sys.executable, __file__, "--probe-json"], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        die(f"the probes of moto {MOTO_VERSION} failed:\n{out.stderr[-2000:]}")
    found = json.loads(out.stdout)
    known[key] = found
    tmp = f"{cache}.{os.getpid()}"
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(known, f, indent=1, sort_keys=True)
        os.replace(tmp, cache)
    except OSError:
        pass  # no cache to write: probed again at the next start
    return found


def apply_needed(found: dict) -> None:
    """Applies each patch whose defect the probe found, and says which are no longer needed."""
    for number, title, _, apply in PATCHES:
        verdict = found.get(str(number), True)
        if verdict is False:
            note(f"patch {number} ({title}) is no longer needed with moto {MOTO_VERSION}: not applied; delete it once MOTO_MIN_VERSION has the fix")
            continue
        if verdict is not True:
            note(f"patch {number} ({title}): its probe could not run ({verdict}); applied")
        apply()


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe-json"]:
        print(json.dumps(probe_all()))
        sys.exit(0)
    if sys.argv[1:] == ["--probe-patched"]:
        # The self-test (tests/emulator_patches.rs): with every patch applied, no probe may
        # find its defect. The probes reach moto in-process over HTTPS, not through the
        # server's dispatcher that notes TLS for patch 10: noted here as that one would.
        for _, _, _, apply in PATCHES:
            apply()
        _REQUEST.secure = True
        print(json.dumps(probe_all()))
        sys.exit(0)
    if sys.argv[1:] == ["--check"]:
        found = verdicts()
        for number, title, _, _ in PATCHES:
            v = found.get(str(number))
            state = "needed" if v is True else "not needed" if v is False else f"unknown: {v}"
            print(f"patch {number:>3}: {state:<10}  {title}")
        print(f"moto {MOTO_VERSION}: {sum(v is True for v in found.values())} of {len(PATCHES)} patches needed")
        sys.exit(0)
    apply_needed(verdicts())
    import moto.server

    # As moto's `moto_server` console script (moto.server:main) does.
    sys.exit(moto.server.main())
