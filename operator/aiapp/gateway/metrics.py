"""The gateway's Prometheus metrics, by assistant: requests, latency, tokens, tool calls, errors.

Each app server gets its own registry, so tests can run several gateways in one process and
``/metrics`` shows only that app's series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "aiapp_gateway_requests",
            "Chat completion requests, by assistant and HTTP status.",
            ["assistant", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aiapp_gateway_request_seconds",
            "Time from a chat request to its last byte, by assistant.",
            ["assistant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "aiapp_gateway_tokens",
            "Tokens the model servers reported, by assistant and kind (prompt or completion).",
            ["assistant", "kind"],
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "aiapp_gateway_tool_calls",
            "API calls made for the model, by assistant, tool and outcome (ok or error).",
            ["assistant", "tool", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "aiapp_gateway_errors",
            "Failed chat requests, by assistant and error code.",
            ["assistant", "code"],
            registry=self.registry,
        )

    def count_usage(self, assistant: str, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        for kind in ("prompt", "completion"):
            value = usage.get(f"{kind}_tokens")
            if isinstance(value, int) and value > 0:
                self.tokens.labels(assistant, kind).inc(value)
