"""c4d_ros: the ROS 2 face of c4d_core (node, message conversions, bag replay and tools)."""

__version__ = "0.1.0"
