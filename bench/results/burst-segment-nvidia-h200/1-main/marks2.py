"""
The marks of ``staging-ahead-nvidia-h200/1-fusion-steps/marks.py`` and the copy batches' calls.

    python3 marks2.py OUT.json    (from a tree's root, with pycuda)

That script, with every ``CopyBatch.issue`` (the driver's ``cuMemcpyBatchAsync``: a launch's
uploads, or its results' downloads) timed on the host: per round the first three calls' copies
('copyN_count') and µs ('copyN_us'), the calls ('copy_calls') and their total µs
('copy_us_total'). Tidied after the run to reuse that script: its keys now end in '#' (kept as
they are, not taken as times since the round's start); ``marks2.json`` has them without.
"""
import functools
from pathlib import Path
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'staging-ahead-nvidia-h200'
                       / '1-fusion-steps'))

import marks  # noqa: E402
from s3dnn_ros.engine.cuda import driver  # noqa: E402

FIRST_CALLS = 3


def time_copy_batches() -> None:
    issue, found = driver.CopyBatch.issue, marks.MARKS

    @functools.wraps(issue)
    def timed(self, count, stream):
        begin = time.perf_counter_ns()
        try:
            return issue(self, count, stream)
        finally:
            spent_us = (time.perf_counter_ns() - begin) / 1e3
            calls = found.get('copy_calls#', 0)
            if calls < FIRST_CALLS:
                found[f'copy{calls}_count#'], found[f'copy{calls}_us#'] = count, spent_us
            found['copy_calls#'] = calls + 1
            found['copy_us_total#'] = found.get('copy_us_total#', 0) + spent_us
    driver.CopyBatch.issue = timed


if __name__ == '__main__':
    time_copy_batches()
    marks.main(sys.argv[1])
