"""
The scheduler worker without ROS.

Frame slots in shared memory, a real worker process with the reference engine, refusals and ring
growth, start-up errors, and the in-process core's host-cost measurement.
"""
import os
from pathlib import Path
import signal
import threading
import time

import numpy as np
from process_helpers import on_interpreted_package
import pytest
from s3dnn_ros.engine import reference
from s3dnn_ros.engine.costs import estimate, HostCosts
from s3dnn_ros.model import alexnet, init_weights
from s3dnn_ros.worker.client import NO_SLOT, WorkerClient, WorkerError
from s3dnn_ros.worker.core import DONE, DONE_BATCH, DROPPED, expand_outputs, host_costs_from
from s3dnn_ros.worker.frame_pipe import (ENCODING_NAMES, FRAME, FrameReader, FrameWriter,
                                         PIPE_BYTES, RING)
from s3dnn_ros.worker.slots import PAGE, Ring, slot_bytes_for
from s3dnn_ros.worker.spec import CameraSpec, WorkerSpec

TEST_DIR = str(Path(__file__).parent)


class Outputs:
    """Collects a client's outputs (receiver thread) and waits for them."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, outputs):
        with self.lock:
            self.items.extend(outputs)

    def wait(self, count, timeout_s=60.0):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self.lock:
                if len(self.items) >= count:
                    return list(self.items)
            time.sleep(0.01)
        raise AssertionError(f'{len(self.items)} outputs after {timeout_s} s, expected {count}')


def spec(cameras=('a', 'b'), queue_depth=2, **extra):
    return WorkerSpec(cameras=tuple(CameraSpec(name, 10**10, queue_depth) for name in cameras),
                      engine='reference', **extra)


@pytest.fixture
def test_engines(monkeypatch):
    """Make this folder importable in worker processes (for ``engine_factory``)."""
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([TEST_DIR, os.environ.get('PYTHONPATH', '')]))


def test_ring_slots_are_page_sized_views_that_check_what_fits():
    ring = Ring.create(slot_bytes_for(100 * 3), 3, generation=0)
    try:
        assert ring.slot_bytes == PAGE and ring.array.nbytes == 3 * PAGE
        view = ring.image(2, 10, 10, 'rgb8')
        view[...] = 7
        assert ring.array[2 * PAGE:2 * PAGE + 300].tolist() == [7] * 300 \
            and ring.array[:2 * PAGE].max() == 0
        # the same slot and geometry: the same view (the engine knows it staged it); another
        # geometry: a new view of the same bytes
        assert ring.image(2, 10, 10, 'rgb8') is view
        smaller = ring.image(2, 5, 10, 'rgb8')
        assert smaller is not view and smaller.tolist() == view[:5].tolist()
        assert ring.image(2, 5, 10, 'rgb8') is smaller
        assert ring.image(2, 10, 10, 'rgb8') is not view
        # views of the bytes as the engine page-locked them, once given (use)
        copy = ring.array.copy()
        ring.use(copy)
        pinned_view = ring.image(2, 5, 10, 'rgb8')
        assert pinned_view is not smaller and pinned_view.base is copy \
            and ring.image(2, 5, 10, 'rgb8') is pinned_view
        del smaller, pinned_view, copy
        other = Ring.attach(*ring.describe())  # another mapping of the same segment sees the frame
        assert other.image(2, 10, 10, 'rgb8').tolist() == view.tolist()
        del view
        assert other.close()
        with pytest.raises(ValueError, match='does not fit a slot of 4096 bytes'):
            ring.image(0, 40, 40, 'rgb8')
        with pytest.raises(ValueError, match="slot 3 is not one of the ring's 3"):
            ring.image(3, 1, 1, 'mono8')
        with pytest.raises(ValueError, match="encoding 'yuv422' is not supported; allowed: rgb8"):
            ring.image(0, 1, 1, 'yuv422')
    finally:
        ring.unlink()
        assert ring.close()


def test_frames_cross_into_the_worker_and_back_with_their_sequence_numbers():
    outputs = Outputs()
    client = WorkerClient(spec(), outputs)
    rng = np.random.default_rng(1)
    images = {}
    try:
        assert client.info['engine'] == 'reference' and client.pid != os.getpid()
        for k in range(2):
            for camera, encoding in ((0, 'rgb8'), (1, 'bgr8')):
                image = rng.integers(0, 256, (48, 64, 3), np.uint8)
                seq, refused = client.submit(camera, image[:, :, :], encoding, time.monotonic_ns())
                assert refused is None
                images[(camera, seq)] = (image, encoding)
        got = outputs.wait(4)
    finally:
        client.close()
    network = alexnet()
    weights = init_weights(network, seed=0)
    assert sorted((o[1], o[2]) for o in got) == sorted(images)
    for kind, camera, seq, finish_ns, (scores, ids) in got:
        assert kind == DONE and finish_ns > 0
        expected = reference.forward(network, weights, [images[(camera, seq)]])[0]
        np.testing.assert_allclose(scores, expected[0], rtol=1e-5)
        assert ids == expected[1].tolist()  # the class ids as the result holds them


def test_an_unchanged_image_is_not_copied_again_into_a_slot_that_holds_it():
    """
    submit(..., unchanged=True) skips the copy only into a slot written with the current image.

    Frames go one at a time, so each reuses the slot the previous one freed. An image submitted
    normally is copied; the next, declared unchanged though its pixels differ, is not, so the
    worker sees the previous image (the promise is the caller's); a normal submit copies again.
    """
    outputs = Outputs()
    client = WorkerClient(spec(cameras=('a',), queue_depth=1), outputs)
    rng = np.random.default_rng(2)
    first, second, third = (rng.integers(0, 256, (48, 64, 3), np.uint8) for _ in range(3))
    seen = []
    try:
        for image, unchanged in ((first, False), (first, True), (second, True), (third, False)):
            client.submit(0, image, 'rgb8', time.monotonic_ns(), unchanged=unchanged)
            seen.append(outputs.wait(len(seen) + 1)[-1][4][0])
    finally:
        client.close()
    network = alexnet()
    weights = init_weights(network, seed=0)
    expected = [reference.forward(network, weights, [(image, 'rgb8')])[0][0]
                for image in (first, first, first, third)]
    for got, want in zip(seen, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_a_busy_worker_holds_every_slot_and_further_frames_are_refused(test_engines):
    """
    queue_depth 1 gives 3 slots.

    While the worker is stuck in a launch it reads no message and frees none, so the fourth frame
    of the camera is refused at once. The others are all resolved later.
    """
    outputs = Outputs()
    client = WorkerClient(spec(cameras=('a',), queue_depth=1,
                               engine_factory='worker_engines:slow'), outputs)
    image = np.zeros((48, 64, 3), np.uint8)
    try:
        results = [client.submit(0, image, 'rgb8', time.monotonic_ns()) for _ in range(3)]
        time.sleep(0.3)  # the worker is now inside the first frame's one-second launch
        results.append(client.submit(0, image, 'rgb8', time.monotonic_ns()))
        assert [refused for _, refused in results] == [None, None, None, NO_SLOT]
        got = outputs.wait(3)
        # the second was replaced by the third
        assert sorted(o[0] for o in got) == [DONE, DONE, DROPPED]
        assert [o[4] for o in got if o[0] == DROPPED] == ['queue']
        seq, refused = client.submit(0, image, 'rgb8', time.monotonic_ns())
        assert refused is None  # the slots came back
    finally:
        client.close()


def test_a_larger_image_gets_a_new_ring_and_the_old_one_is_removed():
    outputs = Outputs()
    client = WorkerClient(spec(cameras=('a',)), outputs)
    try:
        client.submit(0, np.zeros((48, 64, 3), np.uint8), 'rgb8', time.monotonic_ns())
        outputs.wait(1)
        (small,) = client.segments()
        client.submit(0, np.ones((480, 640, 3), np.uint8), 'rgb8', time.monotonic_ns())
        (large,) = client.segments()
        assert large != small and not os.path.exists(f'/dev/shm/{small}')
        got = outputs.wait(2)
        assert [o[0] for o in got] == [DONE, DONE]
    finally:
        client.close()
    assert not os.path.exists(f'/dev/shm/{large}')


def test_a_worker_that_cannot_start_says_which_parameter_is_wrong(tmp_path):
    with pytest.raises(WorkerError, match=r"parameter weights='.*missing.npz': .*does not exist"):
        WorkerClient(spec(weights=str(tmp_path / 'missing.npz')), Outputs())


def test_a_timed_worker_serves_frames_at_the_tables_pace_and_names_a_missing_table(tmp_path):
    """Engine 'timed': frames come back as class 0 with score 0; its table is the cost_table."""
    with pytest.raises(WorkerError, match=r"parameter engine='timed': .*give one \(cost_table\)"):
        WorkerClient(WorkerSpec(cameras=(CameraSpec('a', 10**9),), engine='timed'), Outputs())
    with pytest.raises(WorkerError,
                       match=r"parameter cost_table='.*missing.json': .*does not exist"):
        WorkerClient(WorkerSpec(cameras=(CameraSpec('a', 10**9),), engine='timed',
                                cost_table=str(tmp_path / 'missing.json')), Outputs())
    table = estimate(alexnet(), 't4')
    table.save(tmp_path / 'costs.json')
    outputs = Outputs()
    client = WorkerClient(WorkerSpec(cameras=(CameraSpec('a', 10**9), CameraSpec('b', 10**9)),
                                     engine='timed', cost_table=str(tmp_path / 'costs.json')),
                          outputs)
    try:
        assert client.info['engine'] == 'timed'
        assert client.info['device'] == f'timed ({table.gpu})'
        image = np.zeros((48, 64, 3), np.uint8)
        released = time.monotonic_ns()
        sent = [client.submit(camera, image, 'rgb8', released) for camera in (0, 1)]
        assert all(refused is None for _, refused in sent)
        got = outputs.wait(2)
    finally:
        client.close()
    assert sorted((o[1], o[2]) for o in got) == sorted(
        (camera, seq) for camera, (seq, _) in enumerate(sent))
    network = alexnet()
    k = network.kernel_layers[-1].k
    # no launch of the network takes less than its one-frame cost
    fastest = sum(table.cost_ns(i, 1) for i in range(len(network.kernel_layers)))
    for kind, _, _, finish_ns, (scores, ids) in got:
        assert kind == DONE and scores == [0.0] * k and ids == [0.0] * k
        assert finish_ns - released >= fastest


def test_the_worker_ignores_sigint_and_stops_when_its_client_closes():
    client = WorkerClient(spec(cameras=('a',)), Outputs())
    pid = client.pid
    os.kill(pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    time.sleep(0.3)
    os.kill(pid, 0)  # still alive
    assert client.restarts == 0
    client.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_host_costs_are_derived_from_the_measured_totals():
    totals = {'arrive_ns': 20_000, 'arrivals': 10, 'output_ns': 10_000, 'outputs': 10,
              'decide_ns': 600_000, 'groups': 20, 'retire_ns': 300_000, 'retired': 100,
              'launch_ns': 500_000, 'launches': 100, 'first_ns': 100_000, 'first_launches': 20,
              'first_frames': 40, 'kernel_ns': 0}
    costs = host_costs_from(totals)
    # 500 µs / 100 layers = 5 µs a layer; first-layer launches 100 µs = 20 x 5 µs + 40 frames
    # started x 0 µs
    assert costs == HostCosts(frame_us=3.0, decision_us=5.0, launch_us=5.0, upload_us=0.0,
                              completion_us=3.0)
    # first-layer launches costing 300 µs: 100 µs beyond their layers' 20 x 5 µs, 5 µs a frame;
    # the 500 µs less those 200 µs over 100 layers, 3 µs a layer: 300 + 200 = the 500 µs spent
    uploads = host_costs_from({**totals, 'first_ns': 300_000})
    assert (uploads.launch_us, uploads.upload_us) == (3.0, 5.0)
    # segments from layer 0 (90 of the 100 layers) and a few one-layer launches later on that
    # cost a call each: not 10 µs a layer (the later calls' 100 µs over their 10 layers), which
    # would charge 1000 µs for the 400 µs spent
    segments_first = host_costs_from({**totals, 'launch_ns': 400_000, 'first_ns': 300_000,
                                      'first_launches': 90})
    assert (segments_first.launch_us, segments_first.upload_us) == (4.0, 0.0)
    # a synchronous engine's kernels ran inside the rounds: not decision time either
    assert host_costs_from({**totals, 'kernel_ns': 60_000}).decision_us == 2.0
    assert host_costs_from({**totals, 'launches': 10}) is None  # too few launches to say
    # the backend counts the layers it issued: 100 of them in 25 retired launches, 4 a launch
    segments = host_costs_from({**totals, 'retired': 25})
    assert (segments.launch_layers, segments.completion_us) == (4.0, 12.0)


def test_frames_read_together_are_taken_in_and_metered_with_those_no_ring_holds():
    """
    WorkerCore.resolve then take_in, in one process on the reference engine.

    Three frames read at once: two in their cameras' slots arrive and finish with their
    sequence numbers; the third names a ring generation not open and is dropped as a slot drop.
    All three count as arrivals in the 'arrive' meter.
    """
    from s3dnn_ros.worker.core import build_worker, DROP_SLOT, LATENCY_HISTORY
    from s3dnn_ros.worker.slots import frame_bytes
    network = alexnet()
    engine = reference.ReferenceEngine(network, init_weights(network, seed=0))
    core = build_worker(spec(cameras=('a', 'b', 'c')), engine)
    # a worker lives as long as its node: each camera keeps a bounded latency history
    assert [p.stats.latencies_ns.maxlen for p in core.pipelines] == [LATENCY_HISTORY] * 3
    rings = [Ring.create(slot_bytes_for(frame_bytes(48, 64, 'rgb8')), 3, 1) for _ in range(2)]
    try:
        for camera, ring in enumerate(rings):
            core.open_ring(camera, *ring.describe())
        start, now = time.perf_counter_ns(), time.monotonic_ns()
        resolved = [core.resolve(camera, 1 if camera < 2 else 2, 0, 10 + camera, now, 48, 64,
                                 'rgb8') for camera in range(3)]
        assert resolved[2] is None
        core.take_in([arrival for arrival in resolved if arrival is not None], start, 3)
        del resolved  # views of the slots: the rings close only without them
        assert core.meters['arrive'].count == 3 and core.meters['arrive'].ns > 0
        outputs = expand_outputs(core.take_outputs()[0])
        deadline = time.monotonic() + 60
        while len(outputs) < 3 and time.monotonic() < deadline:
            core.step()
            outputs += expand_outputs(core.take_outputs()[0])
        results = {camera: engine.result(camera).tolist() for camera in (0, 1)}
    finally:
        core.close()
        for ring in rings:
            ring.close()
            ring.unlink()
    assert sorted((o[1], o[2], o[0]) for o in outputs) == [(0, 10, DONE), (1, 11, DONE),
                                                           (2, 12, DROPPED)]
    assert [o[4] for o in outputs if o[0] == DROPPED] == [DROP_SLOT]
    # the scores and class ids the engine computed, as lists of floats
    done = [o for o in outputs if o[0] == DONE]
    assert all(o[4] == results[o[1]] for o in done) and len(done[0][4][0]) == network.top_k


def test_outputs_go_over_as_batches_and_come_back_one_tuple_per_frame_in_order():
    results = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3) / 4
    outputs = [(DROPPED, 4, 7, 100, 'queue'),
               (DONE_BATCH, 200, [1, 3], [8, 9], results.tobytes()),
               (DROPPED, 1, 10, 300, 'deadline')]
    assert expand_outputs(outputs) == [
        (DROPPED, 4, 7, 100, 'queue'),
        (DONE, 1, 8, 200, results[0].tolist()), (DONE, 3, 9, 200, results[1].tolist()),
        (DROPPED, 1, 10, 300, 'deadline')]


@on_interpreted_package
def test_a_round_whose_dequeue_launches_nothing_is_metered_apart_from_host_work(monkeypatch):
    """
    A DEQUEUE that answers nothing (the policy holding first layers back) is metered as 'hold'.

    It counts in ``host_totals`` (``dequeues``, ``holds``, ``hold_ns``), not in
    ``host_work_ns``; the dispatcher, settled, does not ask again.
    """
    from s3dnn_ros.scheduler.job import Group
    from s3dnn_ros.worker.core import build_worker
    from s3dnn_ros.worker.slots import frame_bytes
    network = alexnet()
    core = build_worker(spec(cameras=('a',)),
                        reference.ReferenceEngine(network, init_weights(network, seed=0)))
    ring = Ring.create(slot_bytes_for(frame_bytes(48, 64, 'rgb8')), 3, 0)
    try:
        core.open_ring(0, *ring.describe())
        core.take_in([core.resolve(0, 0, 0, 1, time.monotonic_ns(), 48, 64, 'rgb8')],
                     time.perf_counter_ns(), 1)
        monkeypatch.setattr(core.policy, 'dequeue', lambda now_ns, inflight: Group())
        work = core.snapshot()['host_work_ns']
        assert core.step() is False
        totals = core.host_totals()
        assert (totals['dequeues'], totals['holds'], totals['groups']) == (1, 1, 0)
        assert totals['hold_ns'] > 0 and core.snapshot()['host_work_ns'] == work
        core.step()
        assert core.host_totals()['dequeues'] == 1
    finally:
        core.close()
        ring.close()
        ring.unlink()


def test_frames_of_an_old_ring_still_unread_when_a_new_ring_comes_are_served(test_engines):
    """
    A ring opens at its mark on the frame pipe, not when its message is read from the socket.

    While the worker is stuck in the first frame's launch, a second small frame (old ring) and a
    large one (new ring) are submitted: the worker then finds the new ring's message on the socket
    and the second frame's notice still unread on the pipe. Every frame is served, none dropped
    for a missing ring.
    """
    outputs = Outputs()
    client = WorkerClient(spec(cameras=('a',), queue_depth=2,
                               engine_factory='worker_engines:slow'), outputs)
    small, large = np.zeros((48, 64, 3), np.uint8), np.ones((96, 128, 3), np.uint8)
    try:
        first, _ = client.submit(0, small, 'rgb8', time.monotonic_ns())
        time.sleep(0.3)  # the worker is now inside the first frame's one-second launch
        second, _ = client.submit(0, small, 'rgb8', time.monotonic_ns())
        third, _ = client.submit(0, large, 'rgb8', time.monotonic_ns())
        assert len(client.segments()) == 2  # the old ring stays while it holds frames
        got = outputs.wait(3)
    finally:
        client.close()
    assert sorted((o[2], o[0]) for o in got) == [(first, DONE), (second, DONE), (third, DONE)]


def test_frame_pipe_records_cross_whole_and_in_order():
    """Frame notices and a ring mark come back as written, in order, over many reads; then EOF."""
    read_fd, write_fd = os.pipe()
    reader, writer = FrameReader(read_fd), FrameWriter(write_fd)
    if writer.capacity is not None:  # Linux: grown to 1 MiB unless the system caps pipes lower
        limit = int(Path('/proc/sys/fs/pipe-max-size').read_text())
        assert writer.capacity == min(PIPE_BYTES, max(limit, 65536))
    records = []
    try:
        assert reader.read() == []  # nothing waiting: no blocking
        for seq in range(3000):
            if seq == 1500:
                writer.ring(7, 2)
            writer.frame(seq % 5, 1, seq % 3, seq, 10**12 + seq, 480, 640, 'bgr8')
            if seq % 500 == 499:  # a pipe of the default size holds about 1500 records
                records += reader.read()
    finally:
        writer.close()
    code = ENCODING_NAMES.index('bgr8')
    frames = [(FRAME, seq % 5, 1, seq % 3, code, 480, 640, seq, 10**12 + seq)
              for seq in range(3000)]
    assert records == frames[:1500] + [(RING, 7, 2, 0, 0, 0, 0, 0, 0)] + frames[1500:]
    with pytest.raises(EOFError):
        reader.read()
    reader.close()
