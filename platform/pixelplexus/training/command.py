"""Command-line wiring (work in progress)."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this package's subcommands on the ``pixelplexus`` parser."""
