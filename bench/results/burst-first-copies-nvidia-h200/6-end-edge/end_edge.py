"""
Where an S3DNN round's end edge goes: the last launch's end, the host seeing it, the last result.

    python3 end_edge.py   (from the repository root)

Table 1's round of 16 and of 64 frames (``Bench.s3dnn_round``) on engines with and without segment
graphs, 12 rounds each (the first two left out): per round, the time from the last launch's end
event (on the host's clock) to the dispatcher's first ``done`` that saw it, and from there to the
last result; medians printed.
"""
import statistics
import sys
import time

sys.path.insert(0, 'bench')

from round_timeline import RecordingBackend  # noqa: E402
from s3dnn_ros.engine.cuda import CudaEngine  # noqa: E402
from s3dnn_ros.model.alexnet import alexnet  # noqa: E402
from s3dnn_ros.model.weights import init_weights  # noqa: E402
from s3dnn_ros.tools.bench import Bench  # noqa: E402


class Detecting(RecordingBackend):
    """The recording backend, keeping when each launch was first seen done."""

    def __init__(self, engine):
        super().__init__(engine)
        self.seen = {}
        self.queries = 0

    def done(self, launch):
        self.queries += 1
        result = super().done(launch)
        if result and id(launch) not in self.seen:
            self.seen[id(launch)] = (launch, time.monotonic_ns())
        return result


def main():
    network = alexnet()
    weights = init_weights(network, seed=0)
    for graphs, frames in ((True, 16), (False, 16), (True, 16), (False, 16), (True, 64),
                           (False, 64)):
        engine = CudaEngine(network, weights, streams=4, segment_graphs=graphs)
        bench = Bench(engine, network, weights, repeats=20)
        images = bench.inputs(engine, 'pinned')
        rows = []
        for _ in range(12):
            backend = Detecting(engine)
            times = {}
            bench.s3dnn_round(engine, images, frames, backend, times)
            end, seen = max((launch.handle.interval()[1], seen)
                            for launch, seen in backend.seen.values())
            rows.append(((seen - end) / 1e3, (times['end'] - seen) / 1e3,
                         (times['end'] - end) / 1e3, backend.queries,
                         (times['end'] - times['begin']) / 1e3))
        med = [statistics.median(row[i] for row in rows[2:]) for i in range(5)]
        print(f'graphs {graphs}, {frames} frames: last end event -> host sees it {med[0]:.1f} us, '
              f'-> last result {med[1]:.1f} us (edge {med[2]:.1f} us), done() queries per round '
              f'{med[3]:.0f}, round {med[4]:.0f} us')
        engine.close()


if __name__ == '__main__':
    main()
