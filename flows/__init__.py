"""Prefect flows: thin wrappers over the engine. Nothing imports flows/."""
