"""aiapp: serve AISpec AIApps on a Kubernetes cluster's own GPUs.

Layers, lowest first (each imports only from the ones before it):

- ``api``: the AIApp and Model kinds as typed models, validation, CRD generation.
- ``render``: pure functions from an AIApp to the manifests of its children.
- ``knowledge``, ``gateway``, ``testrun``: the workloads the operator runs (index Jobs, the
  app gateway, test Jobs); they read the runtime configuration that ``render`` writes.
- ``controller``: kopf handlers that fetch, render, apply and report.
- ``localcluster``: the local control plane with simulated GPU nodes, for tests and demos.
- ``cli``: the ``aiapp`` command.
"""

__version__ = "0.1.0"
