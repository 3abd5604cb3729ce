"""One line per GPU row of capacity records, per worker_profile record: the host's split."""
import json
import sys


def per(totals: dict, ns_key: str, count_key: str) -> float:
    """Return totals[ns_key] / totals[count_key] in µs."""
    return round(totals[ns_key] / max(1, totals[count_key]) / 1000, 1)


def main(paths: list[str]) -> None:
    for path in paths:
        with open(path) as file:
            record = json.load(file)
        if 'rows' not in record:  # a worker_profile record
            print(path, record['cameras'], 'missed', record['missed'],
                  'p50', record['p50_ms'], 'p99', record['p99_ms'],
                  'reads', record['frames_per_read'],
                  'us/frame', record['host_us_per_frame'],
                  'us/kernel', record['host_us_per_kernel'],
                  'hold', record.get('hold_us_per_frame'),
                  'dequeues', record.get('dequeues_per_frame'),
                  'costs', record['host_costs'])
            continue
        for row in record['rows']:
            if row['source'] != 'gpu':
                continue
            t = row['host_totals']
            later = t['launches'] - t['first_launches']
            print(path, row['cameras'], row['policy'], 'miss', row['miss_ratio'],
                  'p99', row['p99_ms'], 'busy', row['gpu_busy'], 'batch', row['mean_batch'],
                  'us/frame', row['host_us_per_frame'], 'us/kernel', row['host_us_per_kernel'],
                  'unmetered', row.get('unmetered_us_per_frame'),
                  'hold', row.get('hold_us_per_frame'),
                  'arrive', per(t, 'arrive_ns', 'arrivals'),
                  'output', per(t, 'output_ns', 'outputs'),
                  'decide-launch/group',
                  round((t['decide_ns'] - t['launch_ns']) / max(1, t['groups']) / 1000, 1),
                  'launch/kernel(later)',
                  round((t['launch_ns'] - t['first_ns']) / max(1, later) / 1000, 1),
                  'first/firstlaunch', per(t, 'first_ns', 'first_launches'),
                  'retire', per(t, 'retire_ns', 'retired'))
        print(path, 'knees', record.get('knees'))


if __name__ == '__main__':
    main(sys.argv[1:])
