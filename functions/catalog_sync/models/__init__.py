"""Pydantic models: catalog configuration, products, changes and runs."""
