"""Engines run one layer for a fused batch of frames: the numpy reference, or CUDA (engine/cuda.py)."""
