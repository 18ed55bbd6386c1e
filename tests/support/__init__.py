"""Helpers the tests share, importable as ``support.…`` (``pythonpath = ["tests"]`` in pyproject.toml).

- :mod:`support.corpus`: test images made in memory (a natural-looking pattern, good files of every format and
  mode, bad files and bombs).
- :mod:`support.weights`: weights files of the tiny task configs.
- :mod:`support.batch`: batch requests for the tiny models, input folders written from bytes.
- :mod:`support.serving`: the Serve application as the tests deploy it, shared by the modules that drive it.
- :mod:`support.k8s`: offline checks of the KubeRay manifests (CRD schemas, operator rules, a kustomize subset).
- :mod:`support.processes`: free ports, waiting for a server, stopping it with everything it started, and
  finding what a Ray instance left behind.

Fixtures live in ``tests/conftest.py``; a test gets a helper as a fixture or imports it from here, never from
``conftest`` or from another test module.
"""
