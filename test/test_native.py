"""The scheduler's modules compiled with mypyc: reported, refused when stale, deciding the same."""
import importlib.util
import json
import os
from pathlib import Path
import shutil
import sys
import tempfile

from process_helpers import interpreted_copy, run
import pytest
from s3dnn_ros import native

SIMULATION = """
import json
from s3dnn_ros.engine.costs import estimate, HostCosts
from s3dnn_ros.model.alexnet import alexnet
from s3dnn_ros.scheduler.simulator import Camera, simulate
cameras = [Camera(f'cam{i}', 30.0, 50.0) for i in range(48)]
costs = estimate(alexnet(), 'h100')
host = HostCosts(launch_us=40.0, decision_us=40.0, frame_us=10.0)
print(json.dumps({policy: simulate(cameras, policy, costs, seconds=0.5, seed=3, host=host)
                  for policy in ('s3dnn', 'streams', 'fifo')}, sort_keys=True))
"""


def test_the_build_reports_how_the_modules_run():
    """Every module with its extension: 'compiled'; none: 'interpreted' (CI builds compiled)."""
    compiled = [name for name in native.COMPILED if native.extension_path(name)]
    expected = ('compiled' if len(compiled) == len(native.COMPILED)
                else 'compiled: ' + ', '.join(compiled) if compiled else 'interpreted')
    assert native.build() == expected
    if os.environ.get('S3DNN_COMPILE') == '1':
        assert native.build() == 'compiled'


def test_a_compiled_module_older_than_its_source_is_refused(tmp_path):
    """Importing the package raises ImportError naming the module, its extension and its source."""
    module = native.COMPILED[0]
    source = Path(native.source_path(module, str(tmp_path)))
    source.parent.mkdir(parents=True)
    source.write_text('')
    extension = Path(str(source)[:-3] + native.EXTENSION_SUFFIXES[0])
    extension.write_bytes(b'')
    os.utime(extension, (1_000_000, 1_000_000))
    os.utime(source, (2_000_000, 2_000_000))
    with pytest.raises(ImportError, match=f'{module}: the compiled {extension.name} is older '
                                          f'than {source.name}'):
        native.check_fresh(str(tmp_path))
    os.utime(extension, (3_000_000, 3_000_000))
    native.check_fresh(str(tmp_path))  # fresh: no error


def test_compiled_and_interpreted_modules_decide_the_same():
    """The simulator's summaries of three policies, here and on an interpreted copy, are equal."""
    here = run([sys.executable, '-c', SIMULATION], timeout=300, cwd=Path(__file__).parents[1])
    assert here.returncode == 0, here.stderr
    with tempfile.TemporaryDirectory() as folder:
        copy = interpreted_copy(Path(folder))
        there = run([sys.executable, '-c', 'from s3dnn_ros import native; print(native.build())'
                     + SIMULATION], timeout=300, cwd=copy)
    assert there.returncode == 0, there.stderr
    build, summaries = there.stdout.split('\n', 1)
    assert build == 'interpreted'
    assert json.loads(summaries) == json.loads(here.stdout)
    assert json.loads(here.stdout)['s3dnn']['completed'] > 0


@pytest.mark.skipif(importlib.util.find_spec('mypyc') is None,
                    reason='mypyc (mypy) is not installed: nothing to compile with')
def test_a_build_after_an_edit_that_leaves_the_c_unchanged_imports(tmp_path):
    """
    A comment added: the build keeps the C, and still dates the extensions after the source.

    The package, built in place, then imports compiled; before the rebuild it is refused.
    """
    repo = Path(__file__).parents[1]
    for name in ('setup.py', 'setup.cfg', 'package.xml', 'LICENSE', 'CHANGELOG.rst'):
        shutil.copy(repo / name, tmp_path / name)
    for folder in ('resource', 'launch', 'config', 'kernels'):
        shutil.copytree(repo / folder, tmp_path / folder)
    interpreted_copy(tmp_path)
    build = [sys.executable, 'setup.py', '-q', 'build_ext', '--inplace']
    env = dict(os.environ, S3DNN_COMPILE='1')
    probe = [sys.executable, '-c', 'from s3dnn_ros import native; print(native.build())']
    assert run(build, timeout=600, cwd=tmp_path, env=env).returncode == 0
    assert run(probe, timeout=60, cwd=tmp_path).stdout == 'compiled\n'
    policies = tmp_path / 's3dnn_ros' / 'scheduler' / 'policies.py'
    policies.write_text(policies.read_text() + '# a comment: the same C\n')
    refused = run(probe, timeout=60, cwd=tmp_path)
    assert refused.returncode == 1
    assert 's3dnn_ros.scheduler.policies: the compiled' in refused.stderr
    assert run(build, timeout=600, cwd=tmp_path, env=env).returncode == 0
    assert run(probe, timeout=60, cwd=tmp_path).stdout == 'compiled\n'
