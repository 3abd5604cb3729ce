"""bench/alternate.py: one command on two versions of the code, in turn, each in its own tree."""
import json
import os
from pathlib import Path
import subprocess
import sys

from process_helpers import repo_env, REPO_ROOT, run

# prints where the package it imports lies, and when it ran, into {out}.json
PROBE = ('import json, sys, time, s3dnn_ros; '
         'json.dump({"package": s3dnn_ros.__file__, "ns": time.monotonic_ns()}, '
         'open(sys.argv[1] + ".json", "w"))')


def test_each_version_runs_in_turn_in_its_own_tree(tmp_path):
    command = [sys.executable, 'bench/alternate.py', '--before', 'HEAD', '--rounds', '2',
               '--out', str(tmp_path), '--', sys.executable, '-c', PROBE, '{out}']
    result = run(command, timeout=120, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / 'alternate.json').read_text())
    names = ['before-1', 'after-1', 'before-2', 'after-2']
    assert [entry['name'] for entry in record['runs']] == names
    assert all(entry['returncode'] == 0 for entry in record['runs'])
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert record['versions']['before'] == head
    assert record['versions']['after'].startswith(f'working tree at {head}')
    probes = [json.loads((tmp_path / f'{name}.json').read_text()) for name in names]
    assert [probe['ns'] for probe in probes] == sorted(probe['ns'] for probe in probes)
    trees = {'before': tmp_path / 'trees' / 'before', 'after': REPO_ROOT}
    for name, probe in zip(names, probes):
        expected = trees[name.split('-')[0]] / 's3dnn_ros' / '__init__.py'
        assert Path(probe['package']).resolve() == expected.resolve()
    assert (trees['before'] / 'kernels' / 'common.cuh').is_file()


def test_an_unknown_version_or_no_command_is_a_one_line_error(tmp_path):
    for extra, message in ((['--before', 'no-such-rev', '--', 'true'],
                            "argument --before/--after: 'no-such-rev' is not a commit"),
                           (['--before', 'HEAD'], 'missing -- before the command to run')):
        result = run([sys.executable, 'bench/alternate.py', '--out', str(tmp_path), *extra],
                     timeout=60, cwd=REPO_ROOT, env=repo_env())
        assert result.returncode == 2
        assert result.stderr.startswith('alternate.py: error: ')
        assert message in result.stderr and result.stderr.count('\n') == 1


def test_an_exported_tree_is_measured_where_it_lies(tmp_path):
    """--export writes a version for a machine without the history; --before names the folder."""
    tree = tmp_path / 'before'
    export = [sys.executable, 'bench/alternate.py', '--export', 'HEAD', str(tree)]
    result = run(export, timeout=60, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert (tree / 'COMMIT').read_text().strip() == head
    assert (tree / 'bench' / 'alternate.py').is_file()
    assert not (tree / 'bench' / 'results').exists()
    again = run(export, timeout=60, cwd=REPO_ROOT, env=repo_env())
    assert again.returncode == 2 and 'argument --export: ' in again.stderr
    out = tmp_path / 'runs'
    command = [sys.executable, 'bench/alternate.py', '--before', str(tree), '--rounds', '1',
               '--out', str(out), '--', sys.executable, '-c', PROBE, '{out}']
    result = run(command, timeout=120, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr
    record = json.loads((out / 'alternate.json').read_text())
    assert record['versions']['before'] == head
    probe = json.loads((out / 'before-1.json').read_text())
    assert Path(probe['package']).resolve() == (tree / 's3dnn_ros' / '__init__.py').resolve()
    assert not (out / 'trees' / 'before').exists()


def test_a_program_given_by_a_relative_link_runs_as_that_link(tmp_path):
    """A virtual environment's python is a link: it must not be replaced by the interpreter."""
    link = tmp_path / 'env' / 'python'
    link.parent.mkdir()
    link.symlink_to(sys.executable)
    probe = 'import json, sys; json.dump(sys.executable, open(sys.argv[1] + ".json", "w"))'
    out = tmp_path / 'runs'
    command = [sys.executable, 'bench/alternate.py', '--before', 'HEAD', '--rounds', '1',
               '--out', str(out), '--', os.path.relpath(link, REPO_ROOT), '-c', probe, '{out}']
    result = run(command, timeout=120, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr
    for name in ('before-1', 'after-1'):
        assert json.loads((out / f'{name}.json').read_text()) == str(link)
