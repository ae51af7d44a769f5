"""Fake rclpy.node.Node: records publications, lets tests drive callbacks; Humble signatures."""

from __future__ import annotations

import time as _time

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

from .parameter import Parameter
from .qos import qos_profile_services_default


class FakePublisher:
    def __init__(self, msg_type, topic, qos_profile) -> None:
        self.msg_type, self.topic, self.qos_profile = msg_type, topic, qos_profile
        self.messages = []

    def publish(self, msg) -> None:
        self.messages.append(msg)

    def get_subscription_count(self) -> int:
        return 1


class FakeSubscription:
    def __init__(self, msg_type, topic, callback, qos_profile, callback_group) -> None:
        self.msg_type, self.topic, self.callback, self.qos_profile = msg_type, topic, callback, qos_profile
        self.callback_group = callback_group


class FakeTimer:
    def __init__(self, period, callback) -> None:
        self.timer_period_ns = int(period * 1e9)
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeService:
    def __init__(self, srv_type, name, callback) -> None:
        self.srv_type, self.srv_name, self.callback = srv_type, name, callback

    def call(self):
        return self.callback(self.srv_type.Request(), self.srv_type.Response())


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = None

    def now(self):
        from .time import Time

        return Time(nanoseconds=self.now_ns if self.now_ns is not None else _time.time_ns())


class FakeLogger:
    """Records (level, message); implements rclpy's ``once`` and ``throttle_duration_sec`` filters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.records = []
        self._once = set()
        self._last = {}

    def log(self, message, severity, **kwargs):
        allowed = {"throttle_duration_sec", "throttle_time_source_type", "skip_first", "once", "name"}
        bad = set(kwargs) - allowed
        if bad:
            raise TypeError(f"unexpected logging kwargs {bad}")
        import inspect

        caller = inspect.stack()[2]
        key = (caller.filename, caller.lineno)
        if kwargs.get("once"):
            if key in self._once:
                return False
            self._once.add(key)
        period = kwargs.get("throttle_duration_sec")
        if period:
            now = _time.monotonic()
            if key in self._last and now - self._last[key] < period:
                return False
            self._last[key] = now
        self.records.append((severity, str(message)))
        return True

    def debug(self, message, **kwargs):
        return self.log(message, "DEBUG", **kwargs)

    def info(self, message, **kwargs):
        return self.log(message, "INFO", **kwargs)

    def warning(self, message, **kwargs):
        return self.log(message, "WARN", **kwargs)

    def warn(self, message, **kwargs):
        return self.log(message, "WARN", **kwargs)

    def error(self, message, **kwargs):
        return self.log(message, "ERROR", **kwargs)

    def fatal(self, message, **kwargs):
        return self.log(message, "FATAL", **kwargs)


class Node:
    def __init__(self, node_name, *, context=None, cli_args=None, namespace=None, use_global_arguments=True,
                 enable_rosout=True, start_parameter_services=True, parameter_overrides=None,
                 allow_undeclared_parameters=False, automatically_declare_parameters_from_overrides=False):
        self._name = node_name
        self._namespace = namespace or "/"
        self._overrides = {p.name: p.value for p in (parameter_overrides or [])}
        self._parameters = {}
        self._descriptors = {}
        self._param_callbacks = []
        self.publishers = []
        self.subscriptions = []
        self.timers = []
        self.services = []
        self._logger = FakeLogger(node_name)
        self._clock = FakeClock()
        self.destroyed = False
        self.declare_parameter("use_sim_time", False)

    # ---- test helpers (not rclpy API)
    def publisher(self, topic):
        return next(p for p in self.publishers if p.topic == topic)

    def subscription(self, topic):
        return next(s for s in self.subscriptions if s.topic == topic)

    def service(self, name):
        return next(s for s in self.services if s.srv_name == name)

    # ---- rclpy API
    def get_name(self) -> str:
        return self._name

    def get_namespace(self) -> str:
        return self._namespace

    def get_clock(self):
        return self._clock

    def get_logger(self):
        return self._logger

    def declare_parameter(self, name, value=None, descriptor=None, ignore_override=False):
        if name in self._parameters:
            raise RuntimeError(f"parameter {name!r} already declared")
        if name in self._overrides and not ignore_override:
            value = self._overrides[name]
        descriptor = ParameterDescriptor() if descriptor is None else descriptor
        param = Parameter(name, value=value)
        for cb in self._param_callbacks:
            res = cb([param])
            if not res.successful:
                raise ValueError(f"invalid parameter {name}: {res.reason}")
        self._parameters[name] = param
        self._descriptors[name] = descriptor
        return param

    def has_parameter(self, name) -> bool:
        return name in self._parameters

    def get_parameter(self, name):
        if name not in self._parameters:
            raise KeyError(f"parameter {name!r} not declared")
        return self._parameters[name]

    def describe_parameter(self, name):
        return self._descriptors[name]

    def set_parameters(self, parameter_list):
        results = []
        for p in parameter_list:
            if self._descriptors[p.name].read_only:
                results.append(SetParametersResult(successful=False, reason=f"parameter {p.name} is read-only"))
                continue
            res = SetParametersResult(successful=True)
            for cb in self._param_callbacks:
                res = cb([p])
                if not res.successful:
                    break
            if res.successful:
                self._parameters[p.name] = p
            results.append(res)
        return results

    def add_on_set_parameters_callback(self, callback) -> None:
        self._param_callbacks.insert(0, callback)

    def create_publisher(self, msg_type, topic, qos_profile, *, callback_group=None, event_callbacks=None,
                         qos_overriding_options=None, publisher_class=FakePublisher):
        pub = FakePublisher(msg_type, topic, qos_profile)
        self.publishers.append(pub)
        return pub

    def create_subscription(self, msg_type, topic, callback, qos_profile, *, callback_group=None,
                            event_callbacks=None, qos_overriding_options=None, raw=False):
        sub = FakeSubscription(msg_type, topic, callback, qos_profile, callback_group)
        self.subscriptions.append(sub)
        return sub

    def create_timer(self, timer_period_sec, callback, callback_group=None, clock=None):
        t = FakeTimer(timer_period_sec, callback)
        self.timers.append(t)
        return t

    def create_service(self, srv_type, srv_name, callback, *, qos_profile=qos_profile_services_default,
                       callback_group=None):
        s = FakeService(srv_type, srv_name, callback)
        self.services.append(s)
        return s

    def destroy_timer(self, timer) -> bool:
        timer.cancel()
        return True

    def destroy_node(self):
        self.destroyed = True
