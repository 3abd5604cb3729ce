"""
The whole perception node on the GPU: frames in over real topics, detections out.

The same classes and scores as the numpy reference engine; the measured cost table written once and
loaded after.
"""
from gpu_helpers import require_cuda_device
import numpy as np
import pytest

require_cuda_device()
pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels')

from ros_helpers import Driver, overrides, values  # noqa: E402
from s3dnn_ros.engine.costs import CostTable  # noqa: E402
from s3dnn_ros.engine.reference import logits  # noqa: E402
from s3dnn_ros.model import alexnet, init_weights  # noqa: E402
from s3dnn_ros.ros.image_codec import array_to_image  # noqa: E402
from s3dnn_ros.ros.perception_node import PerceptionNode  # noqa: E402
from s3dnn_ros.scheduler.placement import Slot  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

pytestmark = pytest.mark.gpu
CAMERAS = ['front', 'rear']


def check_detections(session, driver, cameras: list[str]) -> None:
    """Send 3 frames per camera; every detection is what the reference engine computes."""
    rng = np.random.default_rng()
    sent = {}
    for k in range(3):
        for i, name in enumerate(cameras):
            encoding = ('rgb8', 'bgr8')[i % 2]
            image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
            msg = Image()
            array_to_image(image, encoding, msg)
            driver.send(name, 100 + k, msg=msg)
            sent[(name, 100 + k)] = (image, encoding)
    assert session.spin_until(lambda: all(len(driver.detections[n]) == 3 for n in cameras), 60)
    network = alexnet()
    weights = init_weights(network, seed=0)  # what the node uses without a weights file
    for name in cameras:
        for detection in driver.detections[name]:
            image, encoding = sent[(name, detection['header']['stamp']['sec'])]
            expected = logits(network, weights, [(image, encoding)])[0].astype(np.float64)
            probabilities = np.exp(expected - expected.max())
            probabilities /= probabilities.sum()
            ids = [c['id'] for c in detection['classes']]
            scores = np.array([c['score'] for c in detection['classes']])
            # the reference's probability of each reported class is the reported score, and no
            # other class scores higher than the fifth (ties within float32 rounding aside)
            np.testing.assert_allclose(probabilities[ids], scores, rtol=1e-4)
            assert np.sort(probabilities)[-5] <= scores[-1] * (1 + 1e-4)


def test_gpu_node_detects_what_the_reference_engine_computes(session, tmp_path):
    cost_table = tmp_path / 'costs.json'
    params = {'cameras': CAMERAS, 'engine': 'cuda', 'cost_table': str(cost_table),
              'diagnostics_period_s': 0.25}
    for name in CAMERAS:
        params[f'{name}.queue_depth'] = 8
        params[f'{name}.deadline_ms'] = 1000.0
    node = session.add(PerceptionNode(context=session.context,
                                      parameter_overrides=overrides(params)))
    # calibrated at start, saved for next time
    assert node.engine_name == 'cuda' and cost_table.is_file()
    assert CostTable.load(cost_table, alexnet()).source == 'measured'
    driver = session.add(Driver(session.context, CAMERAS))
    assert session.spin_until(driver.connected)
    check_detections(session, driver, CAMERAS)
    assert session.spin_until(lambda: any(s.hardware_id == node.device_name
                                          for s in driver.statuses('s3dnn: scheduler')))
    scheduler = values(driver.statuses('s3dnn: scheduler')[-1])
    assert scheduler['engine'] == 'cuda' and int(scheduler['engine errors']) == 0
    assert float(scheduler['gpu busy fraction']) > 0

    saved = cost_table.read_text()
    again = PerceptionNode(context=session.context, parameter_overrides=overrides(params))
    try:  # the second node's worker loads the table instead of calibrating again
        assert again.workers[Slot(0)].info['costs'].endswith('(measured)') \
            and cost_table.read_text() == saved
    finally:
        again.destroy_node()


def test_two_workers_on_one_gpu_each_detect_what_the_reference_engine_computes(session, tmp_path):
    """Two CUDA workers on device 0 (workers_per_gpu 2), side by side: correct, not faster."""
    cameras = ['c0', 'c1', 'c2', 'c3']
    params = {'cameras': cameras, 'engine': 'cuda', 'workers_per_gpu': 2,
              'cost_table': str(tmp_path / 'costs.json'), 'diagnostics_period_s': 0.25}
    for name in cameras:
        params[f'{name}.queue_depth'] = 8
        params[f'{name}.deadline_ms'] = 1000.0
    node = session.add(PerceptionNode(context=session.context,
                                      parameter_overrides=overrides(params)))
    assert sorted(node.workers) == [Slot(0, 0), Slot(0, 1)]
    assert [c.name for c in node.workers[Slot(0, 1)].spec.cameras] == ['c1', 'c3']
    driver = session.add(Driver(session.context, cameras))
    assert session.spin_until(driver.connected)
    check_detections(session, driver, cameras)
    names = ['s3dnn: scheduler gpu0 worker0', 's3dnn: scheduler gpu0 worker1']
    assert session.spin_until(lambda: all(driver.statuses(n) for n in names), 10)
    for name in names:
        scheduler = values(driver.statuses(name)[-1])
        assert scheduler['engine'] == 'cuda' and int(scheduler['engine errors']) == 0
