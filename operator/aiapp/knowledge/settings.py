"""The indexer's typed view of one AISpec knowledge entry, with Helix's defaults.

The knowledge entry reaches the indexer as the dict the user wrote (``IndexConfig.knowledge``).
This module first checks it against the API's typed model (``aiapp.api.aispec.Knowledge``), the
same rules the AIApp was admitted under, then reads it into frozen dataclasses of its own and
rejects what the indexer cannot honour (s3 and gcs sources, custom RAG services) with a
``ConfigError`` that names the field, the rule and the fix. The indexer's own view keeps its
rules (which sources it reads, which splitter settings fit together) beside the code that
depends on them.

Domain words: a *source* is where documents come from (web, filestore, inline text); the
*split settings* decide how documents become chunks; the *query settings* (distance function,
threshold, results count) are read here for the gateway and not used by the indexer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Final

from pydantic import ValidationError

from aiapp.api.aispec import Knowledge


class ConfigError(Exception):
    """The index configuration breaks a rule the user must fix (exit code 2)."""


class Distance(StrEnum):
    """pgvector distance functions that Helix's ``rag_settings.distance_function`` names."""

    COSINE = "cosine"
    L2 = "l2"
    INNER_PRODUCT = "inner_product"


class Splitter(StrEnum):
    MARKDOWN = "markdown"
    TEXT = "text"


# Helix's defaults (setDefaultKnowledgeRAGSettings), not the stale comments in its types.
DEFAULT_DISTANCE: Final = Distance.COSINE
DEFAULT_THRESHOLD: Final = 0.4
DEFAULT_RESULTS_COUNT: Final = 3
DEFAULT_CHUNK_SIZE: Final = 2000
DEFAULT_CHUNK_OVERFLOW: Final = 20
DEFAULT_MAX_DEPTH: Final = 10
MAX_DEPTH_LIMIT: Final = 100  # Helix clamps to RAG_CRAWLER_MAX_DEPTH
DEFAULT_MAX_PAGES: Final = 500
DEFAULT_USER_AGENT: Final = "aiapp-indexer/0.1 (+https://aispec.org)"


@dataclass(frozen=True)
class SplitSettings:
    chunk_size: int = DEFAULT_CHUNK_SIZE
    chunk_overflow: int = DEFAULT_CHUNK_OVERFLOW
    splitter: Splitter = Splitter.MARKDOWN
    disable_chunking: bool = False

    def fingerprint(self) -> str:
        """A stable string that changes whenever chunks of the same text would change."""
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class QuerySettings:
    distance: Distance = DEFAULT_DISTANCE
    threshold: float = DEFAULT_THRESHOLD
    results_count: int = DEFAULT_RESULTS_COUNT


@dataclass(frozen=True)
class WebAuth:
    """HTTP basic credentials for the crawled site; never logged, never in repr."""

    username: str = field(repr=False)
    password: str = field(repr=False)


@dataclass(frozen=True)
class WebSource:
    urls: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    auth: WebAuth | None = None
    crawl: bool = False
    max_depth: int = DEFAULT_MAX_DEPTH
    max_pages: int = DEFAULT_MAX_PAGES
    user_agent: str = DEFAULT_USER_AGENT
    ignore_robots_txt: bool = False
    readability: bool = True


@dataclass(frozen=True)
class FilestoreSource:
    path: str = ""
    seed_zip_url: str = ""


@dataclass(frozen=True)
class KnowledgeSettings:
    name: str
    web: WebSource | None = None
    filestore: FilestoreSource | None = None
    text: str | None = None
    split: SplitSettings = SplitSettings()
    query: QuerySettings = QuerySettings()


def read_knowledge(entry: Mapping[str, Any]) -> KnowledgeSettings:
    """Read an AISpec knowledge entry (as written) into the indexer's settings.

    Args:
        entry: the knowledge entry dict: name, rag_settings, source{web, filestore, text, ...}.

    Returns:
        The typed settings, with Helix's defaults filled in.

    Raises:
        ConfigError: a field is missing, has the wrong type, or asks for something unsupported.
    """
    _check_with_api_model(entry)
    name = _string(entry, "name", "knowledge")
    if not name:
        raise ConfigError("knowledge.name: must not be empty; give the entry a unique name")
    where = f"knowledge[{name}]"
    rag = _mapping(entry, "rag_settings", where)
    source = _mapping(entry, "source", where)

    # Sources Helix accepts in the type but that this indexer cannot read yet.
    for unsupported in ("s3", "gcs", "sharepoint"):
        if source.get(unsupported):
            raise ConfigError(
                f"{where}.source.{unsupported}: not supported yet by the indexer; "
                "use source.web, source.filestore or source.text instead"
            )
    for external in ("index_url", "query_url", "delete_url"):
        if rag.get(external):
            raise ConfigError(
                f"{where}.rag_settings.{external}: custom RAG services are not supported yet; "
                "remove it to index into the built-in pgvector store"
            )

    # Inline text: Helix's current key is `text`; examples written before 2025-05 use `content`.
    text = source.get("text")
    if text is None:
        text = source.get("content")
    if text is not None and not isinstance(text, str):
        raise ConfigError(f"{where}.source.text: must be a string of inline text")

    web = _read_web(source, where) if source.get("web") else None
    filestore = _read_filestore(source, where) if source.get("filestore") else None
    if web is None and filestore is None and not text:
        raise ConfigError(
            f"{where}.source: needs at least one of web.urls, filestore.path, "
            "filestore.seed_zip_url or text"
        )
    return KnowledgeSettings(
        name=name,
        web=web,
        filestore=filestore,
        text=text or None,
        split=_read_split(rag, f"{where}.rag_settings"),
        query=_read_query(rag, f"{where}.rag_settings"),
    )


def _check_with_api_model(entry: Mapping[str, Any]) -> None:
    """Apply the AIApp API's rules for a knowledge entry, reported as one ConfigError."""
    try:
        Knowledge.model_validate(dict(entry))
    except ValidationError as error:
        name = entry.get("name") if isinstance(entry.get("name"), str) else ""
        where = f"knowledge[{name}]" if name else "knowledge"
        problems = "; ".join(
            f"{where}.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigError(problems) from None


def _read_web(source: Mapping[str, Any], where: str) -> WebSource:
    web = _mapping(source, "web", f"{where}.source")
    here = f"{where}.source.web"
    urls = _strings(web, "urls", here)
    if not urls:
        raise ConfigError(f"{here}.urls: must list at least one http(s):// URL")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{here}.urls: {url!r} must start with http:// or https://")
    auth_block = _mapping(web, "auth", here)
    auth = None
    if auth_block.get("username") or auth_block.get("password"):
        auth = WebAuth(
            username=_string(auth_block, "username", f"{here}.auth"),
            password=_string(auth_block, "password", f"{here}.auth"),
        )
    crawler = _mapping(web, "crawler", here)
    if crawler.get("firecrawl"):
        raise ConfigError(
            f"{here}.crawler.firecrawl: not supported yet; remove it to use the built-in crawler"
        )
    max_depth = _integer(crawler, "max_depth", f"{here}.crawler", DEFAULT_MAX_DEPTH) or (
        DEFAULT_MAX_DEPTH
    )
    max_pages = _integer(crawler, "max_pages", f"{here}.crawler", DEFAULT_MAX_PAGES) or (
        DEFAULT_MAX_PAGES
    )
    return WebSource(
        urls=tuple(urls),
        excludes=tuple(_strings(web, "excludes", here)),
        auth=auth,
        crawl=_boolean(crawler, "enabled", f"{here}.crawler", False),
        max_depth=min(max_depth, MAX_DEPTH_LIMIT),
        max_pages=max_pages,
        user_agent=_string(crawler, "user_agent", f"{here}.crawler") or DEFAULT_USER_AGENT,
        ignore_robots_txt=_boolean(crawler, "ignore_robots_txt", f"{here}.crawler", False),
        readability=_boolean(crawler, "readability", f"{here}.crawler", True),
    )


def _read_filestore(source: Mapping[str, Any], where: str) -> FilestoreSource:
    block = _mapping(source, "filestore", f"{where}.source")
    here = f"{where}.source.filestore"
    path = _string(block, "path", here)
    seed = _string(block, "seed_zip_url", here)
    if seed and not seed.startswith(("http://", "https://")):
        raise ConfigError(f"{here}.seed_zip_url: {seed!r} must start with http:// or https://")
    if path.startswith("/") or ".." in path.split("/"):
        raise ConfigError(
            f"{here}.path: {path!r} must be relative to the filestore and stay inside it "
            "(no leading '/', no '..')"
        )
    if not path and not seed:
        raise ConfigError(f"{here}: needs path, seed_zip_url or both")
    # Helix extracts a seed zip into the knowledge path, which defaults to `files`.
    return FilestoreSource(path=path or "files", seed_zip_url=seed)


def _read_split(rag: Mapping[str, Any], here: str) -> SplitSettings:
    # Helix treats zero as unset, so a zero here also means the default.
    chunk_size = _integer(rag, "chunk_size", here, DEFAULT_CHUNK_SIZE) or DEFAULT_CHUNK_SIZE
    overflow = _integer(rag, "chunk_overflow", here, DEFAULT_CHUNK_OVERFLOW)
    if chunk_size < 1:
        raise ConfigError(f"{here}.chunk_size: must be a positive number of characters")
    if overflow < 0 or overflow >= chunk_size:
        raise ConfigError(
            f"{here}.chunk_overflow: must be at least 0 and smaller than chunk_size "
            f"({chunk_size}); got {overflow}"
        )
    splitter_name = _string(rag, "text_splitter", here) or Splitter.MARKDOWN.value
    try:
        splitter = Splitter(splitter_name)
    except ValueError:
        raise ConfigError(
            f"{here}.text_splitter: {splitter_name!r} is not one of markdown, text"
        ) from None
    return SplitSettings(
        chunk_size=chunk_size,
        chunk_overflow=overflow,
        splitter=splitter,
        disable_chunking=_boolean(rag, "disable_chunking", here, False),
    )


def _read_query(rag: Mapping[str, Any], here: str) -> QuerySettings:
    name = _string(rag, "distance_function", here) or DEFAULT_DISTANCE.value
    try:
        distance = Distance(name)
    except ValueError:
        raise ConfigError(
            f"{here}.distance_function: {name!r} is not one of cosine, l2, inner_product"
        ) from None
    threshold = rag.get("threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"{here}.threshold: must be a number, such as 0.4")
    results = _integer(rag, "results_count", here, DEFAULT_RESULTS_COUNT)
    return QuerySettings(
        distance=distance,
        threshold=float(threshold) or DEFAULT_THRESHOLD,
        results_count=results or DEFAULT_RESULTS_COUNT,
    )


def _mapping(block: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = block.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.{key}: must be a mapping, got {type(value).__name__}")
    return value


def _string(block: Mapping[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a string, got {type(value).__name__}")
    return value


def _strings(block: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = block.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}.{key}: must be a list of strings")
    return list(value)


def _integer(block: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = block.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key}: must be a whole number, got {value!r}")
    if value < 0:
        raise ConfigError(f"{where}.{key}: must not be negative, got {value}")
    return value


def _boolean(block: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = block.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: must be true or false, got {value!r}")
    return value
