"""Triggers into jobs: which event arrived (timer, HTTP, direct invoke), as pydantic models
checked field by field, and the validated `Job` it asks for (apps, kinds, hour windows).

Knows the settings, not how statistics are collected, stored or answered.
"""
