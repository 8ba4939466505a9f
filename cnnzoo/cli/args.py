"""Argument types shared by the command groups."""

from __future__ import annotations

import argparse


def positive_int(s: str) -> int:
    """argparse type: an integer >= 1, with a message naming the bad value."""
    try:
        v = int(s)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s!r}")
    return v
