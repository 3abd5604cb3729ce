from glob import glob
import importlib.util
import os
import shutil
import sys
import sysconfig

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

package_name = 's3dnn_ros'


class BuildExtensions(build_ext):
    """
    build_ext that dates every extension it was asked for now, rebuilt or found up to date.

    mypyc writes a module's C again only when it changed, so an edit that leaves the C as it was
    (a comment) leaves the extension older than its source, which the package refuses to import
    (s3dnn_ros/native.py). Up to date here means built from these sources.
    """

    def run(self):
        super().run()
        for extension in self.extensions:
            path = self.get_ext_fullpath(extension.name)
            if os.path.exists(path):
                os.utime(path)


def compiled_extensions():
    """
    Return mypyc's C extensions of the scheduler's per-frame path (s3dnn_ros/native.py).

    S3DNN_COMPILE: auto (default) compiles where mypyc and the Python headers are installed and
    says why not otherwise; 1 requires it; 0 builds the package interpreted.
    """
    mode = os.environ.get('S3DNN_COMPILE', 'auto')
    if mode not in ('auto', '0', '1'):
        sys.exit(f'S3DNN_COMPILE={mode!r}: allowed auto, 0, 1')
    if mode == '0':
        print('s3dnn_ros: S3DNN_COMPILE=0: the scheduler is built interpreted', file=sys.stderr)
        return []
    why = None
    compiler = (os.environ.get('CC') or sysconfig.get_config_var('CC') or 'cc').split()[0]
    if importlib.util.find_spec('mypyc') is None:
        why = 'mypyc is not installed (pip install mypy)'
    elif not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')):
        why = 'the Python headers (Python.h) are not installed'
    elif shutil.which(compiler) is None:
        why = f'no C compiler ({compiler}) is on PATH'
    if why:
        if mode == '1':
            sys.exit(f'S3DNN_COMPILE=1: {why}')
        print(f's3dnn_ros: {why}: the scheduler is built interpreted', file=sys.stderr)
        return []
    from mypyc.build import mypycify
    spec = importlib.util.spec_from_file_location('native', os.path.join(package_name,
                                                                         'native.py'))
    native = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(native)
    sources = [os.path.join(*name.split('.')) + '.py' for name in native.COMPILED]
    return mypycify(['--check-untyped-defs', '--follow-imports=silent',
                     '--ignore-missing-imports', *sources],
                    group_name=package_name + '.native', target_dir=os.path.join('build', 'mypyc'))


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
    ext_modules=compiled_extensions(),
    cmdclass={'build_ext': BuildExtensions},
    zip_safe=False,
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
