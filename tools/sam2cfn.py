"""Translate a SAM template to plain CloudFormation, offline, so cfn-lint can check the result.

    python tools/sam2cfn.py template.yaml build/cfn.json && cfn-lint build/cfn.json

Why: `sam validate --lint` and cfn-lint >= 1.54 check SAM resources against SAM's schema but no
longer lint the *transformed* template, so circular dependencies, a wrong `!GetAtt`, a bad
runtime or a bad property inside an `Events:` entry pass unnoticed. Running
SAM's own translator (`aws-sam-translator`, installed with aws-sam-cli) first closes that gap.

Runs in the tools venv (.venv-tools), needs no AWS credentials and no network: local code paths
become placeholder S3 URIs (as `sam validate` does) and AWS managed policy names are not looked up.
Exit status 0 when the translation succeeds, 1 with one "file: SAM: message" line per error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator reads a region

import yaml  # after the region default above, which botocore-based imports read
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform

PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::Region": os.environ["AWS_DEFAULT_REGION"],
    "AWS::StackName": "falconet-offline-check",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/falconet-offline-check/1",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": [],
}
LOCAL_PATH_PROPERTIES = ("CodeUri", "ContentUri", "DefinitionUri")
PLACEHOLDER_URI = "s3://offline-check-placeholder/code.zip"


class CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags: `!GetAtt A.B` -> `{"Fn::GetAtt": ["A", "B"]}`."""


def _short_form(loader: CloudFormationLoader, tag_suffix: str, node: yaml.Node) -> Any:
    key = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if tag_suffix == "Condition":
        key = "Condition"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


CloudFormationLoader.add_multi_constructor("!", _short_form)


class NoManagedPolicies:
    """Stands in for the IAM lookup of AWS managed policy ARNs (offline: none are resolved)."""

    def load(self) -> dict[str, str]:
        return {}


def _placeholder_code(template: dict[str, Any]) -> None:
    holders = [template.get("Globals", {}).get("Function", {})]
    holders += [r.get("Properties", {}) for r in template.get("Resources", {}).values()]
    for holder in holders:
        for key in LOCAL_PATH_PROPERTIES:
            value = holder.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                holder[key] = PLACEHOLDER_URI


def translate(source: Path) -> dict[str, Any]:
    """The CloudFormation for the SAM template at `source`. Raises InvalidDocumentException."""
    template = yaml.load(source.read_text(), Loader=CloudFormationLoader)
    if not isinstance(template, dict) or "Resources" not in template:
        raise SystemExit(f"{source}: not a CloudFormation/SAM template (no Resources)")
    _placeholder_code(template)
    parameters: dict[str, Any] = dict(PSEUDO_PARAMETERS)
    for name, spec in (template.get("Parameters") or {}).items():
        if isinstance(spec, dict) and "Default" in spec:
            parameters[name] = spec["Default"]
    result: dict[str, Any] = transform(template, parameters, NoManagedPolicies())
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    source, target = Path(argv[1]), Path(argv[2])
    try:
        cloudformation = translate(source)
    except InvalidDocumentException as error:
        for cause in error.causes:
            print(f"{source}: SAM: {cause.message}", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(cloudformation, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
