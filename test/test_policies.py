"""
Policies on hand-built queues.

LSF order, tbRatio grouping, look-ahead, fusion, firm drops, baselines.
"""
import math

import pytest
from s3dnn_ros.engine.costs import estimate
from s3dnn_ros.scheduler.policies import make_policy, POLICIES, RUN_AHEAD_NS
from s3dnn_ros.scheduler.simulator import Camera, simulate
from scheduling_helpers import (inflight_launch, MS, NETWORK, NUM_LAYERS, pipelines, ready_frame,
                                uniform_costs)


def test_lsf_orders_by_slack_where_edf_orders_by_deadline():
    # 14 layers: 1.4 ms left at layer 0, 0.1 ms at layer 13
    costs = uniform_costs(cost_us=100.0, tb=1.0)
    early_layer, late_layer = pipelines(2)
    for name in ('s3dnn', 'edf'):
        policy = make_policy(name, costs)
        a = ready_frame(early_layer, 0, deadline_ms=5.0)   # slack at t=0: 5.0 - 1.4 = 3.6 ms
        b = ready_frame(late_layer, 13, deadline_ms=4.0)   # slack at t=0: 4.0 - 0.1 = 3.9 ms
        policy.enqueue(a, 0)
        policy.enqueue(b, 0)
        first = policy.dequeue(0, []).launches
        assert len(first) == 1  # tbRatio 1: no grouping
        assert first[0].frames == ([a] if name == 's3dnn' else [b])


def test_task_slack_is_deadline_minus_now_minus_remaining_cost():
    costs = uniform_costs(cost_us=100.0)
    policy = make_policy('s3dnn', costs)
    (pipeline,) = pipelines(1)
    task = policy.enqueue(ready_frame(pipeline, 10, deadline_ms=3.0), 0)
    assert task.remaining_ns == 4 * 100_000
    assert task.slack(1 * MS) == 3 * MS - 1 * MS - 400_000


def test_slack_order_follows_arrivals_and_completions():
    """A frame re-enters Q with its new layer's slack; the order changes with it."""
    # fusion saves nothing: not fused
    costs = uniform_costs(cost_us=100.0, tb=1.0, fused_growth=1.0)
    policy = make_policy('s3dnn', costs)
    p0, p1 = pipelines(2)
    a = ready_frame(p0, 0, deadline_ms=5.0)    # slack 3.6 ms
    b = ready_frame(p1, 0, deadline_ms=5.2)    # slack 3.8 ms
    policy.enqueue(a, 0)
    policy.enqueue(b, 0)
    assert policy.dequeue(0, []).launches[0].frames == [a]
    a.next_layer = a.done_layers = 5           # a advanced: slack 5.0 - 0.9 = 4.1 ms > b's 3.8
    policy.enqueue(a, 0)
    assert policy.dequeue(0, []).launches[0].frames == [b]


def test_enqueue_all_queues_exactly_what_enqueueing_one_by_one_does():
    costs = uniform_costs(cost_us=100.0, tb=0.3)
    one, many = make_policy('s3dnn', costs), make_policy('s3dnn', costs)
    others = [ready_frame(p, layer, deadline_ms=4.0 + layer)
              for p, layer in zip(pipelines(3), (2, 6, 9))]
    cohort = [ready_frame(p, 6, deadline_ms=d) for p, d in zip(pipelines(4), (9.0, 5.0, 7.0, 5.0))]
    for policy in (one, many):
        for frame in others:
            policy.enqueue(frame, 0)
    for frame in cohort:
        one.enqueue(frame, 3 * MS)
    many.enqueue_all(cohort, 6, 3 * MS)

    def view(policy):
        return [(t.frame, t.layer, t.cost_ns, t.tb_ratio, t.remaining_ns, t.key, t.ready_ns)
                for t in policy.queued()]
    assert view(many) == view(one)
    # least slack, then seq
    assert [t.frame for t in many.queued()][:3] == [cohort[1], cohort[3], others[0]]


def test_grouping_adds_small_kernels_until_tb_reaches_one():
    costs = uniform_costs(tb=0.4)
    policy = make_policy('s3dnn', costs)
    frames = [ready_frame(p, layer, deadline_ms=10 + i)
              for i, (p, layer) in enumerate(zip(pipelines(4), (1, 2, 3, 4)))]
    for frame in frames:
        policy.enqueue(frame, 0)
    group = policy.dequeue(0, [])
    grouped = [launch for launch in group.launches if not launch.chained]
    assert [launch.frames[0] for launch in grouped] == frames[:3]  # 0.4, 0.8, 1.2: stops once >= 1
    assert group.tb_ratio == pytest.approx(1.2)
    assert len(policy) == 1 and policy.queued()[0].frame is frames[3]
    # concurrent kernels on separate streams
    assert len({launch.stream for launch in grouped}) == 3


def test_grouping_never_adds_a_kernel_that_fills_the_gpu_alone():
    costs = uniform_costs(tb={i: (1.5 if i == 2 else 0.3) for i in range(NUM_LAYERS)})
    policy = make_policy('s3dnn', costs)
    head, big, small = (ready_frame(p, layer, deadline_ms=d)
                        for p, layer, d in zip(pipelines(3), (1, 2, 3), (5.0, 6.0, 7.0)))
    for frame in (head, big, small):
        policy.enqueue(frame, 0)
    group = policy.dequeue(0, [])
    members = [launch.frames[0] for launch in group.launches if not launch.chained]
    assert members == [head, small]
    assert [task.frame for task in policy.queued()] == [big]


def test_head_that_fills_the_gpu_runs_alone():
    costs = uniform_costs(tb=1.0)
    policy = make_policy('s3dnn', costs)
    for p, layer in zip(pipelines(3), (1, 2, 3)):
        policy.enqueue(ready_frame(p, layer), 0)
    group = policy.dequeue(0, [])
    assert len(group.launches) == 1 and not group.launches[0].chained


def test_look_ahead_reserves_the_successor_that_fits():
    # a frame of a layer filling the GPU stays in Q (rule 3 takes none such): rule 4d stays out
    costs = uniform_costs(tb={i: {3: 0.3, 7: 1.0}.get(i, 0.5) for i in range(NUM_LAYERS)})
    policy = make_policy('s3dnn', costs)
    pipeline, other = pipelines(2)
    frame = ready_frame(pipeline, 3)
    policy.enqueue(frame, 0)
    policy.enqueue(ready_frame(other, 7, deadline_ms=20.0), 0)
    group = policy.dequeue(0, [])
    assert [(launch.layer, launch.chained) for launch in group.launches] == [(3, False), (4, True)]
    assert len(policy) == 1
    assert group.launches[1].stream == group.launches[0].stream  # stream order is the dependency
    assert group.launches[1].frames == [frame]


def test_look_ahead_skips_a_successor_that_does_not_fit():
    costs = uniform_costs(tb={i: 0.3 if i == 3 else 0.8 for i in range(NUM_LAYERS)})
    policy = make_policy('s3dnn', costs)
    (pipeline,) = pipelines(1)
    policy.enqueue(ready_frame(pipeline, 3), 0)
    group = policy.dequeue(0, [])
    assert [launch.layer for launch in group.launches] == [3]


def test_look_ahead_considers_launches_on_the_gpu_and_takes_least_slack():
    costs = uniform_costs(tb=0.2)
    policy = make_policy('s3dnn', costs)
    queued_p, urgent_p, relaxed_p = pipelines(3)
    queued = ready_frame(queued_p, 7, deadline_ms=20.0)
    urgent = ready_frame(urgent_p, 0, deadline_ms=2.0)
    relaxed = ready_frame(relaxed_p, 0, deadline_ms=30.0)
    running = [inflight_launch([relaxed], 5, stream=relaxed_p.stream, costs=costs),
               inflight_launch([urgent], 5, stream=urgent_p.stream, costs=costs)]
    policy.enqueue(queued, 0)
    group = policy.dequeue(0, running)
    chained = [launch for launch in group.launches if launch.chained]
    assert len(chained) == 1  # one reservation per DEQUEUE
    assert chained[0].frames == [urgent] and chained[0].layer == 6 \
        and chained[0].stream == urgent_p.stream


def test_rule4b_run_ahead_queues_a_lone_chain_whole_without_a_slot():
    """
    Q empty and one stream busy: the successor is queued behind its predecessor.

    It is queued even when it fills the GPU, in a round that takes no dispatch slot; DEQUEUE's own
    look-ahead still wants it to fit.
    """
    costs = uniform_costs(cost_us=0.6 * RUN_AHEAD_NS / 1000, tb=1.5)  # two exceed the horizon
    policy = make_policy('s3dnn', costs)
    (lone_p,) = pipelines(1)
    lone = ready_frame(lone_p, 0)
    running = inflight_launch([lone], 4, stream=lone_p.stream, costs=costs)
    assert policy.dequeue(0, [running]).launches == []
    group = policy.run_ahead(0, [running])
    # a lone chain has no horizon: the rest of its network, as one segment
    (rest,) = group.launches
    assert (rest.layer, rest.end_layer, rest.chained, rest.stream) == \
        (5, NUM_LAYERS, True, lone_p.stream)
    assert rest.cost_ns == (NUM_LAYERS - 5) * costs.cost_ns(5) > RUN_AHEAD_NS
    assert group.takes_slot is False
    lone.next_layer = NUM_LAYERS  # issued
    assert policy.run_ahead(0, [running, rest]).launches == []


def test_rule4b_run_ahead_keeps_each_stream_within_the_horizon_and_stops_when_q_has_work():
    """
    Two chains: each stream is queued ahead until RUN_AHEAD_NS of work waits there.

    Each chain's next layers go as one segment, the least-slack chain first; nothing once a task
    is ready in Q (every layer is decided afresh then).
    """
    costs = uniform_costs(cost_us=100.0, tb=1.5)
    policy = make_policy('s3dnn', costs)
    urgent_p, relaxed_p, late_p = pipelines(3)
    urgent = ready_frame(urgent_p, 0, deadline_ms=5.0)
    relaxed = ready_frame(relaxed_p, 0, deadline_ms=50.0)
    inflight = [inflight_launch([urgent], 2, stream=0, costs=costs),
                inflight_launch([relaxed], 2, stream=1, costs=costs)]
    issued = []
    while (group := policy.run_ahead(0, inflight)).launches:
        (launch,) = group.launches
        for frame in launch.frames:
            frame.next_layer = launch.end_layer
        inflight.append(launch)
        issued.append((launch.stream, launch.layer, launch.end_layer))
    per_stream = RUN_AHEAD_NS // costs.cost_ns(3) + (RUN_AHEAD_NS % costs.cost_ns(3) > 0)
    # the urgent chain first; one segment per stream, filling it to the horizon
    assert issued == [(0, 3, 2 + per_stream), (1, 3, 2 + per_stream)]
    for stream in (0, 1):
        queued = sum(launch.cost_ns for launch in inflight if launch.stream == stream)
        assert RUN_AHEAD_NS <= queued < RUN_AHEAD_NS + costs.cost_ns(3)
    policy.enqueue(ready_frame(late_p, 0), 0)
    inflight = inflight[:2]
    urgent.next_layer = relaxed.next_layer = 3
    assert policy.run_ahead(0, inflight).launches == []


def test_rule2_a_burst_cut_at_the_kernel_batch_goes_in_one_group_up_to_max_batch():
    """
    40 frames ready at one layer, b* 1: launches of the kernel batch (16), two of them in G.

    Each on its own stream, LSF order kept; the other 8 stay in Q.
    """
    costs = uniform_costs(cost_us=100.0, tb=1.0)  # kernel batch 16
    policy = make_policy('s3dnn', costs, max_batch=32)
    frames = [ready_frame(p, 2, deadline_ms=20.0 + i / 10) for i, p in enumerate(pipelines(40))]
    for frame in reversed(frames):
        policy.enqueue(frame, 0)
    group = policy.dequeue(0, [])
    assert [(launch.layer, launch.batch) for launch in group.launches] == [(2, 16), (2, 16)]
    assert [frame for launch in group.launches for frame in launch.frames] == frames[:32]
    assert len({launch.stream for launch in group.launches}) == 2
    assert [task.frame for task in policy.queued()] == frames[32:]
    # a launch below the kernel batch takes its layer's whole queue: nothing to split
    small = make_policy('s3dnn', costs, max_batch=32)
    for frame in frames[:10]:
        small.enqueue(frame, 0)
    assert [launch.batch for launch in small.dequeue(0, []).launches] == [10]


def test_rule2b_a_burst_on_an_idle_gpu_is_cut_into_even_chains_of_at_most_burst_chain():
    """
    40 first layers ready, nothing on the GPU, b* 1: three launches of 14, 13 and 13 in LSF order.

    Each on its own stream, each a segment of every layer (rule 4c). With a launch on the GPU the
    same burst is one launch of the kernel batch (rule 2), as it is on a backend of one stream; 12
    ready on an idle GPU are one launch (the whole network: rule 4d); with b* above BURST_CHAIN
    the chains are b* frames.
    """
    from s3dnn_ros.engine.costs import HostCosts
    from s3dnn_ros.scheduler.policies import BURST_CHAIN, RATE_WINDOW_NS
    assert BURST_CHAIN == 16
    costs = uniform_costs(cost_us=100.0, tb=1.0, batches=32)  # kernel batch 32
    frames = [ready_frame(p, 0, deadline_ms=20.0 + i / 10) for i, p in enumerate(pipelines(40))]
    idle = make_policy('s3dnn', costs, max_batch=32)
    for frame in reversed(frames):
        idle.enqueue(frame, 0)
    group = idle.dequeue(0, [])
    assert [(launch.layer, launch.batch) for launch in group.launches] == [(0, 14), (0, 13),
                                                                           (0, 13)]
    assert [frame for launch in group.launches for frame in launch.frames] == frames
    assert len({launch.stream for launch in group.launches}) == 3
    # each chain the whole network, far past the run-ahead horizon (14 x 425 µs at 14 frames)
    assert [launch.depth for launch in group.launches] == [NUM_LAYERS] * 3
    assert group.launches[0].cost_ns == NUM_LAYERS * costs.cost_ns(0, 14) > RUN_AHEAD_NS
    assert len(idle) == 0
    one_stream = make_policy('s3dnn', costs, max_batch=32)
    one_stream.streams = 1  # the chains could only run one after another
    for frame in frames:
        one_stream.enqueue(frame, 0)
    assert [launch.batch for launch in one_stream.dequeue(0, []).launches] == [32]
    busy = make_policy('s3dnn', costs, max_batch=32)
    for frame in frames:
        busy.enqueue(frame, 0)
    running = inflight_launch([ready_frame(p, 5) for p in pipelines(41)[40:]], 5, 0, costs)
    assert [launch.batch for launch in busy.dequeue(0, [running]).launches
            if launch.layer == 0] == [32]
    small = make_policy('s3dnn', costs, max_batch=32)
    for frame in frames[:12]:
        small.enqueue(frame, 0)
    assert [(launch.batch, launch.depth) for launch in small.dequeue(0, []).launches] == \
        [(12, NUM_LAYERS)]
    loaded = make_policy('s3dnn', costs, max_batch=32)
    loaded.host = HostCosts(launch_us=5000.0)  # no batch keeps this host half idle: b* = max_batch
    count = 160
    many = pipelines(count + 40)
    started(loaded, count, RATE_WINDOW_NS // count, many, deadline_ms=1000.0)
    now = RATE_WINDOW_NS
    while len(loaded):
        loaded.dequeue(now, [running])
    assert loaded.target_batch(now) == 32
    for p in many[count:]:
        loaded.enqueue(ready_frame(p, 0, deadline_ms=1000.0), now)
    assert [launch.batch for launch in loaded.dequeue(now, []).launches] == [20, 20]


def test_rule2b_a_busy_gpu_cuts_ready_first_layers_into_chains_only_when_b_star_is_max_batch():
    """
    A launch on the GPU and no burst open: 40 first layers ready are chains at b* = max_batch.

    At b* = max_batch (a host this slow needs every launch full) they are two chains of 20, each
    a segment of every layer on its own stream, in a group that takes a dispatch slot and opens
    no burst (a first layer decided next is not a continued chain). Below it they are rule 2's
    one launch of the kernel batch, its later layers left to the next decisions.
    """
    from s3dnn_ros.engine.costs import HostCosts
    from s3dnn_ros.scheduler.policies import RATE_WINDOW_NS
    costs = uniform_costs(cost_us=100.0, tb=1.0, batches=32)
    count = 160
    many = pipelines(count + 80)
    running = inflight_launch([ready_frame(p, 5) for p in pipelines(1)], 5, 0, costs)
    for launch_us, expected in ((5000.0, [(20, NUM_LAYERS), (20, NUM_LAYERS)]),
                                (0.0, [(32, 1)])):
        policy = make_policy('s3dnn', costs, max_batch=32)
        policy.host = HostCosts(launch_us=launch_us)
        started(policy, count, RATE_WINDOW_NS // count, many, deadline_ms=1000.0)
        now = RATE_WINDOW_NS
        while len(policy):
            policy.dequeue(now, [running])
        assert (policy.target_batch(now) == 32) == (launch_us > 0)
        for p in many[count:count + 40]:
            policy.enqueue(ready_frame(p, 0, deadline_ms=1000.0), now)
        group = policy.dequeue(now, [running])
        first = [launch for launch in group.launches if launch.layer == 0]
        assert [(launch.batch, launch.depth) for launch in first] == expected
        assert len({launch.stream for launch in first}) == len(first)
        assert group.takes_slot
        policy.enqueue(ready_frame(many[-1], 0, deadline_ms=1000.0), now)
        assert not policy.continues_burst(now, [running, *group.launches])


def _slow_host_policy(costs):
    """Return an s3dnn policy on a host so slow that b* is large (64 cameras), and its b*."""
    from s3dnn_ros.engine.costs import HostCosts
    policy = make_policy('s3dnn', costs, max_batch=32)
    policy.host = HostCosts(launch_us=5000.0)  # no batch keeps this host half idle: b* = max_batch
    policy.pipelines = 64
    policy.arrived(0, 40)
    return policy, policy.target_batch(0)


def test_rule6_keeps_holding_until_the_hold_ends_or_b_star_first_layers_are_ready():
    """keeps_holding: a hold in force (hold_until_ns) not ended, below b* first layers ready."""
    costs = uniform_costs()
    policy, batch = _slow_host_policy(costs)
    assert batch > 3 and not policy.keeps_holding(0)  # no hold yet
    running = inflight_launch([ready_frame(p, 5) for p in pipelines(65)[64:]], 5, 0, costs)
    frames = [ready_frame(p, 0) for p in pipelines(batch)]
    policy.enqueue(frames[0], 0)
    assert [launch for launch in policy.dequeue(0, [running]).launches if launch.layer == 0] == []
    until = policy.hold_until_ns
    assert until is not None and policy.keeps_holding(0) and not policy.keeps_holding(until)
    for frame in frames[1:-1]:
        policy.enqueue(frame, 0)
    assert policy.keeps_holding(0)
    policy.enqueue(frames[-1], 0)
    assert not policy.keeps_holding(0)
    fifo = make_policy('fifo', costs)
    fifo.hold_until_ns = until
    assert not fifo.keeps_holding(0)


def test_rule6_would_hold_counts_the_first_layers_ready_against_b_star():
    """would_hold: first layers ready plus those about to start, below b*, would be held."""
    costs = uniform_costs()
    policy, batch = _slow_host_policy(costs)
    assert batch > 2
    assert policy.would_hold(0, batch - 1) and not policy.would_hold(0, batch)
    for p in pipelines(batch - 2):
        policy.enqueue(ready_frame(p, 0), 0)
    assert policy.would_hold(0, 1) and not policy.would_hold(0, 2)
    fifo = make_policy('fifo', costs)
    fifo.arrived(0, 40)
    assert not fifo.would_hold(0, 1)


def test_rule2b_a_burst_taken_in_is_cut_chain_by_chain_until_a_later_layer_is_decided():
    """
    16 first layers on an idle GPU open a burst: chain_ready from the 16th, one segment of 16.

    The chain that opens the burst is a segment of every layer like the later ones: its layers
    are queued at once, not left to run-ahead rounds between the chains' intakes.

    While it is open the next 16 are a chain too (a segment, on its own stream, taking no slot:
    continues_burst) although the first is on the GPU; a DEQUEUE of a later layer closes it, and
    16 first layers are then rule 2's launch in a group with a slot. Fewer than BURST_CHAIN on an
    idle GPU, or a backend of one stream, never make a chain ready.
    """
    from s3dnn_ros.scheduler.policies import BURST_CHAIN
    costs = uniform_costs(cost_us=100.0, tb=1.0, batches=32)
    cams = pipelines(64)
    policy = make_policy('s3dnn', costs, max_batch=32)
    policy.streams = 4
    for i in range(BURST_CHAIN):
        assert not policy.chain_ready(0, [])
        policy.enqueue(ready_frame(cams[i], 0, deadline_ms=20.0), 0)
    assert policy.chain_ready(0, [])
    first = policy.dequeue(0, [])
    assert [(launch.batch, launch.depth) for launch in first.launches] == [(16, NUM_LAYERS)]
    assert first.takes_slot
    for i in range(16, 32):
        assert not policy.chain_ready(0, first.launches)
        policy.enqueue(ready_frame(cams[i], 0, deadline_ms=20.0), 0)
    assert policy.chain_ready(0, first.launches) and policy.continues_burst(0, first.launches)
    second = policy.dequeue(0, first.launches)
    assert [(launch.batch, launch.depth) for launch in second.launches] == [(16, NUM_LAYERS)]
    assert not second.takes_slot
    # a later layer decided: the burst has been taken in
    policy.enqueue(ready_frame(cams[32], 5, deadline_ms=20.0), 0)
    assert [launch.layer for launch in policy.dequeue(0, first.launches).launches][:1] == [5]
    for i in range(33, 49):
        policy.enqueue(ready_frame(cams[i], 0, deadline_ms=20.0), 0)
    assert not policy.chain_ready(0, first.launches)
    assert not policy.continues_burst(0, first.launches)
    after = policy.dequeue(0, first.launches)
    # rule 2's launch, not a chain: by rule 4d its next layers while its stream holds less than
    # RUN_AHEAD_NS (475 µs a layer at batch 16, nothing else on its stream: three layers)
    assert [(launch.batch, launch.depth) for launch in after.launches if launch.layer == 0] == [
        (16, 3)]
    assert after.takes_slot
    few = make_policy('s3dnn', costs, max_batch=32)
    few.streams = 4
    one_stream = make_policy('s3dnn', costs, max_batch=32)
    one_stream.streams = 1
    for i in range(BURST_CHAIN - 1):
        few.enqueue(ready_frame(cams[i], 0, deadline_ms=20.0), 0)
    for i in range(32):
        one_stream.enqueue(ready_frame(cams[i], 0, deadline_ms=20.0), 0)
    assert not few.chain_ready(0, [])
    assert not one_stream.chain_ready(0, [])
    assert not make_policy('streams', costs).chain_ready(0, [])


def test_rule2b_chain_needs_counts_the_first_layers_a_chain_lacks():
    """
    chain_needs is c minus the first layers ready, 0 exactly when chain_ready, None when busy.

    On an idle GPU and in an open burst it counts down to 0 as first layers are enqueued; on a
    GPU busy outside a burst, on one stream and for a policy that does not cut bursts, no chain
    can become ready (None).
    """
    from s3dnn_ros.scheduler.policies import BURST_CHAIN
    costs = uniform_costs(cost_us=100.0, tb=1.0, batches=32)
    cams = pipelines(40)
    policy = make_policy('s3dnn', costs, max_batch=32)
    policy.streams = 4
    for i in range(BURST_CHAIN + 2):
        needs = policy.chain_needs(0, [])
        assert needs == max(0, BURST_CHAIN - i)
        assert (needs == 0) == policy.chain_ready(0, [])
        policy.enqueue(ready_frame(cams[i], 0, deadline_ms=20.0), 0)
    first = policy.dequeue(0, [])
    assert policy.chain_needs(0, first.launches) == BURST_CHAIN  # the burst is open
    policy.enqueue(ready_frame(cams[20], 5, deadline_ms=20.0), 0)
    policy.dequeue(0, first.launches)  # a later layer decided: the burst is closed
    assert policy.chain_needs(0, first.launches) is None
    one_stream = make_policy('s3dnn', costs, max_batch=32)
    one_stream.streams = 1
    assert one_stream.chain_needs(0, []) is None
    assert make_policy('streams', costs).chain_needs(0, []) is None


def test_rule4c_a_full_launch_is_a_segment_of_its_next_layers_within_the_horizon():
    """
    A launch of max_batch frames takes its next layers while its GPU work stays within the horizon.

    At layer 2 with 125 µs per layer at batch 2: layers 2-9 (1 ms); near the end of the network
    the segment stops at the last layer; a layer costing more than the horizon alone is a launch of
    its own. (Another camera's launch is on another stream, so the chain is not alone, and the
    segment already fills its stream's horizon: rule 4d adds no layer.)
    """
    costs = uniform_costs(cost_us=100.0, tb=1.0)  # batch 2: 125 µs a layer
    per_layer = costs.cost_ns(2, 2)
    other = pipelines(3)[2]
    for layer, depth in ((2, RUN_AHEAD_NS // per_layer), (NUM_LAYERS - 3, 3)):
        policy = make_policy('s3dnn', costs, max_batch=2)
        frames = [ready_frame(p, layer, deadline_ms=20.0) for p in pipelines(2)]
        for frame in frames:
            policy.enqueue(frame, 0)
        running = inflight_launch([ready_frame(other, 5)], 5, other.stream, costs)
        (launch,) = policy.dequeue(0, [running]).launches
        assert (launch.layer, launch.depth, launch.end_layer) == (layer, depth, layer + depth)
        assert launch.frames == frames and len(policy) == 0
        assert launch.cost_ns == depth * per_layer
        assert launch.cost_ns <= RUN_AHEAD_NS or layer + depth == NUM_LAYERS
    assert RUN_AHEAD_NS // per_layer == 8
    heavy_costs = uniform_costs(cost_us=RUN_AHEAD_NS / 1000, tb=1.0)
    heavy = make_policy('s3dnn', heavy_costs, max_batch=2)
    for p in pipelines(2):
        heavy.enqueue(ready_frame(p, 2, deadline_ms=50.0), 0)
    running = inflight_launch([ready_frame(other, 5)], 5, other.stream, heavy_costs)
    assert [launch.depth for launch in heavy.dequeue(0, [running]).launches] == [1]


def test_rule4c_a_launch_below_max_batch_stays_one_layer():
    costs = uniform_costs(cost_us=100.0, tb=1.0)
    policy = make_policy('s3dnn', costs, max_batch=3)
    cams = pipelines(4)
    for p in cams[:2]:
        policy.enqueue(ready_frame(p, 2, deadline_ms=20.0), 0)
    # a frame left in Q: rule 4d does not apply
    policy.enqueue(ready_frame(cams[3], 6, deadline_ms=30.0), 0)
    other = cams[2]
    (launch,) = policy.dequeue(0, [inflight_launch([ready_frame(other, 5)], 5, other.stream,
                                                   costs)]).launches
    assert (launch.batch, launch.depth) == (2, 1)
    # the ablations never fuse, so never fill a launch of max_batch > 1
    fifo = make_policy('fifo', costs, max_batch=3)
    for p in pipelines(3):
        fifo.enqueue(ready_frame(p, 2, deadline_ms=20.0), 0)
    assert [launch.depth for launch in fifo.dequeue(0, []).launches] == [1]


def test_rule4d_one_launch_leaving_q_empty_takes_what_run_ahead_would_queue_behind_it():
    """
    One launch in G, Q left empty: the launch is the segment rule 4b's next round would queue.

    On an idle GPU, every layer left: four frames of layer 0 fused are one launch of every layer;
    a lone frame at layer 5 is layers 5-13. Not with a frame left in Q. With another camera's
    launch on another stream, its next layers while its own stream holds less than RUN_AHEAD_NS
    (175 µs a layer at batch 4: six layers); none when its stream holds that much already; every
    layer left, however much is queued, when everything in flight is on its own stream (a lone
    chain). Look-ahead then has
    no next layer of it to reserve. A burst's first chain (rule 2b) spans every layer too.
    """
    from s3dnn_ros.scheduler.policies import BURST_CHAIN
    costs = uniform_costs(cost_us=100.0, tb=1.0, batches=32)
    policy = make_policy('s3dnn', costs, max_batch=32)
    four = [ready_frame(p, 0, deadline_ms=50.0) for p in pipelines(4)]
    for frame in four:
        policy.enqueue(frame, 0)
    (launch,) = policy.dequeue(0, []).launches
    assert (launch.layer, launch.end_layer, launch.frames, launch.chained) == \
        (0, NUM_LAYERS, four, False)
    assert launch.cost_ns == NUM_LAYERS * costs.cost_ns(0, 4) and len(policy) == 0
    lone = make_policy('s3dnn', costs, max_batch=32)
    lone.enqueue(ready_frame(pipelines(1)[0], 5, deadline_ms=50.0), 0)
    assert [(launch.layer, launch.depth) for launch in lone.dequeue(0, []).launches] == \
        [(5, NUM_LAYERS - 5)]
    last = make_policy('s3dnn', costs, max_batch=32)
    last.enqueue(ready_frame(pipelines(1)[0], NUM_LAYERS - 1, deadline_ms=50.0), 0)
    assert [(launch.layer, launch.depth) for launch in last.dequeue(0, []).launches] == \
        [(NUM_LAYERS - 1, 1)]
    # a frame left in Q: every layer is decided afresh
    left = make_policy('s3dnn', costs, max_batch=32)
    for p, layer in zip(pipelines(2), (3, 7)):  # tbRatio 1: one launch a group
        left.enqueue(ready_frame(p, layer, deadline_ms=50.0), 0)
    assert [launch.depth for launch in left.dequeue(0, []).launches] == [1]
    assert len(left) == 1
    # a launch in flight on another stream: the horizon
    cams = pipelines(6)
    own_stream = cams[0].stream
    assert cams[4].stream != own_stream and cams[5].stream != own_stream
    per_layer = costs.cost_ns(0, 4)
    assert 5 * per_layer < RUN_AHEAD_NS <= 6 * per_layer
    cases = ((cams[4].stream, (6, 1)), (own_stream, (NUM_LAYERS, NUM_LAYERS)))
    for running_on, (light, heavy) in cases:
        for cost_us, depth in ((100.0, light), (RUN_AHEAD_NS / 1000, heavy)):
            table = uniform_costs(cost_us=cost_us, tb=1.0, batches=32)
            busy = make_policy('s3dnn', table, max_batch=32)
            for frame in [ready_frame(p, 0, deadline_ms=50.0) for p in cams[:4]]:
                busy.enqueue(frame, 0)
            running = [inflight_launch([ready_frame(cams[5], 5)], 5, own_stream, table)]
            if running_on != own_stream:  # another stream busy too: not a lone chain
                running.append(inflight_launch([ready_frame(cams[4], 5)], 5, running_on, table))
            (launch,) = busy.dequeue(0, running).launches
            assert (launch.depth, launch.stream) == (depth, own_stream), (running_on, cost_us)
    # tbRatio below 1: the whole network in one launch, no successor reserved beside it
    small = make_policy('s3dnn', uniform_costs(cost_us=100.0, tb=0.2), max_batch=32)
    small.enqueue(ready_frame(pipelines(1)[0], 0, deadline_ms=50.0), 0)
    assert [(launch.layer, launch.depth) for launch in small.dequeue(0, []).launches] == \
        [(0, NUM_LAYERS)]
    # a burst's first chain: the whole network
    burst = make_policy('s3dnn', costs, max_batch=32)
    for frame in [ready_frame(p, 0, deadline_ms=50.0) for p in pipelines(BURST_CHAIN)]:
        burst.enqueue(frame, 0)
    (chain,) = burst.dequeue(0, []).launches
    assert (chain.batch, chain.depth) == (BURST_CHAIN, NUM_LAYERS)


def test_rule4c_a_full_successor_run_ahead_is_a_whole_segment_past_the_streams_room():
    """
    Two chains run ahead: a full one (max_batch 2) and a single frame, 100 µs a layer at batch 1.

    The full chain's successor is its 1 ms segment (125 µs a layer at batch 2: 8 layers) although
    its stream had room for 875 µs only; the single frame's fills its stream's room (rule 4b).
    """
    costs = uniform_costs(cost_us=100.0, tb=1.0)
    policy = make_policy('s3dnn', costs, max_batch=2)
    full_p, single_p = pipelines(2), pipelines(3)[2]
    full = [ready_frame(p, 0, deadline_ms=20.0) for p in full_p]
    single = ready_frame(single_p, 0, deadline_ms=30.0)
    inflight = [inflight_launch(full, 1, stream=0, costs=costs),
                inflight_launch([single], 1, stream=1, costs=costs)]
    (segment,) = policy.run_ahead(0, inflight).launches
    assert (segment.frames, segment.layer, segment.depth, segment.chained) == (full, 2, 8, True)
    assert segment.cost_ns == 8 * costs.cost_ns(2, 2) == RUN_AHEAD_NS
    for frame in full:
        frame.next_layer = segment.end_layer
    (filled,) = policy.run_ahead(0, [*inflight, segment]).launches
    # 100 µs in flight on stream 1: 9 more layers make RUN_AHEAD_NS
    assert (filled.frames, filled.layer, filled.end_layer) == ([single], 2, 11)


def test_look_ahead_does_not_reserve_past_the_last_layer_or_twice():
    costs = uniform_costs(tb=0.2)
    policy = make_policy('s3dnn', costs)
    last_p, chained_p = pipelines(2)
    last = ready_frame(last_p, 0)
    done_soon = inflight_launch([last], NUM_LAYERS - 1, stream=0, costs=costs)
    twice = ready_frame(chained_p, 0)
    already = inflight_launch([twice], 4, stream=1, costs=costs)
    twice.next_layer = 6  # layer 5 was already reserved behind it
    # empty queue: nothing to dequeue
    assert policy.dequeue(0, [done_soon, already]).launches == []
    (queued_p,) = pipelines(1)
    policy.enqueue(ready_frame(queued_p, 2), 0)
    group = policy.dequeue(0, [done_soon, already])
    # only the queued frame's own successor, behind the segment rule 4d makes of its launch
    # (layers 2-10: with done_soon's 100 µs on its stream, 1 ms of work)
    assert [(launch.layer, launch.end_layer, launch.chained) for launch in group.launches] == [
        (2, 11, False), (11, 12, True)]


def test_fusion_merges_only_the_same_layer():
    costs = uniform_costs(tb=0.1)
    policy = make_policy('s3dnn', costs)
    ps = pipelines(4)
    same = [ready_frame(p, 3, deadline_ms=5 + i) for i, p in enumerate(ps[:3])]
    other = ready_frame(ps[3], 5, deadline_ms=5.5)
    for frame in [*same, other]:
        policy.enqueue(frame, 0)
    group = policy.dequeue(0, [])
    first, second = group.launches[0], group.launches[1]
    assert first.layer == 3 and first.frames == same and first.batch == 3
    assert first.cost_ns == costs.cost_ns(3, 3) \
        and first.tb_ratio == pytest.approx(costs.tb_ratio(3, 3))
    assert first.stream == ps[0].stream  # the most urgent frame's stream
    assert second.layer == 5 and second.frames == [other]


def test_fusion_respects_max_batch():
    costs = uniform_costs(tb=0.01)
    policy = make_policy('s3dnn', costs, max_batch=4)
    for p in pipelines(6):
        policy.enqueue(ready_frame(p, 2), 0)
    group = policy.dequeue(0, [])
    assert [launch.batch for launch in group.launches if launch.layer == 2] == [4, 2]


def test_fusion_does_not_make_the_most_urgent_frame_miss():
    costs = uniform_costs(cost_us=100.0, tb=0.1, fused_growth=0.5)  # a second frame adds 50 µs
    policy = make_policy('s3dnn', costs)
    urgent_p, other_p = pipelines(2)
    # layer 13 is the last: remaining 100 µs; deadline 130 µs leaves 30 µs of slack < 50 µs
    urgent = ready_frame(urgent_p, 13, deadline_ms=0.130)
    other = ready_frame(other_p, 13, deadline_ms=50.0)
    policy.enqueue(urgent, 0)
    policy.enqueue(other, 0)
    group = policy.dequeue(0, [])
    assert group.launches[0].frames == [urgent]
    assert [launch.frames for launch in group.launches[1:]] == [[other]]  # grouped, not fused


def test_fusion_goes_ahead_when_the_head_is_already_late():
    costs = uniform_costs(cost_us=100.0, tb=0.1, fused_growth=0.5)
    policy = make_policy('s3dnn', costs)
    late_p, other_p = pipelines(2)
    late = ready_frame(late_p, 13, deadline_ms=0.05)  # negative slack already
    other = ready_frame(other_p, 13, deadline_ms=50.0)
    policy.enqueue(late, 0)
    policy.enqueue(other, 0)
    assert policy.dequeue(0, []).launches[0].frames == [late, other]


def test_no_fusion_when_it_saves_no_gpu_time():
    costs = uniform_costs(tb=0.1, fused_growth=1.0)  # b frames cost b times one frame
    policy = make_policy('s3dnn', costs)
    for p in pipelines(3):
        policy.enqueue(ready_frame(p, 4), 0)
    group = policy.dequeue(0, [])
    assert [launch.batch for launch in group.launches if not launch.chained] == [1, 1, 1]


@pytest.mark.parametrize('name', ['fifo', 'edf'])
def test_fifo_and_edf_group_without_fusion_or_look_ahead(name):
    costs = uniform_costs(tb=0.3)
    policy = make_policy(name, costs)
    frames = [ready_frame(p, 4, release_ms=i, deadline_ms=10 - i)
              for i, p in enumerate(pipelines(3))]
    for frame in frames:
        policy.enqueue(frame, 0)
    group = policy.dequeue(0, [])
    assert all(launch.batch == 1 and not launch.chained for launch in group.launches)
    order = [launch.frames[0] for launch in group.launches]
    assert order == (frames if name == 'fifo' else frames[::-1])


def test_firm_mode_drops_frames_that_cannot_make_it_before_they_run():
    costs = uniform_costs(cost_us=100.0, tb=0.2)
    policy = make_policy('s3dnn', costs, firm=True)
    lost_p, fine_p, lost_peer_p = pipelines(3)
    lost = ready_frame(lost_p, 0, deadline_ms=1.0)       # needs 1.4 ms
    fine = ready_frame(fine_p, 0, deadline_ms=10.0)
    lost_peer = ready_frame(lost_peer_p, 0, deadline_ms=1.2)
    for frame in (lost, fine, lost_peer):
        policy.enqueue(frame, 0)
    group = policy.dequeue(0, [])
    assert set(group.dropped) == {lost, lost_peer}
    assert [launch.frames for launch in group.launches if not launch.chained] == [[fine]]
    assert make_policy('s3dnn', costs, firm=False).lost(lost, 0, 0) is False


def test_sequential_issues_whole_frames_on_one_stream_one_at_a_time():
    costs = uniform_costs()
    policy = make_policy('sequential', costs)
    assert policy.max_inflight == 1
    a_p, b_p = pipelines(2)
    a, b = ready_frame(a_p, 0, release_ms=1.0), ready_frame(b_p, 0, release_ms=0.5)
    policy.enqueue(a, 0)
    policy.enqueue(b, 0)
    group = policy.dequeue(0, [])
    assert [launch.layer for launch in group.launches] == list(range(NUM_LAYERS))
    # oldest first
    assert all(launch.frames == [b] and launch.stream == 0 for launch in group.launches)
    assert [launch.chained for launch in group.launches] == [False] + [True] * (NUM_LAYERS - 1)


def test_streams_baseline_uses_each_pipelines_stream_without_limit():
    costs = uniform_costs()
    policy = make_policy('streams', costs)
    assert policy.max_inflight is None
    ps = pipelines(3)
    for p in ps:
        policy.enqueue(ready_frame(p, 0), 0)
    streams = [policy.dequeue(0, []).launches[0].stream for _ in ps]
    assert streams == [p.stream for p in ps]


def test_unknown_policy_is_named_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'lottery'.*s3dnn, streams, sequential, fifo, edf"):
        make_policy('lottery', uniform_costs())
    assert set(POLICIES) == {'s3dnn', 'streams', 'sequential', 'fifo', 'edf'}


@pytest.mark.parametrize('firm', [False, True])
def test_long_deadline_camera_is_not_starved_under_sustained_overload(firm):
    """
    40 cameras with 15 ms deadlines at 60 FPS ask a T4 for about 4x the batch-1 work it can do.

    And more than it can do even fused, so Q always holds short-deadline kernels. A 150 ms camera
    beside them still gets every frame through: its slack shrinks while it waits, so least slack
    first eventually puts it ahead of the fresh short-deadline frames. Soft deadlines: everything
    is late under this overload, but its worst latency stays bounded; firm deadlines (lost frames
    dropped): it misses nothing.
    """
    cameras = [Camera(f'fast{i}', 60.0, 15.0) for i in range(40)] + [Camera('slow', 10.0, 150.0)]
    result = simulate(cameras, 's3dnn', estimate(NETWORK, 't4'), seconds=2.0, seed=3, firm=firm)
    fast, slow = result['per_camera'][:-1], result['per_camera'][-1]
    if not firm:
        assert sum(c['dropped'] + c['missed'] for c in fast) > \
            0.5 * sum(c['released'] for c in fast)
    assert slow['completed'] == slow['released'] > 0
    assert slow['max_ms'] < 1.5 * 150.0
    if firm:
        assert slow['missed'] == 0


def test_max_inflight_applies_to_kernel_level_policies_only():
    costs = uniform_costs()
    assert make_policy('s3dnn', costs, max_inflight=4).max_inflight == 4
    assert make_policy('edf', costs, max_inflight=3).max_inflight == 3
    assert make_policy('sequential', costs, max_inflight=4).max_inflight == 1
    assert make_policy('streams', costs, max_inflight=4).max_inflight is None
    with pytest.raises(ValueError, match='max_inflight=0'):
        make_policy('s3dnn', costs, max_inflight=0)


def started(policy, count, every_ns, pipeline_list, layer=0, deadline_ms=50.0):
    """
    Enqueue ``count`` frames that arrived, and became ready, ``every_ns`` apart.

    One frame per pipeline.
    """
    frames = []
    for k in range(count):
        frame = ready_frame(pipeline_list[k], layer, release_ms=k * every_ns / MS,
                            deadline_ms=None)
        frame.deadline_ns = frame.release_ns + round(deadline_ms * MS)
        policy.arrived(k * every_ns)
        policy.enqueue(frame, k * every_ns)
        frames.append(frame)
    return frames


def test_rule6_target_batch_is_one_at_low_load_and_grows_with_the_arrival_rate():
    """
    b* is the smallest batch that keeps the host's and the GPU's load under LOAD_TARGET.

    That is, rate x host time per frame and rate x GPU time per frame both stay under LOAD_TARGET.
    Host: 14 layers x (10 + 0 + 0) µs / b + 0; GPU: every layer 100 µs + 25 µs per extra frame, so
    gpu(b) = 14 x (100 + 25 (b - 1)) / b µs per frame.
    """
    from s3dnn_ros.engine.costs import HostCosts
    from s3dnn_ros.scheduler.policies import LOAD_TARGET, RATE_WINDOW_NS
    costs = uniform_costs(cost_us=100.0, tb=0.5)
    slow = make_policy('s3dnn', costs)
    slow.host = HostCosts(launch_us=10.0)
    started(slow, 10, 20 * MS, pipelines(10))  # 50 frames/s: 50 x 1.4 ms = 0.07 of the GPU
    assert slow.target_batch(200 * MS) == 1
    fast = make_policy('s3dnn', costs)
    fast.host = HostCosts(launch_us=10.0)
    count = 200
    started(fast, count, RATE_WINDOW_NS // count, pipelines(count))  # 1000 frames/s in the window
    rate = fast.arrival_rate(RATE_WINDOW_NS - 1) / 1e9
    expected = next(b for b in range(1, 17)
                    if rate * max(14 * 10_000 / b, 14 * (100_000 + 25_000 * (b - 1)) / b)
                    <= LOAD_TARGET)
    assert expected > 1 and fast.target_batch(RATE_WINDOW_NS - 1) == expected


def test_rule6_target_batch_follows_host_costs_replaced_while_it_runs():
    """A worker replaces ``host`` with what it measured: b* from then on is the new host's."""
    from s3dnn_ros.engine.costs import HostCosts
    from s3dnn_ros.scheduler.policies import RATE_WINDOW_NS, TARGET_REFRESH_NS
    costs = uniform_costs(cost_us=100.0, tb=0.5)
    count, later = 200, RATE_WINDOW_NS + TARGET_REFRESH_NS
    running, fresh = (make_policy('s3dnn', costs, max_batch=32) for _ in range(2))
    for policy in (running, fresh):
        started(policy, count, RATE_WINDOW_NS // count, pipelines(count))
    running.host = HostCosts(launch_us=1.0)
    first = running.target_batch(RATE_WINDOW_NS - 1)
    running.host = fresh.host = HostCosts(launch_us=1000.0)  # a slower host measured: fuse more
    assert running.target_batch(later) == fresh.target_batch(later) > first


def test_rule6_a_scheduler_sharing_its_gpu_keeps_its_own_gpu_load_under_its_share():
    """
    With gpu_share s, b* keeps rate x GPU time per frame under LOAD_TARGET x s.

    Two schedulers on one GPU each see half the cameras: each must leave the GPU half as busy as a
    lone one would, so it fuses more. Costs as in the test above (GPU-bound: the host costs 1 µs
    per launch).
    """
    from s3dnn_ros.engine.costs import HostCosts
    from s3dnn_ros.scheduler.policies import LOAD_TARGET, RATE_WINDOW_NS
    costs = uniform_costs(cost_us=100.0, tb=0.5)
    chosen = {}
    for share in (1.0, 0.5):
        policy = make_policy('s3dnn', costs, max_batch=32)
        policy.host = HostCosts(launch_us=1.0)
        policy.gpu_share = share
        count = 100
        started(policy, count, RATE_WINDOW_NS // count, pipelines(count))  # 500 frames/s
        rate = policy.arrival_rate(RATE_WINDOW_NS - 1) / 1e9
        expected = next(b for b in range(1, 33)
                        if rate * 14 * (100_000 + 25_000 * (b - 1)) / b <= LOAD_TARGET * share)
        chosen[share] = policy.target_batch(RATE_WINDOW_NS - 1)
        assert chosen[share] == expected
    assert chosen[0.5] > chosen[1.0] > 1


def test_rule6_target_batch_never_exceeds_the_number_of_cameras():
    """
    Check that b* is capped by the cameras feeding the policy (set by the dispatcher).

    One camera at 1000 frames/s on a slow host wants b* = max_batch, but one camera has one frame
    in the network at a time, so b* is 1 (nothing is held); three cameras: 3.
    """
    from s3dnn_ros.engine.costs import HostCosts
    from s3dnn_ros.scheduler.policies import RATE_WINDOW_NS
    costs = uniform_costs(cost_us=10.0, tb=0.01, fused_growth=1.0)
    count = 200
    for cameras, expected in ((None, 16), (1, 1), (3, 3)):
        policy = make_policy('s3dnn', costs, max_batch=16)
        policy.host = HostCosts(launch_us=5000.0)
        policy.pipelines = cameras
        started(policy, count, RATE_WINDOW_NS // count, pipelines(count), deadline_ms=1000.0)
        assert policy.target_batch(RATE_WINDOW_NS - 1) == expected


def test_rule2_fuses_at_no_gpu_gain_up_to_the_target_batch_when_load_is_high():
    """
    A launch costing the GPU what its frames cost alone takes more frames only below b*.

    Here every batch costs that: b frames cost b x 10 µs. Each frame it takes while it is below b*
    then saves a launch of host time. At low load (b* = 1) such frames are not fused.
    """
    from s3dnn_ros.engine.costs import HostCosts
    from s3dnn_ros.scheduler.policies import RATE_WINDOW_NS
    costs = uniform_costs(cost_us=10.0, tb=0.01, fused_growth=1.0)  # the GPU stays lightly loaded
    busy = make_policy('s3dnn', costs, max_batch=16)
    # a slow host: 800 frames/s need b >= 7 to keep it half idle
    busy.host = HostCosts(launch_us=300.0)
    count = 160
    started(busy, count, RATE_WINDOW_NS // count, pipelines(count), deadline_ms=1000.0)
    now = RATE_WINDOW_NS
    while len(busy):
        busy.dequeue(now, [])
    target = busy.target_batch(now)
    assert 1 < target < 16
    waiting = [ready_frame(p, 4, deadline_ms=1000.0) for p in pipelines(target + 3)]
    for frame in waiting:
        busy.enqueue(frame, now)
    fused = [launch.batch for launch in busy.dequeue(now, []).launches if launch.layer == 4]
    assert fused[0] == target  # no GPU gain: fused up to b*, not to max_batch
    idle = make_policy('s3dnn', costs, max_batch=16)
    for frame in waiting[:6]:
        idle.enqueue(frame, 0)
    assert idle.target_batch(0) == 1
    assert [launch.batch for launch in idle.dequeue(0, []).launches if launch.layer == 4] == \
        [1] * 6


def test_rule2_judges_the_whole_launch_so_one_noisy_cost_entry_does_not_cap_the_batch():
    """
    Batch 5 measured a few µs high.

    Adding the 5th frame costs more than that frame alone, but the launch of 5 still costs far less
    than 5 frames alone, so fusion goes on to max_batch.
    """
    from s3dnn_ros.engine.costs import CostTable
    from scheduling_helpers import NETWORK
    entries = {layer.name: {b: (30.0 + 22.0 * (b - 1) + (12.0 if b == 5 else 0.0), 0.01 * b)
                            for b in range(1, 17)} for layer in NETWORK.kernel_layers}
    costs = CostTable(NETWORK, entries, 'test gpu', 'test')
    assert costs.cost_ns(0, 5) - costs.cost_ns(0, 4) > costs.cost_ns(0, 1)
    policy = make_policy('s3dnn', costs, max_batch=8)
    for p in pipelines(10):
        policy.enqueue(ready_frame(p, 3, deadline_ms=1000.0), 0)
    assert [launch.batch for launch in policy.dequeue(0, []).launches if launch.layer == 3] == \
        [8, 2]


def test_rule2_grows_past_the_kernel_batch_only_below_the_target_batch():
    """
    Past the cost table's largest measured batch (8 here) a launch is several kernels.

    They cost what separate launches cost, so at low load (b* = 1) 20 ready frames become launches
    of 8, 8 and 4; when b* is max_batch (a host that needs every frame fused) they become one
    launch of 20.
    """
    from s3dnn_ros.engine.costs import HostCosts
    from s3dnn_ros.scheduler.policies import RATE_WINDOW_NS
    costs = uniform_costs(cost_us=10.0, tb=0.01, fused_growth=0.25, batches=8)
    assert costs.kernel_batch(3) == 8 and costs.cost_ns(3, 9) < 9 * costs.cost_ns(3, 1)
    idle = make_policy('s3dnn', costs, max_batch=32)
    for p in pipelines(20):
        idle.enqueue(ready_frame(p, 3, deadline_ms=1000.0), 0)
    assert idle.target_batch(0) == 1
    assert [launch.batch for launch in idle.dequeue(0, []).launches if launch.layer == 3] == \
        [8, 8, 4]
    busy = make_policy('s3dnn', costs, max_batch=32)
    busy.host = HostCosts(launch_us=5000.0)  # no batch keeps this host half idle: b* = max_batch
    count = 160
    started(busy, count, RATE_WINDOW_NS // count, pipelines(count), deadline_ms=1000.0)
    now = RATE_WINDOW_NS
    while len(busy):
        busy.dequeue(now, [])
    assert busy.target_batch(now) == 32
    for p in pipelines(20):
        busy.enqueue(ready_frame(p, 3, deadline_ms=1000.0), now)
    assert [launch.batch for launch in busy.dequeue(now, []).launches if launch.layer == 3] == [20]


def test_rule6_first_layers_are_held_until_the_target_batch_is_ready_or_their_wait_ends():
    """
    Fewer ready first layers than b*: none heads or joins a group.

    hold_until_ns is when the oldest has waited b*/rate; at that time it goes with whatever joined
    it.
    """
    from s3dnn_ros.scheduler.policies import RATE_WINDOW_NS
    costs = uniform_costs(cost_us=100.0, tb=0.1)
    # 400 frames: 25 whole batches, none left held
    policy = make_policy('s3dnn', costs, max_batch=16)
    count = 400
    started(policy, count, RATE_WINDOW_NS // count, pipelines(count), deadline_ms=1000.0)
    now = RATE_WINDOW_NS
    while len(policy):  # take everything started so far: one fused round after another
        policy.dequeue(now, [])
    batch = policy.target_batch(now)
    assert batch > 1
    (late_p,) = pipelines(1, deadline_ms=1000.0)
    late = ready_frame(late_p, 0, release_ms=now / MS)
    late.deadline_ns = now + 1000 * MS
    policy.enqueue(late, now)
    rate = policy.arrival_rate(now)
    group = policy.dequeue(now, [])
    assert group.launches == [] and len(policy) == 1
    assert policy.hold_until_ns == now + round(batch * 1e9 / rate)
    group = policy.dequeue(policy.hold_until_ns, [])
    assert [(launch.layer, launch.frames) for launch in group.launches][:1] == [(0, [late])]
    assert policy.hold_until_ns is None


def loaded_s3dnn(costs, count=400):
    """
    Return an s3dnn policy that took ``count`` frames over RATE_WINDOW_NS as batches of b* > 1.

    And the time (the end of the window).
    """
    from s3dnn_ros.scheduler.policies import RATE_WINDOW_NS
    policy = make_policy('s3dnn', costs, max_batch=16)
    started(policy, count, RATE_WINDOW_NS // count, pipelines(count), deadline_ms=1000.0)
    now = RATE_WINDOW_NS
    while len(policy):
        policy.dequeue(now, [])
    assert policy.target_batch(now) > 1
    return policy, now


def test_rule6_a_held_frame_keeps_half_the_slack_it_had_when_it_became_ready():
    """
    The reserve ends a hold early: the frame keeps HOLD_RESERVE of its batch-1 slack at ready.

    A 4 ms frame ready at its release (1.4 ms of network: 2.6 ms of slack) is held 1.3 ms; one
    that became ready 1 ms after its release (behind its camera's previous frame) is held half of
    the 1.6 ms it has left: it is still fused, not let go at once.
    """
    costs = uniform_costs(cost_us=100.0, tb=0.1)
    remaining = costs.remaining_ns[0]  # 1.4 ms
    for waited_ms in (0.0, 1.0):
        policy, now = loaded_s3dnn(costs)
        (tight_p,) = pipelines(1, deadline_ms=4.0)
        tight = ready_frame(tight_p, 0, release_ms=now / MS - waited_ms)
        tight.deadline_ns = tight.release_ns + 4 * MS
        policy.enqueue(tight, now)
        assert policy.dequeue(now, []).launches == []
        slack = tight.deadline_ns - now - remaining
        assert policy.hold_until_ns == now + round(0.5 * slack)
        assert policy.dequeue(policy.hold_until_ns, []).launches[0].frames == [tight]
        assert policy.first_layer_launches['reserve'] == 1


def test_rule6_a_frame_ready_too_late_for_its_deadline_is_held_for_the_timer():
    """
    A frame that became ready with no slack left has nothing to keep: it waits b*/r for others.

    Letting such frames go at once is what would shrink every launch of a scheduler that has
    fallen behind to the few frames each completion frees.
    """
    costs = uniform_costs(cost_us=100.0, tb=0.1)
    policy, now = loaded_s3dnn(costs)
    batch = policy.target_batch(now)
    (late_p,) = pipelines(1, deadline_ms=50.0)
    late = ready_frame(late_p, 0, release_ms=now / MS - 49.0)  # 1 ms left, 1.4 ms of network
    late.deadline_ns = late.release_ns + 50 * MS
    policy.enqueue(late, now)
    assert policy.dequeue(now, []).launches == []
    assert policy.hold_until_ns == now + round(batch * 1e9 / policy.arrival_rate(now))
    assert policy.dequeue(policy.hold_until_ns, []).launches[0].frames == [late]
    assert policy.first_layer_launches['timer'] == 1


def test_rule6_first_layer_launches_are_counted_by_what_let_them_go_and_by_size():
    """
    b* ready (target), the b*/r timer, the slack reserve; sizes as launched.

    400 frames go as whole batches of b*; a lone relaxed frame is held until its timer; a lone
    tight one until its reserve.
    """
    from s3dnn_ros.scheduler.policies import RATE_WINDOW_NS, RELEASE_CAUSES
    costs = uniform_costs(cost_us=100.0, tb=0.1)
    policy = make_policy('s3dnn', costs, max_batch=16)
    assert policy.first_layer_launches == dict.fromkeys(RELEASE_CAUSES, 0)
    count = 400
    started(policy, count, RATE_WINDOW_NS // count, pipelines(count), deadline_ms=1000.0)
    now = RATE_WINDOW_NS
    while len(policy):
        policy.dequeue(now, [])
    batch = policy.target_batch(now)
    assert policy.first_layer_launches['target'] == count // batch
    assert policy.first_layer_batches == {batch: count // batch}
    (relaxed_p, tight_p) = pipelines(2, deadline_ms=1000.0)
    relaxed = ready_frame(relaxed_p, 0, release_ms=now / MS)
    relaxed.deadline_ns = now + 1000 * MS
    policy.enqueue(relaxed, now)
    policy.dequeue(now, [])
    policy.dequeue(policy.hold_until_ns, [])
    tight = ready_frame(tight_p, 0, release_ms=now / MS)
    tight.deadline_ns = now + 4 * MS
    policy.enqueue(tight, now)
    policy.dequeue(now, [])
    policy.dequeue(policy.hold_until_ns, [])
    assert policy.first_layer_launches == {'target': count // batch, 'timer': 1, 'reserve': 1,
                                           'no rate': 0}
    assert policy.first_layer_batches == {batch: count // batch, 1: 2}
    fifo = make_policy('fifo', costs)  # no fusion: nothing held, nothing counted
    (p,) = pipelines(1)
    fifo.enqueue(ready_frame(p, 0), 0)
    assert [launch.layer for launch in fifo.dequeue(0, []).launches] == [0]
    assert sum(fifo.first_layer_launches.values()) == 0 and not fifo.first_layer_batches


def test_rule7_firm_mode_sheds_before_the_first_layer_when_frames_take_too_long_in_the_network():
    """
    Firm: the first layer is dropped when now + the smoothed network time exceeds the deadline.

    The smoothed network time is mean + 2 mean deviations of first launch -> result; the frame is
    dropped though it would make it alone. While frames are shed and none reports, the estimate
    decays by e every SHED_DECAY_NS (by time, however many are shed), so the shedding stops once
    the load that caused it is gone.
    """
    from s3dnn_ros.scheduler.policies import SHED_DECAY_NS
    costs = uniform_costs(cost_us=100.0, tb=1.0)  # 1.4 ms per frame alone
    policy = make_policy('s3dnn', costs, firm=True)
    (p,) = pipelines(1)
    for _ in range(40):  # frames have been taking 20 ms from their first launch to their result
        frame = ready_frame(p, 0)
        frame.started_ns = 0
        policy.finished(frame, 20 * MS)
    estimate = policy.network_time_ns()
    assert 19 * MS < estimate < 21 * MS
    half = 20 * MS + SHED_DECAY_NS // 2  # half a decay time after the last report
    for k in range(3):  # 10 ms left: alone each would make it
        frame = ready_frame(p, 0, release_ms=half / MS, deadline_ms=None)
        frame.deadline_ns = half + 10 * MS
        policy.enqueue(frame, half)
        group = policy.dequeue(half, [])
        assert group.dropped == [frame] and group.launches == []
        # decayed once for the time passed, not once per frame shed
        assert policy.network_time_ns() == pytest.approx(estimate * math.exp(-0.5))
    soft = make_policy('s3dnn', costs)
    soft.enqueue(ready_frame(p, 0, deadline_ms=10.0), 0)
    assert soft.dequeue(0, []).dropped == []  # soft deadlines: nothing is shed


def test_rule7_a_frame_lost_half_way_lengthens_the_network_time_estimate():
    """
    Firm: a frame found lost at a later layer counts as a network time of at least its time so far.

    That is, now - its first launch + its remaining batch-1 cost, exactly as a frame finishing
    with that network time would. Frames have been finishing in 2 ms; one launched 30 ms ago and
    lost at layer 5 lengthens the estimate, so the next first layers are shed sooner. Soft
    deadlines: nothing is lost, nothing counted.
    """
    costs = uniform_costs(cost_us=100.0, tb=1.0)
    lost_one, finished_one = (make_policy('s3dnn', costs, firm=True) for _ in range(2))
    (p,) = pipelines(1)
    for policy in (lost_one, finished_one):
        for _ in range(40):
            frame = ready_frame(p, 0)
            frame.started_ns = 0
            policy.finished(frame, 2 * MS)
    before = lost_one.network_time_ns()
    late = ready_frame(p, 5, deadline_ms=30.0)
    late.started_ns = 0
    assert lost_one.lost(late, 5, 30 * MS)
    same = ready_frame(p, NUM_LAYERS)
    same.started_ns = 0
    finished_one.finished(same, 30 * MS + costs.remaining_ns[5])
    assert lost_one.network_time_ns() == finished_one.network_time_ns() > before + 5 * MS
    soft = make_policy('s3dnn', costs)
    assert not soft.lost(late, 5, 30 * MS) and soft.network_time_ns() == 0


# ------------------------------------------------------------------------------- boundaries
def test_rule3_a_kernel_of_tb_ratio_exactly_one_does_not_join_a_group():
    """Grouping takes tasks with tbRatio < 1 only: exactly 1 fills the GPU alone."""
    costs = uniform_costs(tb={i: (1.0 if i == 2 else 0.3) for i in range(NUM_LAYERS)})
    policy = make_policy('s3dnn', costs)
    head_p, full_p = pipelines(2)
    head = ready_frame(head_p, 1, deadline_ms=5.0)
    full = ready_frame(full_p, 2, deadline_ms=6.0)
    policy.enqueue(head, 0)
    policy.enqueue(full, 0)
    group = policy.dequeue(0, [])
    assert [launch.frames[0] for launch in group.launches if not launch.chained] == [head]
    assert [task.frame for task in policy.queued()] == [full]


def test_rule4_a_successor_that_fits_the_room_exactly_is_reserved():
    """G's tbRatio 0.6 leaves room 0.4: a successor of exactly 0.4 is chained."""
    # a frame of a layer filling the GPU stays in Q (rule 3 takes none such): rule 4d stays out
    costs = uniform_costs(tb={i: {4: 0.4, 7: 1.0}.get(i, 0.6) for i in range(NUM_LAYERS)})
    policy = make_policy('s3dnn', costs)
    cam, other = pipelines(2)
    frame = ready_frame(cam, 3)
    policy.enqueue(frame, 0)
    policy.enqueue(ready_frame(other, 7, deadline_ms=20.0), 0)
    group = policy.dequeue(0, [])
    assert [(launch.layer, launch.chained) for launch in group.launches] == [(3, False), (4, True)]


def test_firm_mode_keeps_a_frame_that_would_finish_exactly_at_its_deadline():
    """Lost means now + remaining cost > deadline: exactly at the deadline is still on time."""
    costs = uniform_costs(cost_us=100.0, tb=0.2)
    policy = make_policy('s3dnn', costs, firm=True)
    (pipeline,) = pipelines(1)
    frame = ready_frame(pipeline, 0)
    frame.deadline_ns = costs.remaining_ns[0]
    assert policy.lost(frame, 0, 0) is False
    assert policy.lost(frame, 0, 1) is True


def test_a_frame_finishing_exactly_at_its_deadline_is_not_missed():
    (pipeline,) = pipelines(1)
    frame = ready_frame(pipeline, 0, deadline_ms=5.0)
    frame.finish_ns = frame.deadline_ns
    assert frame.missed is False
    frame.finish_ns += 1
    assert frame.missed is True


def test_rule6_rate_counts_the_arrivals_of_the_last_window_only():
    """
    The rate r counts the frames that arrived in the last RATE_WINDOW_NS, however many came before.

    20,000 frames, one every 50 µs (20,000 a second, 4000 in a window), some in pairs: at every
    thousandth the rate counts exactly those of the window (the forgotten ones are dropped from
    the policy's list as it goes).
    """
    from s3dnn_ros.scheduler.policies import RATE_WINDOW_NS
    policy = make_policy('s3dnn', uniform_costs())
    times = []
    for k in range(20_000):
        now = k * 50_000
        count = 2 if k % 7 == 0 else 1
        policy.arrived(now, count)
        times += [now] * count
        if k % 1000 == 999:
            window = sum(1 for t in times if t > now - RATE_WINDOW_NS)
            assert policy.arrival_rate(now) == window * 1e9 / RATE_WINDOW_NS
    assert policy.arrival_rate(now + RATE_WINDOW_NS) == 0.0
