from glob import glob

from setuptools import find_packages, setup

package_name = 's3dnn_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={'s3dnn_ros.model': ['imagenet_classes.txt']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'LICENSE', 'CHANGELOG.rst']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/kernels', glob('kernels/*.cu') + glob('kernels/*.cuh')),
    ],
    python_requires='>=3.10',
    install_requires=['setuptools', 'numpy', 'PyYAML'],
    extras_require={
        'test': ['pytest'],
        'gpu': ['pycuda'],
        'torch': ['torch'],
        'bag': ['rosbags'],
    },
    zip_safe=True,
    maintainer='s3dnn_ros maintainers',
    maintainer_email='maintainers@s3dnn-ros.org',
    description='S3DNN real-time GPU DNN scheduling for ROS 2 perception',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            's3dnn-sim = s3dnn_ros.programs:sim',
            's3dnn-convert-weights = s3dnn_ros.programs:convert_weights',
            's3dnn-perception = s3dnn_ros.programs:perception',
            's3dnn-bench = s3dnn_ros.programs:bench',
            's3dnn-make-bag = s3dnn_ros.programs:make_bag',
            's3dnn-replay = s3dnn_ros.programs:replay',
            's3dnn-evaluate = s3dnn_ros.programs:evaluate',
            'perception_node = s3dnn_ros.programs:perception_node',
            'perception_lifecycle_node = s3dnn_ros.programs:perception_lifecycle_node',
            'camera_sim = s3dnn_ros.programs:camera_sim',
        ],
    },
)
