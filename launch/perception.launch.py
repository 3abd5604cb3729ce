"""Launch the s3dnn_perception node with a parameters file; with demo:=true also one camera_sim per
configured camera, publishing on that camera's topic.

    ros2 launch s3dnn_ros perception.launch.py [config:=FILE] [policy:=s3dnn] [engine:=auto] [demo:=true]
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from s3dnn_ros.ros.config import NODE_NAME, default_topic, parameters_from_yaml


def _nodes(context):
    config = LaunchConfiguration('config').perform(context)
    overrides = {name: value for name in ('policy', 'engine')
                 if (value := LaunchConfiguration(name).perform(context))}
    nodes = [Node(package='s3dnn_ros', executable='perception_node', name=NODE_NAME,
                  parameters=[config, overrides], output='screen', emulate_tty=True,
                  on_exit=Shutdown(reason=f'{NODE_NAME} exited'))]
    if LaunchConfiguration('demo').perform(context).lower() in ('true', '1', 'yes'):
        params = parameters_from_yaml(config)
        for camera in params.get('cameras', ['camera']):
            nodes.append(Node(package='s3dnn_ros', executable='camera_sim', name=f'camera_sim_{camera}',
                              parameters=[{'topic': params.get(f'{camera}.topic', default_topic(camera)),
                                           'fps': float(params.get(f'{camera}.fps_hint') or 30.0),
                                           'frame_id': camera,
                                           'reliability': params.get('qos.reliability', 'best_effort')}],
                              output='screen', emulate_tty=True))
    return nodes


def generate_launch_description():
    default_config = os.path.join(get_package_share_directory('s3dnn_ros'), 'config', 'perception.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('config', default_value=default_config,
                              description='parameters file of the perception node'),
        DeclareLaunchArgument('policy', default_value='',
                              description='override the policy: s3dnn, streams, sequential, fifo or edf'),
        DeclareLaunchArgument('engine', default_value='', description='override the engine: auto, cuda or reference'),
        DeclareLaunchArgument('demo', default_value='false',
                              description='true: also start one camera_sim per configured camera'),
        OpaqueFunction(function=_nodes),
    ])
