"""
CPUs of their own for the scheduler workers.

A worker's loop is one Python thread that the GPU waits on. Left to the OS it shares CPUs with the
threads that receive and copy frames (the node's executor, a benchmark's feeders) and is moved
between them. ``worker_cpus`` gives each worker one CPU (:attr:`~.core.WorkerSpec.cpu`, set by the
worker process on all its threads before it builds its engine) and keeps every thread of the parent
process off those CPUs (:func:`keep_off`). Linux only (``os.sched_setaffinity``).
"""
from __future__ import annotations

import os

#: the format of a CPU list (what ``worker_cpus`` and ``--worker-cpus`` take)
CPU_LIST = 'CPU numbers separated by commas, e.g. 14,15; empty: not pinned'


def allowed_cpus() -> set[int]:
    """Return the CPUs this process may run on (none known: empty)."""
    getter = getattr(os, 'sched_getaffinity', None)
    return set(getter(0)) if getter else set()


def _allowed_text(allowed: set[int]) -> str:
    return ','.join(map(str, sorted(allowed))) or 'none (no CPU affinity on this system)'


def parse_cpu_list(value: str) -> tuple[int, ...]:
    """
    Return the CPUs of ``value``, in order.

    Raises ValueError saying what is allowed: distinct CPUs this process may run on, at least one
    of them left for the process itself.
    """
    if not isinstance(value, str):
        raise ValueError(CPU_LIST)
    text = value.replace(' ', '')
    if not text:
        return ()
    try:
        cpus = tuple(int(part) for part in text.split(','))
    except ValueError:
        raise ValueError(CPU_LIST) from None
    allowed = allowed_cpus()
    if len(set(cpus)) != len(cpus) or not set(cpus) <= allowed or len(cpus) >= len(allowed):
        raise ValueError(f'distinct CPUs of this process ({_allowed_text(allowed)}), one per '
                         'scheduler worker, leaving at least one for the process itself')
    return cpus


def check_count(cpus: tuple[int, ...], workers: int) -> None:
    """Raise ValueError saying what is allowed unless ``cpus`` gives each of ``workers`` one."""
    if cpus and len(cpus) != workers:
        raise ValueError(f'one CPU per scheduler worker ({workers} here, {len(cpus)} given)')


def _set_every_thread(cpus: set[int]) -> None:
    for task in os.listdir('/proc/self/task'):
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:
            pass  # the thread ended meanwhile


def keep_off(cpus: tuple[int, ...]) -> None:
    """
    Move every thread of this process off ``cpus``.

    Threads made later inherit it from the thread that makes them.
    """
    _set_every_thread(allowed_cpus() - set(cpus))


def pin_process(cpu: int) -> None:
    """
    Run every thread of this process on ``cpu`` alone (numpy's BLAS threads, made at import, too).

    Threads made later inherit it. Raises OSError when the OS refuses it.
    """
    _set_every_thread({cpu})
