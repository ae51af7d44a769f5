"""Fake rclpy.callback_groups."""


class CallbackGroup:
    pass


class MutuallyExclusiveCallbackGroup(CallbackGroup):
    def __init__(self) -> None:
        pass


class ReentrantCallbackGroup(CallbackGroup):
    def __init__(self) -> None:
        pass
