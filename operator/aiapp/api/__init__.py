"""The AIApp and Model APIs: typed models, validation with line numbers, CRD generation.

``aispec`` holds the AIApp kind, ``model`` and ``presets`` the Model kind, ``documents`` reads
YAML files, ``crdgen`` writes the CRDs and ``commands`` the ``validate``, ``convert`` and
``crds`` subcommands. ``runtime`` is the operator-to-workload contract. Nothing here imports
the rest of ``aiapp``.
"""
