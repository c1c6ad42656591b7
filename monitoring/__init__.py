"""Monitoring: every metric in one place, structured logging with redaction, alert rules and runbook."""
