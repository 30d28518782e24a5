"""The API keys the functions read from Secrets Manager (never from their environment) and the webhook's
signing key."""

from __future__ import annotations

from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.components.naming import TransparentConstruct
from infra.config import StackConfig


class Secrets(TransparentConstruct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
        super().__init__(scope, construct_id)
        placeholder = secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=32)
        self.pinecone = secretsmanager.Secret(
            self,
            "PineconeApiKey",
            description="catalog-sync: the Pinecone API key (set its value after the first deploy)",
            generate_secret_string=placeholder,
        )
        self.openai = (
            secretsmanager.Secret(
                self,
                "OpenAIApiKey",
                description="catalog-sync: the OpenAI API key (set its value after the first deploy)",
                generate_secret_string=placeholder,
            )
            if config.openai
            else None
        )
        # A random key from the start; callers of the webhook sign their requests with it.
        self.webhook = secretsmanager.Secret(
            self,
            "WebhookSigningKey",
            description="catalog-sync: the HMAC-SHA256 key webhook requests are signed with",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=64),
        )
