"""The package's docstrings pass ament_pep257 (the ROS docstring conventions)."""
from pathlib import Path

import pytest

main = pytest.importorskip('ament_pep257.main').main

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON_PATHS = ['s3dnn_ros', 'test', 'bench', 'launch', 'setup.py']


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257(capsys):
    rc = main(argv=[str(REPO_ROOT / path) for path in PYTHON_PATHS])
    findings = capsys.readouterr().err
    assert rc == 0, f'docstring style errors:\n{findings}'
