"""The thin rclpy adapter: the perception node, the simulated camera, image and message conversion."""
