"""
s3dnn-evaluate: replay one ROS 2 bag into the perception node under several policies and loads.

It writes a report: every frame's fate (frames.csv), per-camera and total results (summary.json),
plots and report.md.

Each run (a policy at a playback rate) starts a fresh perception node (its own scheduler worker)
and plays the same records in the same order, as s3dnn-replay does. ``--rates R`` divides the
recorded spacing by R; ``--cameras-scale K`` replays every recorded camera K times under distinct
names and topics (copy j of ``/front/image_raw`` on ``/s<j>/front/image_raw``, camera
``s<j>_front``), copy j shifted by j/K of the camera's frame period, so a 4-camera recording loads
the node like 4K cameras with real images.

A frame is one image the player sent. It ends as ``done`` (a detection came out; ``missed`` when it
came after the deadline), ``dropped`` (with the node's reason), ``rejected`` (the image could not
be used), ``lost`` (sent, never received by the node: the transport lost it) or ``unresolved``
(still in the node when the run ended). The miss ratio of a camera or run is (missed + dropped +
rejected + lost + unresolved) / sent: the share of sent frames that gave no detection in time.

Example: ``s3dnn-make-bag four_cams && s3dnn-evaluate four_cams --rates 1,2 --report build/report``
"""
from __future__ import annotations

import argparse
from collections import Counter
import csv
import datetime
import heapq
import json
from pathlib import Path
import shlex
import sys
import time

import numpy as np
import rclpy

from .cli import bounded_float, bounded_int, choices_list, Parser, require_rosbags
from .replay import add_node_options, Bag, BagError, camera_name, replay, start_node
from ..ros.bag_recorder import BagRecorder, RecorderError
from ..ros.config import ConfigError
from ..ros.spin import init_ros
from ..scheduler.policies import POLICIES
from ..worker.client import WorkerError

FRAME_COLUMNS = ['policy', 'rate', 'camera', 'stamp_ns', 'received_s', 'finished_s', 'outcome',
                 'reason', 'latency_ms', 'deadline_ms', 'missed']
#: outcomes of a frame, in the order the summary counts them
OUTCOMES = ('done', 'dropped', 'rejected', 'lost', 'unresolved')
DEFAULT_POLICIES = ['s3dnn', 'streams', 'sequential']
RATE = bounded_float(0.001, 1000.0)
#: progress line refresh period
PROGRESS_S = 0.5


def rate_list(text: str) -> list[float]:
    """Comma-separated distinct playback rates, each 0.001 to 1000."""
    rates = [RATE(part) for part in text.split(',')]
    if len(set(rates)) != len(rates):
        raise argparse.ArgumentTypeError(f'{text!r} repeats a rate; allowed: distinct numbers '
                                         '0.001 to 1000')
    return rates


def scaled_topics(bag: Bag, scale: int) -> dict[str, str]:
    """
    Return camera topic -> the bag's camera topic it replays.

    Copy 0 is the recorded topic, copy j its ``/s<j>`` namespaced twin.
    """
    return {(topic if j == 0 else f'/s{j}{topic}'): topic
            for topic in sorted(bag.images) for j in range(scale)}


def camera_names(topics: dict[str, str]) -> dict[str, str]:
    """Camera topic -> camera name, as ``bag_cameras`` names them."""
    names: dict[str, str] = {}
    for topic in topics:
        names[topic] = camera_name(topic, set(names.values()))
    return names


class ScaledRecords:
    """
    The bag's records for every camera copy, in log-time order.

    Copy j of a record is published on its twin topic j/K of the camera's frame period later.
    Remembers the (camera, stamp) of each record handed out, per publish topic, so frames the node
    never received can be told by their stamps.
    """

    def __init__(self, bag: Bag, topics: dict[str, str], names: dict[str, str], scale: int):
        self.bag = bag
        self.scale = scale
        recorded = sorted(set(topics.values()))
        self.base = recorded
        # recorded topic -> (publish topic, camera, shift)
        self.copies: dict[str, list[tuple[str, str, int]]] = {}
        self.sources: dict[str, type] = {}
        for topic, original in topics.items():
            source_topic, msg_type = bag.source(original)
            publish = source_topic if topic == original else topic + source_topic[len(original):]
            fps = bag.fps(original)
            j = len(self.copies.get(source_topic, []))
            shift = round(j * 1e9 / fps / scale) if fps > 0 else 0
            self.copies.setdefault(source_topic, []).append((publish, names[topic], shift))
            self.sources[publish] = msg_type
        self.handed: dict[str, list[tuple[str, int]]] = {publish: [] for publish in self.sources}

    def __iter__(self):
        pending: list[tuple[int, int, str, bytes]] = []
        order = 0
        for source_topic, log_ns, data, stamp in self.bag.stamped_records(self.base):
            for publish, camera, shift in self.copies[source_topic]:
                heapq.heappush(pending, (log_ns + shift, order, publish, data, camera, stamp))
                order += 1
            while pending and pending[0][0] <= log_ns:
                yield self._hand(heapq.heappop(pending))
        while pending:
            yield self._hand(heapq.heappop(pending))

    def _hand(self, entry) -> tuple[str, int, bytes]:
        when, _, publish, data, camera, stamp = entry
        self.handed[publish].append((camera, stamp))
        return publish, when, data


class Progress:
    """
    One line on stderr, rewritten in place.

    It shows time played, frames sent and received, misses, ETA.
    """

    def __init__(self, enabled: bool, label: str, duration_s: float, total: int, node,
                 outcomes: list):
        self.enabled = enabled
        self.label = label
        self.duration_s = duration_s
        self.total = total
        self.node = node
        self.outcomes = outcomes
        self.started = time.monotonic()
        self.next_s = 0.0

    def __call__(self, player) -> None:
        now = time.monotonic()
        if not self.enabled or now < self.next_s:
            return
        self.next_s = now + PROGRESS_S
        played = now - self.started
        sent = sum(player.sent.values())
        received = sum(camera.received for camera in self.node.cameras.values())
        misses = sum(1 for outcome in self.outcomes if outcome.outcome != 'done' or outcome.missed)
        eta = max(0.0, self.duration_s - played)
        print(f'\r{self.label}: played {played:5.1f}/{self.duration_s:.1f} s, '
              f'sent {sent}/{self.total}, received {received}, misses {misses}, ETA {eta:.0f} s ',
              end='', file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)


def run_once(args, bag: Bag, policy: str, rate: float, stop, progress: bool) -> dict:
    """One policy at one rate: a fresh node, the whole bag played, every frame's fate."""
    topics = scaled_topics(bag, args.cameras_scale)
    names = camera_names(topics)
    args.policy = policy
    node, _ = start_node(args, bag, None if args.config else topics, stop)
    outcomes: list = []
    node.frame_sink = outcomes.append
    if args.config:  # the configured cameras, on their recorded topics
        topics = {camera.topic: camera.topic for camera in node.config.cameras}
        names = {camera.topic: camera.name for camera in node.config.cameras}
    records = ScaledRecords(bag, topics, names, args.cameras_scale if not args.config else 1)
    total = sum(bag.images[original][0].msgcount for original in topics.values())
    meter = Progress(progress, f'{policy} x{rate:g}', bag.reader.duration / 1e9 / rate, total,
                     node, outcomes)
    snapshots: dict[int, list[dict]] = {}  # statistics of each GPU's worker
    recorder = None
    if args.record:
        Path(args.record).mkdir(parents=True, exist_ok=True)
        try:
            recorder = BagRecorder(str(Path(args.record) / f'{policy}_x{rate:g}'), {
                **{state.publisher.topic_name: state.publisher.msg_type
                   for state in node.cameras.values()},
                node.diagnostics.topic_name: node.diagnostics.msg_type})
        except RecorderError as error:
            node.destroy_node()
            raise ConfigError(f'argument --record: {error}') from error

    def recorded() -> bool:
        """Tell whether every detection published so far reached the recorder."""
        completed = sum(state.completed for state in node.cameras.values())
        detections = sum(count for topic, count in recorder.written.items()
                         if topic != node.diagnostics.topic_name)
        return detections >= completed

    def tick(player) -> None:
        for device, worker in node.workers.items():
            stats, seen = worker.stats, snapshots.setdefault(device, [])
            if stats and (not seen or seen[-1] is not stats):
                seen.append(stats)
        meter(player)

    try:
        player, wall_s = replay(args, bag, node, stop, records.sources, iter(records), rate, tick,
                                beside=recorder, settled=recorded if recorder else None)
        meter.close()
        begin_ns = time.monotonic_ns() - round(wall_s * 1e9)
        frames = frame_rows(policy, rate, node, outcomes, records, player, begin_ns)
        counts = {row['camera']: row for row in node.summary()}
        engine, device = node.engine_name, node.device_name
    finally:
        if recorder is not None:
            recorder.close()
        node.destroy_node()
    fractions = [(seen[-1]['busy_ns'] - seen[0]['busy_ns'])
                 / (seen[-1]['uptime_ns'] - seen[0]['uptime_ns'])
                 for seen in snapshots.values()
                 if len(seen) >= 2 and seen[-1]['uptime_ns'] > seen[0]['uptime_ns']]
    busy = sum(fractions) / len(fractions) if fractions else None  # mean over the GPUs used
    offered = sum(bag.fps(original) for original in topics.values()) * rate
    result = summarize_run(policy, rate, frames, [names[topic] for topic in topics], busy, wall_s,
                           offered)
    result['recording'] = None if recorder is None else {
        'bag': str(Path(args.record) / f'{policy}_x{rate:g}'), 'messages': dict(recorder.written)}
    result['error'] = (str(player.error) if player.error
                       else 'stopped by a signal before the run ended'
                       if stop.is_set() else check_counts(result, counts))
    return {'summary': result, 'frames': frames, 'engine': engine, 'device': device}


def frame_rows(policy: str, rate: float, node, outcomes: list, records: ScaledRecords, player,
               begin_ns: int):
    """
    Return one row per frame the player sent.

    The rows are the node's outcomes, frames still in the node, frames lost.
    """
    def seconds(ns):
        return '' if ns is None else round((ns - begin_ns) / 1e9, 6)

    rows = []
    received: dict[str, Counter] = {}
    for outcome in outcomes:
        received.setdefault(outcome.camera, Counter())[outcome.stamp_ns] += 1
        rows.append({'policy': policy, 'rate': rate, 'camera': outcome.camera,
                     'stamp_ns': outcome.stamp_ns, 'received_s': seconds(outcome.received_ns),
                     'finished_s': seconds(outcome.finished_ns),
                     'outcome': outcome.outcome, 'reason': outcome.reason,
                     'latency_ms': ('' if outcome.latency_ms is None
                                    else round(outcome.latency_ms, 4)),
                     'deadline_ms': outcome.deadline_ms, 'missed': int(outcome.missed)})
    for name, camera in node.cameras.items():
        for header, release_ns in camera.in_flight.values():
            stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
            received.setdefault(name, Counter())[stamp] += 1
            rows.append({'policy': policy, 'rate': rate, 'camera': name, 'stamp_ns': stamp,
                         'received_s': seconds(release_ns), 'finished_s': '',
                         'outcome': 'unresolved',
                         'reason': 'still in the node when the run ended', 'latency_ms': '',
                         'deadline_ms': camera.config.deadline_ms, 'missed': 0})
    for publish, handed in records.handed.items():
        # handed out but not published: not sent
        for camera, stamp in handed[:player.sent[publish]]:
            seen = received.setdefault(camera, Counter())
            if seen[stamp]:
                seen[stamp] -= 1
                continue
            rows.append({'policy': policy, 'rate': rate, 'camera': camera, 'stamp_ns': stamp,
                         'received_s': '', 'finished_s': '', 'outcome': 'lost',
                         'reason': 'sent, never received by the node', 'latency_ms': '',
                         'deadline_ms': node.cameras[camera].config.deadline_ms, 'missed': 0})
    rows.sort(key=lambda row: (row['camera'], row['stamp_ns']))
    return rows


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 3) if values else 0.0


def totals(rows: list[dict]) -> dict:
    """Return the s3dnn-replay row counts (and lost, unresolved, miss_ratio) over ``rows``."""
    counts = Counter(row['outcome'] for row in rows)
    latencies = [row['latency_ms'] for row in rows if row['outcome'] == 'done']
    missed = sum(row['missed'] for row in rows)
    sent = len(rows)
    failed = missed + sum(counts[outcome] for outcome in OUTCOMES[1:])
    return {'sent': sent, 'received': sent - counts['lost'], 'completed': counts['done'],
            'missed': missed, 'dropped': counts['dropped'], 'rejected': counts['rejected'],
            'lost': counts['lost'], 'unresolved': counts['unresolved'],
            'miss_ratio': round(failed / sent, 6) if sent else 0.0,
            'p50_ms': percentile(latencies, 50), 'p99_ms': percentile(latencies, 99)}


def summarize_run(policy: str, rate: float, frames: list[dict], cameras: list[str], busy,
                  wall_s: float, offered_fps: float) -> dict:
    by_camera: dict[str, list[dict]] = {name: [] for name in cameras}
    for row in frames:
        by_camera[row['camera']].append(row)
    return {'policy': policy, 'rate': rate, 'offered_fps': round(offered_fps, 3),
            'wall_s': round(wall_s, 3),
            'gpu_busy': None if busy is None else round(busy, 4),
            'cameras': [{'camera': name, **totals(rows)} for name, rows in by_camera.items()],
            'total': totals(frames)}


def check_counts(result: dict, node_counts: dict) -> str | None:
    """
    Return what differs between the frame rows and the node's own counters (None if they agree).

    A difference means frames missing from the CSV, so the run reports it as its error.
    """
    for row in result['cameras']:
        node = node_counts[row['camera']]
        for key in ('received', 'completed', 'missed', 'dropped', 'rejected'):
            if row[key] != node[key]:
                return (f'camera {row["camera"]}: {row[key]} frames {key} in the frame rows, '
                        f'{node[key]} by the node')
    return None


# ------------------------------------------------------------------------------------------ output
def write_frames(path: Path, runs: list[dict]) -> None:
    with open(path, 'w', newline='') as stream:
        writer = csv.DictWriter(stream, FRAME_COLUMNS)
        writer.writeheader()
        for run in runs:
            writer.writerows(run['frames'])


def plot_data(summary: dict, runs: list[dict]) -> dict:
    """
    Return what each plot shows.

    From the summary (and, for the latency plots, the frame rows).
    """
    top = max(run['summary']['rate'] for run in runs)
    data = {'miss_ratio': {}, 'gpu_busy': {}, 'camera_p99_ms': {}, 'latency_cdf_ms': {},
            'latency_timeline': {}, 'highest_rate': top, 'deadline_ms': summary['deadline_ms']}
    for run in runs:
        result = run['summary']
        policy, rate = result['policy'], result['rate']
        data['miss_ratio'].setdefault(policy, []).append([rate, result['total']['miss_ratio']])
        data['gpu_busy'].setdefault(policy, []).append([rate, result['gpu_busy']])
        done = [row for row in run['frames'] if row['outcome'] == 'done']
        data['latency_cdf_ms'][f'{policy} x{rate:g}'] = sorted(row['latency_ms'] for row in done)
        if rate == top:
            data['camera_p99_ms'][policy] = {row['camera']: row['p99_ms']
                                             for row in result['cameras']}
            first = min((row['stamp_ns'] for row in run['frames']), default=0)
            timeline = data['latency_timeline'][policy] = {}
            for row in done:
                timeline.setdefault(row['camera'], []).append(
                    [round((row['stamp_ns'] - first) / 1e9, 6), row['latency_ms']])
    return data


def draw_plots(data: dict, out: Path) -> list[str]:
    """Draw the five PNG files; return their names."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    deadline = data['deadline_ms']
    files = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(name)

    fig, ax = plt.subplots(figsize=(6, 4))
    for policy, points in data['miss_ratio'].items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker='o', label=policy)
    ax.set(xlabel='playback rate (x recorded)', ylabel='miss ratio', title='Misses against load',
           ylim=(-0.02, 1.02))
    ax.legend()
    save(fig, 'miss_ratio.png')

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, latencies in data['latency_cdf_ms'].items():
        if latencies:
            ax.plot(latencies, np.arange(1, len(latencies) + 1) / len(latencies), label=label)
    ax.axvline(deadline, color='red', linestyle='--', label=f'deadline {deadline:g} ms')
    ax.set(xlabel='latency (ms)', ylabel='share of completed frames', title='Latency CDF')
    ax.legend(fontsize='small')
    save(fig, 'latency_cdf.png')

    fig, ax = plt.subplots(figsize=(
        max(6, 0.25 * max((len(v) for v in data['camera_p99_ms'].values()), default=1)
            * max(1, len(data['camera_p99_ms']))), 4))
    policies = list(data['camera_p99_ms'])
    for k, policy in enumerate(policies):
        values = data['camera_p99_ms'][policy]
        positions = np.arange(len(values)) + k / (len(policies) + 1)
        ax.bar(positions, list(values.values()), width=1 / (len(policies) + 1), label=policy)
    if policies:
        cameras = list(data['camera_p99_ms'][policies[0]])
        ax.set_xticks(np.arange(len(cameras)) + (len(policies) - 1) / (2 * (len(policies) + 1)))
        ax.set_xticklabels(cameras, rotation=90, fontsize='x-small')
    ax.axhline(deadline, color='red', linestyle='--', label='deadline')
    ax.set(ylabel='p99 latency (ms)', title=f'Per-camera p99 at x{data["highest_rate"]:g}')
    ax.legend(fontsize='small')
    save(fig, 'camera_p99.png')

    timelines = data['latency_timeline']
    fig, axes = plt.subplots(len(timelines) or 1, 1, figsize=(8, 2.6 * max(1, len(timelines))),
                             squeeze=False)
    for ax, (policy, cameras) in zip(axes[:, 0], timelines.items()):
        for camera, points in cameras.items():
            ax.plot([p[0] for p in points], [p[1] for p in points], linewidth=0.6)
        ax.axhline(deadline, color='red', linestyle='--')
        ax.set(title=f'{policy} x{data["highest_rate"]:g}: latency per camera over the recording',
               xlabel='recording time (s)', ylabel='latency (ms)')
    save(fig, 'latency_timeline.png')

    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(1, len(data['gpu_busy']))
    for k, (policy, points) in enumerate(data['gpu_busy'].items()):
        ax.bar(np.arange(len(points)) + k * width, [p[1] or 0.0 for p in points], width=width,
               label=policy)
        ax.set_xticks(np.arange(len(points)) + 0.4 - width / 2)
        ax.set_xticklabels([f'x{p[0]:g}' for p in points])
    ax.set(ylabel='GPU busy fraction', title='GPU busy per policy and rate', ylim=(0, 1.05))
    ax.legend()
    save(fig, 'gpu_busy.png')
    return files


def report_markdown(summary: dict, plots: list[str]) -> str:
    lines = [f'# Policy evaluation: {summary["bag"]}', '',
             f'- card: {summary["device"]}', f'- engine: {summary["engine"]}',
             f'- date: {summary["date"]}',
             f'- command: `{summary["command"]}`',
             f'- cameras: {summary["cameras"]} ({summary["recorded_cameras"]} recorded '
             f'x {summary["cameras_scale"]}), '
             f'deadline {summary["deadline_ms"]:g} ms', '']
    if summary['skipped_topics']:
        lines += [f'Not replayed (not camera images): {", ".join(summary["skipped_topics"])}', '']
    errors = [f'{run["policy"]} x{run["rate"]:g}: {run["error"]}'
              for run in summary['runs'] if run['error']]
    if errors:
        lines += ['**The replay stopped early:** ' + '; '.join(errors), '']
    lines += ['## Totals', '',
              '| policy | rate | offered fps | sent | completed | missed | dropped | rejected '
              '| lost | unresolved | miss ratio | p50 ms | p99 ms | GPU busy |',
              '|' + ' --- |' * 14]
    for run in summary['runs']:
        t = run['total']
        busy = '' if run['gpu_busy'] is None else f'{run["gpu_busy"]:.0%}'
        lines.append(f'| {run["policy"]} | {run["rate"]:g} | {run["offered_fps"]:.0f} '
                     f'| {t["sent"]} | {t["completed"]} '
                     f'| {t["missed"]} | {t["dropped"]} | {t["rejected"]} | {t["lost"]} '
                     f'| {t["unresolved"]} '
                     f'| {t["miss_ratio"]:.2%} | {t["p50_ms"]:.2f} | {t["p99_ms"]:.2f} | {busy} |')
    best = {}
    for run in summary['runs']:
        best.setdefault(run['rate'], []).append((run['total']['miss_ratio'],
                                                 run['total']['p99_ms'], run['policy']))
    lines += ['', 'Fewest misses per load: ' + '; '.join(
        f'x{rate:g}: {min(entries)[2]} ({min(entries)[0]:.2%})'
        for rate, entries in best.items()), '']
    recordings = [f'{run["recording"]["bag"]} ({sum(run["recording"]["messages"].values())} '
                  'messages)' for run in summary['runs'] if run.get('recording')]
    if recordings:
        lines += ['Detections and /diagnostics recorded in: ' + ', '.join(recordings), '']
    lines += ['## Plots', ''] + [f'![{name}]({name})' for name in plots] + ['']
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog='s3dnn-evaluate', description='Replay a ROS 2 bag under several policies '
                    'and loads and write a report (frames.csv, summary.json, plots, report.md).')
    parser.add_argument('bag', help='ROS 2 bag directory (mcap or sqlite3)')
    parser.add_argument('--report', required=True,
                        help='directory to write the report into (created)')
    parser.add_argument('--policies', type=choices_list(list(POLICIES)), default=DEFAULT_POLICIES,
                        help=f'comma-separated policies (default {",".join(DEFAULT_POLICIES)})')
    parser.add_argument('--rates', type=rate_list, default=[1.0],
                        help='comma-separated playback speed factors, 0.001 to 1000 (default 1)')
    parser.add_argument('--cameras-scale', type=bounded_int(1, 64), default=1,
                        help='replay each recorded camera K times under distinct names, 1 to 64 '
                        '(default 1)')
    add_node_options(parser)
    parser.add_argument('--record', metavar='OUT',
                        help="write each run's detections and /diagnostics into a bag "
                        'OUT/<policy>_x<rate> (OUT must not exist)')
    parser.add_argument('--json', action='store_true',
                        help='print summary.json instead of the totals table')
    args = parser.parse_args(argv)
    if args.record and Path(args.record).exists():
        parser.error(f'argument --record: {args.record!r} exists; allowed: a directory that does '
                     'not exist yet')
    args.wait_listeners = None
    args.rate = 1.0
    if args.config and args.cameras_scale > 1:
        parser.error(f'argument --cameras-scale: {args.cameras_scale} needs the cameras taken '
                     'from the bag; allowed with --config: 1')
    require_rosbags(parser)
    try:
        bag = Bag(args.bag)
    except BagError as error:
        print(f's3dnn-evaluate: error: {error}', file=sys.stderr)
        return 2
    out = Path(args.report)
    progress = sys.stderr.isatty() and not args.json
    runs = []
    stop = init_ros(None)
    try:
        for policy in args.policies:
            for rate in args.rates:
                if stop.is_set():
                    break
                runs.append(run_once(args, bag, policy, rate, stop, progress))
    except (ConfigError, WorkerError, BagError) as error:
        print(f's3dnn-evaluate: error: {error}', file=sys.stderr)
        return 2
    finally:
        rclpy.try_shutdown()
        bag.close()
    if not runs:
        print('s3dnn-evaluate: stopped before the first run ended; no report written',
              file=sys.stderr)
        return 130
    out.mkdir(parents=True, exist_ok=True)
    summary = {'bag': str(args.bag), 'device': runs[0]['device'], 'engine': runs[0]['engine'],
               'date': datetime.date.today().isoformat(),
               'command': 's3dnn-evaluate ' + ' '.join(
                   shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
               'cameras_scale': args.cameras_scale, 'recorded_cameras': len(bag.images),
               'cameras': len(runs[0]['summary']['cameras']), 'deadline_ms': args.deadline_ms,
               'skipped_topics': bag.other_topics, 'runs': [run['summary'] for run in runs]}
    write_frames(out / 'frames.csv', runs)
    (out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    data = plot_data(summary, runs)
    (out / 'plots.json').write_text(json.dumps(data) + '\n')
    plots = draw_plots(data, out)
    (out / 'report.md').write_text(report_markdown(summary, plots))
    if args.json:
        print(json.dumps(summary))
    else:
        print(report_markdown(summary, []).split('## Plots')[0].rstrip())
        print(f'\nreport: {out / "report.md"}')
    if stop.is_set():
        print(f's3dnn-evaluate: stopped by a signal; the report covers the {len(runs)} run(s) '
              'played', file=sys.stderr)
        return 130
    errors = [run['summary']['error'] for run in runs if run['summary']['error']]
    if errors:
        print(f's3dnn-evaluate: error: {errors[0]}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
