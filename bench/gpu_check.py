"""
Check the CUDA engine on a GPU in one run; prints compact tables, writes details as JSON.

Timings against torch and the roofline floor are in ``s3dnn-bench`` (s3dnn_ros/tools/bench.py).

    python3 bench/gpu_check.py [--out DIR] [--quick]

Sections (each runs even when an earlier one fails, and reports its error):
  layers     every kernel layer at batch 1, 4, 16 against the numpy reference (relative error)
  torch      whole AlexNet against torchvision's with the same random weights, batch 1 and 16
  fusion     a fused launch of 16 (and 5) different frames against one frame at a time
             (bit-identical?)
  tiles      every conv2d tile on every conv layer at batch 1..16, and the tile the engine picks
  overlap    one layer for 8 pipelines: 8 launches on one stream, on 8 streams, and one fused
             launch (span from the first start to the last end, host issue gaps included)
  calibrate  the engine's own calibration (cost table saved as JSON)
  sass       instruction mix of the conv and linear kernels (when cuobjdump is on PATH)
Details go to DIR/gpu_check.json (DIR: --out, else $OUT, else bench/out).
"""
from __future__ import annotations

import argparse
from collections import Counter
import datetime
import json
from pathlib import Path
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import out_dir  # noqa: E402
from s3dnn_ros.engine import reference  # noqa: E402
from s3dnn_ros.engine.cuda import CONV_TILES, CudaEngine  # noqa: E402
from s3dnn_ros.model import alexnet  # noqa: E402
from s3dnn_ros.model.weights import load_torch_state_dict  # noqa: E402

BATCHES = (1, 4, 16)


def rel_error(out, ref) -> float:
    return float(np.linalg.norm(np.asarray(out, np.float64) - ref) / np.linalg.norm(ref))


def median(values) -> float:
    return float(statistics.median(values))


class Check:
    """Shared state: torch, the model, the engine, 16 open pipelines holding valid activations."""

    def __init__(self, quick: bool):
        import torch
        import torchvision
        self.torch = torch
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        self.quick = quick
        self.rng = np.random.default_rng()
        self.network = alexnet()
        torch.manual_seed(int(self.rng.integers(2**31)))
        model = torchvision.models.alexnet(weights=None).eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / 'alexnet.pth'
            torch.save(model.state_dict(), path)
            self.weights = load_torch_state_dict(path, self.network)
        self.model = model.cuda()
        begin = time.perf_counter()
        self.engine = CudaEngine(self.network, self.weights)
        self.engine_init_s = time.perf_counter() - begin
        self.layers = self.engine.layers
        self.pids = list(range(16))
        self.images = [(self.rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), 'rgb8')
                       for _ in self.pids]
        for pid, (image, encoding) in zip(self.pids, self.images):
            self.engine.open_pipeline(pid)
            self.engine.set_input(pid, image, encoding)
        self.run_all(self.pids)

    def run_all(self, pids, stream=0):
        for index in range(len(self.layers)):
            completion = self.engine.launch(index, pids, stream)
        completion.wait()

    def params(self, layer):
        return reference.layer_params(self.network, self.weights, layer)

    def ours(self, indices, batch, warmup=5, repeats=30) -> float:
        return median(self.engine.time_launches(list(indices), self.pids[:batch], warmup, repeats))

    # ---- sections
    def layers_vs_reference(self):
        rows = []
        for index, layer in enumerate(self.layers):
            for batch in BATCHES:
                pids = self.pids[:batch]
                if index == 0:
                    shapes = [(480, 640, 3, 'rgb8'), (100, 150, 4, 'bgra8'),
                              (37, 1001, 1, 'mono8'), (1080, 1920, 3, 'bgr8')] * 4
                    images = [(self.rng.integers(0, 256, (h, w, c), dtype=np.uint8), enc)
                              for h, w, c, enc in shapes[:batch]]
                    for pid, (image, encoding) in zip(pids, images):
                        self.engine.set_input(pid, image, encoding)
                    expected = reference.preprocess_batch(images)
                else:
                    x = self.rng.standard_normal((batch, *self.layers[index - 1].out_shape)) \
                        .astype(np.float32)
                    if layer.kind == 'softmax':
                        x *= 4
                    for pid, frame in zip(pids, x):
                        self.engine.set_layer_output(pid, index - 1, frame)
                    expected = reference.run_layer(layer, x, self.params(layer))
                self.engine.launch(index, pids, 0).wait()
                row = {'layer': layer.name, 'batch': batch,
                       'kernel': self.engine.kernel_name(index, batch)}
                if layer.kind == 'softmax':
                    out = np.stack([self.engine.result(pid).copy() for pid in pids])
                    row['rel_error'] = rel_error(out[:, 0], expected[:, 0])
                    row['ids_equal'] = bool(np.array_equal(out[:, 1], expected[:, 1]))
                else:
                    out = np.stack([self.engine.layer_output(pid, index) for pid in pids])
                    row['rel_error'] = rel_error(out, expected.reshape(out.shape))
                row['ok'] = row['rel_error'] <= 1e-4 and row.get('ids_equal', True)
                rows.append(row)
        # restore valid activations for the timings
        for pid, (image, encoding) in zip(self.pids, self.images):
            self.engine.set_input(pid, image, encoding)
        self.run_all(self.pids)
        return rows

    def versus_torch(self):
        torch = self.torch
        rows = []
        logits_index = len(self.layers) - 2
        for batch in (1, 16):
            images = [(self.rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), 'rgb8')
                      for _ in range(batch)]
            x = torch.from_numpy(reference.preprocess_batch(images)).cuda()
            with torch.no_grad():
                expected = self.model(x).double().cpu().numpy()
            pids = self.pids[:batch]
            for pid, (image, encoding) in zip(pids, images):
                self.engine.set_input(pid, image, encoding)
            self.run_all(pids)
            logits = np.stack([self.engine.layer_output(pid, logits_index) for pid in pids])
            top = np.stack([self.engine.result(pid)[1].copy() for pid in pids])
            order = np.argsort(-expected, axis=1, kind='stable')
            expected_top5 = order[:, :5]
            error = rel_error(logits, expected)
            # classes whose torch logits differ by less than 1e-5 of the largest are tied below
            # float32 rounding
            picked = np.take_along_axis(expected, top.astype(np.int64), axis=1)
            best = np.take_along_axis(expected, expected_top5, axis=1)
            scale = np.abs(expected).max(axis=1, keepdims=True)
            same_up_to_ties = bool((np.abs(picked - best) <= 1e-5 * scale).all())
            gaps = -np.diff(np.take_along_axis(expected, order[:, :6], axis=1), axis=1) / scale
            rows.append({'batch': batch, 'rel_logit_error': error,
                         'top5_frames_identical': int((top == expected_top5).all(axis=1).sum()),
                         'top5_equal_up_to_ties': same_up_to_ties,
                         'min_top6_gap_rel': float(gaps.min()),
                         'ok': error <= 1e-3 and same_up_to_ties})
        for pid, (image, encoding) in zip(self.pids, self.images):
            self.engine.set_input(pid, image, encoding)
        self.run_all(self.pids)
        return rows

    def fusion(self):
        rows = []
        logits_index = len(self.layers) - 2
        sizes = [(480, 640, 3, 'rgb8'), (100, 150, 4, 'bgra8'), (37, 1001, 1, 'mono8'),
                 (720, 1280, 3, 'bgr8')]
        for k in (5, 16):
            images = [(self.rng.integers(0, 256, sizes[i % 4][:3], dtype=np.uint8),
                       sizes[i % 4][3]) for i in range(k)]
            pids = self.pids[:k]
            for pid, (image, encoding) in zip(pids, images):
                self.engine.set_input(pid, image, encoding)
            self.run_all(pids)
            fused = [(self.engine.layer_output(pid, logits_index), self.engine.result(pid).copy())
                     for pid in pids]
            identical, worst = True, 0.0
            for stream, pid in enumerate(pids):
                self.run_all([pid], stream)
                logits, result = (self.engine.layer_output(pid, logits_index),
                                  self.engine.result(pid).copy())
                identical &= bool(np.array_equal(logits, fused[stream][0])
                                  and np.array_equal(result, fused[stream][1]))
                worst = max(worst, rel_error(logits, fused[stream][0]))
            rows.append({'frames': k, 'bit_identical': identical, 'max_rel_diff': worst,
                         'ok': worst <= 1e-6})
        for pid, (image, encoding) in zip(self.pids, self.images):
            self.engine.set_input(pid, image, encoding)
        self.run_all(self.pids)
        return rows

    def tiles(self):
        rows = []
        batches = (1, 2, 4, 8, 16) if not self.quick else (1, 16)
        for index, layer in enumerate(self.layers):
            if layer.kind != 'conv':
                continue
            for batch in batches:
                picked = self.engine.kernel_name(index, batch)
                row = {'layer': layer.name, 'batch': batch, 'picked': picked}
                for tile in CONV_TILES:
                    self.engine.conv_tile = tile
                    row[f'{tile[0]}x{tile[1]}'] = self.ours([index], batch, 3, 15)
                self.engine.conv_tile = None
                rows.append(row)
        return rows

    def overlap(self):
        rows = []
        pids = self.pids[:8]
        for name in ('conv2', 'conv4', 'fc6'):
            index = [layer.name for layer in self.layers].index(name)
            spans = {}
            for mode in ('one stream', '8 streams', 'fused'):
                samples = []
                for _ in range(10):
                    if mode == 'fused':
                        completions = [self.engine.launch(index, pids, 0)]
                    else:
                        completions = [self.engine.launch(index, [pid],
                                                          0 if mode == 'one stream' else stream)
                                       for stream, pid in enumerate(pids)]
                    for completion in completions:
                        completion.wait()
                    intervals = [completion.interval() for completion in completions]
                    samples.append((max(end for _, end in intervals)
                                    - min(start for start, _ in intervals)) / 1000)
                spans[mode] = median(samples)
            rows.append({'layer': name, 'tb_ratio_b1': self.engine.tb_ratio(index, 1), **spans})
        return rows

    def calibrate(self, folder: Path):
        begin = time.perf_counter()
        table = self.engine.calibrate()
        seconds = time.perf_counter() - begin
        name = re.sub(r'[^A-Za-z0-9]+', '-', self.engine.device_name).strip('-').lower()
        table.save(folder / f'costs-{name}.json')
        return {'seconds': seconds, 'frame_cost_us_batch1': table.frame_cost_ns / 1000,
                'file': f'costs-{name}.json'}


def sass_summary() -> dict:
    if not shutil.which('cuobjdump') or not shutil.which('nvcc'):
        return {'skipped': 'cuobjdump or nvcc not on PATH'}
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source in ('conv2d.cu', 'linear.cu'):
            cubin = Path(tmp) / f'{source}.cubin'
            subprocess.run(['nvcc', '-cubin', '-O3', '-arch=sm_90', '-I', str(REPO / 'kernels'),
                            '-o', str(cubin), str(REPO / 'kernels' / source)], check=True,
                           capture_output=True)
            sass = subprocess.run(['cuobjdump', '-sass', str(cubin)], check=True,
                                  capture_output=True, text=True).stdout
            for chunk in sass.split('Function : ')[1:]:
                name = chunk.split()[0]
                opcode = r'/\*[0-9a-f]{4}\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_.]+)'
                ops = Counter(m.group(1) for m in re.finditer(opcode, chunk))
                keep = ('FFMA', 'LDS.128', 'LDS', 'LDG.E.128.CONSTANT', 'LDG.E.CONSTANT',
                        'LDG.E.EF.128', 'LDG.E.128',
                        'LDL', 'STL', 'LDC', 'BAR.SYNC', 'STS.128', 'STS')
                summary[name] = {op: ops[op] for op in keep if ops.get(op)}
                summary[name]['total'] = sum(ops.values())
    return summary


def print_tables(report: dict) -> None:
    print('\n==== gpu_check', report['device'], report['date'], f"torch {report['torch_version']}")
    for name in ('layers', 'torch', 'fusion'):
        rows = report.get(name)
        if isinstance(rows, dict):
            print(f'{name}: ERROR {rows["error"].splitlines()[-1]}')
            continue
        bad = [row for row in rows if not row['ok']]
        print(f'{name}: {len(rows) - len(bad)}/{len(rows)} ok')
        for row in (rows if name != 'layers' else bad):
            print('   ', {k: (f'{v:.2e}' if isinstance(v, float) else v) for k, v in row.items()})
        if name == 'layers':
            worst = max(rows, key=lambda row: row['rel_error'])
            print(f"    worst layer error {worst['rel_error']:.2e} "
                  f"({worst['layer']} batch {worst['batch']})")
    tiles = report.get('tiles')
    if isinstance(tiles, list):
        names = [f'{t[0]}x{t[1]}' for t in CONV_TILES]
        print('conv tiles (µs):', 'layer batch |', ' '.join(f'{n:>8}' for n in names), '| picked')
        for row in tiles:
            best = min(names, key=lambda n: row[n])
            print(f"  {row['layer']:>6} {row['batch']:>3} |",
                  ' '.join(f'{row[n]:8.1f}' for n in names),
                  f"| {row['picked'][7:]}"
                  f"{'' if row['picked'].endswith(best) else ' (best ' + best + ')'}")
    elif tiles:
        print('tiles: ERROR', tiles['error'].splitlines()[-1])
    overlap = report.get('overlap')
    if isinstance(overlap, list):
        print('overlap (µs, 8 pipelines at batch 1): layer tbRatio(b1) '
              '| one stream | 8 streams | fused')
        for row in overlap:
            print(f"  {row['layer']:>6} {row['tb_ratio_b1']:.3f} | {row['one stream']:9.1f} | "
                  f"{row['8 streams']:9.1f} | {row['fused']:9.1f}")
    elif overlap:
        print('overlap: ERROR', overlap['error'].splitlines()[-1])
    for name in ('calibrate', 'sass'):
        if name in report:
            print(f'{name}:', json.dumps(report[name])[:1500])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--out', type=Path, default=None)
    parser.add_argument('--quick', action='store_true', help='fewer tile sizes')
    args = parser.parse_args(argv)
    folder = out_dir(args.out)
    check = Check(args.quick)
    import torch
    report = {'device': check.engine.device_name, 'date': datetime.date.today().isoformat(),
              'torch_version': torch.__version__, 'engine_init_s': check.engine_init_s}
    sections = [('layers', check.layers_vs_reference), ('torch', check.versus_torch),
                ('fusion', check.fusion), ('tiles', check.tiles), ('overlap', check.overlap),
                ('calibrate', lambda: check.calibrate(folder)), ('sass', sass_summary)]
    for name, section in sections:
        begin = time.perf_counter()
        try:
            report[name] = section()
        except Exception:
            report[name] = {'error': traceback.format_exc()}
            print(f'section {name} failed:\n{report[name]["error"]}', flush=True)
        print(f'section {name}: {time.perf_counter() - begin:.1f} s', flush=True)
        (folder / 'gpu_check.json').write_text(json.dumps(report, indent=1))
    check.engine.close()
    print_tables(report)
    failed = [name for name in ('layers', 'torch', 'fusion')
              if not isinstance(report.get(name), list)
              or not all(row['ok'] for row in report[name])]
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
