"""Reconcile one AIApp: fetch, render, apply, prune, observe, report.

Every trigger (the app changed, a child changed or vanished, a Model changed, the periodic
resync) ends in ``Reconciler.reconcile``, which is idempotent and level-based: it renders the
whole desired state and writes only what differs from the live objects. One lock per app keeps
two triggers from reconciling the same app at once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from lightkube import ApiError

from aiapp.api.aispec import AIApp, AISpecError, parse_app, schema_kind
from aiapp.api.model import Model, ModelSpec, parse_model, resolve_model
from aiapp.api.presets import preset_names
from aiapp.controller import metrics, status
from aiapp.controller.kube import Kube
from aiapp.controller.settings import OperatorSettings
from aiapp.render import app as app_render
from aiapp.render import gateway as gateway_render
from aiapp.render import jobs, meta, model_servers

AppKey = tuple[str, str]
Logger = logging.Logger | logging.LoggerAdapter[Any]
PRUNED_KINDS = ("Deployment", "Service", "ConfigMap", "Job", "CronJob")


class StalledError(Exception):
    """The spec cannot be acted on until the user changes it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Outcome:
    """What one reconcile did and found."""

    ready: bool = False
    writes: int = 0
    message: str = ""


@dataclass
class Indexes:
    """The operator's in-memory views, kept current by kopf indexes."""

    app_models: Mapping[Any, Any] = field(default_factory=dict)
    namespace_models: Mapping[Any, Any] = field(default_factory=dict)


def _shared(manifest: dict[str, Any]) -> bool:
    """Whether several apps own this child (a model server) rather than one."""
    component: str = manifest["metadata"].get("labels", {}).get(meta.COMPONENT_LABEL, "")
    return component == model_servers.COMPONENT


def models_of_spec(spec: Mapping[str, Any], settings: OperatorSettings) -> list[str]:
    """The model strings a raw AIApp spec needs served, read leniently for the index."""
    assistants = [a for a in spec.get("assistants") or [] if isinstance(a, Mapping)]
    used = [a["model"] for a in assistants if isinstance(a.get("model"), str) and a["model"]]
    if any(a.get("knowledge") for a in assistants) and not settings.embeddings_url:
        used.append(settings.embeddings_model)
    if any(a.get("tests") for a in assistants):
        testing = spec.get("testing") if isinstance(spec.get("testing"), Mapping) else {}
        judge = (testing or {}).get("evaluation_model") or settings.evaluation_model
        if judge:
            used.append(judge)
    return list(dict.fromkeys(used))


class Reconciler:
    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        self.render_settings = settings.render()
        self.indexes = Indexes()
        self._locks: dict[AppKey, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(settings.concurrent_reconciles)
        self._kicks: dict[AppKey, asyncio.Task[None]] = {}
        self._again: set[AppKey] = set()
        # Which apps use which model server, for pods that only name their server.
        self.server_users: dict[tuple[str, str], set[str]] = {}
        self._conditions: dict[AppKey, dict[str, str]] = {}
        self._server_fingerprints: dict[tuple[str, str, str], str] = {}
        self._store_missing: set[AppKey] = set()

    # --- triggers ----------------------------------------------------------------------------

    def kick(self, namespace: str, name: str, logger: Logger | None = None) -> None:
        """Reconcile an app soon; bursts of child events collapse into one run."""
        key = (namespace, name)
        if key in self._kicks and not self._kicks[key].done():
            # A run is pending or under way; make sure another follows, since what changed
            # may have been read before the change.
            self._again.add(key)
            return
        self._kicks[key] = asyncio.create_task(self._kicked(namespace, name, logger))

    def server_changed(self, event_type: str, body: Mapping[str, Any]) -> bool:
        """Whether a model server's object differs from the last time it was seen."""
        metadata = body.get("metadata") or {}
        key = (str(body.get("kind")), str(metadata.get("namespace")), str(metadata.get("name")))
        fingerprint = meta.content_hash(
            [event_type == "DELETED", body.get("spec"), body.get("status")])
        if self._server_fingerprints.get(key) == fingerprint:
            return False
        self._server_fingerprints[key] = fingerprint
        return True

    def kick_server_users(self, namespace: str, server: str) -> None:
        for app in sorted(self.server_users.get((namespace, server), ())):
            self.kick(namespace, app)

    async def _kicked(
        self, namespace: str, name: str, logger: Logger | None, delay: float = 0.5,
    ) -> None:
        log = logger or logging.getLogger("aiapp.operator")
        key = (namespace, name)
        try:
            while True:
                await asyncio.sleep(delay)
                self._again.discard(key)
                await self.reconcile(namespace, name, log, trigger="child")
                if key not in self._again:
                    break
        except StalledError:
            pass
        except kopf.TemporaryError as waiting:
            log.info(f"Reconcile of {namespace}/{name} waits: {waiting}")
            self._kicks.pop(key, None)
            await asyncio.sleep(waiting.delay or 30)
            self.kick(namespace, name, logger)
        except Exception as error:  # noqa: BLE001 - a failed run retries later, never crashes
            metrics.RECONCILE_ERRORS.labels("child").inc()
            log.warning(f"Reconcile of {namespace}/{name} failed and is retried in 10s: {error}")
            self._kicks.pop((namespace, name), None)
            await asyncio.sleep(10)
            self.kick(namespace, name, logger)

    # --- the reconcile -------------------------------------------------------------------------

    async def reconcile(
        self, namespace: str, name: str, logger: Logger, *, trigger: str = "change",
    ) -> Outcome:
        lock = self._locks.setdefault((namespace, name), asyncio.Lock())
        # The lock keeps one app to one reconcile; the slots keep a burst of apps (a Flux sync
        # of a whole repository) from opening more requests than the client's pool and the
        # API server can serve, which would time them all out.
        async with lock, self._slots:
            started = time.monotonic()
            writes_before = self.kube.writes
            try:
                outcome = await self._reconcile(namespace, name, logger)
            finally:
                metrics.RECONCILE_SECONDS.labels(trigger).observe(time.monotonic() - started)
                metrics.API_WRITES.inc(self.kube.writes - writes_before)
            outcome.writes = self.kube.writes - writes_before
            return outcome

    async def _reconcile(self, namespace: str, name: str, logger: Logger) -> Outcome:
        # Fetch the app fresh: triggers may carry an old body.
        body = await self.kube.get("AIApp", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return Outcome(message="The app is gone.")
        previous = body.get("status") or {}
        generation = body["metadata"].get("generation", 0)

        # Validate and resolve models; a problem here is the user's to fix.
        try:
            app = self._parse(body)
            models = self._resolve_models(app, namespace)
        except StalledError as stalled:
            observed = status.Observed(generation=generation, stalled_reason=stalled.reason,
                                       stalled_message=stalled.message)
            await self._report(body, observed, previous, logger)
            raise

        # Secrets first: the gateway's pods restart when its API keys change.
        keys_version = await self._ensure_secrets(body, app)

        # Decide which revision serves; a gated change first runs as a candidate.
        owners = self._model_owners(namespace, models)
        rendered = app_render.render_app(body, app.spec, models, self.render_settings,
                                         model_owners=owners, keys_version=keys_version)
        revision = rendered.revision
        serving, candidate = await self._revisions(body, app, revision, previous)
        if serving != revision:
            rendered = app_render.render_app(
                body, app.spec, models, self.render_settings, model_owners=owners,
                serving_revision=serving, keys_version=keys_version)

        # Apply what differs.
        desired = rendered.all()
        if candidate:
            desired += gateway_render.render_gateway(
                body, app.spec, models, candidate, self.render_settings, role="candidate",
                keys_version=keys_version)
        if serving != revision:
            desired.append(self._config_map_for(body, serving))
        live: dict[tuple[str, str], dict[str, Any]] = {}
        uid = body["metadata"].get("uid", "")
        for manifest in desired:
            # Index runs start once the embedding model answers: a Job that fails while the
            # server still loads would be final, since Jobs are named after their settings.
            if manifest["kind"] in ("Job", "CronJob") and manifest in rendered.knowledge and (
                    not self._embeddings_ready(models, live)
                    or (namespace, name) in self._store_missing):
                continue
            obj, wrote = await self.kube.ensure(manifest, shared_by=uid if _shared(manifest)
                                                else None)
            live[(manifest["kind"], manifest["metadata"]["name"])] = obj
            if wrote:
                metrics.CHILDREN_APPLIED.labels(manifest["kind"]).inc()
        for server in rendered.model_names.values():
            if server:
                self.server_users.setdefault((namespace, server), set()).add(name)

        # Tests run once a revision is served (or offered as a candidate).
        test_job = await self._ensure_tests(body, app, models, live, serving, candidate)
        if test_job is not None:
            live[("Job", test_job["metadata"]["name"])] = test_job
            desired.append(test_job)

        # Remove what this app no longer renders.
        await self._prune(body, desired, set(rendered.model_names.values()))

        # Observe the children and report.
        observed = await self._observe(body, app, models, rendered, live, serving, candidate)
        ready, message = await self._report(body, observed, previous, logger)
        await self._report_models(namespace, observed, rendered.model_names)

        # Knowledge waits for the store's Secret; say so, and look again soon.
        if (namespace, name) in self._store_missing:
            raise kopf.TemporaryError(
                f"The knowledge store Secret {self.settings.namespace}/"
                f"{self.settings.store_secret} (key dsn) does not exist yet; knowledge waits "
                "for it and the rest of the app is served.", delay=30)

        # A passed candidate becomes the serving revision on the next pass.
        if candidate and observed.tests and observed.tests.revision == candidate and \
                status.job_state(observed.tests.job) in ("succeeded", "failed"):
            self.kick(namespace, name, logger)
        return Outcome(ready=ready, message=message)

    # --- steps --------------------------------------------------------------------------------

    def _server_ready(self, model: ModelSpec | None,
                      live: dict[tuple[str, str], dict[str, Any]]) -> bool:
        """Whether a model's server is ready (external models always are)."""
        if model is None or model.runtime == "external":
            return True
        deployment = live.get(("Deployment", model_servers.server_name(model)))
        return status.deployment_health(deployment, [], "server").ready

    def _embeddings_ready(self, models: dict[str, ModelSpec],
                          live: dict[tuple[str, str], dict[str, Any]]) -> bool:
        if self.render_settings.embeddings_url:
            return True
        return self._server_ready(models.get(self.render_settings.embeddings_model), live)

    def _parse(self, body: dict[str, Any]) -> AIApp:
        try:
            app = parse_app(body)
        except AISpecError as error:
            problems = "; ".join(str(issue) for issue in error.issues[:5])
            raise StalledError("InvalidSpec", f"The spec is invalid: {problems}") from None
        for assistant in app.spec.assistants:
            for index, api in enumerate(assistant.apis):
                if schema_kind(api.schema_) == "file":
                    raise StalledError(
                        "SchemaNotInline",
                        f"assistants[{assistant.name}].apis[{index}].schema names the file "
                        f"{api.schema_!r}, which the cluster cannot read (fix: inline it with "
                        "`aiapp convert FILE`, or give an http(s) URL).")
        return app

    def _namespace_models(self, namespace: str) -> list[Model]:
        result = []
        for body in self.indexes.namespace_models.get(namespace, []):
            try:
                result.append(parse_model(body))
            except AISpecError:
                continue  # an invalid Model reports itself; it serves no app
        return result

    def _resolve_models(self, app: AIApp, namespace: str) -> dict[str, ModelSpec]:
        known = self._namespace_models(namespace)
        resolved: dict[str, ModelSpec] = {}
        for model_string in app_render.models_used(app.spec, self.render_settings):
            spec = resolve_model(model_string, known)
            if spec is None:
                raise StalledError(
                    "UnknownModel",
                    f"No Model in namespace {namespace} and no preset serves {model_string!r} "
                    f"(fix: create a Model with servedName {model_string!r}, or use a preset: "
                    f"{', '.join(preset_names())}).")
            resolved[model_string] = spec
        return resolved

    def _model_owners(
        self, namespace: str, models: dict[str, ModelSpec]
    ) -> dict[str, list[dict[str, Any]]]:
        """Every app in the namespace that uses each of these model servers."""
        servers = {model_servers.server_name(spec) for spec in models.values()}
        known = self._namespace_models(namespace)
        owners: dict[str, dict[str, dict[str, Any]]] = {server: {} for server in servers}
        for key, users in self.indexes.app_models.items():
            user_namespace, model_string = key
            if user_namespace != namespace:
                continue
            spec = models.get(model_string) or resolve_model(model_string, known)
            if spec is None or model_servers.server_name(spec) not in servers:
                continue
            for user in users:
                owners[model_servers.server_name(spec)][user["metadata"]["uid"]] = user
        return {server: sorted(found.values(), key=lambda o: o["metadata"]["name"])
                for server, found in owners.items() if found}

    async def _revisions(
        self, body: dict[str, Any], app: AIApp, revision: str, previous: dict[str, Any]
    ) -> tuple[str, str]:
        """(serving, candidate): with gating, a new revision waits as a candidate."""
        serving = previous.get("servingRevision") or ""
        testable = bool(app_render.evaluation_model(app.spec, self.render_settings))
        if not app.spec.testing.gated_rollout or not testable or not serving \
                or serving == revision:
            return revision, ""  # nothing to gate on: no tests, or no judge to run them
        config = await self.kube.get("ConfigMap", body["metadata"]["namespace"],
                                     gateway_render.config_map_name(
                                         body["metadata"]["name"], serving))
        if config is None:
            return revision, ""
        tests = previous.get("tests") or {}
        if tests.get("revision") == revision and tests.get("state") == "succeeded" \
                and not tests.get("failed"):
            return revision, ""
        if tests.get("revision") == revision and tests.get("state") in ("succeeded", "failed"):
            return serving, ""  # the candidate failed: keep serving, remove it
        return serving, revision

    def _config_map_for(self, body: dict[str, Any], revision: str) -> dict[str, Any]:
        """Keep the serving revision's ConfigMap (its content is already live)."""
        return {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": gateway_render.config_map_name(body["metadata"]["name"],
                                                                revision),
                         "namespace": body["metadata"]["namespace"],
                         "ownerReferences": [meta.owner_reference(body)]},
        }

    async def _ensure_secrets(self, body: dict[str, Any], app: AIApp) -> str:
        """Make the app's Secrets; return a version of its API keys (a hash, not the keys)."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        owner = [meta.owner_reference(body)]
        labels = meta.labels(name, "gateway")

        # The app's API key is made once and kept: clients hold it. Users may replace it.
        keys_name = gateway_render.keys_secret_name(name)
        keys = await self.kube.get("Secret", namespace, keys_name)
        if keys is None:
            keys = await self.kube.apply({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": keys_name, "namespace": namespace,
                             "labels": labels, "ownerReferences": owner},
                "data": {gateway_render.API_KEYS_KEY: base64.b64encode(
                    f"sk-aiapp-{secrets.token_urlsafe(24)}".encode()).decode()},
            })
        keys_version = meta.content_hash(keys.get("data") or {}, 12)

        # Knowledge readers and writers get the store's DSN in their own namespace.
        if not gateway_render.uses_knowledge(app.spec):
            return keys_version
        source = await self.kube.get("Secret", self.settings.namespace,
                                     self.settings.store_secret)
        if source is None or "dsn" not in (source.get("data") or {}):
            # The rest of the app is served meanwhile; knowledge waits (see _reconcile).
            self._store_missing.add((namespace, name))
            return keys_version
        self._store_missing.discard((namespace, name))
        await self.kube.ensure({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": gateway_render.store_secret_name(name), "namespace": namespace,
                         "labels": labels, "ownerReferences": owner},
            "data": {gateway_render.STORE_DSN_KEY: source["data"]["dsn"]},
        })
        return keys_version

    async def _ensure_tests(
        self,
        body: dict[str, Any],
        app: AIApp,
        models: dict[str, ModelSpec],
        live: dict[tuple[str, str], dict[str, Any]],
        serving: str,
        candidate: str,
    ) -> dict[str, Any] | None:
        """Create the test Job for the revision under test once its gateway is ready."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        judge = app_render.judge_endpoint(app.spec, models, namespace, self.render_settings)
        if judge is None or not app.spec.testing.on_rollout and not candidate:
            return None
        revision, role = (candidate, "candidate") if candidate else (serving, "serving")
        job_name = meta.dns_label(name, "test", revision)
        existing = await self.kube.get("Job", namespace, job_name)
        if existing is not None:
            return existing

        # A finished run whose Job has expired is not repeated: its result is in the status.
        tested = (body.get("status") or {}).get("tests") or {}
        if tested.get("revision") == revision and tested.get("state") in ("succeeded",
                                                                          "failed"):
            return None

        # The gateway under test and the judge must both answer before the run starts.
        deployment = live.get(("Deployment", gateway_render.gateway_name(name, role)))
        judge_model = models.get(app_render.evaluation_model(app.spec, self.render_settings))
        if not status.deployment_health(deployment, [], "gateway").ready or \
                not self._server_ready(judge_model, live):
            return None
        job = jobs.render_test_job(body, app.spec, revision, judge, self.render_settings, role)
        return await self.kube.apply(job)

    async def _prune(
        self, body: dict[str, Any], desired: Iterable[dict[str, Any]], servers: set[str]
    ) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
        uid = body["metadata"].get("uid")

        # Children labelled as this app's that it no longer renders.
        for kind in PRUNED_KINDS:
            for child in await self.kube.list(kind, namespace, {meta.APP_LABEL: name}):
                child_name = child["metadata"]["name"]
                if (kind, child_name) in wanted:
                    continue
                if kind == "Job" and child["metadata"].get("labels", {}).get(
                        meta.COMPONENT_LABEL) == "test-run":
                    continue  # test results stay as the record of a revision
                if any(ref.get("kind") == "CronJob"
                       for ref in child["metadata"].get("ownerReferences") or []):
                    continue  # a refresh run of a CronJob this app renders; the CronJob owns it
                await self.kube.delete(kind, namespace, child_name)

        # Model servers this app used to share: drop its ownership, or the server if last.
        for deployment in await self.kube.list(
                "Deployment", namespace, {meta.COMPONENT_LABEL: model_servers.COMPONENT}):
            server = deployment["metadata"]["name"]
            refs = deployment["metadata"].get("ownerReferences") or []
            if server in servers or not any(ref.get("uid") == uid for ref in refs):
                continue
            self.server_users.get((namespace, server), set()).discard(name)
            for kind, child_name in (("Deployment", server), ("Service", server),
                                     ("PersistentVolumeClaim", f"{server}-cache")):
                shared = deployment if kind == "Deployment" else await self.kube.get(
                    kind, namespace, child_name)
                if shared is not None:
                    await self.kube.disown(shared, uid)

    async def _observe(
        self,
        body: dict[str, Any],
        app: AIApp,
        models: dict[str, ModelSpec],
        rendered: app_render.RenderedApp,
        live: dict[tuple[str, str], dict[str, Any]],
        serving: str,
        candidate: str,
    ) -> status.Observed:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        observed = status.Observed(
            generation=body["metadata"].get("generation", 0),
            endpoint=gateway_render.gateway_url(namespace, name, self.render_settings),
            revision=rendered.revision,
            serving_revision=serving,
            candidate_revision=candidate,
        )

        # Model servers, with the reasons their pods are stuck.
        for model_string, server in rendered.model_names.items():
            if not server:
                observed.models[model_string] = status.Health(True, "External",
                                                              "Served by an external provider.")
                continue
            pods = await self.kube.list("Pod", namespace, {meta.MODEL_SERVER_LABEL: server})
            observed.models[model_string] = status.deployment_health(
                live.get(("Deployment", server)), pods, f"Model server {server}")
        for assistant in app.spec.assistants:
            health = observed.models[assistant.model]
            observed.assistants.append({
                "name": assistant.name,
                "model": assistant.model,
                "modelServer": rendered.model_names[assistant.model] or "external",
                "state": "Ready" if health.ready else health.reason,
            })

        # The serving gateway.
        gateway_name = gateway_render.gateway_name(name)
        pods = await self.kube.list("Pod", namespace, {
            meta.APP_LABEL: name, meta.COMPONENT_LABEL: gateway_render.COMPONENT,
            f"{meta.DOMAIN}/role": "serving"})
        observed.gateway = status.deployment_health(
            live.get(("Deployment", gateway_name)), pods, "The gateway")

        # Knowledge: each entry's current index Job and what it reported.
        embeddings = self.render_settings.embeddings_model
        for manifest in rendered.knowledge:
            if manifest["kind"] != "Job":
                continue
            job = live.get(("Job", manifest["metadata"]["name"]))
            summary = await self._job_summary(namespace, job)
            report = status.KnowledgeReport(
                name=manifest["metadata"]["labels"][meta.KNOWLEDGE_LABEL], job=job,
                summary=summary, embedding_model=embeddings)
            if job is None and (namespace, name) in self._store_missing:
                report.waiting_for = (f"the store Secret {self.settings.namespace}/"
                                      f"{self.settings.store_secret} (key dsn)")
            elif job is None and not self._embeddings_ready(models, live):
                report.waiting_for = "the embedding model server to be ready"
            observed.knowledge.append(report)

        # Tests of the revision under test, or the last one tested.
        judge = app_render.evaluation_model(app.spec, self.render_settings)
        if not any(a.tests for a in app.spec.assistants):
            observed.tests_note = status.NO_TESTS
        elif not judge:
            observed.tests_note = ("The app has tests but no evaluation model (fix: set "
                                   "spec.testing.evaluation_model, or the operator's "
                                   "--evaluation-model / AIAPP_EVALUATION_MODEL; in the Helm "
                                   "chart operator.evaluationModel).")

        # A revision held back by a failed gated test is the one whose result matters.
        tested = candidate or rendered.revision
        job = await self.kube.get("Job", namespace, meta.dns_label(name, "test", tested))
        if job is None and tested != serving:
            tested = serving
            job = await self.kube.get("Job", namespace, meta.dns_label(name, "test", tested))
        if job is not None:
            observed.tests = status.TestReport(
                revision=tested, job=job, summary=await self._job_summary(namespace, job),
                evaluation_model=judge)
        elif previous_tests := (body.get("status") or {}).get("tests"):
            observed.tests = status.TestReport(
                revision=previous_tests.get("revision", ""), job=None,
                summary=previous_tests, evaluation_model=judge)
            if previous_tests.get("state") in ("succeeded", "failed"):
                observed.tests.job = {"status": {"conditions": [{
                    "type": "Complete" if previous_tests["state"] == "succeeded" else "Failed",
                    "status": "True"}], "completionTime": previous_tests.get("time")}}
        return observed

    async def _job_summary(self, namespace: str, job: dict[str, Any] | None) -> dict[str, Any]:
        if job is None or status.job_state(job) not in ("succeeded", "failed"):
            return {}
        pods = await self.kube.list("Pod", namespace, {"job-name": job["metadata"]["name"]})
        return status.termination_summary(pods)

    def _count_conditions(self, body: dict[str, Any], new: dict[str, Any]) -> None:
        """Keep the apps-by-condition gauge current for every app this operator reports on."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self._conditions[key] = {c["type"]: c["status"] for c in new["conditions"]}
        counts: dict[tuple[str, str], int] = {}
        for conditions in self._conditions.values():
            for pair in conditions.items():
                counts[pair] = counts.get(pair, 0) + 1
        metrics.APPS_BY_CONDITION.clear()
        for (kind, value), count in counts.items():
            metrics.APPS_BY_CONDITION.labels(kind, value).set(count)

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is remembered about a deleted app."""
        self._conditions.pop((namespace, name), None)
        self._locks.pop((namespace, name), None)
        for (server_namespace, _server), users in self.server_users.items():
            if server_namespace == namespace:
                users.discard(name)

    async def _report_models(
        self, namespace: str, observed: status.Observed, servers: dict[str, str]
    ) -> None:
        """Tell each Model object in use whether its server is ready (its READY column)."""
        for body in self.indexes.namespace_models.get(namespace, []):
            served = body["spec"].get("servedName") or body["metadata"]["name"]
            used = next((m for m in (served, body["metadata"]["name"]) if m in observed.models),
                        None)
            if used is None:
                continue
            health = observed.models[used]
            previous = body.get("status") or {}
            generation = body["metadata"].get("generation", 0)
            new = {
                "observedGeneration": generation,
                "server": servers.get(used) or "external",
                "conditions": [status.condition(
                    previous.get("conditions", []), "Ready", health.ready, health.reason,
                    health.message, generation)],
            }
            if status.same_status(new, previous):
                continue
            try:
                await self.kube.patch_status("Model", namespace, body["metadata"]["name"], new)
            except ApiError as error:
                # The Model's column is a courtesy; the app's own status must not hang on it.
                logging.getLogger("aiapp.operator").warning(
                    f"Could not write the status of Model {namespace}/{body['metadata']['name']}"
                    f": {error.status.message}")

    async def _report(
        self,
        body: dict[str, Any],
        observed: status.Observed,
        previous: dict[str, Any],
        logger: Logger,
    ) -> tuple[bool, str]:
        """Write the status if it changed, and tell people about transitions as Events."""
        new = status.summarise(observed, previous)
        ready = new["conditions"][0]["status"] == "True"
        self._count_conditions(body, new)
        if status.same_status(new, previous):
            return ready, new["message"]
        await self.kube.patch_status("AIApp", body["metadata"]["namespace"],
                                     body["metadata"]["name"],
                                     {**new, **status.removed_keys(new, previous)})

        # Events for what changed, in one sentence each.
        old = {c["type"]: c for c in previous.get("conditions", [])}
        for condition in new["conditions"]:
            before = old.get(condition["type"], {})
            if before.get("status") == condition["status"] and \
                    before.get("reason") == condition["reason"]:
                continue
            if condition["type"] in ("Reconciling",):
                continue
            text = f"{condition['type']} is {condition['status']}: {condition['message']}"
            if status.is_failure(condition):
                kopf.warn(body, reason=condition["reason"], message=text)  # type: ignore[arg-type]
            else:
                kopf.info(body, reason=condition["reason"], message=text)  # type: ignore[arg-type]
        logger.info(f"Status: {new['message']}")
        return ready, new["message"]
