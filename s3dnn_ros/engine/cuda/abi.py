"""
The kernels' argument structs, mirrored as numpy dtypes, and the driver's copy attributes.

Each kernel takes one struct argument that starts with one input and one output address per
frame of the fused launch (``kernels/*.cu``); the sizes are pinned on both sides
(``static_assert`` there, :func:`_struct` here).
"""
from __future__ import annotations

import numpy as np

#: frames one kernel launch can take (S3DNN_MAX_FRAMES in kernels/common.cuh)
MAX_FRAMES = 32

_PTRS = (np.uint64, (MAX_FRAMES,))
#: CUmemcpyAttributes of cuda.h: source access order, source and destination location hints
#: (type, id), flags
COPY_ATTRIBUTES = np.dtype([('order', np.int32), ('src_hint', np.int32, (2,)),
                            ('dst_hint', np.int32, (2,)), ('flags', np.uint32)])
#: CU_MEMCPY_SRC_ACCESS_ORDER_STREAM: a batched copy reads its sources in stream order
COPY_ORDER_STREAM = 1


def _struct(fields, size: int) -> np.dtype:
    dtype = np.dtype(fields, align=True)
    if dtype.itemsize != size:
        raise AssertionError(f'argument struct is {dtype.itemsize} bytes, '
                             f'the kernel expects {size}')
    return dtype


PREPROCESS_ARGS = _struct([('image', *_PTRS), ('out', *_PTRS), ('meta', np.int32, (MAX_FRAMES, 4)),
                           ('mean', np.float32, (3,)), ('std', np.float32, (3,)),
                           ('size', np.int32)], 1056)
CONV_ARGS = _struct([('in', *_PTRS), ('out', *_PTRS), ('weight', np.uint64), ('bias', np.uint64),
                     ('ktab', np.uint64)]
                    + [(name, np.int32) for name in ('frames', 'channels', 'height', 'width', 'M',
                                                     'Mp', 'Kp', 'out_h', 'out_w', 'stride', 'pad',
                                                     'relu')], 584)
POOL_ARGS = _struct([('in', *_PTRS), ('out', *_PTRS)]
                    + [(name, np.int32) for name in ('channels', 'height', 'width', 'out_h',
                                                     'out_w', 'kernel', 'stride', 'frames')], 544)
LINEAR_ARGS = _struct([('in', *_PTRS), ('out', *_PTRS), ('weight', np.uint64), ('bias', np.uint64)]
                      + [(name, np.int32) for name in ('frames', 'in_features', 'out_features',
                                                       'relu')], 544)
SOFTMAX_ARGS = _struct([('in', *_PTRS), ('out', *_PTRS), ('classes', np.int32), ('k', np.int32)],
                       520)
