import json, sys
for f in sys.argv[1:]:
    d = json.load(open(f))
    if 'rows' not in d:  # worker_profile
        print(f, d['cameras'], 'missed', d['missed'], 'p50', d['p50_ms'], 'p99', d['p99_ms'], 'reads', d['frames_per_read'],
              'us/frame', d['host_us_per_frame'], 'us/kernel', d['host_us_per_kernel'], 'hold', d.get('hold_us_per_frame'), 'dequeues', d.get('dequeues_per_frame'), 'costs', d['host_costs'])
        continue
    for r in d['rows']:
        if r['source'] != 'gpu':
            continue
        t = r['host_totals']
        per = lambda k, n: round(t[k] / max(1, t[n]) / 1000, 1)
        later = t['launches'] - t['first_launches']
        print(f, r['cameras'], r['policy'], 'miss', r['miss_ratio'], 'p99', r['p99_ms'], 'busy', r['gpu_busy'], 'batch', r['mean_batch'],
              'us/frame', r['host_us_per_frame'], 'us/kernel', r['host_us_per_kernel'], 'unmetered', r.get('unmetered_us_per_frame'), 'hold', r.get('hold_us_per_frame'),
              'arrive', per('arrive_ns', 'arrivals'), 'output', per('output_ns', 'outputs'),
              'decide-launch/group', round((t['decide_ns'] - t['launch_ns']) / max(1, t['groups']) / 1000, 1),
              'launch/kernel(later)', round((t['launch_ns'] - t['first_ns']) / max(1, later) / 1000, 1),
              'first/firstlaunch', per('first_ns', 'first_launches'), 'retire', per('retire_ns', 'retired'))
    print(f, 'knees', d.get('knees'))
