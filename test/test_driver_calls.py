"""bench/driver_calls.py on a GPU: every call measured, and the batched copy copies right."""
import json
import sys

from gpu_helpers import require_cuda_device
from process_helpers import repo_env, REPO_ROOT, run
import pytest

pytestmark = pytest.mark.gpu
require_cuda_device()


def test_driver_calls_reports_each_call_and_the_batched_copy(tmp_path):
    command = [sys.executable, 'bench/driver_calls.py', '--calls', '50', '--out', str(tmp_path)]
    result = run(command, timeout=120, cwd=REPO_ROOT,
                 env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = tmp_path.glob('driver_calls-*.json')
    report = json.loads(path.read_text())
    assert set(report['calls_us']) == {
        'event_record', 'event_record_untimed', 'stream_wait_for_event', 'event_query',
        'launch_kernel_1_block', 'launch_kernel_256_blocks', 'memcpy_htod_async_640x480_rgb8',
        'memcpy_dtoh_async_result'}
    assert all(value > 0 for value in report['calls_us'].values())
    assert report['host_us_16_uploads_separate'] > 0 and report['gpu_us_16_uploads_separate'] > 0
    assert report['batch_copy'] == (report['driver_version'] >= 13000)
    if report['batch_copy']:
        assert report['batched_copy_right'] is True
        assert report['batched_registered_copy_right'] is True
        assert report['gpu_us_16_uploads_batched'] > 0
        assert report['host_us_16_uploads_batched_registered'] > 0
        assert report['gpu_us_16_uploads_batched_registered'] > 0
