"""Parameter validation of the perception node (pure Python: the same rules the node applies)."""
import pytest

from s3dnn_ros.ros.config import ConfigError, parameters_from_yaml, read_labels, validate

REPO_CONFIG = (__import__('pathlib').Path(__file__).resolve().parents[1] / 'config'
               / 'perception.yaml')


def test_defaults_give_one_camera_on_its_default_topic():
    config = validate({})
    assert [c.name for c in config.cameras] == ['camera']
    camera = config.cameras[0]
    assert (camera.topic, camera.deadline_ms, camera.queue_depth) == ('camera/image_raw', 100.0, 1)
    assert (config.policy, config.engine, config.qos_reliability, config.top_k) == \
        ('s3dnn', 'auto', 'best_effort', 5)


def test_the_shipped_config_is_valid():
    config = validate(parameters_from_yaml(str(REPO_CONFIG)))
    assert [c.name for c in config.cameras] == ['front', 'left', 'right', 'rear']
    assert config.cameras[3].deadline_ms == 200.0 and config.cameras[0].topic == 'front/image_raw'


@pytest.mark.parametrize('values, message', [
    ({'policy': 'rr'},
     "parameter policy='rr': allowed one of s3dnn, streams, sequential, fifo, edf"),
    ({'engine': 1}, 'parameter engine=1: allowed one of auto, cuda, reference'),
    ({'device_id': 64}, 'parameter device_id=64: allowed an integer 0..63'),
    ({'device_id': 1.5}, 'parameter device_id=1.5: allowed an integer 0..63'),
    ({'top_k': 1001}, 'parameter top_k=1001: allowed an integer 1..1000'),
    ({'max_batch': 0}, 'parameter max_batch=0: allowed an integer 1..64'),
    ({'firm_deadlines': 1}, 'parameter firm_deadlines=1: allowed true or false'),
    ({'qos.depth': 0}, 'parameter qos.depth=0: allowed an integer 1..1000'),
    ({'diagnostics_period_s': -1},
     'parameter diagnostics_period_s=-1: allowed a number >= 0.1 and <= 3600'),
    ({'miss_warn_ratio': 1.5}, 'parameter miss_warn_ratio=1.5: allowed a number >= 0 and <= 1'),
    ({'miss_warn_ratio': 0.5, 'miss_error_ratio': 0.3},
     'parameter miss_error_ratio=0.3: allowed a ratio >= miss_warn_ratio (0.5)'),
    ({'weights': 3}, 'parameter weights=3: allowed a string'),
    ({'cameras': []}, 'parameter cameras=[]: allowed a non-empty list of camera names'),
    ({'cameras': ['front', '2nd']},
     'allowed names of letters, digits and _ starting with a letter, '
     "at most 64 characters ('2nd' is not)"),
    ({'cameras': ['a', 'b'], 'a.topic': '/x', 'b.topic': '/x'},
     "parameter b.topic='/x': allowed a topic no other camera uses (a does)"),
    ({'cameras': ['a'], 'a.deadline_ms': 0},
     'parameter a.deadline_ms=0: allowed a number >= 0.001'),
    ({'cameras': ['a'], 'a.deadline_ms': 1e-7},
     'parameter a.deadline_ms=1e-07: allowed a number >= 0.001'),
    ({'cameras': ['a'], 'a.deadline_ms': float('nan')},
     'parameter a.deadline_ms=nan: allowed a number >= 0.001'),
    ({'cameras': ['a'], 'a.deadline_ms': True},
     'parameter a.deadline_ms=True: allowed a number >= 0.001'),
    ({'cameras': ['x' * 65]}, f"at most 64 characters ('{'x' * 65}' is not)"),
    ({'cameras': ['front\n']},
     "starting with a letter, at most 64 characters ('front\\n' is not)"),
    ({'cameras': ['a'], 'a.topic': '/a' * 101},
     'allowed a ROS topic name like /front/image_raw, at most 200'),
    ({'cameras': ['a'], 'a.topic': '/a/image_raw\n'},
     "parameter a.topic='/a/image_raw\\n': allowed a ROS topic"),
    ({'cameras': ['a'], 'a.fps_hint': -1.0}, 'parameter a.fps_hint=-1.0: allowed a number >= 0'),
    ({'cameras': ['a'], 'a.queue_depth': 2.0},
     'parameter a.queue_depth=2.0: allowed an integer 1..1000'),
    ({'cameras': ['a'], 'a.topic': 'two words'},
     "parameter a.topic='two words': allowed a ROS topic name"),
])
def test_invalid_values_name_the_parameter_value_and_what_is_allowed(values, message):
    with pytest.raises(ConfigError) as error:
        validate(values)
    assert message in str(error.value)


def test_params_file_sections_and_nesting(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    cameras: [a]\n    a:\n'
                    '      deadline_ms: 5.0\n    qos:\n      depth: 3\n')
    assert parameters_from_yaml(str(path)) == {'cameras': ['a'], 'a.deadline_ms': 5.0,
                                               'qos.depth': 3}


@pytest.mark.parametrize('text, message', [
    ('s3dnn_perception:\n  ros__parameters: [\n', 'not valid YAML at line 3'),
    ('- just\n- a list\n', 'not a mapping of node sections'),
    (None, 'cannot read it (No such file or directory)'),
    (b'cameras: [caf\xe9]\n', 'not UTF-8 text (byte 13)'),
])
def test_unreadable_params_file_is_a_config_error_naming_it(tmp_path, text, message):
    path = tmp_path / 'p.yaml'
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as error:
        parameters_from_yaml(str(path))
    assert str(error.value).startswith(f'parameters file {str(path)!r}: {message}')
    assert 'allowed a ROS 2 params file' in str(error.value)


def test_max_inflight_and_cost_table():
    config = validate({'max_inflight': 4, 'cost_table': '/tmp/costs.json'})
    assert config.max_inflight == 4 and config.cost_table == '/tmp/costs.json'
    assert validate({}).max_inflight == 2 and validate({}).cost_table == ''
    with pytest.raises(ConfigError, match=r'parameter max_inflight=0: allowed an integer 1\.\.16'):
        validate({'max_inflight': 0})


def test_labels_file_that_is_not_utf8_is_a_config_error_naming_it(tmp_path):
    path = tmp_path / 'labels.txt'
    path.write_bytes(b'tench\ngoldfish\ngreat white shark\xff\n')
    with pytest.raises(ConfigError) as error:
        read_labels(str(path), 3)
    assert str(error.value).startswith(f'parameter labels={str(path)!r}: not UTF-8 text (byte 32)')


@pytest.mark.parametrize('section, found', [
    ('s3dnn_perception', True), ('/s3dnn_perception', True), ('/**', True),
    ('/**/s3dnn_perception', True), ('/*/s3dnn_perception', False),
    ('/robot1/s3dnn_perception', False), ('other_node', False)])
def test_params_file_sections_match_the_node_name_as_ros_does(tmp_path, section, found):
    path = tmp_path / 'p.yaml'
    path.write_text(f'{section}:\n  ros__parameters:\n    policy: streams\n')
    assert parameters_from_yaml(str(path)) == ({'policy': 'streams'} if found else {})


def test_params_file_sections_may_be_nested_under_their_namespace(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text('/robot1:\n  s3dnn_perception:\n    ros__parameters:\n      policy: streams\n'
                    '/**:\n  ros__parameters:\n    policy: fifo\n')
    assert parameters_from_yaml(str(path), '/robot1/s3dnn_perception') == {'policy': 'streams'}
    # /s3dnn_perception: only /** matches
    assert parameters_from_yaml(str(path)) == {'policy': 'fifo'}


def test_labels_imagenet_are_the_shipped_imagenet_class_names():
    labels = read_labels('imagenet', 1000)
    assert len(labels) == len(set(labels)) == 1000
    assert (labels[0], labels[1], labels[999]) == ('tench', 'goldfish', 'toilet tissue')
    with pytest.raises(ConfigError) as error:
        read_labels('imagenet', 10)  # a network with other classes
    assert str(error.value) == ("parameter labels='imagenet': has 1000 lines; "
                                'allowed a text file with 10 lines, one label per class')
