"""Launch c4d_node (optionally with RViz2 and a demo camera).

    ros2 launch c4d_ros c4d.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info
    ros2 launch c4d_ros c4d.launch.py demo:=true rviz:=true
    ros2 bag play my_bag --clock &  ros2 launch c4d_ros c4d.launch.py use_sim_time:=true image:=/cam/image_raw ...

Arguments: image, camera_info, config, namespace, use_sim_time, rviz, demo, demo_source, log_level.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "c4d_ros"


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    args = [
        DeclareLaunchArgument("image", default_value="image", description="input image topic (sensor_msgs/Image); "
                              "with input.transport:=compressed the node subscribes to <image>/compressed"),
        DeclareLaunchArgument("camera_info", default_value="camera_info", description="CameraInfo topic"),
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "config", "c4d.yaml"]),
                              description="parameter file (ROS form; see config/c4d.yaml)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (true when replaying a bag with `ros2 bag play --clock`)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz2 with config/c4d.rviz"),
        DeclareLaunchArgument("demo", default_value="false",
                              description="also start sequence_publisher as a demo camera"),
        DeclareLaunchArgument("demo_source", default_value="synthetic",
                              description="demo input: 'synthetic', a bag, a video or an image folder"),
        DeclareLaunchArgument("log_level", default_value="info", description="ROS log level of c4d_node"),
    ]
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    namespace = LaunchConfiguration("namespace")
    c4d = Node(
        package=PACKAGE, executable="c4d_node", name="c4d_node", namespace=namespace, output="screen",
        parameters=[LaunchConfiguration("config"), {"use_sim_time": use_sim_time}],
        remappings=[("image", LaunchConfiguration("image")),
                    ("image/compressed", [LaunchConfiguration("image"), "/compressed"]),
                    ("camera_info", LaunchConfiguration("camera_info"))],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    demo = Node(
        package=PACKAGE, executable="sequence_publisher", name="sequence_publisher", namespace=namespace,
        output="screen", condition=IfCondition(LaunchConfiguration("demo")),
        parameters=[{"source": LaunchConfiguration("demo_source"), "rate_hz": 10.0, "loop": True,
                     "use_sim_time": use_sim_time}],
        remappings=[("image", LaunchConfiguration("image")), ("camera_info", LaunchConfiguration("camera_info"))],
    )
    rviz = Node(
        package="rviz2", executable="rviz2", name="rviz2", namespace=namespace, output="screen",
        condition=IfCondition(LaunchConfiguration("rviz")),
        arguments=["-d", PathJoinSubstitution([share, "config", "c4d.rviz"])],
        parameters=[{"use_sim_time": use_sim_time}],
    )
    return LaunchDescription(args + [c4d, demo, rviz])
