"""Argument parsing shared by the command-line tools: one-line errors, exit code 2."""
from __future__ import annotations

import argparse
import sys


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming the argument and what is allowed."""

    def error(self, message: str):
        sys.stderr.write(f'{self.prog}: error: {message}\n')
        sys.exit(2)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer; allowed: an integer >= 1') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'{value} is not allowed; allowed: an integer >= 1')
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number; allowed: a number > 0') from None
    if not value > 0 or value == float('inf'):
        raise argparse.ArgumentTypeError(f'{text} is not allowed; allowed: a finite number > 0')
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number; allowed: a number >= 0') from None
    if not 0 <= value < float('inf'):
        raise argparse.ArgumentTypeError(f'{text} is not allowed; allowed: a finite number >= 0')
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer; allowed: an integer >= 0') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'{value} is not allowed; allowed: an integer >= 0')
    return value


def positive_floats(text: str) -> list[float]:
    """A comma list of positive numbers, e.g. ``30`` or ``30,15,60``."""
    return [positive_float(part) for part in text.split(',')]


def choices_list(allowed: list[str]):
    """Type for a comma list whose items must come from ``allowed`` (no repeats)."""
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(',')]
        for item in items:
            if item not in allowed:
                raise argparse.ArgumentTypeError(f'{item!r} is not known; allowed: {",".join(allowed)}')
        if len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(f'{text!r} repeats an item; allowed: {",".join(allowed)}')
        return items
    return parse


def per_camera(parser: Parser, name: str, values: list[float], cameras: int) -> list[float]:
    """Expand a length-1 list to every camera; a list of another length than ``cameras`` is an error."""
    if len(values) == 1:
        return values * cameras
    if len(values) != cameras:
        parser.error(f'argument {name}: {len(values)} values given; allowed: 1 value or one per camera ({cameras})')
    return values
