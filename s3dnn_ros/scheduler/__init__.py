"""Pure-Python scheduling: pipelines and tasks, policies, the dispatcher and the GPU simulator."""
