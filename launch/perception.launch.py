"""
Launch the s3dnn_perception node with a parameters file.

With demo:=true also one camera_sim per configured camera, publishing on that camera's topic.

    ros2 launch s3dnn_ros perception.launch.py [config:=FILE] [policy:=s3dnn] [engine:=auto]
        [demo:=true] [namespace:=/robot1] [use_sim_time:=true] [log_level:=debug]

A ``config`` that is not a file stops the launch before anything starts. The node is required: when
it exits, everything stops, and when it exits with a non-zero status (a parameter it refuses, a
worker that cannot start) ``ros2 launch`` ends with status 1 instead of 0 (the launch system keeps
no child's exit status, so the node's exit handler raises, which makes ``LaunchService.run`` return
1). A node stopped by the launch itself (Ctrl-C) is not a failure.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from s3dnn_ros.ros.config import default_topic, NODE_NAME, parameters_from_yaml

DEFAULT_CONFIG = os.path.join(get_package_share_directory('s3dnn_ros'), 'config',
                              'perception.yaml')
TRUE = ('true', '1', 'yes')
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')


class LaunchArgumentError(ValueError):
    """A launch argument the launch file cannot use (the launch stops before starting anything)."""


def _on_node_exit(event, context):
    if event.returncode != 0 and not context.is_shutdown:
        raise RuntimeError(f'{NODE_NAME} exited with status {event.returncode}; '
                           'see its output above')
    return [Shutdown(reason=f'{NODE_NAME} exited')]


def _nodes(context):
    value = {name: LaunchConfiguration(name).perform(context)
             for name in ('config', 'policy', 'engine', 'demo', 'namespace', 'use_sim_time',
                          'log_level')}
    config = value['config']
    if not os.path.isfile(config):
        raise LaunchArgumentError(f'launch argument config={config!r}: no such file; allowed: '
                                  'a parameters file of the node '
                                  f'(the package ships {DEFAULT_CONFIG})')
    if value['log_level'].lower() not in LOG_LEVELS:
        raise LaunchArgumentError(f'launch argument log_level={value["log_level"]!r}: '
                                  f'allowed {", ".join(LOG_LEVELS)}')
    common = {'namespace': value['namespace'], 'output': 'screen', 'emulate_tty': True,
              'ros_arguments': ['--log-level', value['log_level'].lower()]}
    sim_time = {'use_sim_time': value['use_sim_time'].lower() in TRUE}
    overrides = {name: value[name] for name in ('policy', 'engine') if value[name]}
    nodes = [Node(package='s3dnn_ros', executable='perception_node', name=NODE_NAME,
                  parameters=[config, {**overrides, **sim_time}], on_exit=_on_node_exit, **common)]
    if value['demo'].lower() in TRUE:
        params = parameters_from_yaml(config)
        for camera in params.get('cameras', ['camera']):
            nodes.append(Node(
                package='s3dnn_ros', executable='camera_sim', name=f'camera_sim_{camera}',
                parameters=[{'topic': params.get(f'{camera}.topic', default_topic(camera)),
                             'fps': float(params.get(f'{camera}.fps_hint') or 30.0),
                             'frame_id': camera, **sim_time}], **common))
    return nodes


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('config', default_value=DEFAULT_CONFIG,
                              description='parameters file of the perception node'),
        DeclareLaunchArgument('policy', default_value='',
                              description='override the policy: s3dnn, '
                                          'streams, sequential, fifo or edf'),
        DeclareLaunchArgument('engine', default_value='',
                              description='override the engine: auto, cuda, reference or timed'),
        DeclareLaunchArgument('demo', default_value='false',
                              description='true: also start one camera_sim per configured camera'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of every node; the default topics are '
                                          'relative and move with it'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='true: the nodes take time from '
                                          '/clock (a bag played with --clock)'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='debug, info, warn, error or fatal'),
        OpaqueFunction(function=_nodes),
    ])
