"""Helpers the tests share, importable as ``support.…`` (``pythonpath = ["tests"]`` in pyproject.toml).

- :mod:`support.corpus`: test images made in memory (a natural-looking pattern, good files of every format and
  mode, bad files and bombs).
- :mod:`support.k8s`: offline checks of the KubeRay manifests (CRD schemas, operator rules, a kustomize subset).
- :mod:`support.processes`: free ports and stopping a started server with everything it started.

Fixtures live in ``tests/conftest.py``; a test gets a helper as a fixture or imports it from here.
"""
