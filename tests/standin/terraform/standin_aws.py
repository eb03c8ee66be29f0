#!/usr/bin/env python3
"""The stand-in stacks' calls to the emulated AWS, in one process.

The stand-ins (tests only) make their network and load balancer in moto. Through
the AWS CLI that took one Python start of about half a second of CPU per call,
up to ten per stand-in resource: on a 2-core machine running 16 customers side by
side (make bench-fleet), the stand-ins' own CPU, not stamp, set the pace. This
makes the same EC2 and ELBv2 Query API calls over HTTP with the standard library.
It speaks only to an emulator (AWS_ENDPOINT_URL): moto does not check signatures,
so requests carry a SigV4-shaped Authorization header only to name the region and
service, as a signed request would.

  standin_aws.py vpc-create CUSTOMER REGION CIDR OUT
  standin_aws.py vpc-destroy CUSTOMER REGION
  standin_aws.py lb-create NAME REGION AMI VPC OUT SUBNET...
  standin_aws.py lb-destroy NAME REGION
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "")
SERVICES = {"ec2": "2016-11-15", "elasticloadbalancing": "2015-12-01"}


class AwsError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def call(service, region, action, **params):
    """One Query API call; returns the response's root element (namespaces stripped)."""
    if not ENDPOINT:
        sys.exit("standin_aws.py: AWS_ENDPOINT_URL is not set: the stand-ins run against an emulator only")
    body = urllib.parse.urlencode({"Action": action, "Version": SERVICES[service], **params}).encode()
    auth = (
        f"AWS4-HMAC-SHA256 Credential=standin/20260101/{region}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )
    req = urllib.request.Request(
        ENDPOINT.rstrip("/") + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
    except urllib.error.HTTPError as e:
        root = strip(ET.fromstring(e.read() or b"<Error/>"))
        raise AwsError(root.findtext(".//Code") or str(e.code), root.findtext(".//Message") or "") from None
    return strip(ET.fromstring(text))


def strip(root):
    for el in root.iter():
        if "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def filters(**f):
    out = {}
    for i, (name, value) in enumerate(f.items(), 1):
        out[f"Filter.{i}.Name"] = name.replace("__", ":").replace("_", "-")
        out[f"Filter.{i}.Value.1"] = value
    return out


def tags(resource, **t):
    out = {"TagSpecification.1.ResourceType": resource}
    for i, (k, v) in enumerate(t.items(), 1):
        out[f"TagSpecification.1.Tag.{i}.Key"] = k.replace("_", "-")
        out[f"TagSpecification.1.Tag.{i}.Value"] = v
    return out


def vpc_create(customer, region, cidr, out):
    prefix = ".".join(cidr.split(".")[:2])
    found = call("ec2", region, "DescribeVpcs", **filters(tag__stamp_standin=customer)).findtext(".//vpcSet/item/vpcId")
    vpc = found or call(
        "ec2", region, "CreateVpc", CidrBlock=cidr, **tags("vpc", stamp_standin=customer)
    ).findtext(".//vpc/vpcId")

    def subnet(name, octet, zone):
        found = call("ec2", region, "DescribeSubnets", **filters(vpc_id=vpc, tag__Name=name)).findtext(
            ".//subnetSet/item/subnetId"
        )
        if found:
            return found
        t = tags("subnet", Name=name, stamp_standin=customer)
        return call(
            "ec2",
            region,
            "CreateSubnet",
            VpcId=vpc,
            CidrBlock=f"{prefix}.{octet}.0/24",
            AvailabilityZone=f"{region}{zone}",
            **t,
        ).findtext(".//subnet/subnetId")

    ids = {
        "vpc_id": vpc,
        "public_subnet_ids": [subnet("public-a", 1, "a"), subnet("public-b", 2, "b")],
        "private_subnet_ids": [subnet("private-a", 11, "a"), subnet("private-b", 12, "b")],
    }
    write(out, ids)


def vpc_destroy(customer, region):
    vpcs = call("ec2", region, "DescribeVpcs", **filters(tag__stamp_standin=customer))
    for vpc in [v.text for v in vpcs.findall(".//vpcSet/item/vpcId")]:
        subnets = call("ec2", region, "DescribeSubnets", **filters(vpc_id=vpc))
        for s in [s.text for s in subnets.findall(".//subnetSet/item/subnetId")]:
            call("ec2", region, "DeleteSubnet", SubnetId=s)
        call("ec2", region, "DeleteVpc", VpcId=vpc)


def lb_find(name, region):
    try:
        r = call("elasticloadbalancing", region, "DescribeLoadBalancers", **{"Names.member.1": name})
    except AwsError as e:
        if e.code == "LoadBalancerNotFound":
            return None
        raise
    lb = r.find(".//LoadBalancers/member")
    return None if lb is None else lb


def lb_create(name, region, ami, vpc, out, *subnets):
    found = call("ec2", region, "DescribeImages", **{"ImageId.1": ami}).findtext(".//imagesSet/item/imageId")
    if found != ami:
        sys.exit(f"AMI {ami} is not registered")
    found = call("ec2", region, "DescribeVpcs", **{"VpcId.1": vpc}).findtext(".//vpcSet/item/vpcId")
    if found != vpc:
        sys.exit(f"VPC {vpc} does not exist")
    lb = lb_find(name, region)
    if lb is None:
        params = {"Name": name, **{f"Subnets.member.{i}": s for i, s in enumerate(subnets, 1)}}
        lb = call("elasticloadbalancing", region, "CreateLoadBalancer", **params).find(".//LoadBalancers/member")
    # STANDIN_PUBLIC_URL: the smoke tests' own HTTP server (moto's load balancers serve nothing).
    write(out, {"dns_name": lb.findtext("DNSName"), "public_url": os.environ.get("STANDIN_PUBLIC_URL", "")})


def lb_destroy(name, region):
    lb = lb_find(name, region)
    if lb is not None:
        call("elasticloadbalancing", region, "DeleteLoadBalancer", LoadBalancerArn=lb.findtext("LoadBalancerArn"))


def write(path, value):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)
        f.write("\n")


def main(argv):
    ops = {"vpc-create": vpc_create, "vpc-destroy": vpc_destroy, "lb-create": lb_create, "lb-destroy": lb_destroy}
    if len(argv) < 2 or argv[1] not in ops:
        sys.exit(__doc__)
    try:
        ops[argv[1]](*argv[2:])
    except AwsError as e:
        sys.exit(f"standin_aws.py {argv[1]}: {e}")
    except urllib.error.URLError as e:
        sys.exit(f"standin_aws.py {argv[1]}: cannot reach {ENDPOINT}: {e.reason}")


if __name__ == "__main__":
    main(sys.argv)
