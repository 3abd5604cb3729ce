"""bench/message_cost.py: a frame message's cost to the receiving process, each way it is taken."""
import json
import sys

from process_helpers import repo_env, REPO_ROOT, run


def test_message_cost_reports_every_encoding_and_way_of_waiting(tmp_path):
    command = [sys.executable, 'bench/message_cost.py', '--messages', '500', '--rate', '20000',
               '--out', str(tmp_path)]
    result = run(command, timeout=120, cwd=REPO_ROOT,
                 env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = tmp_path.glob('message_cost-*.json')
    report = json.loads(path.read_text())
    assert report['messages'] == 500 and report['rate'] == 20000
    assert [(row['wait'], row['encoding']) for row in report['rows']] == [
        (wait, encoding) for wait in ('sleep', 'spin')
        for encoding in ('pickle', 'struct', 'pipe')]
    for row in report['rows']:
        # handling is part of the receiver's time, which also holds its waiting
        assert 0 < row['handling_us_per_message'] <= row['receiver_cpu_us_per_message'] * 2
