"""ament_python / setuptools build of the c4d_ros package (Python packages ``c4d_core`` and ``c4d_ros``)."""

import os
from glob import glob

from setuptools import find_packages, setup

package_name = "c4d_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["c4d_core", "c4d_core.*", "c4d_ros", "c4d_ros.*"]),
    package_data={"c4d_core": ["py.typed"], "c4d_ros": ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        (os.path.join("share", package_name, "launch"), glob("launch/*.launch.py")),
        (os.path.join("share", package_name, "config"), glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    python_requires=">=3.10",
    # ROS-side dependencies (rclpy, message packages, cv_bridge) come from package.xml / rosdep, not pip.
    install_requires=[
        "setuptools",
        "numpy>=1.21",
        "scipy>=1.8",
        "opencv-python-headless>=4.5",
        "pyyaml>=5.4",
    ],
    extras_require={
        # torch is listed separately so ROS users can pick the build matching their CUDA (see README).
        "torch": ["torch>=2.0", "torchvision>=0.15", "safetensors>=0.4"],
        "tools": ["rosbags>=0.10", "matplotlib>=3.5"],
        # colcon test runs pytest only when the package declares it (otherwise "0 tests").
        "test": ["pytest", "rosbags>=0.10", "mcap", "mcap-ros2-support"],
    },
    zip_safe=True,
    maintainer="c4d_ros maintainers",
    maintainer_email="c4d-ros@example.com",
    description="Streaming C4D 4D reconstruction from a monocular camera for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "c4d_node = c4d_ros.node:main",
            "sequence_publisher = c4d_ros.sequence_publisher:main",
            "c4d-eval = c4d_ros.eval_cli:main",
            "c4d-replay = c4d_ros.replay:main",
            "c4d-bag = c4d_ros.bag_cli:main",
            "c4d-demo = c4d_ros.demo:main",
        ],
    },
)
