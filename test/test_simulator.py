"""The discrete-event GPU model and whole-policy simulations."""
from process_helpers import on_interpreted_package
import pytest
from s3dnn_ros.engine.costs import CostTable, estimate, HostCosts
from s3dnn_ros.scheduler.job import Launch
from s3dnn_ros.scheduler.simulator import Camera, simulate, simulate_gpus, SimulatedGpu
from scheduling_helpers import NETWORK


def run_until_idle(backend):
    """Advance the backend's GPU model event by event; returns {launch: finish time}."""
    gpu, finished = backend.gpu, {}
    while (t := gpu.next_event_ns()) is not None:
        for launch in gpu.advance(t):
            finished[launch] = t
    return finished


def kernel(stream, cost_us, tb):
    return Launch(0, [], stream, round(cost_us * 1000), tb)


def test_kernels_that_fit_together_overlap_at_solo_speed():
    gpu = SimulatedGpu(HostCosts(launch_us=0))
    a, b = kernel(0, 100, 0.5), kernel(1, 100, 0.5)
    gpu.launch(a)
    gpu.launch(b)
    assert run_until_idle(gpu) == {a: 100_000, b: 100_000}
    assert gpu.busy_ns() == 100_000


def test_kernels_beyond_the_gpu_share_it_proportionally():
    gpu = SimulatedGpu(HostCosts(launch_us=0))
    a, b = kernel(0, 100, 1.0), kernel(1, 100, 1.0)
    gpu.launch(a)
    gpu.launch(b)
    assert run_until_idle(gpu) == {a: 200_000, b: 200_000}
    gpu = SimulatedGpu(HostCosts(launch_us=0))
    big, small = kernel(0, 100, 3.0), kernel(1, 20, 0.25)  # demand counts at most 1 per kernel
    gpu.launch(big)
    gpu.launch(small)
    finished = run_until_idle(gpu)
    assert finished[small] == 25_000  # 20 µs of work at 1/1.25 speed
    assert finished[big] == 105_000   # 25 µs at 0.8 speed (20 µs of work) then 80 µs alone


def test_a_stream_runs_its_kernels_in_order():
    gpu = SimulatedGpu(HostCosts(launch_us=0))
    first, second = kernel(0, 50, 0.1), kernel(0, 30, 0.1)
    gpu.launch(first)
    gpu.launch(second)
    assert run_until_idle(gpu) == {first: 50_000, second: 80_000}


def test_the_host_pays_for_every_launch():
    gpu = SimulatedGpu(HostCosts(launch_us=10))
    a, b = kernel(0, 5, 0.1), kernel(1, 5, 0.1)
    gpu.launch(a)
    gpu.launch(b)
    assert run_until_idle(gpu) == {a: 15_000, b: 25_000}
    assert gpu.busy_ns() == 10_000  # the GPU idles while the host issues


def test_the_host_pays_a_launch_for_every_layer_of_a_segment():
    gpu = SimulatedGpu(HostCosts(launch_us=10, decision_us=0))
    # layers 3-6: 40 µs of GPU work
    segment = Launch(3, [], 0, 40_000, 0.5, kernels=((10_000, 0.5),) * 4)
    gpu.launch(segment)
    assert gpu.now_ns() == 4 * 10_000
    assert run_until_idle(gpu) == {segment: 80_000}


def test_a_segment_runs_its_layers_as_kernels_one_after_another():
    """
    Layers of 30 µs at tbRatio 0.5 and 2.0 beside a 60 µs kernel at 0.5 on another stream.

    The first layer shares nothing (0.5 + 0.5), the second the GPU (2.0 counts as 1: rate 1/1.5).
    The segment is done only with its last layer.
    """
    gpu = SimulatedGpu(HostCosts(launch_us=0))
    segment = Launch(0, [], 0, 60_000, 2.0, kernels=((30_000, 0.5), (30_000, 2.0)))
    other = kernel(1, 60, 0.5)
    gpu.launch(segment)
    gpu.launch(other)
    assert gpu.gpu.advance_to(30_000) == [] and not gpu.done(segment)
    # then 30 µs of work left on each at 1/1.5 speed: both end 45 µs later
    assert run_until_idle(gpu) == {other: 75_000, segment: 75_000}


def copies_costs(copy_us: float) -> CostTable:
    """Return a table of 100 µs and tbRatio 1 a frame a layer, ``copy_us`` a frame of copies."""
    entries = {layer.name: {b: (100.0 * b, 1.0 * b) for b in (1, 2, 4)}
               for layer in NETWORK.kernel_layers}
    return CostTable(NETWORK, entries, 'test gpu', 'test',
                     copies={b: copy_us * b for b in (1, 2, 4)})


def test_a_first_layer_launchs_copies_take_the_copy_engine_not_the_sms():
    """
    Layer 0 (100 µs, 40 of them copies) beside a 100 µs kernel of layer 3, both tbRatio 1.

    The other kernel runs alone at solo speed while the copies run, then they share the GPU: both
    end at 40 + 2 x 60 µs. Without the table (the copies inside the kernel) both end at 200 µs.
    """
    for costs, end in ((copies_costs(40.0), 160_000), (None, 200_000)):
        gpu = SimulatedGpu(HostCosts(launch_us=0), costs=costs)
        first, other = Launch(0, [None], 0, 100_000, 1.0), Launch(3, [None], 1, 100_000, 1.0)
        gpu.launch(first)
        gpu.launch(other)
        assert run_until_idle(gpu) == {first: end, other: end}
        assert gpu.busy_ns() == end


def test_the_copy_engine_runs_copies_one_at_a_time_in_issue_order():
    """
    Two first-layer launches at tbRatio 0.5 on two streams: 40 µs of copies, 60 µs of kernel each.

    The second one's copies wait for the first one's (0-40, 40-80 µs); the kernels, fitting
    together, run at solo speed (40-100, 80-140 µs).
    """
    gpu = SimulatedGpu(HostCosts(launch_us=0), costs=copies_costs(40.0))
    a, b = Launch(0, [None], 0, 100_000, 0.5), Launch(0, [None], 1, 100_000, 0.5)
    gpu.launch(a)
    gpu.launch(b)
    assert run_until_idle(gpu) == {a: 100_000, b: 140_000}


def test_simulate_gives_the_tables_copies_to_the_copy_engine():
    """
    Layer 0 1 ms a frame, 0.9 ms of it copies, the other layers 10 µs: 36 cameras at 30 FPS.

    With the copies inside layer 0's kernel the GPU has 1.17 s of work a second and misses most
    frames; on the copy engine 0.97 s of copies and 0.25 s of kernels a second, side by side.
    """
    entries = {layer.name: {1: (1000.0 if index == 0 else 10.0, 1.0)}
               for index, layer in enumerate(NETWORK.kernel_layers)}
    cameras = [Camera(f'cam{i}', 30.0, 50.0) for i in range(36)]
    inside, apart = (simulate(cameras, 'streams',
                              CostTable(NETWORK, entries, 'test gpu', 'test', copies=copies),
                              2.0, host=HostCosts())['miss_ratio']
                     for copies in (None, {1: 900.0}))
    assert apart < 0.01 < 0.5 < inside


CAMERAS = [Camera(f'cam{i}', 30.0, 50.0) for i in range(6)]


def test_same_seed_same_result_and_seed_matters():
    costs = estimate(NETWORK, 't4')
    first = simulate(CAMERAS, 's3dnn', costs, seconds=0.5, seed=5)
    assert simulate(CAMERAS, 's3dnn', costs, seconds=0.5, seed=5) == first
    assert simulate(CAMERAS, 's3dnn', costs, seconds=0.5, seed=6) != first


@on_interpreted_package
def test_frames_joining_a_hold_without_a_dequeue_change_no_decision(monkeypatch):
    """
    The dispatcher's skipped DEQUEUEs (``Policy.keeps_holding``) would have answered nothing.

    The same run with every arrival followed by a DEQUEUE gives the same summary, with more
    DEQUEUEs: 96 cameras on a host slow enough that rule 6 holds first layers.
    """
    from s3dnn_ros.scheduler.policies import S3dnnPolicy
    cameras = [Camera(f'cam{i}', 30.0, 50.0) for i in range(96)]
    costs, host = estimate(NETWORK, 'h100'), HostCosts(launch_us=60.0, decision_us=60.0)
    dequeue, asked = S3dnnPolicy.dequeue, []

    def counted(policy, now_ns, inflight):
        asked[-1] += 1
        return dequeue(policy, now_ns, inflight)

    monkeypatch.setattr(S3dnnPolicy, 'dequeue', counted)
    results = []
    for keeps in (S3dnnPolicy.keeps_holding, lambda policy, now_ns: False):
        monkeypatch.setattr(S3dnnPolicy, 'keeps_holding', keeps)
        asked.append(0)
        results.append(simulate(cameras, 's3dnn', costs, seconds=1.0, seed=2, host=host))
    assert results[0] == results[1] and results[0]['completed'] > 0
    assert asked[0] < 0.5 * asked[1]


@pytest.mark.parametrize('policy', ['s3dnn', 'streams', 'sequential', 'fifo', 'edf'])
def test_every_released_frame_ends_completed_or_dropped(policy):
    result = simulate(CAMERAS * 2, policy, estimate(NETWORK, 't4'), seconds=0.5, seed=1)
    assert result['released'] == result['completed'] + result['dropped'] > 0
    assert 0 < result['gpu_busy'] <= 1
    assert result['released'] == sum(c['released'] for c in result['per_camera'])


def test_s3dnn_meets_deadlines_where_cuda_streaming_misses_them():
    """
    The load is chosen just past what one-stream-per-camera can serve.

    On the nominal T4 a batch-1 AlexNet frame is about 1.6 ms of whole-GPU work, so `streams` tops
    out near 610 frames/s; 22 cameras at 30 FPS ask for 660. Its queues grow until frames miss
    their 50 ms deadlines. S3DNN serves the same frames: data fusion reads fc6/fc7's 217 MB of
    weights once per fused batch instead of once per frame, which cuts the work per frame enough to
    fit, and least slack first keeps the order right.
    """
    cameras = [Camera(f'cam{i}', 30.0, 50.0) for i in range(22)]
    costs = estimate(NETWORK, 't4')
    streams = simulate(cameras, 'streams', costs, seconds=3.0, seed=0)
    s3dnn = simulate(cameras, 's3dnn', costs, seconds=3.0, seed=0)
    assert streams['miss_ratio'] >= 0.10
    assert s3dnn['miss_ratio'] <= 0.01
    assert s3dnn['mean_batch'] > 1.2 and streams['mean_batch'] == 1.0
    assert s3dnn['throughput_fps'] > streams['throughput_fps']


def test_firm_deadlines_drop_instead_of_finishing_late():
    """
    32 cameras at 60 FPS with 15 ms deadlines overload a T4 even with fused batches.

    With soft deadlines the late frames keep the GPU busy and make the next ones late too; firm
    deadlines drop them before they run.
    """
    cameras = [Camera(f'cam{i}', 60.0, 15.0) for i in range(32)]
    costs = estimate(NETWORK, 't4')
    soft = simulate(cameras, 's3dnn', costs, seconds=1.0, seed=2)
    firm = simulate(cameras, 's3dnn', costs, seconds=1.0, seed=2, firm=True)
    assert soft['missed'] > 0.5 * soft['completed']
    assert firm['missed'] < 0.05 * firm['completed']
    assert firm['missed'] < soft['missed'] \
        and firm['completed'] - firm['missed'] >= soft['completed'] - soft['missed']


def test_the_host_pays_for_a_frame_its_decisions_launches_upload_and_completions():
    """
    One frame alone, every layer 100 µs of GPU.

    The host takes it in (frame 1 µs), decides its launch (1 µs) and, nothing else being ready or
    in flight, issues every layer as one segment (rule 4d: 14 launches of 1 µs, upload 1 µs); the
    GPU starts when that call returns, and the host notices the completion (1 µs) 14 x 100 µs
    later.
    """
    from scheduling_helpers import uniform_costs
    host = HostCosts(frame_us=1.0, decision_us=1.0, launch_us=1.0, upload_us=1.0,
                     completion_us=1.0)
    result = simulate([Camera('cam', 1.0, 50.0)], 's3dnn', uniform_costs(cost_us=100.0, tb=0.5),
                      seconds=0.9, host=host, jitter_ms=0.0)
    (camera,) = result['per_camera']
    assert camera['completed'] == 1
    assert camera['max_ms'] == pytest.approx((1 + 1 + 14 * 1 + 1 + 14 * 100 + 1) / 1000,
                                             abs=1e-6)
    free = simulate([Camera('cam', 1.0, 50.0)], 's3dnn', uniform_costs(cost_us=100.0, tb=0.5),
                    seconds=0.9, host=HostCosts(), jitter_ms=0.0)
    assert free['per_camera'][0]['max_ms'] == pytest.approx(1.4, abs=1e-6)


def test_a_saturated_host_makes_per_frame_launches_miss_where_fused_launches_keep_up():
    """
    100 µs of host time per launch and a fast GPU (10 µs a layer).

    32 cameras at 30 FPS ask a policy that launches every layer of every frame for 960 x 14 x 100
    µs = 1.34 s of host time a second. The streams baseline falls behind; S3DNN sizes its fused
    batches for the host and keeps every deadline.
    """
    from scheduling_helpers import uniform_costs
    costs = uniform_costs(cost_us=10.0, tb=0.05)
    host = HostCosts(launch_us=100.0)
    cameras = [Camera(f'cam{i}', 30.0, 50.0) for i in range(32)]
    streams = simulate(cameras, 'streams', costs, seconds=2.0, host=host)
    s3dnn = simulate(cameras, 's3dnn', costs, seconds=2.0, host=host)
    assert streams['miss_ratio'] > 0.5 and streams['gpu_busy'] < 0.5  # the GPU waits for the host
    assert s3dnn['miss_ratio'] == 0 and s3dnn['mean_batch'] > 2


# ------------------------------------------------------------------------------- several GPUs
def test_one_gpu_of_simulate_gpus_is_simulate():
    cameras = [Camera(f'cam{i}', 30.0, 50.0) for i in range(12)]
    costs = estimate(NETWORK, 't4')
    alone = simulate(cameras, 's3dnn', costs, 1.0, seed=3)
    one = simulate_gpus(cameras, 's3dnn', costs, 1.0, 1, seed=3)
    assert {key: one[key] for key in alone} == alone
    assert one['gpus'] == 1 and one['per_gpu'][0]['cameras'] == [c.name for c in cameras]


def test_two_gpus_split_the_cameras_by_rate_and_carry_what_one_cannot():
    """
    Check that two GPUs share 48 cameras that overload one modelled T4 under streams.

    Each GPU takes half (the fast cameras spread first), every frame is counted once, and misses
    fall.
    """
    cameras = [Camera(f'cam{i}', 60.0 if i < 4 else 30.0, 50.0) for i in range(48)]
    costs = estimate(NETWORK, 't4')
    one = simulate_gpus(cameras, 'streams', costs, 1.0, 1)
    two = simulate_gpus(cameras, 'streams', costs, 1.0, 2)
    first, second = two['per_gpu']
    assert (first['gpu'], second['gpu']) == (0, 1)
    assert sorted(first['cameras'] + second['cameras']) == sorted(c.name for c in cameras)
    assert {'cam0', 'cam2'} <= set(first['cameras'])
    assert {'cam1', 'cam3'} <= set(second['cameras'])
    assert abs(len(first['cameras']) - len(second['cameras'])) <= 1
    assert two['released'] == first['released'] + second['released']
    assert abs(two['released'] - one['released']) <= len(cameras)  # phases differ per GPU
    assert [row['name'] for row in two['per_camera']] == [c.name for c in cameras]
    assert two['miss_ratio'] < one['miss_ratio']
    assert two['gpu_busy'] == pytest.approx((first['gpu_busy'] + second['gpu_busy']) / 2, abs=1e-6)


# ------------------------------------------------------------------ workers sharing one GPU
def test_two_workers_on_one_gpu_relieve_a_saturated_host():
    """
    Streams with 100 µs of host time per launch: 16 cameras need 0.67 s of host time a second.

    One host thread is late on every frame; two split the cameras (8 each) and keep up on the one
    fast GPU, whose model both fill (gpu_busy is the shared GPU's).
    """
    from scheduling_helpers import uniform_costs
    costs = uniform_costs(cost_us=10.0, tb=0.05)
    host = HostCosts(launch_us=100.0, frame_us=300.0)
    cameras = [Camera(f'cam{i}', 30.0, 50.0) for i in range(24)]
    one = simulate_gpus(cameras, 'streams', costs, 1.0, 1, host=host)
    two = simulate_gpus(cameras, 'streams', costs, 1.0, 1, workers_per_gpu=2, host=host)
    assert one['miss_ratio'] > 0.5 and two['miss_ratio'] < 0.01
    assert two['workers_per_gpu'] == 2 and two['per_gpu'][0]['workers'] == 2
    assert abs(two['released'] - one['released']) <= len(cameras)
    assert [row['name'] for row in two['per_camera']] == [c.name for c in cameras]
    assert 0 < two['gpu_busy'] <= 1
    assert simulate_gpus(cameras, 'streams', costs, 1.0, 1, workers_per_gpu=2, host=host) == two


def test_two_workers_on_one_gpu_share_its_time_where_two_gpus_do_not():
    """
    A GPU-bound load (28 cameras on a modelled T4, streams, 1 µs host costs).

    Two workers on one GPU miss as much as one: their kernels share the one GPU model. Two GPUs
    carry the load.
    """
    cameras = [Camera(f'cam{i}', 30.0, 50.0) for i in range(28)]
    costs = estimate(NETWORK, 't4')
    host = HostCosts(frame_us=1.0, decision_us=1.0, launch_us=1.0, completion_us=1.0)
    one = simulate_gpus(cameras, 'streams', costs, 1.0, 1, host=host)
    shared = simulate_gpus(cameras, 'streams', costs, 1.0, 1, workers_per_gpu=2, host=host)
    two_gpus = simulate_gpus(cameras, 'streams', costs, 1.0, 2, host=host)
    assert one['miss_ratio'] > 0.5 and shared['miss_ratio'] > 0.5
    assert two_gpus['miss_ratio'] < 0.01
    assert shared['gpu_busy'] > 0.9


def test_a_host_stall_delays_the_frames_behind_it_and_the_scheduler_recovers():
    """
    Each host thread stops once for 60 ms at 0.5 s (two workers, 24 cameras on a modelled T4).

    Frames waiting then finish at least 60 ms late; afterwards all meet their deadline again, so
    the misses are the stall's and no more. The same run without the stall misses nothing.
    """
    cameras = [Camera(f'cam{i}', 30.0, 50.0) for i in range(24)]
    costs = estimate(NETWORK, 't4')
    calm = simulate_gpus(cameras, 's3dnn', costs, 2.0, 1, workers_per_gpu=2)
    stalled = simulate_gpus(cameras, 's3dnn', costs, 2.0, 1, workers_per_gpu=2,
                            host_stall=(0.5, 60.0))
    assert calm['miss_ratio'] == 0 and calm['p99_ms'] < 50
    assert max(row['max_ms'] for row in stalled['per_camera']) >= 60
    # 60 ms of a 2 s run: at most the frames of about 3 periods per camera miss
    assert 0 < stalled['missed'] + stalled['dropped'] <= 4 * len(cameras)
    assert stalled['released'] == calm['released']
