"""Prometheus metrics of the operator."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_SECONDS = Histogram(
    "aiapp_reconcile_duration_seconds", "Time to reconcile one AIApp.", ["trigger"])
RECONCILE_ERRORS = Counter(
    "aiapp_reconcile_errors_total", "Reconciles that failed, by kind of failure.", ["kind"])
CHILDREN_APPLIED = Counter(
    "aiapp_children_applied_total", "Children written with server-side apply.", ["kind"])
API_WRITES = Counter("aiapp_api_writes_total", "Writes the operator sent to the API server.")
APPS_BY_CONDITION = Gauge(
    "aiapp_apps", "AIApps by the status of a condition.", ["condition", "status"])
