"""Latency as an objective: look-up-table prediction, on-device measurement, table building."""

from codebase.latency.measure import measure_latency, objective_device, prepare_for_timing, time_forward
from codebase.latency.table import LatencyTable

__all__ = ["LatencyTable", "measure_latency", "objective_device", "prepare_for_timing", "time_forward"]
