"""The webhook: an HTTP API in front of the webhook function, throttled, with access logs."""

from __future__ import annotations

import json

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigateway_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.components.functions import retain_logs
from infra.components.naming import TransparentConstruct
from infra.config import StackConfig

# HTTP API access log fields ($context variables of HTTP APIs, not REST APIs').
HTTP_API_ACCESS_LOG = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "method": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "integrationError": "$context.integrationErrorMessage",
}


@jsii.implements(apigw.IAccessLogSettings)
class AccessLogs:
    """Access logging for an HTTP API stage (the interface has no ready-made class in Python)."""

    def __init__(self, *, destination: apigw.IAccessLogDestination, log_format: apigateway_v1.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway_v1.AccessLogFormat:
        return self._format


class WebhookApi(TransparentConstruct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, handler: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(self, "WebhookAccessLogs", removal_policy=cdk.RemovalPolicy.DESTROY)
        retain_logs(access_logs, config.functions.log_retention_days)
        self.api = apigw.HttpApi(
            self,
            "WebhookApi",
            description="catalog-sync webhook: signed sync requests",
            default_integration=integrations.HttpLambdaIntegration("Webhook", handler),
            create_default_stage=False,
        )
        self.stage = apigw.HttpStage(
            self,
            "WebhookStage",
            http_api=self.api,
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=20, burst_limit=40),
            access_log_settings=AccessLogs(
                destination=apigw.LogGroupLogDestination(access_logs),
                log_format=apigateway_v1.AccessLogFormat.custom(json.dumps(HTTP_API_ACCESS_LOG)),
            ),
        )
