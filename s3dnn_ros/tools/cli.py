"""Argument parsing shared by the command-line tools: one-line errors, exit code 2."""
from __future__ import annotations

import argparse
import importlib.util
import sys


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming the argument and what is allowed."""

    def error(self, message: str):
        sys.stderr.write(f'{self.prog}: error: {message}\n')
        sys.exit(2)


def _number(kind, minimum, inclusive: bool, maximum=None):
    """
    Return an argparse type for a finite ``kind`` (int or float) above ``minimum``.

    Or at ``minimum``, if ``inclusive``; and, when given, at most ``maximum``.
    """
    name = 'an integer' if kind is int else 'a number'
    allowed = (f'{"an integer" if kind is int else "a finite number"} '
               f'{">=" if inclusive else ">"} {minimum:g}')
    if maximum is not None:
        allowed += f' and <= {maximum:g}'

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not {name}; '
                                             f'allowed: {allowed}') from None
        if (not (value >= minimum if inclusive else value > minimum) or value == float('inf')
                or (maximum is not None and value > maximum)):
            raise argparse.ArgumentTypeError(f'{text} is not allowed; allowed: {allowed}')
        return value
    return parse


def bounded_int(minimum: int, maximum: int):
    """Return an argparse type for an integer in ``minimum..maximum``."""
    return _number(int, minimum, True, maximum)


def bounded_float(minimum: float, maximum: float):
    """Return an argparse type for a number in ``[minimum, maximum]``."""
    return _number(float, minimum, True, maximum)


positive_int = _number(int, 1, inclusive=True)
non_negative_int = _number(int, 0, inclusive=True)
positive_float = _number(float, 0, inclusive=False)
non_negative_float = _number(float, 0, inclusive=True)
#: what the tools accept as a frame rate, a deadline and an image side (the node's and camera_sim's
#: limits)
FPS = bounded_float(0.01, 1000.0)
DEADLINE_MS = bounded_float(0.001, 3_600_000.0)
IMAGE_SIDE = bounded_int(8, 8192)


def positive_ints(text: str) -> list[int]:
    """Parse a comma list of positive integers, e.g. ``4,8,16``."""
    return [positive_int(part) for part in text.split(',')]


def fps_list(text: str) -> list[float]:
    """Parse a comma list of frame rates (see FPS)."""
    return [FPS(part) for part in text.split(',')]


def deadline_list(text: str) -> list[float]:
    """Parse a comma list of relative deadlines in ms (see DEADLINE_MS)."""
    return [DEADLINE_MS(part) for part in text.split(',')]


def choices_list(allowed: list[str]):
    """Type for a comma list whose items must come from ``allowed`` (no repeats)."""
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(',')]
        for item in items:
            if item not in allowed:
                raise argparse.ArgumentTypeError(f'{item!r} is not known; allowed: '
                                                 f'{",".join(allowed)}')
        if len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(f'{text!r} repeats an item; allowed: '
                                             f'{",".join(allowed)}')
        return items
    return parse


def text_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """
    Format a title, then right-aligned columns of already formatted cells.

    The columns sit under a header and a rule.
    """
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = [title, '  '.join(h.rjust(w) for h, w in zip(header, widths)),
             '  '.join('-' * w for w in widths)]
    return '\n'.join(lines + ['  '.join(cell.rjust(w) for cell, w in zip(row, widths))
                              for row in rows])


def per_camera(parser: Parser, name: str, values: list[float], cameras: int) -> list[float]:
    """
    Expand a length-1 list to every camera.

    A list of another length than ``cameras`` is an error.
    """
    if len(values) == 1:
        return values * cameras
    if len(values) != cameras:
        parser.error(f'argument {name}: {len(values)} values given; allowed: '
                     f'1 value or one per camera ({cameras})')
    return values


def require_rosbags(parser: Parser) -> None:
    """
    Check for rosbags, which the bag tools need (pure Python, PyPI).

    Say how to get it rather than fail on an import.
    """
    if importlib.util.find_spec('rosbags') is None:
        parser.error('the Python package rosbags is not installed; '
                     'install it with: pip install rosbags')
