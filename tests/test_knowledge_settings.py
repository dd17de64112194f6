"""Reading a knowledge entry: Helix's defaults, and clear errors for what the indexer rejects."""

from __future__ import annotations

from typing import Any

import pytest

from aiapp.knowledge.settings import (
    ConfigError,
    Distance,
    Splitter,
    read_knowledge,
)

pytestmark = pytest.mark.unit


def test_an_entry_with_only_a_url_gets_helix_defaults() -> None:
    knowledge = read_knowledge({"name": "docs", "source": {"web": {"urls": ["https://x/"]}}})

    assert knowledge.split.chunk_size == 2000
    assert knowledge.split.chunk_overflow == 20
    assert knowledge.split.splitter is Splitter.MARKDOWN
    assert knowledge.query.distance is Distance.COSINE
    assert knowledge.query.threshold == 0.4
    assert knowledge.query.results_count == 3
    assert knowledge.web is not None
    assert (knowledge.web.crawl, knowledge.web.readability) == (False, True)


def test_the_crawl_depth_is_clamped_like_helix() -> None:
    knowledge = read_knowledge({"name": "d", "source": {"web": {
        "urls": ["https://x/"], "crawler": {"enabled": True, "max_depth": 500},
    }}})

    assert knowledge.web is not None
    assert knowledge.web.max_depth == 100


def test_a_seed_zip_alone_lands_under_files_like_helix() -> None:
    knowledge = read_knowledge({"name": "z", "source": {"filestore": {
        "seed_zip_url": "https://x/seed.zip"}}})

    assert knowledge.filestore is not None
    assert knowledge.filestore.path == "files"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"source": {"text": "x"}}, r"knowledge.name: must not be empty"),
        ({"name": "k", "source": {}}, r"knowledge\[k\].source: needs at least one of"),
        ({"name": "k", "source": {"s3": {"bucket": "b"}}},
         r"knowledge\[k\].source.s3: not supported yet"),
        ({"name": "k", "source": {"gcs": {"bucket": "b"}}},
         r"knowledge\[k\].source.gcs: not supported yet"),
        ({"name": "k", "source": {"web": {"urls": ["ftp://x"]}}},
         r"source.web.urls: 'ftp://x' must start with http"),
        ({"name": "k", "source": {"web": {"urls": []}}}, r"source.web.urls: must list"),
        ({"name": "k", "source": {"filestore": {"path": "../etc"}}},
         r"source.filestore.path: '../etc' must be relative"),
        ({"name": "k", "source": {"filestore": {"path": "/etc"}}},
         r"source.filestore.path: '/etc' must be relative"),
        ({"name": "k", "rag_settings": {"chunk_size": 100, "chunk_overflow": 100},
          "source": {"text": "x"}}, r"rag_settings.chunk_overflow: must be at least 0 and smaller"),
        ({"name": "k", "rag_settings": {"chunk_size": "big"}, "source": {"text": "x"}},
         r"rag_settings.chunk_size: must be a whole number"),
        ({"name": "k", "rag_settings": {"text_splitter": "html"}, "source": {"text": "x"}},
         r"rag_settings.text_splitter: 'html' is not one of markdown, text"),
        ({"name": "k", "rag_settings": {"distance_function": "dot"}, "source": {"text": "x"}},
         r"rag_settings.distance_function: 'dot' is not one of"),
        ({"name": "k", "rag_settings": {"index_url": "http://rag"}, "source": {"text": "x"}},
         r"rag_settings.index_url: custom RAG services are not supported yet"),
        ({"name": "k", "source": {"web": {"urls": ["https://x"], "crawler": {"enabled": "yes"}}}},
         r"source.web.crawler.enabled: must be true or false"),
    ],
)
def test_a_bad_entry_is_rejected_naming_the_field_and_the_rule(
    entry: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        read_knowledge(entry)
