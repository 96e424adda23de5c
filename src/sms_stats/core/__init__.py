"""Foundations every stage stands on, and that know no stage: errors and their HTTP codes, the
redaction of secrets, structured logs, hour windows and zones, the three record schemas, the
settings (with the alert rules they parse), signing, pacing, the notice model, the runtime
context and the whole-call deadline of outbound HTTP.

Nothing here imports a stage: `make lint` (import-linter) fails the build if one does.
"""
