"""S3DNN scheduling for ROS 2 perception: model, engines, scheduler, ROS adapter, tools."""
from .native import check_fresh

check_fresh()
