"""Knowledge indexing: from an AISpec knowledge entry to a versioned pgvector index.

``aiapp index`` (``commands``) reads one knowledge entry, collects its documents (``sources``,
``crawling``, ``documents``), splits them (``splitting``), embeds the new ones through an
OpenAI-compatible endpoint (``embeddings``) and writes a new version of the index
(``store``), which becomes active only when complete (``indexing`` drives the run). The gateway
reads the active version through ``store.search``. Rendering the Jobs that run the indexer and
reporting its outcome in the AIApp status belong to ``aiapp.render`` and ``aiapp.controller``.
"""
