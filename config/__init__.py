"""Configuration: pydantic models for systems and pipelines, and a loader that keeps line numbers."""
