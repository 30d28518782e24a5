"""The stack's constructs, one concern each: storage, queues, secrets, functions (and what they may do), their
triggers, the webhook API, monitoring, and the cdk-nag findings the design accepts.

Each is a TransparentConstruct (naming.py): it groups resources without renaming them. Queues, Functions and
Triggers create theirs in the stack itself, because CDK names other resources after their paths.
"""
