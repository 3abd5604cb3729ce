"""
Engines run one layer for a fused batch of frames.

Either the numpy reference or CUDA (engine/cuda/).
"""
