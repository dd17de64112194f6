"""The web source: fetch the listed URLs and, with the crawler on, follow links on the same site.

The crawl is breadth-first from the listed URLs: depth 0 is a listed URL, depth 1 a page it
links to, and so on up to ``max_depth``; at most ``max_pages`` pages are fetched in all. A link
is followed only when it stays on the host of a listed URL, is not excluded, and robots.txt
allows our user agent to fetch it (unless ``ignore_robots_txt``). An exclude is a URL prefix
(``https://site/private/``), a path prefix (``/private/``) or a glob (``*/drafts/*``).

A listed URL that cannot be fetched fails the run, so a site outage does not publish a version
without that site; a linked page that cannot be fetched is skipped with a warning. Basic auth is
sent to the listed sites only and never logged.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import urllib.robotparser
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx

from aiapp.knowledge.documents import (
    Document,
    SourceError,
    extract_text,
    format_of_media_type,
)
from aiapp.knowledge.settings import WebSource

log = logging.getLogger(__name__)

CONCURRENCY = 8
MAX_PAGE_BYTES = 50 * 1024 * 1024


class _LinkParser(HTMLParser):
    """Collects ``href`` targets of anchors; lenient on broken markup, like browsers."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        for name, value in attrs:
            if name == "href" and value:
                self.links.append(value)


def page_links(html: str, base_url: str) -> list[str]:
    """Absolute http(s) URLs that a page links to, without fragments, in page order."""
    parser = _LinkParser()
    parser.feed(html)
    links: list[str] = []
    for href in parser.links:
        url, _ = urldefrag(urljoin(base_url, href.strip()))
        if urlsplit(url).scheme in ("http", "https") and url not in links:
            links.append(url)
    return links


def is_excluded(url: str, excludes: tuple[str, ...]) -> bool:
    path = urlsplit(url).path or "/"
    for pattern in excludes:
        if any(mark in pattern for mark in "*?["):
            if fnmatch.fnmatchcase(url, pattern) or fnmatch.fnmatchcase(path, pattern):
                return True
        elif pattern.startswith("/"):
            if path.startswith(pattern):
                return True
        elif url.startswith(pattern):
            return True
    return False


@dataclass
class _Crawl:
    web: WebSource
    client: httpx.AsyncClient
    hosts: frozenset[str]
    robots: dict[str, urllib.robotparser.RobotFileParser] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    fetched: int = 0
    documents: dict[str, Document] = field(default_factory=dict)

    async def allowed(self, url: str) -> bool:
        if self.web.ignore_robots_txt:
            return True
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self.robots:
            self.robots[origin] = await self._read_robots(origin)
        return self.robots[origin].can_fetch(self.web.user_agent, url)

    async def _read_robots(self, origin: str) -> urllib.robotparser.RobotFileParser:
        # The same rules as urllib's own reader: 401/403 forbid everything, other 4xx allow.
        parser = urllib.robotparser.RobotFileParser(f"{origin}/robots.txt")
        try:
            response = await self.client.get(f"{origin}/robots.txt")
        except httpx.HTTPError as error:
            log.warning("%s/robots.txt: unreadable (%s); crawling as if it allowed all", origin,
                        type(error).__name__)
            parser.parse([])
            return parser
        if response.status_code in (401, 403):
            parser.parse(["User-agent: *", "Disallow: /"])
        elif response.status_code >= 400:
            parser.parse([])
        else:
            parser.parse(response.text.splitlines())
        return parser

    async def fetch(self, url: str, depth: int) -> list[str]:
        """Fetch one page, keep its text, and return the links worth following."""
        try:
            response = await self.client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as error:
            reason = _describe(error)
            if depth == 0:
                raise SourceError(
                    f"source.web.urls: {url} could not be fetched: {reason}"
                ) from None
            log.warning("%s: skipped, %s", url, reason)
            return []
        final_url = str(response.url)
        fmt = format_of_media_type(response.headers.get("content-type", "text/html"))
        if fmt is None:
            log.info("%s: skipped, content type %s is not indexed", url,
                     response.headers.get("content-type"))
            return []
        data = response.content[:MAX_PAGE_BYTES]
        text = extract_text(data, fmt, source=final_url, readability=self.web.readability)
        if text:
            self.documents.setdefault(url, Document(source=url, text=text))
        if fmt.value != "html" or not self.web.crawl or depth >= self.web.max_depth:
            return []
        return page_links(data.decode("utf-8", errors="replace"), final_url)

    def wanted(self, url: str) -> bool:
        return (
            url not in self.seen
            and urlsplit(url).netloc in self.hosts
            and not is_excluded(url, self.web.excludes)
        )


async def crawl(
    web: WebSource,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Document]:
    """Read a web source into documents, sorted by URL.

    Args:
        web: the web source settings.
        transport: an httpx transport to use instead of the network's (tests, proxies).

    Returns:
        One document per page that had readable text.

    Raises:
        SourceError: a listed URL could not be fetched or robots.txt forbids it.
    """
    hosts = frozenset(urlsplit(url).netloc for url in web.urls)
    auth = httpx.BasicAuth(web.auth.username, web.auth.password) if web.auth else None
    async with httpx.AsyncClient(
        headers={"User-Agent": web.user_agent},
        auth=auth,
        follow_redirects=True,
        timeout=httpx.Timeout(30.0),
        transport=transport,
    ) as client:
        state = _Crawl(web=web, client=client, hosts=hosts)
        limit = asyncio.Semaphore(CONCURRENCY)

        # Listed URLs are fetched even when excluded patterns would match them; robots.txt wins.
        frontier: list[str] = []
        for url in web.urls:
            clean, _ = urldefrag(url)
            if clean in state.seen:
                continue
            state.seen.add(clean)
            if not await state.allowed(clean):
                raise SourceError(f"source.web.urls: robots.txt forbids {clean} to "
                                  f"{web.user_agent!r}; set crawler.ignore_robots_txt to override")
            frontier.append(clean)

        # Breadth-first by depth, so the page limit keeps the pages nearest the listed URLs.
        depth = 0
        while frontier and state.fetched < web.max_pages:
            batch = frontier[: web.max_pages - state.fetched]
            state.fetched += len(batch)

            async def visit(url: str, depth: int = depth) -> list[str]:
                async with limit:
                    return await state.fetch(url, depth)

            found = await asyncio.gather(*(visit(url) for url in batch))
            frontier = []
            for links in found:
                for link in links:
                    if state.wanted(link):
                        state.seen.add(link)
                        if await state.allowed(link):
                            frontier.append(link)
                        else:
                            log.info("%s: skipped, disallowed by robots.txt", link)
            depth += 1
        return [state.documents[url] for url in sorted(state.documents)]


def _describe(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return type(error).__name__
