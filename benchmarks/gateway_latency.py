"""What the app gateway adds to a chat request, measured against the model server it fronts.

A script, not a test: it starts the model-server double (``tests/doubles``) with an answer of
``ANSWER_WORDS`` words, streamed one word per chunk, then the gateway (``aiapp gateway``) in
front of it, and, when a LiteLLM install is given, the LiteLLM proxy in front of the same
double. Each runs in its own process on 127.0.0.1. The load generator, this process, sends
streamed chat completions at 1 and at 64 concurrent streams to each target in turn and reads
every stream to ``data: [DONE]``, checking that the whole answer arrived.

Reported per target and concurrency: p50 and p99 of the time to the first content chunk and
to the end of the stream, the request rate, and what the proxy adds over calling the double
directly (the difference of the percentiles, not a percentile of differences). The run is
bounded by request counts and a deadline per phase, and stops every process it started.

Usage::

    .venv/bin/python benchmarks/gateway_latency.py --litellm /tmp/bench-venv/bin/litellm

Domain words: a *target* is what the load generator calls (``direct``, ``gateway``,
``litellm``); a *stream* is one client connection sending requests one after another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

ROOT: Final = Path(__file__).resolve().parent.parent
ANSWER_WORDS: Final = 20
ANSWER: Final = " ".join(f"word{n}" for n in range(ANSWER_WORDS))
GATEWAY_KEY: Final = "sk-bench-gateway"
LITELLM_KEY: Final = "sk-bench-litellm"
START_DEADLINE_S: Final = 120.0
REQUEST_TIMEOUT_S: Final = 30.0
PHASE_DEADLINE_S: Final = 300.0
QUESTION: Final = [{"role": "user", "content": "Propose a fix for the login button."}]


@dataclass(frozen=True)
class Target:
    """An OpenAI-compatible endpoint to load, with the model name and key it expects."""

    name: str
    base_url: str
    model: str
    api_key: str


@dataclass
class Samples:
    """Per-request timings of one target at one concurrency, in seconds."""

    first_chunk: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    failures: int = 0
    wall_s: float = 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_double(port: int) -> None:
    """Run the model-server double until killed (the child process's whole job)."""
    import uvicorn

    sys.path.insert(0, str(ROOT / "tests"))
    from doubles.model_server_double import ModelServerDouble

    double = ModelServerDouble(answer=ANSWER)
    uvicorn.run(double.app(), host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def process(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run ``command`` for the duration of the block, with its output in ``log``."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=log.parent,
        )
        try:
            yield
        finally:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)


def wait_ready(target: Target, log: Path) -> None:
    """Poll the target's model list until it answers, or fail with the end of its log."""
    deadline = time.monotonic() + START_DEADLINE_S
    headers = {"Authorization": f"Bearer {target.api_key}"}
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{target.base_url}/models", headers=headers, timeout=2)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-2000:]
    raise SystemExit(f"{target.name} did not start within {START_DEADLINE_S:g}s:\n{tail}")


async def one_request(client: httpx.AsyncClient, target: Target, samples: Samples) -> None:
    body = {"model": target.model, "messages": QUESTION, "stream": True}
    headers = {"Authorization": f"Bearer {target.api_key}"}
    started = time.perf_counter()
    first: float | None = None
    text: list[str] = []
    try:
        async with client.stream(
            "POST", f"{target.base_url}/chat/completions", json=body, headers=headers
        ) as response:
            if response.status_code != 200:
                await response.aread()
                samples.failures += 1
                return
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                for choice in chunk.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        if first is None:
                            first = time.perf_counter() - started
                        text.append(content)
    except (httpx.HTTPError, ValueError):
        samples.failures += 1
        return

    # A stream that ended early or garbled is a failure, not a fast sample.
    if "".join(text) != ANSWER or first is None:
        samples.failures += 1
        return
    samples.first_chunk.append(first)
    samples.total.append(time.perf_counter() - started)


async def load(target: Target, concurrency: int, requests: int) -> Samples:
    """Send ``requests`` streamed chats over ``concurrency`` streams; time each one."""
    samples = Samples()
    remaining = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S)

    async def stream(client: httpx.AsyncClient) -> None:
        for _ in remaining:
            await one_request(client, target, samples)

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(stream(client) for _ in range(concurrency))), PHASE_DEADLINE_S
        )
        samples.wall_s = time.perf_counter() - started
    return samples


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile; enough for a few hundred samples."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


def gateway_config(double_url: str) -> dict[str, object]:
    """A gateway config with one plain assistant, as the operator would render it."""
    return {
        "app": {"namespace": "bench", "name": "bench-app", "revision": "bench"},
        "spec": {
            "name": "bench-app",
            "assistants": [
                {"name": "coder", "model": "llama3.1:8b", "system_prompt": "You write code."}
            ],
        },
        "assistants": {
            "coder": {"upstream": {"base_url": f"{double_url}/v1", "model": "double-model"}}
        },
    }


def litellm_config(double_url: str) -> str:
    return (
        "model_list:\n"
        "  - model_name: coder\n"
        "    litellm_params:\n"
        "      model: openai/double-model\n"
        f"      api_base: {double_url}/v1\n"
        "      api_key: sk-double\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def report(results: dict[tuple[str, int], Samples]) -> str:
    lines = [
        "| target | streams | requests ok/failed | first chunk p50 / p99 ms | "
        "whole stream p50 / p99 ms | req/s | adds p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, concurrency), samples in results.items():
        if not samples.total:
            lines.append(f"| {name} | {concurrency} | 0/{samples.failures} | - | - | - | - |")
            continue
        p50, p99 = percentile(samples.total, 0.5), percentile(samples.total, 0.99)
        f50, f99 = percentile(samples.first_chunk, 0.5), percentile(samples.first_chunk, 0.99)
        direct = results.get(("direct", concurrency))
        added = "-"
        if name != "direct" and direct is not None and direct.total:
            d50, d99 = percentile(direct.total, 0.5), percentile(direct.total, 0.99)
            added = f"{(p50 - d50) * 1000:.1f} / {(p99 - d99) * 1000:.1f}"
        rate = len(samples.total) / samples.wall_s
        lines.append(
            f"| {name} | {concurrency} | {len(samples.total)}/{samples.failures} | "
            f"{f50 * 1000:.1f} / {f99 * 1000:.1f} | {p50 * 1000:.1f} / {p99 * 1000:.1f} | "
            f"{rate:.0f} | {added} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-double", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--litellm", help="path to the litellm command of a separate venv")
    parser.add_argument("--single", type=int, default=300, help="requests at 1 stream")
    parser.add_argument("--per-stream", type=int, default=10, help="requests per stream at 64")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured requests per target")
    args = parser.parse_args()
    if args.serve_double:
        serve_double(args.serve_double)
        return

    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)

        # The double first: every target streams the same answer from it.
        double_port = free_port()
        double_url = f"http://127.0.0.1:{double_port}"
        command = [sys.executable, __file__, "--serve-double", str(double_port)]
        stack.enter_context(process(command, work / "double.log"))
        targets = [Target("direct", f"{double_url}/v1", "double-model", "unused")]
        wait_ready(targets[0], work / "double.log")

        # The gateway, as the operator runs it, without access logs.
        config = work / "config.json"
        config.write_text(json.dumps(gateway_config(double_url)))
        port = free_port()
        aiapp = str(Path(sys.executable).parent / "aiapp")
        command = [aiapp, "gateway", "--config", str(config), "--host", "127.0.0.1"]
        command += ["--port", str(port), "--log-level", "warning"]
        env = {"AIAPP_API_KEYS": GATEWAY_KEY}
        stack.enter_context(process(command, work / "gateway.log", env))
        targets.append(Target("gateway", f"http://127.0.0.1:{port}/v1", "coder", GATEWAY_KEY))
        wait_ready(targets[-1], work / "gateway.log")

        # LiteLLM, offline: the bundled model cost map instead of fetching it.
        if args.litellm:
            (work / "litellm.yaml").write_text(litellm_config(double_url))
            port = free_port()
            command = [args.litellm, "--config", str(work / "litellm.yaml")]
            command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
            env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
            stack.enter_context(process(command, work / "litellm.log", env))
            targets.append(Target("litellm", f"http://127.0.0.1:{port}/v1", "coder", LITELLM_KEY))
            wait_ready(targets[-1], work / "litellm.log")

        # Warm every target, then measure each concurrency on each target in turn.
        for target in targets:
            asyncio.run(load(target, 4, args.warmup))
        requests = {1: args.single, 64: 64 * args.per_stream}
        results: dict[tuple[str, int], Samples] = {}
        for concurrency, count in requests.items():
            for target in targets:
                results[(target.name, concurrency)] = asyncio.run(load(target, concurrency, count))
                print(f"measured {target.name} at {concurrency} streams", file=sys.stderr)

    print(f"Machine: {machine()}")
    print(f"Answer: {ANSWER_WORDS} content chunks per stream, no delay between chunks\n")
    print(report(results))


if __name__ == "__main__":
    main()
