"""Fake rcl_interfaces (tests only)."""
