"""
sensor_msgs/Image -> numpy.

Zero-copy views for the supported encodings, padded rows, rejections.
"""
import numpy as np
import pytest

pytest.importorskip('sensor_msgs',
                    reason='needs the ROS 2 message wheels (make test installs them)')

from s3dnn_ros.ros.image_codec import array_to_image, FrameRejected, image_to_array  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


def message(array, encoding, pad=0):
    """Return an Image whose rows carry ``pad`` extra bytes."""
    height, width = array.shape[:2]
    channels = array.shape[2]
    rows = np.zeros((height, width * channels + pad), np.uint8)
    rows[:, :width * channels] = array.reshape(height, -1)
    return Image(height=height, width=width, encoding=encoding, step=width * channels + pad,
                 data=rows.tobytes())


@pytest.mark.parametrize('encoding, channels',
                         [('rgb8', 3), ('bgr8', 3), ('rgba8', 4), ('bgra8', 4), ('mono8', 1)])
@pytest.mark.parametrize('pad', [0, 5])
def test_supported_encodings_become_views_of_the_message_data(encoding, channels, pad):
    array = np.random.default_rng(0).integers(0, 256, (7, 9, channels), dtype=np.uint8)
    msg = message(array, encoding, pad)
    view, got_encoding = image_to_array(msg)
    assert got_encoding == encoding and view.shape == array.shape
    np.testing.assert_array_equal(view, array)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))  # no copy
    assert not view.flags.writeable


def test_array_to_image_round_trip():
    array = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    msg = Image()
    array_to_image(array, 'bgr8', msg)
    assert (msg.height, msg.width, msg.step, msg.encoding, msg.is_bigendian) == \
        (4, 6, 18, 'bgr8', 0)
    np.testing.assert_array_equal(image_to_array(msg)[0], array)


@pytest.mark.parametrize('msg, reason', [
    (Image(height=0, width=4, encoding='rgb8', step=12, data=b''), 'zero size (4x0)'),
    (Image(height=4, width=0, encoding='rgb8', step=0, data=b''), 'zero size (0x4)'),
    (Image(height=4, width=4, encoding='rgb8', step=8, data=bytes(48)),
     'step 8 < width x channels = 4 x 3 = 12 for rgb8'),
    (Image(height=4, width=4, encoding='rgba8', step=16, data=bytes(60)),
     'data has 60 bytes, step x height = 16 x 4 = 64'),
])
def test_malformed_frames_are_rejected_with_the_reason(msg, reason):
    with pytest.raises(FrameRejected) as error:
        image_to_array(msg)
    assert reason in str(error.value)


def test_other_encodings_need_cv_bridge_and_name_the_encoding():
    try:
        import cv_bridge  # noqa: F401
        pytest.skip('cv_bridge is importable here: '
                    'the conversion path is taken instead of rejection')
    except ImportError:
        pass
    msg = Image(height=2, width=2, encoding='16UC1', step=4, data=bytes(8))
    with pytest.raises(FrameRejected,
                       match=r"encoding '16UC1' is not supported "
                             r'without cv_bridge; supported: rgb8'):
        image_to_array(msg)
