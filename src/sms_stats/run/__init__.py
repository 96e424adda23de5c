"""A job carried out: the preflight check of settings and sinks, the pipeline (collect, store,
deliver), healing of the settle hours, backfill, and `store migrate`. Alerts are a stage of
their own beside this one; neither knows the other, the handler runs one after the other.
"""
