"""Retries and pacing: how the adapters ride out throttling and keep to the services' rate limits.

`policy` holds every retry number the product uses; `retry` the backoff they are spent with; `pacing` the
client-side pacer shared by everything that sends to one limit; `pinecone_sdk` the one place that puts the
pacer under the Pinecone SDK's own retry loop.
"""
