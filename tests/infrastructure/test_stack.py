"""The stack, synthesised offline: each resource and property the deployment promises, and least privilege."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from infra.config import InfraConfigError, StackConfig, load_stack_config

from catalog_sync.adapters.aws import observability as names
from catalog_sync.adapters.aws.triggers import parse_trigger
from tests.infrastructure.conftest import EXAMPLE_CONFIG, synth

CONFIG = load_stack_config(EXAMPLE_CONFIG)


def of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def properties(resources: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in of_type(resources, kind).values()]


def logical_id(resources: dict[str, dict[str, Any]], kind: str, construct: str) -> str:
    """The logical id CDK gave a construct: its id (path without separators) and an 8-digit hash."""
    [name] = [name for name in of_type(resources, kind) if re.fullmatch(f"{construct}[0-9A-F]{{8}}", name)]
    return name


def lanes(resources: dict[str, dict[str, Any]]) -> set[str]:
    """The logical ids of the two change queues (not their dead-letter queues)."""
    return {logical_id(resources, "AWS::SQS::Queue", name) for name in ("ChangeQueue", "PriorityQueue")}


def functions(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The project's functions by handler (CDK adds one of its own for the bucket notifications)."""
    return {
        r["Properties"]["Handler"]: r["Properties"]
        for r in of_type(resources, "AWS::Lambda::Function").values()
        if r["Properties"]["Handler"].startswith("handlers.")
    }


def policy_statements(resources: dict[str, dict[str, Any]], role_prefix: str) -> list[dict[str, Any]]:
    role = logical_id(resources, "AWS::IAM::Role", role_prefix)
    statements = []
    for policy in properties(resources, "AWS::IAM::Policy"):
        if {"Ref": role} in policy["Roles"]:
            statements += policy["PolicyDocument"]["Statement"]
    return statements


def actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def resources_of(statement: dict[str, Any]) -> list[Any]:
    found = statement["Resource"]
    return found if isinstance(found, list) else [found]


def refs(value: Any) -> set[str]:
    """Every logical id a CloudFormation value points at (Ref or GetAtt, anywhere inside it)."""
    text = json.dumps(value)
    found = set()
    for marker in ('"Ref": "', '"Fn::GetAtt": ["'):
        start = 0
        while (start := text.find(marker, start)) >= 0:
            start += len(marker)
            found.add(text[start : text.index('"', start)])
    return found


# ---------------------------------------------------------------------- storage


def test_the_catalog_bucket_is_versioned_encrypted_private_and_sends_eventbridge_notifications(resources):
    buckets = of_type(resources, "AWS::S3::Bucket")
    catalog = buckets[logical_id(resources, "AWS::S3::Bucket", "CatalogBucket")]["Properties"]
    assert catalog["VersioningConfiguration"] == {"Status": "Enabled"}
    assert catalog["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert catalog["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "LoggingConfiguration" in catalog
    [notifications] = properties(resources, "Custom::S3BucketNotifications")
    assert notifications["NotificationConfiguration"] == {"EventBridgeConfiguration": {}}
    # Claim checks and run archives expire after the messages that point at them.
    rules = {rule.get("Prefix"): rule for rule in catalog["LifecycleConfiguration"]["Rules"]}
    assert rules["claims/"]["ExpirationInDays"] == rules["runs/"]["ExpirationInDays"] == 15
    # Every bucket refuses plain HTTP.
    for policy in properties(resources, "AWS::S3::BucketPolicy"):
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["PolicyDocument"]["Statement"]
        )


def test_the_state_table_is_on_demand_with_point_in_time_recovery_and_ttl(resources):
    [table] = properties(resources, "AWS::DynamoDB::Table")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]


# ---------------------------------------------------------------------- queues and functions


def test_queues_are_encrypted_sized_and_dead_lettered_from_the_config(resources):
    queues = of_type(resources, "AWS::SQS::Queue")
    consumer_timeout = CONFIG.functions.consumer.timeout_seconds
    for prefix in ("ChangeQueue", "PriorityQueue"):
        queue = queues[logical_id(resources, "AWS::SQS::Queue", prefix)]["Properties"]
        assert queue["SqsManagedSseEnabled"] is True
        assert queue["MaximumMessageSize"] == CONFIG.queues.max_message_bytes
        assert queue["VisibilityTimeout"] >= 6 * consumer_timeout
        redrive = queue["RedrivePolicy"]
        assert redrive["maxReceiveCount"] == CONFIG.queues.max_receive_count
        [dead_letters] = refs(redrive["deadLetterTargetArn"])
        assert dead_letters.startswith(f"{prefix}DeadLetters")
        assert queues[dead_letters]["Properties"]["SqsManagedSseEnabled"] is True
    assert all(q["Properties"].get("SqsManagedSseEnabled") for q in queues.values())


def test_the_consumer_reads_both_queues_with_partial_batch_responses_and_a_concurrency_cap(resources):
    consumer = logical_id(resources, "AWS::Lambda::Function", "Consumer")
    mappings = properties(resources, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 2
    sources = set()
    for mapping in mappings:
        assert mapping["FunctionName"] == {"Ref": consumer}
        # Sized to the consumer's timeout at its paced share of the limits: 3 full messages with the example.
        assert mapping["BatchSize"] == CONFIG.consumer_batch_size == 3
        assert mapping["MaximumBatchingWindowInSeconds"] == CONFIG.queues.batching_window_seconds
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["ScalingConfig"] == {"MaximumConcurrency": CONFIG.limits.per_queue_concurrency()}
        sources |= refs(mapping["EventSourceArn"])
    assert sources == lanes(resources)


def test_functions_run_python_3_12_on_arm64_with_both_layers_and_sizes_from_the_config(resources):
    found = functions(resources)
    sizes = {
        "handlers.diff.handler": CONFIG.functions.diff,
        "handlers.consumer.handler": CONFIG.functions.consumer,
        "handlers.webhook.handler": CONFIG.functions.webhook,
        "handlers.health.handler": CONFIG.functions.health,
    }
    assert set(found) == set(sizes)
    dependency_layer = logical_id(resources, "AWS::Lambda::LayerVersion", "RuntimeDependencies")
    [powertools_parameter] = [name for name in refs(next(iter(found.values()))["Layers"]) if "Ssm" in name]
    for handler, function in found.items():
        assert function["Runtime"] == "python3.12"
        assert function["Architectures"] == ["arm64"]
        assert function["MemorySize"] == sizes[handler].memory_mb
        assert function["Timeout"] == sizes[handler].timeout_seconds
        assert function["EphemeralStorage"] == {"Size": sizes[handler].ephemeral_storage_mb}
        assert function["TracingConfig"] == {"Mode": "Active"}
        # Ours after Powertools: a later layer's files win, and both ship pydantic.
        assert [refs(layer) for layer in function["Layers"]] == [{powertools_parameter}, {dependency_layer}]
        assert function["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == names.NAMESPACE
    # The AWS-published Powertools layer, resolved through its public SSM parameter at deploy time.
    layer = properties(resources, "AWS::Lambda::LayerVersion")[0]
    assert layer["CompatibleArchitectures"] == ["arm64"] and layer["CompatibleRuntimes"] == ["python3.12"]


def test_the_powertools_layer_is_the_version_the_tests_run_with(template):
    from importlib.metadata import version

    parameters = template.to_json()["Parameters"]
    defaults = [p["Default"] for p in parameters.values() if p["Type"].startswith("AWS::SSM::Parameter::Value")]
    assert f"/aws/service/powertools/python/arm64/python3.12/{version('aws-lambda-powertools')}" in defaults


def test_the_pipeline_functions_get_their_settings_and_no_secret_in_the_environment(resources):
    found = functions(resources)
    for handler in ("handlers.diff.handler", "handlers.consumer.handler"):
        variables = found[handler]["Environment"]["Variables"]
        for name in (
            "TABLE_NAME",
            "BUCKET",
            "QUEUE_URL",
            "PRIORITY_QUEUE_URL",
            "PINECONE_HOST",
            "PINECONE_SECRET",
            "OPENAI_SECRET",
            "DIFF_FUNCTION",
            "MAX_MESSAGE_BYTES",
        ):
            assert f"CATALOG_SYNC_{name}" in variables, name
        # Secrets are named (an ARN), never given: the functions read them from Secrets Manager.
        assert refs(variables["CATALOG_SYNC_PINECONE_SECRET"]) == {
            logical_id(resources, "AWS::SecretsManager::Secret", "PineconeApiKey")
        }
        assert variables["CATALOG_SYNC_DIFF_FUNCTION"] == f"{CONFIG.stack_name}-diff"
    assert found["handlers.diff.handler"]["FunctionName"] == f"{CONFIG.stack_name}-diff"
    # The consumer paces its requests to its share of each limit: the limit over the 2 x 2 consumers.
    consumer = found["handlers.consumer.handler"]["Environment"]["Variables"]
    assert {name: float(value) for name, value in consumer.items() if name.startswith("CATALOG_SYNC_PACE_")} == {
        "CATALOG_SYNC_PACE_OPENAI_REQUESTS_PER_MINUTE": 3000 / 4,
        "CATALOG_SYNC_PACE_OPENAI_TOKENS_PER_MINUTE": 1_000_000 / 4,
        "CATALOG_SYNC_PACE_PINECONE_WRITES_PER_SECOND": 100 / 4,
        "CATALOG_SYNC_PACE_PINECONE_UPSERT_BYTES_PER_SECOND": 50_000_000 / 4,
    }
    # The others send no write and no embedding request: not paced.
    for handler in ("handlers.diff.handler", "handlers.webhook.handler", "handlers.health.handler"):
        assert not any(name.startswith("CATALOG_SYNC_PACE_") for name in found[handler]["Environment"]["Variables"])
    webhook = found["handlers.webhook.handler"]["Environment"]["Variables"]
    assert webhook["CATALOG_SYNC_CATALOGS_PREFIX"] == "catalogs/"
    # It begins the runs it answers with: over the same shards as the diff.
    assert (
        webhook["CATALOG_SYNC_STATE_SHARDS"]
        == found["handlers.diff.handler"]["Environment"]["Variables"]["CATALOG_SYNC_STATE_SHARDS"]
    )
    assert webhook["CATALOG_SYNC_DIFF_FUNCTION"] == f"{CONFIG.stack_name}-diff"
    assert refs(webhook["CATALOG_SYNC_WEBHOOK_SECRET"]) == {
        logical_id(resources, "AWS::SecretsManager::Secret", "WebhookSigningKey")
    }


def test_three_secrets_and_the_webhook_key_is_random_from_the_start(resources):
    secrets = {
        name.rstrip("0123456789ABCDEF"): r["Properties"]
        for name, r in of_type(resources, "AWS::SecretsManager::Secret").items()
    }
    assert set(secrets) == {"PineconeApiKey", "OpenAIApiKey", "WebhookSigningKey"}
    assert secrets["WebhookSigningKey"]["GenerateSecretString"]["PasswordLength"] == 64


# ---------------------------------------------------------------------- triggers


def test_a_drop_under_the_catalogs_prefix_invokes_the_diff(resources):
    diff = logical_id(resources, "AWS::Lambda::Function", "Diff")
    rules = [r for r in properties(resources, "AWS::Events::Rule") if "EventPattern" in r]
    [rule] = rules
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"] == {"key": [{"prefix": "catalogs/"}]}
    [target] = rule["Targets"]
    assert refs(target["Arn"]) == {diff}
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 4


def test_one_schedule_per_catalog_whose_input_the_diff_accepts(resources):
    diff = logical_id(resources, "AWS::Lambda::Function", "Diff")
    schedules = [r for r in properties(resources, "AWS::Events::Rule") if "Input" in r["Targets"][0]]
    expected = [c for c in CONFIG.catalogs if c.schedule]
    assert len(schedules) == len(expected) >= 1
    for rule, catalog in zip(schedules, expected, strict=True):
        assert rule["ScheduleExpression"] == catalog.schedule
        assert rule["State"] == "ENABLED"
        # Named, so that the webhook can enable, disable or re-time it.
        assert rule["Name"] == f"{CONFIG.stack_name}-schedule-{catalog.name}"
        [target] = rule["Targets"]
        assert refs(target["Arn"]) == {diff}
        [request] = parse_trigger(json.loads(target["Input"]))
        assert (request.trigger, request.catalog, request.mode) == ("schedule", catalog.name, catalog.mode.value)


def test_failed_diff_invocations_are_kept_not_dropped(resources):
    [config] = properties(resources, "AWS::Lambda::EventInvokeConfig")
    assert config["MaximumRetryAttempts"] == 2
    assert refs(config["DestinationConfig"]["OnFailure"]["Destination"]) == {
        logical_id(resources, "AWS::SQS::Queue", "DiffFailures")
    }


def test_the_webhook_is_an_http_api_with_access_logs_and_throttling(resources):
    [api] = properties(resources, "AWS::ApiGatewayV2::Api")
    assert api["ProtocolType"] == "HTTP"
    [stage] = properties(resources, "AWS::ApiGatewayV2::Stage")
    assert stage["AutoDeploy"] is True
    assert "DestinationArn" in stage["AccessLogSettings"]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    [integration] = properties(resources, "AWS::ApiGatewayV2::Integration")
    assert refs(integration["IntegrationUri"]) == {logical_id(resources, "AWS::Lambda::Function", "Webhook")}


# ---------------------------------------------------------------------- alarms and dashboard


def alarms_by_id(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in of_type(resources, "AWS::CloudWatch::Alarm").items()}


def alarm(resources: dict[str, dict[str, Any]], prefix: str) -> dict[str, Any]:
    return alarms_by_id(resources)[logical_id(resources, "AWS::CloudWatch::Alarm", prefix)]


def test_every_alarm_notifies_the_alert_topic_and_fits_cloudwatchs_evaluation_range(resources):
    [topic] = of_type(resources, "AWS::SNS::Topic")
    for name, properties_ in alarms_by_id(resources).items():
        assert properties_["AlarmActions"] == [{"Ref": topic}], name
        period = properties_.get("Period") or properties_["Metrics"][1]["MetricStat"]["Period"]
        # PutMetricAlarm's limits: 7 days in all, 1 day for periods under an hour.
        limit = 86_400 if period < 3600 else 604_800
        assert period * properties_["EvaluationPeriods"] <= limit, name


def test_failure_rate_alarms_warn_at_5_and_page_at_10_percent(resources):
    for level, threshold in (("Warning", 5), ("Critical", 10)):
        found = alarm(resources, f"FailureRate{level}")
        assert found["Threshold"] == threshold
        [expression] = [m for m in found["Metrics"] if "Expression" in m]
        assert "100 * FILL(failed, 0) / processed" in expression["Expression"]
        names_used = {m["MetricStat"]["Metric"]["MetricName"] for m in found["Metrics"] if "MetricStat" in m}
        assert names_used == {names.MESSAGES_PROCESSED, names.MESSAGES_FAILED}


def test_any_dead_letter_alarms_and_old_messages_warn(resources):
    for prefix in ("ChangeDeadLetters", "PriorityDeadLetters", "DiffFailureDeadLetters"):
        found = alarm(resources, prefix)
        assert found["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert found["Threshold"] == 1 and found["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    for prefix in ("ChangeQueueAge", "PriorityQueueAge"):
        found = alarm(resources, prefix)
        assert found["MetricName"] == "ApproximateAgeOfOldestMessage"
        assert found["Threshold"] == CONFIG.alarms.oldest_message_age_minutes * 60


def test_staleness_alarms_per_catalog_treat_missing_data_as_breaching(resources):
    for catalog in CONFIG.catalogs:
        for level, hours in (("Warning", 48), ("Critical", 72)):
            found = alarm(resources, f"Stale{level}{catalog.name}")
            assert found["MetricName"] == names.RUNS_SUCCEEDED
            # Exactly the dimensions the functions publish it with (see test_aws_pipeline's metrics test).
            assert sorted(found["Dimensions"], key=lambda d: d["Name"]) == [
                {"Name": names.CATALOG_DIMENSION, "Value": catalog.name},
                {"Name": "service", "Value": names.SERVICE},
            ]
            assert found["Period"] * found["EvaluationPeriods"] == hours * 3600
            assert found["DatapointsToAlarm"] == found["EvaluationPeriods"]
            assert found["TreatMissingData"] == "breaching"
            assert found["ComparisonOperator"] == "LessThanThreshold" and found["Threshold"] == 1


def test_guard_trips_and_a_diff_near_its_timeout_alarm(resources):
    guard = alarm(resources, "GuardTrips")
    assert guard["MetricName"] == names.GUARD_TRIPS and guard["Dimensions"] == [
        {"Name": "service", "Value": names.SERVICE}
    ]
    near = alarm(resources, "DiffNearTimeout")
    assert near["MetricName"] == "Duration" and near["Statistic"] == "Maximum"
    assert near["Threshold"] == pytest.approx(0.8 * CONFIG.functions.diff.timeout_seconds * 1000)


def test_the_dashboard_shows_the_pipeline(resources):
    [dashboard] = properties(resources, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["DashboardBody"])
    for title in ("Changes by kind", "Products synced", "Failures", "Embedding cache", "Run duration", "Queue depth"):
        assert title in body
    for metric in (names.PRODUCTS_ADDED, names.VECTORS_UPSERTED, names.EMBEDDING_CACHE_HITS, names.MESSAGES_FAILED):
        assert metric in body


# ---------------------------------------------------------------------- least privilege


def test_no_function_uses_a_managed_policy_or_acts_beyond_its_resources(resources):
    for prefix in ("DiffRole", "ConsumerRole", "WebhookRole", "HealthRole"):
        role = of_type(resources, "AWS::IAM::Role")[logical_id(resources, "AWS::IAM::Role", prefix)]
        assert "ManagedPolicyArns" not in role["Properties"]
        for statement in policy_statements(resources, prefix):
            for resource in resources_of(statement):
                if resource == "*":
                    # Only actions that take no resource: X-Ray's, and listing event source mappings.
                    no_resource = {
                        "xray:PutTraceSegments",
                        "xray:PutTelemetryRecords",
                        "lambda:ListEventSourceMappings",
                    }
                    assert set(actions_of(statement)) <= no_resource, statement
                else:
                    assert not any(a.endswith(":*") for a in actions_of(statement)), statement


NO_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "lambda:ListEventSourceMappings"}


def _allowed(resources: dict[str, dict[str, Any]], role_prefix: str) -> dict[str, set[str]]:
    """action -> the logical ids (or literal resources) a role may apply it to."""
    allowed: dict[str, set[str]] = {}
    for statement in policy_statements(resources, role_prefix):
        assert statement["Effect"] == "Allow"
        for action in actions_of(statement):
            for resource in resources_of(statement):
                allowed.setdefault(action, set()).update(refs(resource) or {json.dumps(resource)})
    return allowed


def test_the_webhook_acts_only_on_its_key_the_diff_pushes_its_idempotency_records_schedules_and_mappings(resources):
    allowed = _allowed(resources, "WebhookRole")
    webhook_key = logical_id(resources, "AWS::SecretsManager::Secret", "WebhookSigningKey")
    assert allowed["secretsmanager:GetSecretValue"] == {webhook_key}
    assert allowed["s3:PutObject"] == {logical_id(resources, "AWS::S3::Bucket", "CatalogBucket")}
    [put] = [s for s in policy_statements(resources, "WebhookRole") if "s3:PutObject" in actions_of(s)]
    assert re.findall(r'"/([a-z]+)/\*"', json.dumps(resources_of(put))) == ["pushes"]
    assert not any(a.startswith("sqs:") for a in allowed)
    assert "dynamodb:BatchWriteItem" not in allowed and "dynamodb:Scan" not in allowed
    [rules] = [s for s in policy_statements(resources, "WebhookRole") if "events:EnableRule" in actions_of(s)]
    assert "rule/CatalogSync-schedule-*" in json.dumps(rules["Resource"])
    # Only the consumer's two mappings may be updated (paused, resumed).
    [mappings] = [
        s for s in policy_statements(resources, "WebhookRole") if "lambda:UpdateEventSourceMapping" in actions_of(s)
    ]
    assert len(resources_of(mappings)) == 2
    assert refs(resources_of(mappings)) - {"AWS::Partition", "AWS::Region", "AWS::AccountId"} == set(
        of_type(resources, "AWS::Lambda::EventSourceMapping")
    )


def test_the_health_function_only_reads(resources):
    allowed = _allowed(resources, "HealthRole")
    writes = {a for a in allowed if a.split(":")[1].startswith(("Put", "Update", "Delete", "BatchWrite", "Send"))}
    assert writes <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "logs:PutLogEvents"}
    assert "secretsmanager:GetSecretValue" not in allowed
    [schedule] = [
        r
        for r in properties(resources, "AWS::Events::Rule")
        if refs(r["Targets"][0]["Arn"]) == {logical_id(resources, "AWS::Lambda::Function", "Health")}
    ]
    assert schedule["ScheduleExpression"] == CONFIG.health_schedule


def test_the_consumer_reads_the_bucket_but_never_writes_it_nor_sends_changes(resources):
    allowed = _allowed(resources, "ConsumerRole")
    assert "s3:PutObject" not in allowed and "sqs:SendMessage" not in allowed
    [listing] = [s for s in policy_statements(resources, "ConsumerRole") if "s3:ListBucket" in actions_of(s)]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["config/*"]}}
    assert "s3:GetObjectVersion" not in allowed
    webhook_key = logical_id(resources, "AWS::SecretsManager::Secret", "WebhookSigningKey")
    assert webhook_key not in allowed["secretsmanager:GetSecretValue"]
    table = logical_id(resources, "AWS::DynamoDB::Table", "StateTable")
    assert allowed["dynamodb:UpdateItem"] == {table}
    # Receiving from exactly the two queues it consumes (granted by the event source mappings).
    assert allowed["sqs:ReceiveMessage"] == lanes(resources)


def test_the_diff_writes_only_its_prefixes_and_lists_only_the_catalogs(resources):
    statements = policy_statements(resources, "DiffRole")
    [put] = [s for s in statements if "s3:PutObject" in actions_of(s)]
    prefixes = sorted(re.findall(r'"/([a-z]+)/\*"', json.dumps(resources_of(put))))
    assert prefixes == ["claims", "quarantine", "runs"]
    [listing] = [s for s in statements if "s3:ListBucket" in actions_of(s)]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["config/*", "catalogs/*"]}}
    [versions] = [s for s in statements if "s3:GetObjectVersion" in actions_of(s)]
    assert re.findall(r'"/([a-z]+)/\*"', json.dumps(resources_of(versions))) == ["catalogs"]
    allowed = _allowed(resources, "DiffRole")
    # Both lanes, and its own failure destination (Lambda sends failed async invocations with the function's role).
    assert allowed["sqs:SendMessage"] == lanes(resources) | {logical_id(resources, "AWS::SQS::Queue", "DiffFailures")}
    assert "sqs:ReceiveMessage" not in allowed


# ---------------------------------------------------------------------- configuration


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.toml"
    path.write_text(text)
    return path


def test_thresholds_and_catalogs_come_from_the_config(tmp_path: Path):
    from aws_cdk.assertions import Template

    path = write_config(
        tmp_path,
        """
stack_name = "Shops"
pinecone_host = "https://idx.svc.pinecone.io"
openai = false
catalogs = [
  { name = "eu", schedule = "rate(6 hours)", mode = "full" },
  { name = "us", schedule = "cron(0 4 * * ? *)", enabled = false },
  { name = "push-only" },
  { name = "quiet", stale_alarms = false },
]
[queues]
max_receive_count = 3
max_message_bytes = 262144
[limits]
max_concurrency = 7
[alarms]
failure_rate_warning_percent = 2
failure_rate_critical_percent = 4
stale_warning_hours = 24
stale_critical_hours = 36
""",
    )
    _, stack = synth(path)
    resources = Template.from_stack(stack).to_json()["Resources"]
    assert alarm(resources, "FailureRateWarning")["Threshold"] == 2
    assert alarm(resources, "FailureRateCritical")["Threshold"] == 4
    assert alarm(resources, "StaleWarningeu")["EvaluationPeriods"] == 24
    assert alarm(resources, "StaleCriticalpushonly")["EvaluationPeriods"] == 36
    assert not any(name.startswith("StaleWarningquiet") for name in alarms_by_id(resources))
    schedules = {
        json.loads(r["Targets"][0]["Input"])["catalog"]: r
        for r in properties(resources, "AWS::Events::Rule")
        if "Input" in r["Targets"][0]
    }
    assert set(schedules) == {"eu", "us"}
    assert json.loads(schedules["eu"]["Targets"][0]["Input"])["mode"] == "full"
    assert schedules["us"]["State"] == "DISABLED"
    for mapping in properties(resources, "AWS::Lambda::EventSourceMapping"):
        assert mapping["ScalingConfig"] == {"MaximumConcurrency": 7}
    for prefix in ("ChangeQueue", "PriorityQueue"):
        queue = of_type(resources, "AWS::SQS::Queue")[logical_id(resources, "AWS::SQS::Queue", prefix)]
        assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 3
        assert queue["Properties"]["MaximumMessageSize"] == 262144
    # Without OpenAI there is no OpenAI secret, and no function may read one.
    assert len(of_type(resources, "AWS::SecretsManager::Secret")) == 2
    assert all("CATALOG_SYNC_OPENAI_SECRET" not in f["Environment"]["Variables"] for f in functions(resources).values())


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('pinecone_host = "http://plain"', "pinecone_host"),
        ('pinecone_host = "https://h"\ncatalogs = [{ name = "a", schedule = "every day" }]', "not a cron"),
        ('pinecone_host = "https://h"\ncatalogs = [{ name = "a" }, { name = "a" }]', "listed twice"),
        ('pinecone_host = "https://h"\n[alarms]\nfailure_rate_warning_percent = 20', "critical failure rate"),
        ('pinecone_host = "https://h"\n[functions]\nlog_retention_days = 31', "log_retention_days"),
        ('pinecone_host = "https://h"\n[queues]\nmax_message_bytes = 2000000', "max_message_bytes"),
        ('pinecone_host = "https://h"\nsurprise = 1', "surprise"),
        ('pinecone_host = "https://h"\n[queues]\nbatch_size = 100\nbatching_window_seconds = 0', "batching window"),
        ("pinecone_host = ", "stack.toml"),
        ('pinecone_host = "https://h"\ncatalogs = [{ name = "' + "c" * 50 + '", schedule = "rate(1 day)" }]', "64"),
        # One full message takes ~143 s at a quarter of the limits: over half of a 120 s timeout.
        (
            'pinecone_host = "https://h"\n[functions]\nconsumer = { memory_mb = 1024, timeout_seconds = 120 }',
            r"raise \[functions\] consumer's timeout_seconds \(to at least 287\)",
        ),
        # 100 consumers: 0.5 upserted MB a second each, less than one 2 MB request.
        ('pinecone_host = "https://h"\n[limits]\nmax_concurrency = 50', "lower limits.max_concurrency"),
        (
            'pinecone_host = "https://h"\n[functions]\ndiff = { memory_mb = 1769, timeout_seconds = 900, '
            "ephemeral_storage_mb = 256 }",
            "ephemeral_storage_mb",
        ),
    ],
)
def test_a_bad_config_is_refused_with_the_reason(tmp_path: Path, text: str, complaint: str):
    with pytest.raises(InfraConfigError, match=complaint):
        load_stack_config(write_config(tmp_path, text))


def test_each_consumer_is_paced_to_an_equal_share_of_the_limits_and_its_batch_fits_its_timeout():
    config = StackConfig(pinecone_host="https://h")
    limits = config.limits
    # Pacing keeps the consumers within the limits whatever their number: Lambda's minimum per mapping.
    assert limits.per_queue_concurrency() == 2 and limits.consumers() == 4
    shares = limits.consumer_shares()
    assert shares == {
        "openai_requests_per_minute": 750.0,
        "openai_tokens_per_minute": 250_000.0,
        "pinecone_writes_per_second": 25.0,
        "pinecone_upsert_bytes_per_second": 12_500_000.0,
    }
    # A full 1 MiB message: 3,584 writes at 25 a second (143 s) vs 524k tokens at 250k a minute (126 s).
    assert limits.message_seconds(1_048_576) == pytest.approx(143.36)
    # Half the 900 s timeout holds 3 such messages.
    assert config.consumer_batch_size == 3
    assert config.consumer_environment()["CATALOG_SYNC_PACE_PINECONE_WRITES_PER_SECOND"] == "25.0"
    # Six consumers: shares are rounded down, so that together they never exceed a limit.
    six = StackConfig(pinecone_host="https://h", limits={"max_concurrency": 3})
    assert all(
        share * 6 <= limit
        for share, limit in zip(six.limits.consumer_shares().values(), (3000, 1e6, 100, 5e7), strict=True)
    )
    assert six.limits.consumer_shares()["pinecone_writes_per_second"] == 16.666
    # Smaller messages, more of them per invocation, up to the configured batch size.
    small = StackConfig(pinecone_host="https://h", queues={"max_message_bytes": 65_536})
    assert small.consumer_batch_size == 10


# ---------------------------------------------------------------------- checks: cdk-nag and cfn-lint


def test_cdk_nag_finds_nothing_unacknowledged(tmp_path: Path):
    app, _ = synth(outdir=tmp_path)
    app.synth()  # the AwsSolutions plugin raises on any finding the stack does not acknowledge
    report = tmp_path / "validation-report.json"
    if report.exists():
        for plugin in json.loads(report.read_text())["pluginReports"]:
            assert plugin["violations"] == []


def test_cdk_nag_really_runs_an_unacknowledged_finding_fails_synthesis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from infra.stack import CatalogSyncStack

    monkeypatch.setattr(CatalogSyncStack, "_acknowledge_findings", lambda self: None)
    app, _ = synth(outdir=tmp_path)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    rules = {
        violation["ruleName"].split("[")[0]
        for plugin in json.loads((tmp_path / "validation-report.json").read_text())["pluginReports"]
        for violation in plugin["violations"]
    }
    assert {"AwsSolutions-L1", "AwsSolutions-SMG4", "AwsSolutions-APIG4", "AwsSolutions-IAM5"} <= rules


def test_cfn_lint_passes_on_the_synthesised_template(tmp_path: Path):
    import subprocess
    import sys

    app, stack = synth(outdir=tmp_path)
    app.synth()
    template = tmp_path / f"{stack.stack_name}.template.json"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--config-file", str(root / ".cfnlintrc"), "--", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_health_function_scores_with_the_alarms_thresholds(resources):
    from catalog_sync.logic.health import HealthSettings

    health = functions(resources)["handlers.health.handler"]["Environment"]["Variables"]
    settings = HealthSettings.model_validate_json(health["CATALOG_SYNC_HEALTH"])
    assert (settings.stale_warning_hours, settings.stale_critical_hours) == (48, 72)
    assert (settings.failure_warning, settings.failure_critical) == (0.05, 0.10)
    [dashboard] = properties(resources, "AWS::CloudWatch::Dashboard")
    assert names.HEALTH_SCORE in json.dumps(dashboard["DashboardBody"])
