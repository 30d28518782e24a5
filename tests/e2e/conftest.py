from __future__ import annotations

# The AWS world under moto (S3, SQS, DynamoDB, Secrets Manager; Pinecone and OpenAI doubles), for every e2e test.
from tests.e2e.test_aws_pipeline import world  # noqa: F401
