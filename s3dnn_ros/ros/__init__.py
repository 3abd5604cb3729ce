"""
The thin rclpy adapter.

The perception node, the simulated camera, image and message conversion.
"""
