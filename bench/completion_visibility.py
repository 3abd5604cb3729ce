"""
How soon the host sees a launch end, by the way it asks.

    python3 bench/completion_visibility.py [--trials 60] [--delay-us 200] [--out DIR]

On one stream of the CUDA engine: an event with timing, the engine's delay kernel (a GPU-side wait
of ``--delay-us``), an event with timing and one without (``DISABLE_TIMING``). The host then learns
that the delay ended by one of: polling the timing event (``query``, as the dispatcher's poll does
through ``CudaCompletion.done``), polling the event without timing, polling the stream
(``is_done``), or blocking on the timing event (``synchronize``, as the streams baseline of Table 1
waits). The methods take turns, trial after trial. Per method: the median and 90th percentile of
the wall time from the launch call to the host knowing; the GPU work is the same for all, so the
differences are differences in how late each sees the end (the dispatcher polls the timing
event; were another way seen sooner, every launch's completion could be). A diagnosis of the
engine's own polling, it takes the engine's stream and delay kernel from its insides. Prints them
and writes DIR/completion_visibility-<card>.json (DIR: --out, else $OUT, else bench/out).
"""
from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import sys
import time

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import record_header, write_record  # noqa: E402
from s3dnn_ros.engine.cuda import CudaEngine  # noqa: E402
from s3dnn_ros.model.alexnet import alexnet  # noqa: E402
from s3dnn_ros.model.weights import init_weights  # noqa: E402
from s3dnn_ros.tools.bench import file_name  # noqa: E402
from s3dnn_ros.tools.cli import positive_float, positive_int  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--trials', type=positive_int, default=60)
    parser.add_argument('--delay-us', type=positive_float, default=200.0)
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    network = alexnet()
    engine = CudaEngine(network, init_weights(network, seed=0), streams=4)
    drv = engine._drv
    stream = engine._streams[0]
    delay_ns = round(args.delay_us * 1000)

    def issue():
        timed_start, timed_end = drv.Event(), drv.Event()
        untimed = drv.Event(drv.event_flags.DISABLE_TIMING)
        began = time.perf_counter_ns()
        timed_start.record(stream)
        engine._delay(stream, delay_ns)
        timed_end.record(stream)
        untimed.record(stream)
        return began, timed_end, untimed

    methods = {
        'query timing event': lambda end, untimed: _spin(end.query),
        'query event without timing': lambda end, untimed: _spin(untimed.query),
        'query stream': lambda end, untimed: _spin(stream.is_done),
        'synchronize timing event': lambda end, untimed: end.synchronize(),
    }
    names = list(methods)
    samples = {name: [] for name in names}
    engine._activate()
    for trial in range(args.trials + 2):
        shift = trial % len(names)
        for name in names[shift:] + names[:shift]:
            drv.Context.synchronize()
            began, end, untimed = issue()
            methods[name](end, untimed)
            seen = time.perf_counter_ns()
            if trial >= 2:
                samples[name].append((seen - began) / 1000)
    rows = []
    for name, values in samples.items():
        values.sort()
        rows.append({'method': name, 'median_us': round(statistics.median(values), 1),
                     'p90_us': round(values[int(0.9 * (len(values) - 1))], 1),
                     'min_us': round(values[0], 1)})
        print(f'{name:28s} median {rows[-1]["median_us"]:7.1f} µs, p90 {rows[-1]["p90_us"]:7.1f}, '
              f'min {rows[-1]["min_us"]:7.1f}  (launch call to the host knowing; '
              f'{args.delay_us:.0f} µs of GPU delay)')
    card = engine.device_name
    engine.close()
    report = {**record_header('completion_visibility', card=card), 'delay_us': args.delay_us,
              'trials': args.trials, 'rows': rows}
    write_record(report, file_name(card, 'completion_visibility'), args.out)
    return 0


def _spin(ready) -> None:
    while not ready():
        pass


if __name__ == '__main__':
    sys.exit(main())
