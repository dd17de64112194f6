"""AISpec as typed models: the one source of truth for the AIApp kind.

``spec`` is AISpec as HelixML reads it (snake_case keys), plus three extensions of ours that
AISpec lacks: ``secrets`` (where ``${NAME}`` placeholders come from), ``gateway`` (the app
gateway Deployment) and ``testing`` (test Jobs). The models give Helix's defaults, refuse
unknown keys (Helix silently drops them), accept the legacy keys that older Helix files carry
and flag them as deprecated, and describe every field, since the descriptions become
``kubectl explain`` text through ``aiapp.api.crdgen``.

Rules that span fields (unique names, placeholders without a source) live in ``app_issues`` and
run from ``parse_app``, which every caller uses instead of ``AIApp.model_validate`` so that all
problems arrive together as one ``AISpecError``. Line numbers and files are the business of
``aiapp.api.documents``.

Domain words: a *placeholder* is ``${NAME}`` in any string of the spec; a *secret source* is a
``spec.secrets`` entry that says which Kubernetes Secret key fills it; a *normalised name* is a
name lower-cased with runs of other characters turned into ``-``, the form used in the names
of the objects the operator creates.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final, Literal

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from aiapp.api.errors import AISpecError, Issue, Path, dotted, issues_from_validation_error

API_VERSION: Final = "app.aispec.org/v1alpha1"
KIND: Final = "AIApp"

# The most often a knowledge source may be re-indexed (Helix: RAG_CRAWLER_MAX_FREQUENCY).
MIN_REFRESH_INTERVAL: Final = timedelta(hours=1)
# Helix clamps crawler depth to RAG_CRAWLER_MAX_DEPTH.
MAX_CRAWL_DEPTH: Final = 100

PLACEHOLDER_RE: Final = re.compile(r"\$\{([^}]*)\}")
ENV_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DNS_LABEL_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN_RE: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
SECRET_KEY_RE: Final = re.compile(r"^[-._a-zA-Z0-9]+$")
GO_DURATION_RE: Final = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns))+$")
# croniter's L (last), W (weekday) and # (nth weekday), but not inside names such as JUL or WED.
CRON_EXTENSION_RE: Final = re.compile(r"\d[LW]\b|\bLW?\b|#")
_GO_DURATION_PART_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_GO_UNITS: Final = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
}

# Fields that older Helix files carry; accepted, never used, reported as deprecated.
LEGACY_ASSISTANT_FIELDS: Final = {
    "type": "Helix removed the session type in 2025; the model decides what it serves",
    "gptscripts": "Helix removed GPTScript tools in 2025; describe tools as apis instead",
    "rag_source_id": "it points at a RAG entity inside a Helix server; declare knowledge instead",
    "lora_id": "it points at a fine-tune inside a Helix server; serve the tuned model as a Model",
}

# Bounds on list sizes keep the apiserver's CEL cost estimates finite.
MAX_ASSISTANTS: Final = 32
MAX_ITEMS: Final = 128


def _fail(message: str, fix: str) -> PydanticCustomError:
    return PydanticCustomError("aispec", message, {"fix": fix})


def normalise_name(name: str) -> str:
    """Lower-case a name and turn every run of other characters into one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _check_name(value: str, what: str) -> str:
    normalised = normalise_name(value)
    if not normalised:
        raise _fail(
            f"{what} name {value!r} has no letters or digits, so no Kubernetes name can be "
            "made from it",
            "use a name with letters or digits, such as 'docs'",
        )
    if len(normalised) > 63:
        raise _fail(
            f"{what} name {value!r} is {len(normalised)} characters once normalised; the "
            "limit is 63 (a DNS label)",
            "shorten the name",
        )
    return value


class _Spec(BaseModel):
    """Shared configuration: unknown keys are errors, assignment re-validates nothing."""

    model_config = ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False)


Quantity = str | int


# -- knowledge -------------------------------------------------------------------------------


class RAGSettings(_Spec):
    """How a knowledge source is split, stored and searched. Defaults are Helix's."""

    distance_function: Literal["cosine", "l2", "inner_product"] = Field(
        default="cosine",
        description="How closeness between the question and a chunk is measured.",
    )
    threshold: float = Field(
        default=0.4,
        description="Largest distance a chunk may have from the question and still be used: "
        "cosine distance (0 to 2), l2 distance, or the negative inner product (so it may be "
        "negative for inner_product).",
    )
    results_count: int = Field(
        default=3, ge=1, le=100, description="How many chunks are added to the prompt."
    )
    chunk_size: int = Field(
        default=2000, ge=1, description="Size of each chunk in characters before embedding."
    )
    chunk_overflow: int = Field(
        default=20,
        ge=0,
        description="Characters shared by neighbouring chunks; must be less than chunk_size.",
    )
    text_splitter: Literal["markdown", "text"] = Field(
        default="markdown",
        description="markdown splits on headings first; text splits on paragraphs and lines.",
    )
    disable_chunking: bool = Field(
        default=False, description="Store each document whole instead of splitting it."
    )
    disable_downloading: bool = Field(
        default=False, description="Index only the listed pages, without fetching linked files."
    )
    prompt_template: str = Field(
        default="",
        description="Go-style template that wraps retrieved chunks (.RagResults); empty means "
        "the built-in template.",
    )
    enable_vision: bool = Field(
        default=False, description="Helix: index images with a vision model. Not served here."
    )
    index_url: str = Field(
        default="", description="External RAG service URL to POST chunks to (Helix protocol)."
    )
    query_url: str = Field(default="", description="External RAG service URL to query.")
    delete_url: str = Field(default="", description="External RAG service URL to delete from.")

    @model_validator(mode="after")
    def _overflow_below_size(self) -> RAGSettings:
        if self.chunk_overflow >= self.chunk_size:
            raise _fail(
                f"chunk_overflow ({self.chunk_overflow}) must be less than chunk_size "
                f"({self.chunk_size})",
                "lower chunk_overflow or raise chunk_size",
            )
        return self


class BasicAuth(_Spec):
    """Credentials sent as HTTP basic auth while crawling."""

    username: str = Field(default="", description="User name; may be a ${NAME} placeholder.")
    password: str = Field(default="", description="Password; write it as a ${NAME} placeholder.")


class Firecrawl(_Spec):
    """A Firecrawl service to crawl with instead of the built-in crawler."""

    api_key: str = Field(description="Firecrawl API key; write it as a ${NAME} placeholder.")
    api_url: str = Field(default="", description="Firecrawl API URL; empty means the cloud one.")


class Crawler(_Spec):
    """How far to follow links from the listed URLs."""

    enabled: bool = Field(default=False, description="Follow links instead of only the URLs.")
    max_depth: int = Field(
        default=0, ge=0, le=MAX_CRAWL_DEPTH, description="How many links deep to follow."
    )
    max_pages: int = Field(
        default=0,
        ge=0,
        description="Older Helix files: stop after this many pages (0 means no limit).",
    )
    user_agent: str = Field(default="", description="User-Agent header sent while crawling.")
    readability: bool = Field(
        default=False, description="Keep only the main article text of each page."
    )
    ignore_robots_txt: bool = Field(default=False, description="Crawl pages robots.txt forbids.")
    firecrawl: Firecrawl | None = Field(default=None, description="Crawl through Firecrawl.")


def _check_http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise _fail(
            f"{value!r} is not an http(s) URL",
            "write the full URL, starting with https://",
        )
    return value


class WebSource(_Spec):
    """Web pages to fetch and index."""

    urls: list[str] = Field(
        min_length=1, max_length=MAX_ITEMS, description="Pages to index (http or https)."
    )
    excludes: list[str] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="URL prefixes or patterns never to index.",
    )
    auth: BasicAuth | None = Field(default=None, description="Basic auth for the pages.")
    crawler: Crawler | None = Field(default=None, description="Link following.")

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            _check_http_url(url)
        return urls


class FilestoreSource(_Spec):
    """Files stored for the app (a volume path), optionally seeded from a zip."""

    path: str = Field(
        default="", description="Folder under the app's file store; empty means 'files'."
    )
    seed_zip_url: str = Field(
        default="", description="Zip archive downloaded and unpacked into the path."
    )


class BucketSource(_Spec):
    """Objects in a cloud storage bucket."""

    bucket: str = Field(min_length=1, description="Bucket name.")
    path: str = Field(default="", description="Object prefix inside the bucket.")


class KnowledgeSource(_Spec):
    """Where the knowledge comes from; at least one source is required."""

    web: WebSource | None = Field(default=None, description="Web pages.")
    filestore: FilestoreSource | None = Field(default=None, description="Uploaded files.")
    text: str | None = Field(default=None, description="Inline text to index as one document.")
    content: str | None = Field(
        default=None,
        exclude=True,
        description="Deprecated spelling of text used by older Helix examples.",
    )
    s3: BucketSource | None = Field(default=None, description="An S3 bucket (our extension).")
    gcs: BucketSource | None = Field(default=None, description="A GCS bucket (our extension).")

    @model_validator(mode="after")
    def _one_source(self) -> KnowledgeSource:
        if self.content is not None and self.text is None:
            self.text = self.content
        if not any(
            (self.web, self.filestore, self.text is not None, self.s3, self.gcs),
        ):
            raise _fail(
                "the source names nothing to index",
                "add one of web.urls, filestore.path or text",
            )
        return self

    @field_validator("s3", "gcs")
    @classmethod
    def _no_buckets_yet(cls, value: BucketSource | None) -> BucketSource | None:
        # The fields are kept so Helix files parse, but the indexer cannot read buckets yet;
        # saying so here beats an index Job that fails in the cluster.
        if value is not None:
            raise _fail(
                "not supported yet: the indexer cannot read buckets",
                "copy the files to the filestore volume and use filestore.path, or list "
                "their URLs under web.urls",
            )
        return value


def every_interval(schedule: str) -> timedelta | None:
    """The interval of an ``@every <Go duration>`` schedule, or None for other forms."""
    if not schedule.startswith("@every"):
        return None
    duration = schedule.removeprefix("@every").strip()
    if not GO_DURATION_RE.match(duration):
        raise _fail(
            f"{duration!r} is not a duration",
            "write @every with a Go duration such as 2h or 90m",
        )
    seconds = sum(
        float(amount) * _GO_UNITS[unit] for amount, unit in _GO_DURATION_PART_RE.findall(duration)
    )
    # Anything beyond a century is as good as never; timedelta cannot hold much more.
    return timedelta(seconds=min(seconds, 100 * 365 * 86400))


def check_schedule(schedule: str, minimum: timedelta = MIN_REFRESH_INTERVAL) -> str:
    """Accept a 5-field cron or ``@every`` schedule that fires at most once per ``minimum``."""
    interval = every_interval(schedule)
    if interval is not None:
        if interval < minimum:
            raise _fail(
                f"{schedule!r} fires every {interval}, more often than the limit of once "
                f"every {minimum}",
                "use an interval of at least 1h, such as '@every 6h'",
            )
        return schedule

    # A 5-field cron fires more than once an hour exactly when its minute field has more than
    # one value; within any hour it fires at all, those minutes are under an hour apart.
    fields = schedule.split()
    is_macro = len(fields) == 1 and schedule.startswith("@")
    if not is_macro and len(fields) != 5:
        raise _fail(
            f"{schedule!r} has {len(fields)} fields; a cron schedule has 5 "
            "(minute hour day-of-month month day-of-week)",
            "write e.g. '0 */6 * * *' for every six hours, or '@every 6h'",
        )
    if not is_macro and CRON_EXTENSION_RE.search(schedule.upper()):
        raise _fail(
            f"{schedule!r} uses L, W or #, which standard cron (and Kubernetes CronJobs) "
            "do not understand",
            "use plain values, ranges, lists and steps, such as '0 6 1 * *'",
        )
    if not croniter.is_valid(schedule):
        raise _fail(
            f"{schedule!r} is not a valid cron schedule",
            "write e.g. '0 */6 * * *' for every six hours, or '@every 6h'",
        )
    # croniter writes a minute field that covers every minute (``*``, ``0-59``) as "*".
    minutes = croniter(schedule).expanded[0]
    if len(minutes) > 1 or "*" in minutes:
        count = 60 if "*" in minutes else len(minutes)
        raise _fail(
            f"{schedule!r} fires {count} times an hour, more often than the limit of "
            "once an hour",
            "fire on one minute of the hour, such as '0 */6 * * *'",
        )
    return schedule


class Knowledge(_Spec):
    """A knowledge source indexed for retrieval (RAG) by the assistant."""

    name: str = Field(
        min_length=1,
        max_length=253,
        description="Unique within the app; the index is named after it.",
    )
    description: str = Field(
        default="", description="What the knowledge holds; shown to the model."
    )
    rag_settings: RAGSettings = Field(
        default_factory=RAGSettings, description="Splitting and search settings."
    )
    source: KnowledgeSource = Field(description="Where the documents come from.")
    refresh_enabled: bool = Field(default=False, description="Re-index on refresh_schedule.")
    refresh_schedule: str = Field(
        default="",
        description="5-field cron or '@every <duration>'; at most once an hour.",
    )

    @field_validator("name")
    @classmethod
    def _dns_safe(cls, value: str) -> str:
        return _check_name(value, "knowledge")

    @field_validator("refresh_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_schedule(value) if value else value

    @model_validator(mode="after")
    def _enabled_needs_schedule(self) -> Knowledge:
        if self.refresh_enabled and not self.refresh_schedule:
            raise _fail(
                "refresh_enabled is true but refresh_schedule is empty",
                "add refresh_schedule, such as '0 */6 * * *', or set refresh_enabled: false",
            )
        return self


# -- tools -----------------------------------------------------------------------------------


def schema_kind(schema: str) -> Literal["url", "file", "inline"]:
    """How Helix reads ``apis[].schema``: a URL, a file next to the YAML, or inline text."""
    stripped = schema.strip()
    if stripped.startswith(("http://", "https://")):
        return "url"
    if "\n" not in stripped and not stripped.startswith("{"):
        return "file"
    return "inline"


class AssistantAPI(_Spec):
    """An HTTP API the assistant may call, described by an OpenAPI 3 schema."""

    name: str = Field(min_length=1, description="Unique within the assistant.")
    description: str = Field(
        default="", description="When to use the API; the model reads it to choose tools."
    )
    schema_: str = Field(
        alias="schema",
        min_length=1,
        description="OpenAPI 3 schema: inline YAML or JSON, a .yaml/.yml path relative to "
        "the file (inlined by 'aiapp convert'), or an http(s) URL.",
    )
    url: str = Field(default="", description="Base URL of the API; overrides the schema's.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers on every call; put credentials here as ${NAME} placeholders.",
    )
    query: dict[str, str] = Field(
        default_factory=dict, description="Query parameters added to every call."
    )
    path_params: dict[str, str] = Field(
        default_factory=dict, description="Path parameters fixed for every call."
    )
    request_prep_template: str = Field(
        default="", description="Prompt template that fills the call's parameters."
    )
    response_success_template: str = Field(
        default="", description="Prompt template that summarises a successful response."
    )
    response_error_template: str = Field(
        default="", description="Prompt template that explains a failed call."
    )
    oauth_provider: str = Field(
        default="", description="Helix-managed OAuth connection name. Not served here."
    )
    oauth_scopes: list[str] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="OAuth scopes requested."
    )
    skip_unknown_keys: bool = Field(
        default=False, description="Drop response keys that the schema does not describe."
    )
    transform_output: bool = Field(
        default=False, description="Summarise the response with the model before answering."
    )
    system_prompt: str = Field(default="", description="Extra instructions for this API.")

    @field_validator("schema_")
    @classmethod
    def _schema_file(cls, value: str) -> str:
        if schema_kind(value) == "file" and not value.strip().endswith((".yaml", ".yml")):
            raise _fail(
                f"schema {value.strip()!r} is a single line, so it is read as a file path, "
                "and such a file must end in .yaml or .yml",
                "point at a .yaml/.yml file, paste the schema inline, or give an https:// URL",
            )
        return value


class Zapier(_Spec):
    """Zapier natural-language actions."""

    name: str = Field(min_length=1, description="Name of the integration.")
    description: str = Field(default="", description="When to use it.")
    api_key: str = Field(default="", description="Zapier API key; write a ${NAME} placeholder.")
    model: str = Field(default="", description="Model that plans the Zapier calls.")
    max_iterations: int = Field(default=0, ge=0, description="Limit on planning steps.")


class MCPServer(_Spec):
    """A Model Context Protocol server whose tools the assistant may use."""

    name: str = Field(min_length=1, description="Unique within the assistant.")
    description: str = Field(default="", description="When to use it.")
    transport: Literal["http", "sse", "stdio"] = Field(
        default="http", description="How to reach the server."
    )
    url: str = Field(default="", description="Server URL for http and sse.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers; credentials as ${NAME} placeholders."
    )
    oauth_provider: str = Field(default="", description="Helix-managed OAuth connection.")
    oauth_scopes: list[str] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="OAuth scopes."
    )
    command: str = Field(default="", description="Command to start for stdio.")
    args: list[str] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Arguments of command."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Environment of command.")


class GPTScript(_Spec):
    """Deprecated: a GPTScript tool (removed from Helix in 2025)."""

    name: str = Field(default="", description="Script name.")
    description: str = Field(default="", description="When to use it.")
    file: str = Field(default="", description="Script file.")
    content: str = Field(default="", description="Script text.")


# -- tests -----------------------------------------------------------------------------------


class TestStep(_Spec):
    """One prompt sent to the assistant and what a judge model expects back."""

    __test__ = False  # not a pytest class despite its name

    prompt: str = Field(min_length=1, description="The user message sent to the assistant.")
    expected_output: str = Field(
        min_length=1,
        description="What a good answer does, in words; an evaluation model judges PASS/FAIL.",
    )


class AssistantTest(_Spec):
    """A named test: its steps run in order in one conversation."""

    __test__ = False

    name: str = Field(min_length=1, description="Unique within the assistant.")
    steps: list[TestStep] = Field(
        min_length=1, max_length=MAX_ITEMS, description="Prompts and expectations, in order."
    )


# -- assistants ------------------------------------------------------------------------------


class Assistant(_Spec):
    """A chat assistant: a model, its prompt, and what it may read and call."""

    id: str = Field(default="", description="Helix's id for the assistant; kept, not used.")
    name: str = Field(
        min_length=1,
        max_length=253,
        description="Unique within the app; clients select the assistant by this name.",
    )
    description: str = Field(default="", description="What the assistant is for.")
    avatar: str = Field(default="", description="Image URL or emoji.")
    image: str = Field(default="", description="Background image URL.")
    provider: str = Field(
        default="",
        description="Who serves the model: empty or a local runtime means a Model in the "
        "cluster; openai, togetherai, anthropic or a Model with runtime external otherwise.",
    )
    model: str = Field(
        min_length=1,
        description="Model name: a Model's servedName or metadata.name, or a preset.",
    )
    system_prompt: str = Field(default="", description="Instructions given before every chat.")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature (0 precise to 2 creative)."
    )
    top_p: float | None = Field(default=None, ge=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int | None = Field(default=None, ge=1, description="Longest answer in tokens.")
    presence_penalty: float | None = Field(
        default=None, ge=-2, le=2, description="Penalty on tokens already present."
    )
    frequency_penalty: float | None = Field(
        default=None, ge=-2, le=2, description="Penalty by how often a token appeared."
    )
    reasoning_effort: Literal["none", "low", "medium", "high"] | None = Field(
        default=None, description="Reasoning budget for models that think before answering."
    )
    context_limit: int | None = Field(
        default=None, ge=0, description="How many earlier messages are sent with each turn."
    )
    conversation_starters: list[str] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Suggested first prompts."
    )
    is_actionable_template: str = Field(
        default="", description="Prompt that decides whether a tool is needed."
    )
    is_actionable_history_length: int | None = Field(
        default=None, ge=0, description="Messages the tool classifier sees (Helix default 4)."
    )
    knowledge: list[Knowledge] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Knowledge to retrieve from."
    )
    apis: list[AssistantAPI] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="HTTP APIs it may call."
    )
    zapier: list[Zapier] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Zapier actions."
    )
    mcps: list[MCPServer] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="MCP servers."
    )
    tests: list[AssistantTest] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Tests run by 'aiapp test'."
    )
    type: str = Field(default="", description="Deprecated: Helix's old session type.")
    gptscripts: list[GPTScript] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="Deprecated: GPTScript tools, removed from Helix.",
    )
    rag_source_id: str = Field(
        default="", description="Deprecated: a RAG entity id inside a Helix server."
    )
    lora_id: str = Field(default="", description="Deprecated: a fine-tune id inside Helix.")

    @field_validator("name")
    @classmethod
    def _dns_safe(cls, value: str) -> str:
        return _check_name(value, "assistant")


# -- triggers --------------------------------------------------------------------------------


class DiscordTrigger(_Spec):
    """Answer in a Discord server. Kept for Helix parity; the operator does not run it."""

    server_name: str = Field(default="", description="Discord server name.")


class CronTrigger(_Spec):
    """Run the assistant on a schedule. Kept for Helix parity; the operator does not run it."""

    enabled: bool = Field(default=True, description="Whether the trigger fires.")
    schedule: str = Field(min_length=1, description="5-field cron or '@every <duration>'.")
    input: str = Field(default="", description="The prompt sent each time.")


class SlackTrigger(_Spec):
    """Answer in Slack. Kept for Helix parity; the operator does not run it."""

    enabled: bool = Field(default=False, description="Whether the trigger is active.")
    app_token: str = Field(default="", description="Slack app token; a ${NAME} placeholder.")
    bot_token: str = Field(default="", description="Slack bot token; a ${NAME} placeholder.")
    channels: list[str] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Channels to listen in."
    )


class Trigger(_Spec):
    """Something outside a chat that starts the app. Set one of the keys."""

    discord: DiscordTrigger | None = Field(default=None, description="Discord bot.")
    cron: CronTrigger | None = Field(default=None, description="Scheduled run.")
    slack: SlackTrigger | None = Field(default=None, description="Slack bot.")


# -- our extensions --------------------------------------------------------------------------


class SecretSource(_Spec):
    """Ours: fills the ${NAME} placeholder from a key of a Secret in the app's namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        description="The placeholder's NAME; becomes an environment variable of the gateway.",
    )
    secret_name: str = Field(
        min_length=1, max_length=253, description="A Secret in the AIApp's namespace."
    )
    key: str = Field(min_length=1, max_length=253, description="The key in that Secret.")

    @field_validator("name")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not ENV_NAME_RE.match(value):
            raise _fail(
                f"{value!r} cannot be an environment variable name (letters, digits and _, "
                "not starting with a digit)",
                "use a name such as JIRA_TOKEN, and write the placeholder as ${JIRA_TOKEN}",
            )
        return value

    @field_validator("secret_name")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        if not DNS_SUBDOMAIN_RE.match(value):
            raise _fail(
                f"{value!r} is not a valid Secret name (lower-case letters, digits, '-' and "
                "'.', starting and ending with a letter or digit)",
                "use the Secret's metadata.name, such as 'jira'",
            )
        return value

    @field_validator("key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if not SECRET_KEY_RE.match(value):
            raise _fail(
                f"{value!r} is not a valid Secret key (letters, digits, '-', '_' and '.')",
                "use a key of the Secret's data, such as 'token'",
            )
        return value


class ResourceRequirements(_Spec):
    """Kubernetes compute resources (as in a container's resources)."""

    limits: dict[str, Quantity] = Field(
        default_factory=dict, description="Most a container may use, e.g. cpu: '1'."
    )
    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="What the scheduler reserves, e.g. memory: 256Mi."
    )


class GatewaySettings(_Spec):
    """Ours: the app gateway Deployment that serves the app's OpenAI-compatible API."""

    replicas: int = Field(default=1, ge=0, le=100, description="Gateway pods.")
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements, description="Resources of each gateway pod."
    )


class TestSettings(_Spec):
    """Ours: how the operator runs the assistants' tests as Jobs."""

    __test__ = False

    on_rollout: bool = Field(
        default=True, description="Run the tests after each new revision is ready."
    )
    gated_rollout: bool = Field(
        default=False,
        description="Roll out a candidate and promote it only when its tests pass.",
    )
    evaluation_model: str = Field(
        default="", description="Judge model; empty means the operator's setting."
    )
    parallelism: int = Field(default=4, ge=1, le=64, description="Tests run at once.")
    timeout_seconds: int = Field(
        default=120, ge=1, le=3600, description="Limit for one test step, in seconds."
    )


# -- the app ---------------------------------------------------------------------------------


class AIAppSpec(_Spec):
    """AISpec as Helix reads it, plus our secrets, gateway and testing."""

    name: str = Field(
        default="", description="Display name; metadata.name overrides it in the CRD form."
    )
    description: str = Field(default="", description="What the app does.")
    avatar: str = Field(default="", description="Image URL or emoji.")
    avatar_content_type: str = Field(default="", description="MIME type of an inline avatar.")
    image: str = Field(default="", description="Background image URL.")
    external_url: str = Field(default="", description="Where the app lives outside Helix.")
    assistants: list[Assistant] = Field(
        min_length=1,
        max_length=MAX_ASSISTANTS,
        description="The app's assistants; usually one.",
    )
    triggers: list[Trigger] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Helix triggers; not run here."
    )
    secrets: list[SecretSource] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="Ours: where each ${NAME} placeholder's value comes from.",
    )
    gateway: GatewaySettings = Field(
        default_factory=GatewaySettings, description="Ours: the app gateway Deployment."
    )
    testing: TestSettings = Field(
        default_factory=TestSettings, description="Ours: how tests run as Jobs."
    )


class ObjectMeta(BaseModel):
    """The parts of Kubernetes metadata the API reads; the server's other keys are kept."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(
        default="", validate_default=True, description="The object's name (a DNS label)."
    )
    namespace: str = Field(default="", description="The object's namespace.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not name:
            raise _fail("the object has no name", "give it a name, such as 'my-app'")
        # Object names prefix the names of Services and Deployments, so they must be labels.
        if not DNS_LABEL_RE.match(name) or len(name) > 63:
            raise _fail(
                f"name {name!r} is not a DNS label (at most 63 lower-case letters, digits and "
                "'-', starting and ending with a letter or digit)",
                f"use a name such as {normalise_name(name)[:63] or 'my-app'!r}",
            )
        return name


class AIApp(_Spec):
    """An AI app: AISpec as a Kubernetes object."""

    api_version: Literal["app.aispec.org/v1alpha1"] = Field(
        default=API_VERSION, alias="apiVersion", description="app.aispec.org/v1alpha1"
    )
    kind: Literal["AIApp"] = Field(default=KIND, description="AIApp")
    metadata: ObjectMeta = Field(description="Object metadata; name is required.")
    spec: AIAppSpec = Field(description="The app, in AISpec.")
    status: dict[str, Any] | None = Field(
        default=None, description="Written by the operator.", exclude=True
    )

    @model_validator(mode="after")
    def _metadata_name_wins(self) -> AIApp:
        # Helix lets metadata.name overwrite spec.name in the CRD form; do the same so every
        # consumer sees one name.
        self.spec.name = self.metadata.name
        return self

    def manifest(self) -> dict[str, Any]:
        """The object as a manifest: the keys the user set, plus apiVersion, kind and name."""
        body = self.model_dump(by_alias=True, exclude_unset=True)
        body["apiVersion"] = self.api_version
        body["kind"] = self.kind
        meta = {"name": self.metadata.name}
        if self.metadata.namespace:
            meta["namespace"] = self.metadata.namespace
        body["metadata"] = {**meta, **body.get("metadata", {})}
        body["spec"] = {"name": self.spec.name, **body["spec"]}
        return {key: body[key] for key in ("apiVersion", "kind", "metadata", "spec")}


# -- rules across fields ---------------------------------------------------------------------


def _strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def placeholder_uses(spec: AIAppSpec) -> list[tuple[Path, str]]:
    """Every ``${...}`` in the spec's strings, with where it is (paths start at ``spec``)."""
    dumped = spec.model_dump(by_alias=True, exclude={"secrets"})
    return [
        (path, match)
        for path, text in _strings(dumped, ("spec",))
        for match in PLACEHOLDER_RE.findall(text)
    ]


def placeholders(app: AIApp | AIAppSpec) -> list[str]:
    """The distinct ``${NAME}`` placeholder names an app uses, sorted."""
    spec = app.spec if isinstance(app, AIApp) else app
    return sorted({name for _, name in placeholder_uses(spec) if ENV_NAME_RE.match(name)})


def _duplicates(names: Sequence[tuple[Path, str]], what: str, scope: str) -> Iterator[Issue]:
    seen: dict[str, str] = {}
    for path, name in names:
        key = normalise_name(name)
        if key in seen:
            same = "" if seen[key] == name else f" once normalised to {key!r}"
            yield Issue(
                path,
                f"{what} name {name!r} is used twice{same}; names must be unique {scope}",
                f"rename one of the {what}s named {seen[key]!r}",
            )
        else:
            seen[key] = name


def deprecations(app: AIApp) -> list[Issue]:
    """Warnings for legacy keys the app uses; they are accepted and ignored."""
    found: list[Issue] = []
    for a, assistant in enumerate(app.spec.assistants):
        base: Path = ("spec", "assistants", a)
        for field, why in LEGACY_ASSISTANT_FIELDS.items():
            if field in assistant.model_fields_set:
                found.append(
                    Issue(
                        (*base, field),
                        f"{field} is deprecated and ignored: {why}",
                        f"remove {field}",
                        warning=True,
                    )
                )
        for k, knowledge in enumerate(assistant.knowledge):
            source = knowledge.source
            if "content" in source.model_fields_set:
                found.append(
                    Issue(
                        (*base, "knowledge", k, "source", "content"),
                        "content is the old spelling of text",
                        "rename content to text",
                        warning=True,
                    )
                )
            if knowledge.refresh_schedule and not knowledge.refresh_enabled:
                found.append(
                    Issue(
                        (*base, "knowledge", k, "refresh_schedule"),
                        "refresh_schedule is set but refresh_enabled is false, so it never runs",
                        "set refresh_enabled: true, or remove refresh_schedule",
                        warning=True,
                    )
                )
    return found


def app_issues(app: AIApp) -> list[Issue]:
    """Problems that span fields: duplicate names and placeholders without a source."""
    issues: list[Issue] = []
    spec = app.spec

    # Names become object and index names, so they must stay unique after normalising.
    assistant_names: list[tuple[Path, str]] = [
        (("spec", "assistants", a, "name"), assistant.name)
        for a, assistant in enumerate(spec.assistants)
    ]
    issues.extend(_duplicates(assistant_names, "assistant", "within the app"))
    knowledge_names = [
        (("spec", "assistants", a, "knowledge", k, "name"), knowledge.name)
        for a, assistant in enumerate(spec.assistants)
        for k, knowledge in enumerate(assistant.knowledge)
    ]
    issues.extend(_duplicates(knowledge_names, "knowledge", "within the app (each names an index)"))
    for a, assistant in enumerate(spec.assistants):
        for field, what in (("apis", "API"), ("tests", "test"), ("mcps", "MCP server")):
            entries = getattr(assistant, field)
            names = [
                (("spec", "assistants", a, field, i, "name"), entry.name)
                for i, entry in enumerate(entries)
            ]
            issues.extend(_duplicates(names, what, "within the assistant"))
    secret_names: list[tuple[Path, str]] = [
        (("spec", "secrets", s, "name"), source.name) for s, source in enumerate(spec.secrets)
    ]
    for path, name in secret_names:
        twins = [other for _, other in secret_names if other == name]
        if len(twins) > 1 and path == next(p for p, n in secret_names if n == name):
            issues.append(
                Issue(
                    path,
                    f"secret {name!r} is declared {len(twins)} times",
                    "keep one spec.secrets entry per placeholder",
                )
            )

    # Every placeholder needs a declared source, or the gateway would send it literally.
    declared = {source.name for source in spec.secrets}
    for path, inner in placeholder_uses(spec):
        if not ENV_NAME_RE.match(inner):
            issues.append(
                Issue(
                    path,
                    f"placeholder '${{{inner}}}' is not a ${{NAME}} placeholder "
                    "(letters, digits and _, not starting with a digit; no defaults)",
                    "write ${NAME} and declare NAME in spec.secrets",
                )
            )
        elif inner not in declared:
            issues.append(
                Issue(
                    path,
                    f"placeholder '${{{inner}}}' has no source in spec.secrets",
                    f"add to spec.secrets: {{name: {inner}, secret_name: <secret>, key: <key>}}",
                )
            )
    used = set(placeholders(spec))
    for s, source in enumerate(spec.secrets):
        if source.name not in used:
            issues.append(
                Issue(
                    ("spec", "secrets", s, "name"),
                    f"secret {source.name!r} is declared but no ${{{source.name}}} uses it",
                    "remove the entry or use the placeholder",
                    warning=True,
                )
            )
    return issues


def parse_app(body: Mapping[str, Any]) -> AIApp:
    """Validate an AIApp object in the CRD form; raise ``AISpecError`` with every error.

    Warnings (deprecated keys, unused secrets) are not errors; get them from ``app_warnings``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            app = AIApp.model_validate(body)
    except ValidationError as exc:
        raise AISpecError(issues_from_validation_error(exc, AIApp)) from None
    errors = [issue for issue in app_issues(app) if not issue.warning]
    if errors:
        raise AISpecError(errors)
    return app


def app_warnings(app: AIApp) -> list[Issue]:
    """What a valid app should still change: deprecated keys and unused secret sources."""
    return deprecations(app) + [issue for issue in app_issues(app) if issue.warning]


def from_bare(document: Mapping[str, Any], namespace: str = "") -> dict[str, Any]:
    """Wrap a bare Helix document (``name``, ``assistants``, ...) in the CRD form.

    The object name is the normalised ``name``; it also replaces ``spec.name``, as Helix does
    when it reads the CRD form.
    """
    name = document.get("name")
    metadata: dict[str, Any] = {"name": normalise_name(name) if isinstance(name, str) else ""}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": dict(document)}


__all__ = [
    "AIApp",
    "AIAppSpec",
    "AISpecError",
    "Assistant",
    "AssistantAPI",
    "AssistantTest",
    "GatewaySettings",
    "Issue",
    "Knowledge",
    "KnowledgeSource",
    "RAGSettings",
    "SecretSource",
    "TestSettings",
    "TestStep",
    "app_issues",
    "app_warnings",
    "check_schedule",
    "dotted",
    "from_bare",
    "normalise_name",
    "parse_app",
    "placeholders",
    "schema_kind",
]
