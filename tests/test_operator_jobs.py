"""Knowledge index Jobs, refresh CronJobs, test Jobs and gated rollouts on the simulated cluster.

kwok plays the Jobs' pods. Annotations on the AIApp reach the pods (the operator propagates the
user's annotations), and the simulation reads three of them: the exit code, and the termination
message that ``aiapp index`` and ``aiapp test`` write for the operator to read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiapp.localcluster import LocalCluster
from aiapp.localcluster.stages import EXIT_CODE, TERMINATION_MESSAGE
from operator_fixtures import OperatorProcess, app_body, apply, condition, get, wait_until

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parent.parent


def simulate(body: dict[str, Any], *, exit_code: int = 0, **summary: Any) -> dict[str, Any]:
    """Make the app's Job pods end with ``exit_code`` and write ``summary`` as their message."""
    annotations = body["metadata"].setdefault("annotations", {})
    annotations[EXIT_CODE] = str(exit_code)
    annotations[TERMINATION_MESSAGE] = json.dumps(summary)
    return body


def app_state(cluster: LocalCluster, namespace: str, name: str,
              check: Any, what: str, timeout: float = 90) -> Any:
    def probe() -> Any:
        app = get(cluster, namespace, "aiapp", name)
        return app if app and check(app) else None

    return wait_until(probe, what, timeout)


def app_with_tests(name: str, **testing: Any) -> dict[str, Any]:
    return app_body(name, assistant={"tests": [
        {"name": "answers", "steps": [{"prompt": "2+2?", "expected_output": "4"}]},
        {"name": "brief", "steps": [{"prompt": "Hi", "expected_output": "short"}]},
    ]}, testing={"evaluation_model": "llama3.1:8b", **testing})


def test_a_knowledge_entry_gets_an_index_job_and_a_refresh_cronjob_and_its_status_follows(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    body = yaml.safe_load((REPO / "examples/docs-assistant/aiapp.yaml").read_text())
    simulate(body, version=1, documents=12, chunks=80)
    apply(cluster, namespace, body)
    name = body["metadata"]["name"]

    app = app_state(cluster, namespace, name,
                    lambda a: condition(a, "KnowledgeReady").get("status") == "True",
                    "the knowledge index to be ready")

    jobs = get(cluster, namespace, "jobs", "-l", "aiapp.dev/component=knowledge-index")["items"]
    crons = get(cluster, namespace, "cronjobs")["items"]
    assert len(jobs) == 1 and len(crons) == 1
    assert crons[0]["spec"]["schedule"] == "0 */6 * * *"
    entry = app["status"]["knowledge"][0]
    assert entry["state"] == "ready"
    assert (entry["activeVersion"], entry["documents"], entry["chunks"]) == (1, 12, 80)
    assert entry["embeddingModel"] == "BAAI/bge-small-en-v1.5"
    assert "lastIndexed" in entry
    assert condition(app, "Ready")["status"] == "True"


def test_a_failed_index_job_shows_its_error_on_the_app(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    body = app_body("broken-index", assistant={"knowledge": [
        {"name": "notes", "source": {"web": {"urls": ["https://docs.example.com/"]}}}]})
    simulate(body, exit_code=1, error="fetching https://docs.example.com/ failed: 503")
    apply(cluster, namespace, body)

    app = app_state(cluster, namespace, "broken-index",
                    lambda a: condition(a, "KnowledgeReady").get("reason") == "IndexFailed",
                    "the index failure to reach the app", timeout=150)

    entry = app["status"]["knowledge"][0]
    assert entry["state"] == "error"
    assert "503" in entry["message"]
    assert condition(app, "Ready")["status"] == "False"


def test_a_changed_knowledge_source_makes_a_new_index_job_and_other_edits_do_not(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    def body(prompt: str, text: str) -> dict[str, Any]:
        return simulate(app_body("reindex", system_prompt=prompt, assistant={
            "knowledge": [{"name": "notes", "source": {"text": text}}]}), version=1)

    def index_jobs() -> set[str]:
        items = get(cluster, namespace, "jobs", "-l", "aiapp.dev/component=knowledge-index")
        return {job["metadata"]["name"] for job in items["items"]}

    apply(cluster, namespace, body("Be brief.", "Opening hours: nine to five."))
    first = wait_until(index_jobs, "the first index Job")

    apply(cluster, namespace, body("Be thorough.", "Opening hours: nine to five."))
    app_state(cluster, namespace, "reindex",
              lambda a: a["status"].get("observedGeneration") == a["metadata"]["generation"],
              "the prompt edit to be reconciled")
    assert index_jobs() == first

    apply(cluster, namespace, body("Be thorough.", "Opening hours: ten to four."))
    second = wait_until(lambda: index_jobs() - first, "a new index Job for the new source")
    assert len(second) == 1


def test_a_test_job_runs_for_each_new_revision_and_its_outcome_reaches_the_app(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, simulate(app_with_tests("tested"), passed=2, failed=0, failures=[]))

    app = app_state(cluster, namespace, "tested",
                    lambda a: condition(a, "TestsPassed").get("status") == "True",
                    "the tests to pass")

    tests = app["status"]["tests"]
    assert tests["revision"] == app["status"]["revision"]
    assert (tests["passed"], tests["failed"]) == (2, 0)
    job = get(cluster, namespace, "job", f"tested-test-{tests['revision']}")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--evaluation-model") + 1] == "llama3.1:8b"
    assert app["status"]["testsSummary"] == "2/2"


def test_failing_tests_are_reported_with_their_reasons(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    apply(cluster, namespace, simulate(
        app_with_tests("failing"), exit_code=1, passed=1, failed=1,
        failures=[{"name": "brief", "reason": "the answer had 300 words"}]))

    app = app_state(cluster, namespace, "failing",
                    lambda a: condition(a, "TestsPassed").get("status") == "False",
                    "the test failure to be reported")

    assert "brief: the answer had 300 words" in condition(app, "TestsPassed")["message"]
    assert app["status"]["tests"]["failures"] == [
        {"name": "brief", "reason": "the answer had 300 words"}]
    assert condition(app, "Ready")["status"] == "True"


def gateway_revision(cluster: LocalCluster, namespace: str, name: str) -> str:
    deployment = get(cluster, namespace, "deployment", f"{name}-gateway")
    return str(deployment["spec"]["template"]["metadata"]["labels"]["aiapp.dev/revision"])


def test_a_gated_change_whose_tests_fail_keeps_the_old_gateway_and_one_that_passes_is_promoted(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    # The first revision goes straight to serving and passes.
    first = simulate(app_with_tests("gated", gated_rollout=True), passed=2, failed=0)
    apply(cluster, namespace, first)
    app = app_state(cluster, namespace, "gated",
                    lambda a: condition(a, "TestsPassed").get("status") == "True",
                    "the first revision's tests to pass")
    serving = app["status"]["servingRevision"]

    # A change whose tests fail is tried as a candidate and removed; the old one keeps serving.
    failing = simulate(app_with_tests("gated", gated_rollout=True), exit_code=1, passed=1, failed=1,
                       failures=[{"name": "answers", "reason": "said 5"}])
    failing["spec"]["assistants"][0]["system_prompt"] = "Answer in riddles."
    apply(cluster, namespace, failing)
    app = app_state(cluster, namespace, "gated",
                    lambda a: condition(a, "TestsPassed").get("status") == "False",
                    "the candidate's tests to fail")
    assert "answers: said 5" in condition(app, "TestsPassed")["message"]
    assert app["status"]["servingRevision"] == serving
    assert app["status"]["revision"] != serving
    assert app["status"]["fresh"] == "False"
    wait_until(lambda: get(cluster, namespace, "deployment", "gated-gateway-candidate") is None,
               "the failed candidate to be removed")
    assert gateway_revision(cluster, namespace, "gated") == serving

    # A change whose tests pass is promoted.
    passing = simulate(app_with_tests("gated", gated_rollout=True), passed=2, failed=0)
    passing["spec"]["assistants"][0]["system_prompt"] = "Answer plainly."
    apply(cluster, namespace, passing)
    app = app_state(
        cluster, namespace, "gated",
        lambda a: a["status"].get("servingRevision") not in (None, serving)
        and a["status"]["servingRevision"] == a["status"]["revision"],
        "the passing candidate to be promoted")
    assert condition(app, "TestsPassed")["status"] == "True"
    assert app["status"]["fresh"] == "True"
    wait_until(lambda: gateway_revision(cluster, namespace, "gated")
               == app["status"]["revision"], "the serving gateway to roll to the new revision")


def test_a_refresh_run_started_by_the_cronjob_is_left_to_finish(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    body = simulate(app_body("refreshed", assistant={"knowledge": [{
        "name": "notes", "source": {"text": "Opening hours: nine to five."},
        "refresh_enabled": True, "refresh_schedule": "0 */6 * * *"}]}), version=1)
    apply(cluster, namespace, body)
    cron = wait_until(lambda: get(cluster, namespace, "cronjobs")["items"], "the CronJob")[0]

    cluster.kubectl("create", "job", "-n", namespace, "manual-refresh",
                    f"--from=cronjob/{cron['metadata']['name']}")

    def completed() -> bool:
        job = get(cluster, namespace, "job", "manual-refresh")
        assert job is not None, "the operator deleted the CronJob's run"
        return any(c["type"] == "Complete" and c["status"] == "True"
                   for c in job["status"].get("conditions", []))

    wait_until(completed, "the refresh run to complete")


def test_knowledge_waits_for_the_store_secret_while_the_rest_of_the_app_serves(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess,
) -> None:
    store = ("-n", "aiapp-system", "secret", "aiapp-store")
    saved = get(cluster, "aiapp-system", "secret", "aiapp-store")
    cluster.kubectl("delete", *store)
    try:
        apply(cluster, namespace, simulate(app_body("storeless", assistant={"knowledge": [
            {"name": "notes", "source": {"text": "Opening hours: nine to five."}}]}),
            version=1))
        app = app_state(
            cluster, namespace, "storeless",
            lambda a: "store Secret" in ((a.get("status") or {}).get("knowledge")
                                         or [{}])[0].get("message", "")
            and condition(a, "GatewayReady").get("status") == "True",
            "the gateway to serve while knowledge waits for the store")
        assert condition(app, "KnowledgeReady")["status"] == "False"
        assert condition(app, "KnowledgeReady")["reason"] == "StoreSecretMissing"
        events = cluster.kubectl("get", "events", "-n", namespace,
                                 "--field-selector", "involvedObject.name=storeless").stdout
        assert "StoreSecretMissing" in events
    finally:
        saved["metadata"] = {"name": "aiapp-store", "namespace": "aiapp-system"}
        apply(cluster, "aiapp-system", saved)

    app_state(cluster, namespace, "storeless",
              lambda a: condition(a, "KnowledgeReady").get("status") == "True",
              "knowledge to be indexed once the store Secret exists")
