"""
Starting programs from tests.

A spawn whose exec fails with EFAULT is tried again: that failure was seen on a sandboxed CI host,
it is a fault of the host rather than of the program, and the retry keeps every assertion about the
program itself.
"""
import errno
import functools
import inspect
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile

ATTEMPTS = 3
REPO_ROOT = Path(__file__).resolve().parents[1]


def repo_env(**extra: str) -> dict[str, str]:
    """
    Return this process's environment for a program that imports this checkout.

    The checkout goes first on PYTHONPATH, before what was there (where pycuda or the ROS
    packages may lie), with ``extra`` variables added.
    """
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')]))
    return dict(os.environ, PYTHONPATH=path, **extra)


def interpreted_copy(folder: Path) -> Path:
    """Copy the package's sources, without its compiled modules, into ``folder``; return it."""
    shutil.copytree(REPO_ROOT / 's3dnn_ros', folder / 's3dnn_ros',
                    ignore=shutil.ignore_patterns('*.so', '__pycache__'))
    return folder


def on_interpreted_package(test):
    """
    Run ``test`` on an interpreted copy of the package when this one is compiled (mypyc).

    For tests that replace a method of a policy, the dispatcher or its backend, which compiled
    (native) classes do not allow: the test then runs in a pytest of its own, started in the copy
    (so the copy is imported), and fails here with that pytest's output if it fails there.
    """
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        from s3dnn_ros import native
        if native.build() == 'interpreted':
            return test(*args, **kwargs)
        with tempfile.TemporaryDirectory() as folder:
            copy = interpreted_copy(Path(folder))
            node = f'{inspect.getsourcefile(test)}::{test.__name__}'
            result = run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', node],
                         timeout=300, cwd=copy)
        assert result.returncode == 0, result.stdout + result.stderr
        assert '1 passed' in result.stdout, result.stdout
    return wrapper


def popen(command, **kwargs) -> subprocess.Popen:
    for attempt in range(ATTEMPTS):
        try:
            return subprocess.Popen(command, **kwargs)
        except OSError as error:
            if error.errno != errno.EFAULT or attempt == ATTEMPTS - 1:
                raise


def run(command, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """
    Run ``command`` through popen, as ``subprocess.run`` would.

    That is ``subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)``.
    """
    with popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
               **kwargs) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def interrupt_after(command, ready: str, signals, timeout: float = 30,
                    **kwargs) -> tuple[int, str]:
    """
    Start ``command`` and send it each of ``signals`` once it is ready.

    Its stdout and stderr are merged; ``ready`` is a line containing ``ready``. Returns the exit
    status and everything printed. ``PYTHONFAULTHANDLER`` is set, so a crash prints every thread's
    Python stack into that output.
    """
    env = dict(kwargs.pop('env', None) or os.environ, PYTHONUNBUFFERED='1', PYTHONFAULTHANDLER='1')
    with popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
               **kwargs) as process:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if ready in line:
                break
        for signum in signals:
            process.send_signal(signum)
        try:
            rest, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return process.returncode, ''.join(lines) + rest
