"""Skipping GPU test modules where there is no GPU, and hiding pycuda where there is one."""
import builtins

import pytest


def require_cuda_device() -> None:
    """Skip the calling test module (with the reason) without pycuda or a CUDA device."""
    try:
        import pycuda.driver as drv

        drv.init()
        if drv.Device.count() < 1:
            raise RuntimeError('no CUDA device found')
    except Exception as error:  # ImportError, or pycuda's errors when there is no driver or device
        pytest.skip(f'needs pycuda and a CUDA device: {error}', allow_module_level=True)


def hide_pycuda(monkeypatch) -> None:
    """Make ``import pycuda`` fail for the rest of the test, as on a machine without it."""
    real_import = builtins.__import__

    def without_pycuda(name, *args, **kwargs):
        if name == 'pycuda' or name.startswith('pycuda.'):
            raise ImportError(f'No module named {name!r}')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', without_pycuda)
