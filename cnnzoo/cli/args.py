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


def knob(text: str) -> tuple[str, object]:
    """argparse type for --knob key=value: the value as int, float, bool or str."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected key=value (e.g. dropout=0.2), got {text!r}")
    raw = raw.strip()
    if raw.lower() in ("true", "false"):
        return key, raw.lower() == "true"
    if "_" in raw:  # int("1_1") is 11 to Python; a value like "1_1" is meant as text
        return key, raw
    for cast in (int, float):
        try:
            return key, cast(raw)
        except ValueError:
            pass
    return key, raw
