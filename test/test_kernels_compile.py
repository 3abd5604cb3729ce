"""
Every kernels/*.cu compiles with nvcc for sm_75, sm_87 and sm_90 with no warning.

Warnings are errors, spills and local memory too. Needs nvcc only, no GPU; skipped without nvcc
unless S3DNN_REQUIRE_NVCC=1.

The compilations run in parallel, one per core, but every nvcc is started from the test's own
thread: starting processes from several threads at once made exec fail with EFAULT on a sandboxed
CI host.
"""
from collections import deque
import os
from pathlib import Path
import shutil
import subprocess

from process_helpers import popen
import pytest
KERNELS = Path(__file__).resolve().parents[1] / 'kernels'
SOURCES = sorted(path.name for path in KERNELS.glob('*.cu'))
ARCHS = ('sm_75', 'sm_87', 'sm_90')
FLAGS = ['-cubin', '-O3', '--Werror', 'all-warnings', '-Xptxas', '-Werror', '-Xptxas',
         '-warn-spills', '-Xptxas', '-warn-lmem-usage']


def test_kernel_sources_present():
    assert {'preprocess.cu', 'conv2d.cu', 'pool.cu', 'linear.cu', 'softmax.cu'} <= set(SOURCES)
    assert (KERNELS / 'common.cuh').is_file()


class Compilations:
    """
    nvcc runs, at most `width` at a time.

    Each is started from the calling thread and waited for in order.
    """

    def __init__(self, nvcc, jobs, out, width):
        self.nvcc, self.out, self.width = nvcc, out, width
        self.pending = deque(jobs)
        self.running = {}
        self.results = {}

    def result(self, job):
        """(returncode, output) of one compilation, starting more while it waits."""
        while job not in self.results:
            self._start_more()
            oldest = job if job in self.running else next(iter(self.running))
            process, log = self.running.pop(oldest)
            returncode = process.wait(timeout=300)
            self.results[oldest] = returncode, log.read_text()
        return self.results[job]

    def _start_more(self):
        while self.pending and len(self.running) < self.width:
            source, arch = job = self.pending.popleft()
            log = self.out / f'{source}.{arch}.log'
            command = [self.nvcc, *FLAGS, f'-arch={arch}', '-I', str(KERNELS),
                       '-o', str(self.out / f'{source}.{arch}.cubin'), str(KERNELS / source)]
            with log.open('w') as sink:
                self.running[job] = popen(command, stdout=sink, stderr=subprocess.STDOUT), log

    def close(self):
        for process, _ in self.running.values():
            process.kill()
            process.wait()


@pytest.fixture(scope='module')
def compilations(tmp_path_factory):
    nvcc = shutil.which('nvcc')
    if nvcc is None:
        if os.environ.get('S3DNN_REQUIRE_NVCC') == '1':
            pytest.fail('nvcc is not on PATH and S3DNN_REQUIRE_NVCC=1')
        pytest.skip('nvcc is not on PATH (set S3DNN_REQUIRE_NVCC=1 to make this a failure)')
    jobs = [(source, arch) for source in SOURCES for arch in ARCHS]
    runs = Compilations(nvcc, jobs, tmp_path_factory.mktemp('cubin'), width=os.cpu_count() or 2)
    yield runs
    runs.close()


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('source', SOURCES)
def test_compiles_without_warnings(compilations, source, arch):
    returncode, output = compilations.result((source, arch))
    output = output.strip()
    assert returncode == 0, f'nvcc {source} for {arch} failed:\n{output}'
    assert 'warning' not in output.lower(), f'nvcc {source} for {arch} warned:\n{output}'
