"""
The marks of ``staging-ahead-nvidia-h200/1-fusion-steps/marks.py`` and the copy batches' calls.

    python3 marks2.py OUT.json    (from a tree's root, with pycuda)

As that script, and every ``CopyBatch.issue`` (the driver's ``cuMemcpyBatchAsync``: a launch's
uploads, or its results' downloads) timed on the host: per round the first three calls' copies
('copyN_count') and µs ('copyN_us'), the calls ('copy_calls') and their total µs.

Rounds of 4, 16 and 64 frames (``Bench.s3dnn_round``, pinned images, 4 streams), 25 each, the
first 5 left out; per function the medians of its first entry ('>') and exit ('<') in µs from the
first submission and its calls ('#'), with the GPU's first start and last end (the launches'
events) and busy time. Each wrapper adds about 1 µs per call.
"""
import functools
import json
import statistics
import sys
import time

from s3dnn_ros.engine.cuda import CudaEngine, driver
from s3dnn_ros.engine.cuda import engine as cuda_engine
from s3dnn_ros.model.alexnet import alexnet
from s3dnn_ros.model.weights import init_weights
from s3dnn_ros.scheduler import dispatcher, policies
from s3dnn_ros.tools.bench import Bench

MARKS = {}
CALLS = []
WRAPPED = [(dispatcher.Dispatcher, 'arrive_all'), (dispatcher.Dispatcher, 'step'),
           (dispatcher.Dispatcher, 'pump'), (dispatcher.Dispatcher, '_issue'),
           (dispatcher.Dispatcher, 'poll'), (policies.S3dnnPolicy, 'dequeue'),
           (policies.S3dnnPolicy, 'run_ahead'), (policies.Policy, 'enqueue_all'),
           (policies.S3dnnPolicy, 'chain_needs'), (dispatcher.EngineBackend, 'launch'),
           (cuda_engine.CudaEngine, 'set_inputs'), (cuda_engine.CudaEngine, '_issue'),
           (cuda_engine.CudaEngine, '_upload'), (cuda_engine.CudaEngine, '_enqueue')]


def wrap(owner, name, label):
    function = getattr(owner, name)

    @functools.wraps(function)
    def marked(*args, **kwargs):
        MARKS.setdefault(label + '>', time.monotonic_ns())
        try:
            return function(*args, **kwargs)
        finally:
            MARKS.setdefault(label + '<', time.monotonic_ns())
            MARKS[label + '#'] = MARKS.get(label + '#', 0) + 1
    setattr(owner, name, marked)


def time_copy_batches():
    issue = driver.CopyBatch.issue

    @functools.wraps(issue)
    def timed(self, count, stream):
        begin = time.perf_counter_ns()
        try:
            return issue(self, count, stream)
        finally:
            CALLS.append((count, (time.perf_counter_ns() - begin) / 1e3))
    driver.CopyBatch.issue = timed


class Recording(dispatcher.EngineBackend):

    def launch(self, launch):
        super().launch(launch)
        self.handles = getattr(self, 'handles', [])
        self.handles.append(launch.handle)


def main(out: str) -> None:
    for owner, name in WRAPPED:
        wrap(owner, name, f'{owner.__name__}.{name}')
    time_copy_batches()
    network = alexnet()
    weights = init_weights(network, seed=0)
    engine = CudaEngine(network, weights, streams=4)
    bench = Bench(engine, network, weights, 10)
    images = bench.inputs(engine, 'pinned')
    report = {}
    for frames in (4, 16, 64):
        rows = []
        for number in range(25):
            MARKS.clear()
            CALLS.clear()
            backend, marks = Recording(engine), {}
            _, busy = bench.s3dnn_round(engine, images, frames, backend, marks)
            begin = marks['begin']
            row = {key: value if key.endswith('#') else (value - begin) / 1e3
                   for key, value in MARKS.items()}
            row['gpu_first_us'] = (min(h.interval()[0] for h in backend.handles) - begin) / 1e3
            row['gpu_last_us'] = (max(h.interval()[1] for h in backend.handles) - begin) / 1e3
            row['end_us'] = (marks['end'] - begin) / 1e3
            row['busy_us'] = busy * 1e3
            for index, (count, spent_us) in enumerate(CALLS[:3]):
                row[f'copy{index}_count'], row[f'copy{index}_us'] = count, spent_us
            row['copy_calls'] = len(CALLS)
            row['copy_us_total'] = sum(spent_us for _, spent_us in CALLS)
            if number >= 5:
                rows.append(row)
        medians = {key: round(statistics.median(row[key] for row in rows if key in row), 1)
                   for key in rows[0]}
        report[frames] = medians
        print(f'== {frames} frames')
        for key, value in sorted(medians.items(), key=lambda kv: (kv[0].endswith('#'), kv[1])):
            print(f'  {key:32s} {value}')
    with open(out, 'w', encoding='utf-8') as file:
        json.dump(report, file, indent=1)
    bench.release(engine)
    engine.close()


if __name__ == '__main__':
    main(sys.argv[1])
