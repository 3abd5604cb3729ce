"""
The scheduler worker: one GPU's engine, policy and dispatcher in a process of its own.

``spec`` (what a worker is built from) and ``slots`` (frames in shared memory) -> ``core`` (the
loop, built from a spec) -> ``process`` (the worker process) and ``client`` (the node's side:
submit frames, receive outputs and statistics, restart). Nothing here imports rclpy; only the
engine imports pycuda.
"""
