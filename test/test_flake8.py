"""The package's Python code passes ament_flake8 with the ROS default settings."""
from pathlib import Path

import pytest

main_with_errors = pytest.importorskip('ament_flake8.main').main_with_errors

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON_PATHS = ['s3dnn_ros', 'test', 'bench', 'launch', 'setup.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=[str(REPO_ROOT / path) for path in PYTHON_PATHS])
    assert rc == 0, f'{len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
