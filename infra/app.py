"""The CDK app: `cdk synth` / `cdk deploy` run this (see cdk.json).

The deployment is described by a TOML file: `infra/stack.toml` unless `-c config=PATH` names another.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "functions"):  # `python infra/app.py` as well as `python -m infra.app`
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import load_stack_config  # noqa: E402
from infra.stack import CatalogSyncStack  # noqa: E402

DEFAULT_CONFIG = ROOT / "infra" / "stack.toml"


# Behaviours the stack relies on, set here so that tests and `cdk deploy` synthesise the same template.
FEATURE_FLAGS = {
    # Grant S3 server access logging through a bucket policy, not the legacy ACL.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    # A layer change publishes a new function version.
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/core:stackRelativeExports": True,
}


def build_app(app: cdk.App | None = None) -> cdk.App:
    app = app or cdk.App()
    for flag, value in FEATURE_FLAGS.items():
        app.node.set_context(flag, value)
    config_path = Path(app.node.try_get_context("config") or DEFAULT_CONFIG)
    config = load_stack_config(config_path if config_path.is_absolute() else ROOT / config_path)
    CatalogSyncStack(
        app,
        config.stack_name,
        config=config,
        description="catalog-sync: keeps a Pinecone index in step with product catalogs",
    )
    # Synthesis fails on any AwsSolutions finding the stack does not acknowledge with a reason.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    build_app().synth()
