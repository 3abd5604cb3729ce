"""
The scheduler's per-frame path compiled to C with mypyc: which modules, how they run, how fresh.

The build (``setup.py``) compiles the modules of :data:`COMPILED` with mypyc where it is installed
(``S3DNN_COMPILE``: ``auto``, the default, compiles when mypyc and the Python headers are there
and says on stderr why not otherwise; ``1`` requires it; ``0`` builds interpreted). Each compiled
module is a C extension beside its source, which Python imports in the source's place: same code,
same decisions (``test/test_native.py`` runs the simulator both ways), its classes native (no
attribute that is not declared, no method replaced on a class or an instance). The host time a
frame that this saves is in ``bench/README.md``.

An extension older than its source would run the old code: importing the package raises
ImportError naming it (:func:`check_fresh`); rebuild (``make build``) or delete it.
:func:`build` says which modules run compiled; the worker reports it when it starts.
"""
from __future__ import annotations

from importlib import import_module
from importlib.machinery import EXTENSION_SUFFIXES
import os

#: the modules mypyc compiles: frames, the policies, the dispatcher, the frame slots, the worker's
#: core
COMPILED = ('s3dnn_ros.scheduler.job', 's3dnn_ros.scheduler.policies',
            's3dnn_ros.scheduler.dispatcher', 's3dnn_ros.worker.slots', 's3dnn_ros.worker.core')

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_path(module: str, root: str = _ROOT) -> str:
    """Return the source file of ``module`` (a name of :data:`COMPILED`) under ``root``."""
    return os.path.join(root, *module.split('.')) + '.py'


def extension_path(module: str, root: str = _ROOT) -> str | None:
    """Return the compiled extension of ``module`` beside its source, None when there is none."""
    base = os.path.join(root, *module.split('.'))
    for suffix in EXTENSION_SUFFIXES:
        if os.path.exists(base + suffix):
            return base + suffix
    return None


def check_fresh(root: str = _ROOT, modules: tuple[str, ...] = COMPILED) -> None:
    """Raise ImportError when a module's compiled extension is older than its source."""
    for module in modules:
        extension = extension_path(module, root)
        source = source_path(module, root)
        if extension and os.path.exists(source) \
                and os.path.getmtime(extension) < os.path.getmtime(source):
            raise ImportError(f'{module}: the compiled {os.path.basename(extension)} is older '
                              f'than {os.path.basename(source)}: rebuild it (make build) or '
                              f'delete it')


def build() -> str:
    """Say how the modules of :data:`COMPILED` run: 'compiled', 'interpreted' or which are."""
    compiled = [name for name in COMPILED
                if (import_module(name).__file__ or '').endswith(tuple(EXTENSION_SUFFIXES))]
    if len(compiled) == len(COMPILED):
        return 'compiled'
    return 'compiled: ' + ', '.join(compiled) if compiled else 'interpreted'
