"""The CDK app that deploys catalog-sync."""
