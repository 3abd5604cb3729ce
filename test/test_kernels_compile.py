"""Every kernels/*.cu compiles with nvcc for sm_75, sm_87 and sm_90 with no warning (warnings are errors,
spills and local memory too). Needs nvcc only, no GPU; skipped without nvcc unless S3DNN_REQUIRE_NVCC=1.

The compilations run in parallel (one per core) as soon as the first test asks, so the file takes about
as long as its slowest compilation times the number of compilations per core.
"""
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[1] / 'kernels'
SOURCES = sorted(path.name for path in KERNELS.glob('*.cu'))
ARCHS = ('sm_75', 'sm_87', 'sm_90')
FLAGS = ['-cubin', '-O3', '--Werror', 'all-warnings', '-Xptxas', '-Werror', '-Xptxas', '-warn-spills',
         '-Xptxas', '-warn-lmem-usage']


def test_kernel_sources_present():
    assert {'preprocess.cu', 'conv2d.cu', 'pool.cu', 'linear.cu', 'softmax.cu'} <= set(SOURCES)
    assert (KERNELS / 'common.cuh').is_file()


@pytest.fixture(scope='module')
def compilations(tmp_path_factory):
    nvcc = shutil.which('nvcc')
    if nvcc is None:
        if os.environ.get('S3DNN_REQUIRE_NVCC') == '1':
            pytest.fail('nvcc is not on PATH and S3DNN_REQUIRE_NVCC=1')
        pytest.skip('nvcc is not on PATH (set S3DNN_REQUIRE_NVCC=1 to make this a failure)')
    out = tmp_path_factory.mktemp('cubin')

    def build(job):
        source, arch = job
        command = [nvcc, *FLAGS, f'-arch={arch}', '-I', str(KERNELS), '-o', str(out / f'{source}.{arch}.cubin'),
                   str(KERNELS / source)]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    jobs = [(source, arch) for source in SOURCES for arch in ARCHS]
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    futures = {job: pool.submit(build, job) for job in jobs}
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('source', SOURCES)
def test_compiles_without_warnings(compilations, source, arch):
    result = compilations[(source, arch)].result()
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f'nvcc {source} for {arch} failed:\n{output}'
    assert 'warning' not in output.lower(), f'nvcc {source} for {arch} warned:\n{output}'

