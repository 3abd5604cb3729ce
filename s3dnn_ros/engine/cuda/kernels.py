"""The kernel sources and their compilation, once per process and architecture."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import threading

from ..base import EngineError

KERNEL_FILES = ('preprocess.cu', 'conv2d.cu', 'pool.cu', 'linear.cu', 'softmax.cu', 'delay.cu',
                'graph_records.cu')


def kernel_dir() -> Path:
    """
    Return the folder of the .cu sources.

    That is ``<repo>/kernels`` beside the package, else the installed share.
    """
    source = Path(__file__).resolve().parents[3] / 'kernels'
    if (source / 'common.cuh').is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory('s3dnn_ros')) / 'kernels'
    except Exception:  # not importable, or the package is not installed in the ament index
        share = None
    if share is not None and (share / 'common.cuh').is_file():
        return share
    raise EngineError(f'CUDA kernel sources not found in {source} nor in share/s3dnn_ros/kernels')


_CUBINS: dict[tuple[str, str], bytes] = {}
_CUBINS_LOCK = threading.Lock()


def compiled_kernels(arch: str) -> dict[str, bytes]:
    """
    Compile every kernel file once per process.

    A cubin for a real ``arch`` ('sm_90'), PTX for a virtual one ('compute_75'), which the driver
    JIT-compiles for the device it is loaded on.
    """
    with _CUBINS_LOCK:
        missing = [name for name in KERNEL_FILES if (name, arch) not in _CUBINS]
        if missing:
            from pycuda.compiler import compile as nvcc_compile
            from pycuda.driver import CompileError
            directory = kernel_dir()

            ptx = arch.startswith('compute_')

            def build(name: str) -> bytes:
                image = nvcc_compile((directory / name).read_text(encoding='utf-8'),
                                     options=['-O3'], arch=arch, include_dirs=[str(directory)],
                                     no_extern_c=True, target='ptx' if ptx else 'cubin')
                # the driver reads PTX as a NUL-terminated string
                return image + b'\0' if ptx else image

            try:
                with ThreadPoolExecutor(len(missing)) as pool:
                    for name, cubin in zip(missing, pool.map(build, missing)):
                        _CUBINS[(name, arch)] = cubin
            except (CompileError, OSError) as error:
                raise EngineError('compiling the CUDA kernels '
                                  f'for {arch} failed: {error}') from error
        return {name: _CUBINS[(name, arch)] for name in KERNEL_FILES}
