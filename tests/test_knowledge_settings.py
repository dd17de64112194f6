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


def test_a_crawl_deeper_than_the_api_allows_is_rejected_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"knowledge\[d\]\.source\.web\.crawler\.max_depth"):
        read_knowledge({"name": "d", "source": {"web": {
            "urls": ["https://x/"], "crawler": {"enabled": True, "max_depth": 500},
        }}})


def test_a_seed_zip_alone_lands_under_files_like_helix() -> None:
    knowledge = read_knowledge({"name": "z", "source": {"filestore": {
        "seed_zip_url": "https://x/seed.zip"}}})

    assert knowledge.filestore is not None
    assert knowledge.filestore.path == "files"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"source": {"text": "x"}}, r"knowledge.name: Field required"),
        ({"name": "k", "source": {}}, r"knowledge\[k\].source: the source names nothing to index"),
        ({"name": "k", "source": {"s3": {"bucket": "b"}}},
         r"knowledge\[k\].source.s3: not supported yet"),
        ({"name": "k", "source": {"gcs": {"bucket": "b"}}},
         r"knowledge\[k\].source.gcs: not supported yet"),
        ({"name": "k", "source": {"web": {"urls": ["ftp://x"]}}},
         r"knowledge\[k\].source.web.urls: 'ftp://x' is not an http\(s\) URL"),
        ({"name": "k", "source": {"web": {"urls": []}}},
         r"knowledge\[k\].source.web.urls: List should have at least 1 item"),
        ({"name": "k", "source": {"filestore": {"path": "../etc"}}},
         r"source.filestore.path: '../etc' must be relative"),
        ({"name": "k", "source": {"filestore": {"path": "/etc"}}},
         r"source.filestore.path: '/etc' must be relative"),
        ({"name": "k", "rag_settings": {"chunk_size": 100, "chunk_overflow": 100},
          "source": {"text": "x"}},
         r"rag_settings: chunk_overflow \(100\) must be less than chunk_size"),
        ({"name": "k", "rag_settings": {"chunk_size": "big"}, "source": {"text": "x"}},
         r"knowledge\[k\].rag_settings.chunk_size: Input should be a valid integer"),
        ({"name": "k", "rag_settings": {"text_splitter": "html"}, "source": {"text": "x"}},
         r"knowledge\[k\].rag_settings.text_splitter: Input should be 'markdown' or 'text'"),
        ({"name": "k", "rag_settings": {"distance_function": "dot"}, "source": {"text": "x"}},
         r"knowledge\[k\].rag_settings.distance_function: Input should be 'cosine'"),
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
