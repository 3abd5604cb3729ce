"""
Simulate the measured points of a capacity record again, with this version's simulator and policy.

    python3 bench/resimulate.py RECORD [--without-copies] [--cameras N,N,...] [--out DIR]

RECORD: a record written by ``s3dnn-bench --sections capacity``. Each of its measured rows is
simulated with the record's own cost table, each policy's host costs and the record's setting
(frame rate, deadline, seconds per point, queue depth, batch limit, firm deadlines, GPUs and
workers), beside the measured row, with both knees: how well the simulator predicts a run that is
already on record. ``--without-copies`` drops the table's image copies, as in a table measured
before they were (the simulator then keeps them in layer 0's kernel). ``--cameras`` simulates
these counts too, for every policy of the record (a finer sweep than the measured one: the
simulated knee is then the largest of all simulated counts below which nothing missed). Prints the
table and writes DIR/resimulate-<card>.json (DIR: --out, else $OUT, else bench/out).
"""
from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
import json
import os
from pathlib import Path
import sys

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import record_header, write_record  # noqa: E402
from s3dnn_ros.tools.bench import file_name  # noqa: E402
from s3dnn_ros.tools.capacity import (CapacitySetting, format_capacity, knee,  # noqa: E402
                                      measured_source, simulate_point)
from s3dnn_ros.tools.cli import positive_ints  # noqa: E402

#: the record's keys that make the setting the simulator needs
SETTING_KEYS = ('fps', 'deadline_ms', 'width', 'height', 'seconds', 'queue_depth', 'max_batch',
                'firm', 'gpus', 'workers_per_gpu')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('record', type=Path)
    parser.add_argument('--without-copies', action='store_true')
    parser.add_argument('--cameras', type=positive_ints, default=[],
                        help='camera counts to simulate besides the measured ones')
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    try:
        record = json.loads(args.record.read_text())
        measured_kind = measured_source(record)
        measured = [row for row in record['rows'] if row['source'] == measured_kind]
        costs = dict(record['cost_table'])
        setting = CapacitySetting(counts=tuple(sorted({row['cameras'] for row in measured})),
                                  policies=tuple(record['host_costs']),
                                  **{key: record[key] for key in SETTING_KEYS})
        hosts = record['host_costs']
    except (OSError, ValueError, KeyError, TypeError) as error:
        parser.error(f'argument record: {args.record}: not a capacity record ({error!r})')
    if args.without_copies:
        costs.pop('copies', None)
    points = [(row['cameras'], row['policy']) for row in measured]
    points += [(count, policy) for policy in setting.policies
               for count in sorted(set(args.cameras)) if (count, policy) not in points]
    jobs = [(count, policy, setting, costs, hosts[policy]) for count, policy in points]
    with ProcessPoolExecutor(max(1, min(len(jobs), (os.cpu_count() or 2) - 1))) as pool:
        simulated = list(pool.map(simulate_point, jobs))
    rows = measured + simulated
    knees = {policy: {source: knee([row for row in rows
                                    if row['policy'] == policy and row['source'] == source])
                      for source in (measured_kind, 'sim')} for policy in setting.policies}
    section = {key: record[key] for key in ('width', 'height', 'fps', 'deadline_ms', 'seconds')}
    section.update(knees=knees, rows=rows, measured=measured_kind)
    print(format_capacity(section))
    report = {**record_header('resimulate', card=record['card']), 'record': str(args.record),
              'record_date': record['date'], 'record_command': record['command'],
              'without_copies': args.without_copies, 'cameras': args.cameras, 'knees': knees,
              'rows': simulated}
    write_record(report, file_name(report['card'], 'resimulate'), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
