"""The catalog-sync stack: the bucket catalogs are dropped into, the diff, consumer and webhook functions, the
queues between them, the state table, secrets, alarms and a dashboard. Every function may act only on its own
resources; every threshold comes from the StackConfig. The parts are the constructs of infra/components.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infra.components.api import WebhookApi
from infra.components.functions import Functions
from infra.components.grants import grant_least_privilege
from infra.components.monitoring import Monitoring
from infra.components.nag import acknowledge_findings
from infra.components.naming import transparent_logical_id
from infra.components.queues import Queues
from infra.components.secrets import Secrets
from infra.components.storage import Storage
from infra.components.triggers import Triggers
from infra.config import StackConfig


class CatalogSyncStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.storage = Storage(self, "Storage", config=config)
        self.queues = Queues(self, "Queues", config=config)
        self.secrets = Secrets(self, "Secrets", config=config)
        self.functions = Functions(
            self, "Functions", config=config, storage=self.storage, queues=self.queues, secrets=self.secrets
        )
        grant_least_privilege(
            self, self.functions, config=config, storage=self.storage, queues=self.queues, secrets=self.secrets
        )
        Triggers(self, "Triggers", config=config, storage=self.storage, queues=self.queues, functions=self.functions)
        self.api = WebhookApi(self, "Api", config=config, handler=self.functions.webhook)
        self.monitoring = Monitoring(self, "Monitoring", config=config, queues=self.queues, functions=self.functions)
        self._outputs()
        self._acknowledge_findings()

    def _allocate_logical_id(self, cfn_element: cdk.CfnElement) -> str:
        # The constructs group resources without renaming them: a resource keeps the logical id it had as a direct
        # child of the stack, so regrouping never makes CloudFormation replace it (the tables, the bucket).
        return transparent_logical_id(self, cfn_element) or super()._allocate_logical_id(cfn_element)

    def _outputs(self) -> None:
        secrets, queues = self.secrets, self.queues
        for name, value in (
            ("Bucket", self.storage.bucket.bucket_name),
            ("StateTable", self.storage.table.table_name),
            ("ChangeQueueUrl", queues.change_queue.queue_url),
            ("PriorityQueueUrl", queues.priority_queue.queue_url),
            ("ChangeDeadLetterQueueUrl", queues.change_dlq.queue_url),
            ("PriorityDeadLetterQueueUrl", queues.priority_dlq.queue_url),
            ("DiffFailuresQueueUrl", queues.diff_failures.queue_url),
            ("WebhookUrl", self.api.stage.url),
            ("WebhookSecretArn", secrets.webhook.secret_arn),
            ("PineconeSecretArn", secrets.pinecone.secret_arn),
            ("AlertTopicArn", self.monitoring.alert_topic.topic_arn),
        ):
            cdk.CfnOutput(self, f"{name}Output", value=value, export_name=f"{self.stack_name}-{name}")
        if secrets.openai is not None:
            cdk.CfnOutput(self, "OpenAISecretArnOutput", value=secrets.openai.secret_arn)

    def _acknowledge_findings(self) -> None:
        acknowledge_findings(
            self,
            config=self.config,
            storage=self.storage,
            queues=self.queues,
            secrets=self.secrets,
            functions=self.functions,
            api=self.api,
        )
