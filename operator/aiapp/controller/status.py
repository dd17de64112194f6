"""The AIApp's status: conditions a person and Flux can read, computed from live children.

Conditions follow kstatus: ``Ready`` says the app serves, ``Reconciling`` that the operator is
still bringing it there, ``Stalled`` that it cannot get there without the user. Our own
conditions (``ModelsReady``, ``GatewayReady``, ``KnowledgeReady``, ``TestsPassed``) say which
part is missing. Everything here is a pure function of what the handlers read, so the same
inputs give the same status and an unchanged app is not written to.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any

# Container waiting reasons that mean a pod will not start without a change.
STUCK_REASONS = {
    "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}


# Reasons that only say work is under way; conditions False for these are not warnings.
IN_PROGRESS = {"Creating", "Progressing", "Indexing", "Testing", "NotRun", "NoTests",
               "WaitingForEmbeddings", "TestingCandidate",
               "Available", "Ready", "Reconciled", "Indexed", "NoKnowledge", "Passed"}


NO_TESTS = "The app has no tests."


def is_failure(condition: dict[str, Any]) -> bool:
    """Whether a condition reports something a person should look at (a Warning event)."""
    if condition["type"] == "Stalled":
        return bool(condition["status"] == "True")
    if condition["type"] == "Reconciling":
        return False
    return condition["status"] == "False" and condition["reason"] not in IN_PROGRESS


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Health:
    """Whether a part of the app is ready, and if not, why, in one sentence."""

    ready: bool
    reason: str
    message: str


def deployment_health(
    deployment: dict[str, Any] | None, pods: list[dict[str, Any]], what: str
) -> Health:
    """Readiness of a Deployment, with the scheduler's or kubelet's reason when pods are stuck."""
    if deployment is None:
        return Health(False, "Creating", f"{what} is being created.")
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    current = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    available = status.get("availableReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    # Old pods still running mean a rollout is under way, even if they keep serving.
    leftover = status.get("replicas", 0) > wanted
    if current and available >= wanted and updated >= wanted and not leftover:
        return Health(True, "Available", f"{what} has {available}/{wanted} replicas ready.")

    # Say why pods are not running, in the words of the component that knows.
    for pod in pods:
        for condition in pod.get("status", {}).get("conditions", []):
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                reason = condition.get("reason") or "Unschedulable"
                return Health(False, reason,
                              f"{what} cannot be scheduled: {condition.get('message', reason)}")
        for container in pod.get("status", {}).get("containerStatuses", []):
            waiting = container.get("state", {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_REASONS:
                detail = waiting.get("message") or waiting["reason"]
                return Health(False, waiting["reason"],
                              f"{what} container {container.get('name')} is stuck in "
                              f"{waiting['reason']}: {detail}")
    return Health(False, "Progressing", f"{what} has {available}/{wanted} replicas ready.")


def termination_summary(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON a Job's container wrote to its termination log, if any."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""),
                      reverse=True):
        for container in pod.get("status", {}).get("containerStatuses", []):
            message = (container.get("state", {}).get("terminated") or {}).get("message")
            if message:
                try:
                    parsed = json.loads(message)
                except ValueError:
                    return {"message": message[:500]}
                return parsed if isinstance(parsed, dict) else {"message": str(parsed)[:500]}
    return {}


def job_state(job: dict[str, Any] | None) -> str:
    """pending, running, succeeded or failed."""
    if job is None:
        return "pending"
    for condition in job.get("status", {}).get("conditions", []):
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if condition.get("type") in ("Failed", "FailureTarget"):
            return "failed"
    return "running" if job.get("status", {}).get("active") else "pending"


def job_failure(job: dict[str, Any] | None) -> str:
    for condition in (job or {}).get("status", {}).get("conditions", []):
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "the Job failed")
    return ""


@dataclass
class KnowledgeReport:
    name: str
    job: dict[str, Any] | None
    summary: dict[str, Any]
    embedding_model: str
    waiting_for: str = ""

    def status(self) -> dict[str, Any]:
        state = {"pending": "pending", "running": "indexing", "succeeded": "ready",
                 "failed": "error"}[job_state(self.job)]
        entry: dict[str, Any] = {"name": self.name, "state": state,
                                 "embeddingModel": self.embedding_model}
        for key, target in (("version", "activeVersion"), ("documents", "documents"),
                            ("chunks", "chunks")):
            if key in self.summary:
                entry[target] = self.summary[key]
        if state == "ready":
            completion = (self.job or {}).get("status", {}).get("completionTime")
            if completion:
                entry["lastIndexed"] = completion
            entry["message"] = "The index is built and active."
        elif state == "error":
            entry["message"] = (self.summary.get("error") or self.summary.get("message")
                                or job_failure(self.job))
        elif state == "indexing":
            entry["message"] = "The index Job is running."
        elif self.waiting_for:
            entry["message"] = f"The index Job waits for {self.waiting_for}."
        else:
            entry["message"] = "Waiting for the index Job to start."
        return entry


@dataclass
class TestReport:
    revision: str
    job: dict[str, Any] | None
    summary: dict[str, Any]
    evaluation_model: str

    def status(self) -> dict[str, Any]:
        state = job_state(self.job)
        entry: dict[str, Any] = {"revision": self.revision, "state": state,
                                 "evaluationModel": self.evaluation_model}
        for key in ("passed", "failed"):
            if key in self.summary:
                entry[key] = self.summary[key]
        failures = self.summary.get("failures") or []
        if failures:
            entry["failures"] = failures[:20]
        if state in ("succeeded", "failed"):
            entry["time"] = (self.job or {}).get("status", {}).get("completionTime") or now()
        if state == "failed" and not failures:
            entry["message"] = job_failure(self.job)
        return entry


@dataclass
class Observed:
    """What the handler read about one app, ready to be summarised."""

    generation: int
    endpoint: str = ""
    revision: str = ""
    serving_revision: str = ""
    candidate_revision: str = ""
    assistants: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, Health] = field(default_factory=dict)
    gateway: Health | None = None
    knowledge: list[KnowledgeReport] = field(default_factory=list)
    tests: TestReport | None = None
    tests_note: str = ""
    stalled_reason: str = ""
    stalled_message: str = ""


def condition(
    previous: list[dict[str, Any]], kind: str, ok: bool | None, reason: str, message: str,
    generation: int,
) -> dict[str, Any]:
    """A condition that keeps its lastTransitionTime while its status stays the same."""
    value = "Unknown" if ok is None else ("True" if ok else "False")
    old = next((c for c in previous if c.get("type") == kind), {})
    changed = old.get("status") != value
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now() if changed else old.get("lastTransitionTime", now()),
    }


def summarise(observed: Observed, previous: dict[str, Any]) -> dict[str, Any]:
    """The whole status of the app from what was observed."""
    old_conditions = previous.get("conditions", [])
    generation = observed.generation

    def make(kind: str, ok: bool | None, reason: str, message: str) -> dict[str, Any]:
        return condition(old_conditions, kind, ok, reason, message, generation)

    # A spec the operator cannot act on stalls the app until the user changes it.
    if observed.stalled_reason:
        message = observed.stalled_message
        # What served before keeps serving, so what status said about it stays true.
        kept: dict[str, Any] = {key: previous[key] for key in ("endpoint", "revision",
                                                        "servingRevision", "assistants",
                                                        "knowledge", "tests")
                if key in previous}
        return {
            **kept,
            "observedGeneration": generation,
            "conditions": [
                make("Ready", False, observed.stalled_reason, message),
                make("Reconciling", False, observed.stalled_reason, message),
                make("Stalled", True, observed.stalled_reason, message),
            ],
            "message": message,
            "fresh": "False",
            "modelsSummary": "-",
            "knowledgeSummary": "-",
            "testsSummary": "-",
        }

    # Models and gateway.
    not_ready_models = {name: h for name, h in observed.models.items() if not h.ready}
    models_ok = not not_ready_models
    if models_ok:
        models_reason, models_message = "Available", "Every model server is ready."
    else:
        first = next(iter(not_ready_models.values()))
        models_reason, models_message = first.reason, first.message
    gateway = observed.gateway or Health(False, "Creating", "The gateway is being created.")

    # Knowledge.
    knowledge = [report.status() for report in observed.knowledge]
    ready_knowledge = sum(1 for k in knowledge if k["state"] == "ready")
    failed_knowledge = [k for k in knowledge if k["state"] == "error"]
    knowledge_ok = ready_knowledge == len(knowledge)
    if failed_knowledge:
        knowledge_reason = "IndexFailed"
        knowledge_message = f"Knowledge {failed_knowledge[0]['name']} failed to index: " \
                            f"{failed_knowledge[0].get('message', '')}"
    elif knowledge_ok:
        knowledge_reason = "Indexed" if knowledge else "NoKnowledge"
        knowledge_message = (f"{len(knowledge)} knowledge index(es) ready." if knowledge
                             else "The app has no knowledge.")
    elif waiting := [r for r in observed.knowledge if r.waiting_for and r.job is None]:
        # Nothing indexes yet: say what it waits for (the store is the user's to provide).
        store = "store Secret" in waiting[0].waiting_for
        knowledge_reason = "StoreSecretMissing" if store else "WaitingForEmbeddings"
        knowledge_message = f"Knowledge {waiting[0].name} waits for {waiting[0].waiting_for}."
    else:
        knowledge_reason, knowledge_message = "Indexing", \
            f"{ready_knowledge}/{len(knowledge)} knowledge indexes ready."

    # Tests.
    tests = observed.tests.status() if observed.tests else None
    if tests is None:
        reason = "NoTests" if observed.tests_note == NO_TESTS else "NotRun"
        tests_condition = make("TestsPassed", None, reason,
                               observed.tests_note or "No test run yet.")
        tests_summary = "-"
    elif tests["state"] in ("pending", "running"):
        tests_condition = make("TestsPassed", None, "Testing",
                               f"Testing revision {tests['revision']}.")
        tests_summary = "running"
    elif "passed" not in tests and "failed" not in tests and tests["state"] == "succeeded":
        # aiapp test exits 0 only when every test passed; without its report there are no counts.
        tests_condition = make("TestsPassed", True, "Passed",
                               f"The test Job for revision {tests['revision']} exited 0 (all "
                               "tests passed) but wrote no report with counts.")
        tests_summary = "passed"
    else:
        passed, failed = tests.get("passed", 0), tests.get("failed", 0)
        ok = tests["state"] == "succeeded" and failed == 0
        if ok:
            message = f"{passed}/{passed + failed} tests passed on revision {tests['revision']}."
        else:
            reasons = "; ".join(f"{f.get('name')}: {f.get('reason', '')}"
                                for f in tests.get("failures", [])[:3])
            message = (f"{failed}/{passed + failed} tests failed on revision "
                       f"{tests['revision']}" + (f": {reasons}" if reasons else "")
                       + (f" {tests['message']}" if tests.get("message") else ""))
        tests_condition = make("TestsPassed", ok, "Passed" if ok else "Failed", message)
        tests_summary = f"{passed}/{passed + failed}"

    # The app is ready when it serves: models, gateway and knowledge.
    ready = models_ok and gateway.ready and knowledge_ok
    if ready:
        ready_reason, ready_message = "Ready", f"The app is served at {observed.endpoint}."
    elif not models_ok:
        ready_reason, ready_message = models_reason, models_message
    elif not gateway.ready:
        ready_reason, ready_message = gateway.reason, gateway.message
    else:
        ready_reason, ready_message = knowledge_reason, knowledge_message

    # A gated change under test is still being reconciled; one whose tests failed is held
    # back, which kstatus readers (Flux) must see as a failure of this generation.
    reconciling, reconciling_reason = not ready, "Progressing"
    reconciling_message = ready_message if not ready else "Nothing left to do."
    stalled, stalled_reason = False, "Reconciled"
    stalled_message = "The operator can act on the spec."
    if observed.candidate_revision:
        reconciling, reconciling_reason = True, "TestingCandidate"
        reconciling_message = (f"Revision {observed.candidate_revision} is tested as a "
                               f"candidate; {observed.serving_revision} serves meanwhile.")
    elif observed.serving_revision and observed.serving_revision != observed.revision:
        stalled, stalled_reason = True, "CandidateRejected"
        stalled_message = (f"Revision {observed.revision} failed its tests and was not rolled "
                           f"out; {observed.serving_revision} keeps serving (fix the app or "
                           "its tests).")

    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": [
            make("Ready", ready, ready_reason, ready_message),
            make("Reconciling", reconciling, reconciling_reason, reconciling_message),
            make("Stalled", stalled, stalled_reason, stalled_message),
            make("ModelsReady", models_ok, models_reason, models_message),
            make("GatewayReady", gateway.ready, gateway.reason, gateway.message),
            make("KnowledgeReady", knowledge_ok, knowledge_reason, knowledge_message),
            tests_condition,
        ],
        "message": ready_message,
        # Fresh: the latest spec is what serves, with indexes built from its settings.
        "fresh": str(observed.serving_revision == observed.revision and knowledge_ok),
        "endpoint": observed.endpoint,
        "revision": observed.revision,
        "servingRevision": observed.serving_revision,
        "assistants": observed.assistants,
        "knowledge": knowledge,
        "modelsSummary": f"{len(observed.models) - len(not_ready_models)}/{len(observed.models)}",
        "knowledgeSummary": f"{ready_knowledge}/{len(knowledge)}" if knowledge else "-",
        "testsSummary": tests_summary,
    }
    if observed.candidate_revision:
        status["candidateRevision"] = observed.candidate_revision
    if tests is not None:
        status["tests"] = tests
    return status


def same_status(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether writing ``new`` would change anything but timestamps."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in ("lastTransitionTime", "time")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    ours = {k: v for k, v in old.items() if k != "kopf"}
    return bool(strip(new) == strip(ours))


def removed_keys(new: dict[str, Any], old: dict[str, Any]) -> dict[str, None]:
    """Keys the old status has and the new one lacks, as a merge patch deletes them."""
    return {key: None for key in old if key not in new and key != "kopf"}
