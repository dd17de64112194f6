"""Reading sources: the crawler's rules, the filestore, seed zips, splitting and the client."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiapp.knowledge.crawling import crawl, is_excluded, page_links
from aiapp.knowledge.documents import SourceError
from aiapp.knowledge.embeddings import EmbeddingError, embed
from aiapp.knowledge.settings import read_knowledge
from aiapp.knowledge.sources import collect
from aiapp.knowledge.splitting import DocumentSplitter
from doubles.embeddings_double import EmbeddingsDouble
from knowledge_fixtures import LocalSite, embeddings, make_pdf, site  # noqa: F401

pytestmark = pytest.mark.unit


def html(title: str, text: str, *links: str) -> str:
    anchors = "".join(f'<a href="{link}">{link}</a> ' for link in links)
    return f"<html><body><h1>{title}</h1><p>{text}</p><p>{anchors}</p></body></html>"


def web(site: LocalSite, **crawler: Any) -> Any:  # noqa: F811
    entry = {"name": "k", "source": {"web": {"urls": [site.url + "/"],
                                             "crawler": {"enabled": True, **crawler}}}}
    knowledge = read_knowledge(entry)
    assert knowledge.web is not None
    return knowledge.web


@pytest.mark.parametrize(
    ("url", "excludes", "excluded"),
    [
        ("https://site/private/a", ("https://site/private/",), True),
        ("https://site/public/a", ("https://site/private/",), False),
        ("https://site/drafts/x", ("/drafts/",), True),
        ("https://site/a/drafts/x", ("/drafts/",), False),
        ("https://site/a/drafts/x", ("*/drafts/*",), True),
        ("https://site/report.pdf", ("*.pdf",), True),
        ("https://site/report.html", ("*.pdf",), False),
    ],
)
def test_an_exclude_is_a_url_prefix_a_path_prefix_or_a_glob(
    url: str, excludes: tuple[str, ...], excluded: bool
) -> None:
    assert is_excluded(url, excludes) is excluded


def test_page_links_are_absolute_deduplicated_and_without_fragments() -> None:
    page = ('<a href="/a#top">a</a><a href="b">b</a><a href="/a">again</a>'
            '<a href="mailto:x@y">mail</a><a href="https://other/c">c</a>')

    assert page_links(page, "http://site/dir/") == [
        "http://site/a", "http://site/dir/b", "https://other/c",
    ]


async def test_the_crawl_stops_at_the_depth_limit(site: LocalSite) -> None:  # noqa: F811
    site.html("/", html("Home", "home page", "/one"))
    site.html("/one", html("One", "first level", "/two"))
    site.html("/two", html("Two", "second level", "/three"))
    site.html("/three", html("Three", "third level"))

    documents = await crawl(web(site, max_depth=2))

    assert [document.source for document in documents] == [
        site.url + path for path in ("/", "/one", "/two")
    ]
    assert "/three" not in site.hits


async def test_the_crawl_stops_at_the_page_limit_keeping_the_nearest_pages(
    site: LocalSite,  # noqa: F811
) -> None:
    site.html("/", html("Home", "home page", "/a", "/b"))
    site.html("/a", html("A", "page a", "/a/deep"))
    site.html("/b", html("B", "page b"))
    site.html("/a/deep", html("Deep", "deep page"))

    documents = await crawl(web(site, max_pages=3))

    assert {document.source for document in documents} == {
        site.url + path for path in ("/", "/a", "/b")
    }


async def test_without_the_crawler_only_the_listed_urls_are_fetched(
    site: LocalSite,  # noqa: F811
) -> None:
    site.html("/", html("Home", "home page", "/linked"))
    site.html("/linked", html("Linked", "a linked page"))

    documents = await crawl(web(site, enabled=False))

    assert [document.source for document in documents] == [site.url + "/"]
    assert "/linked" not in site.hits


@pytest.mark.parametrize(
    ("ignore_robots_txt", "fetched"),
    [(False, False), (True, True)],
)
async def test_robots_txt_is_honoured_unless_told_to_ignore_it(
    site: LocalSite,  # noqa: F811
    ignore_robots_txt: bool,
    fetched: bool,
) -> None:
    site.add("/robots.txt", "text/plain", b"User-agent: *\nDisallow: /hidden\n")
    site.html("/", html("Home", "home page", "/hidden", "/shown"))
    site.html("/hidden", html("Hidden", "hidden page"))
    site.html("/shown", html("Shown", "shown page"))

    documents = await crawl(web(site, ignore_robots_txt=ignore_robots_txt))

    assert (site.url + "/hidden" in {document.source for document in documents}) is fetched
    assert ("/hidden" in site.hits) is fetched


async def test_a_listed_url_that_robots_txt_forbids_fails_with_the_fix(
    site: LocalSite,  # noqa: F811
) -> None:
    site.add("/robots.txt", "text/plain", b"User-agent: *\nDisallow: /\n")
    site.html("/", html("Home", "home page"))

    with pytest.raises(SourceError, match="robots.txt forbids .*crawler.ignore_robots_txt"):
        await crawl(web(site))


async def test_a_listed_url_that_fails_fails_the_crawl_but_a_broken_link_is_skipped(
    site: LocalSite,  # noqa: F811
) -> None:
    site.html("/", html("Home", "home page", "/missing", "/present"))
    site.html("/present", html("Present", "present page"))

    documents = await crawl(web(site))
    missing_root = read_knowledge({"name": "k", "source": {"web": {"urls": [site.url + "/nope"]}}})

    assert [document.source for document in documents] == [site.url + "/", site.url + "/present"]
    assert missing_root.web is not None
    with pytest.raises(SourceError, match="/nope could not be fetched: HTTP 404"):
        await crawl(missing_root.web)


async def test_basic_auth_and_the_user_agent_are_sent_but_never_in_a_repr(
    site: LocalSite,  # noqa: F811
) -> None:
    site.html("/", html("Home", "home page"))
    knowledge = read_knowledge({"name": "k", "source": {"web": {
        "urls": [site.url + "/"], "auth": {"username": "ada", "password": "s3cret-pw"},
        "crawler": {"user_agent": "docs-bot/2"},
    }}})
    assert knowledge.web is not None

    await crawl(knowledge.web)

    assert site.user_agents == {"docs-bot/2"}
    assert site.authorizations == {"Basic YWRhOnMzY3JldC1wdw=="}
    assert "s3cret-pw" not in repr(knowledge)


async def test_pdf_markdown_and_text_pages_are_read_by_content_type(
    site: LocalSite,  # noqa: F811
) -> None:
    site.html("/", html("Home", "home", "/paper.pdf", "/notes.md", "/plain.txt", "/logo.png"))
    site.add("/paper.pdf", "application/pdf", make_pdf("Varroa mites weaken colonies."))
    site.add("/notes.md", "text/markdown", b"# Notes\n\nDrones do not sting.")
    site.add("/plain.txt", "text/plain; charset=utf-8", b"Workers live six weeks.")
    site.add("/logo.png", "image/png", b"\x89PNG")

    documents = {document.source: document.text for document in await crawl(web(site))}

    assert documents[site.url + "/paper.pdf"] == "Varroa mites weaken colonies."
    assert documents[site.url + "/notes.md"] == "# Notes\n\nDrones do not sting."
    assert documents[site.url + "/plain.txt"] == "Workers live six weeks."
    assert site.url + "/logo.png" not in documents


def seed_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def test_filestore_files_and_a_seed_zip_are_read_with_the_volume_winning(
    tmp_path: Path,
    site: LocalSite,  # noqa: F811
) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "guide.md").write_text("# Guide\n\nOn the volume.")
    (folder / "sub" / "page.html").write_text(html("Page", "An HTML file on the volume."))
    (folder / "sub" / "paper.pdf").write_bytes(make_pdf("A PDF on the volume."))
    (folder / "image.png").write_bytes(b"\x89PNG")
    site.add("/seed.zip", "application/zip", seed_zip({
        "guide.md": b"# Guide\n\nFrom the zip.",
        "extra/readme.txt": b"Only in the zip.",
        "../escape.txt": b"A hostile name stays a label.",
    }))
    knowledge = read_knowledge({"name": "files", "source": {"filestore": {
        "path": "docs", "seed_zip_url": site.url + "/seed.zip",
    }}})

    documents = {d.source: d.text for d in await collect(knowledge, filestore_root=tmp_path)}

    assert documents == {
        "docs/guide.md": "# Guide\n\nOn the volume.",
        "docs/sub/page.html": documents["docs/sub/page.html"],
        "docs/sub/paper.pdf": "A PDF on the volume.",
        "docs/extra/readme.txt": "Only in the zip.",
        "docs/escape.txt": "A hostile name stays a label.",
    }
    assert "An HTML file on the volume." in documents["docs/sub/page.html"]


@pytest.mark.parametrize(
    ("filestore", "message"),
    [
        ({"path": "missing"}, "'missing' does not exist under the filestore"),
        ({"path": "docs", "seed_zip_url": "{site}/nope.zip"}, "could not be downloaded: HTTP 404"),
        ({"path": "docs", "seed_zip_url": "{site}/not.zip"}, "is not a zip archive"),
    ],
)
async def test_unreadable_files_fail_with_the_field_named(
    tmp_path: Path,
    site: LocalSite,  # noqa: F811
    filestore: dict[str, str],
    message: str,
) -> None:
    site.add("/not.zip", "application/zip", b"plain bytes")
    entry = {key: value.format(site=site.url) for key, value in filestore.items()}
    knowledge = read_knowledge({"name": "files", "source": {"filestore": entry}})

    with pytest.raises(SourceError, match=message):
        await collect(knowledge, filestore_root=tmp_path)


def test_inline_text_is_one_document_also_under_the_legacy_content_key() -> None:
    current = read_knowledge({"name": "t", "source": {"text": "Bees dance."}})
    legacy = read_knowledge({"name": "t", "source": {"content": "Bees dance."}})

    assert current.text == legacy.text == "Bees dance."


@pytest.mark.parametrize(
    ("rag_settings", "expect"),
    [
        ({"chunk_size": 120, "chunk_overflow": 0}, "several"),
        ({"chunk_size": 120, "chunk_overflow": 30, "text_splitter": "text"}, "several"),
        ({"chunk_size": 120, "disable_chunking": True}, "one"),
    ],
)
def test_splitting_follows_the_rag_settings(rag_settings: dict[str, Any], expect: str) -> None:
    text = "# Bees\n\n" + " ".join(f"Sentence number {n} is about bees." for n in range(20))
    knowledge = read_knowledge({"name": "s", "rag_settings": rag_settings,
                                "source": {"text": text}})

    chunks = DocumentSplitter(knowledge.split).split(text)

    if expect == "one":
        assert [(chunk.offset, chunk.content) for chunk in chunks] == [(0, text)]
        return
    assert len(chunks) > 1
    assert all(len(chunk.content) <= 120 for chunk in chunks)
    assert all(text[chunk.offset:].startswith(chunk.content) for chunk in chunks)
    assert "Sentence number 19 is about bees." in chunks[-1].content


async def test_embed_sends_batches_and_keeps_the_order(
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    texts = [f"text number {n}" for n in range(10)]

    async with httpx.AsyncClient() as client:
        batched = await embed(client, embeddings.base_url, embeddings.model, texts,
                              api_key="key-1", batch_size=4)
        single = [(await embed(client, embeddings.base_url, embeddings.model, [text]))[0]
                  for text in texts]

    assert batched == single
    assert embeddings.requests == 3 + 10
    assert embeddings.api_keys[:3] == ["key-1"] * 3


async def test_embed_reports_an_endpoint_that_refuses(
    embeddings: EmbeddingsDouble,  # noqa: F811
) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(EmbeddingError, match="HTTP 404"):
            await embed(client, embeddings.base_url + "/wrong", "m", ["x"])
