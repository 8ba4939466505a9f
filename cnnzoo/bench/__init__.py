"""Measuring speed: machine description, interleaved timing, the machine's peak, one model's
throughput, the speed ladder, the zoo table (cnnzoo/bench/*.py; `cnnzoo bench`)."""

from cnnzoo.bench.machine import describe, machine_info
from cnnzoo.utils.timing import Timing, interleaved, time_once

__all__ = ["Timing", "describe", "interleaved", "machine_info", "time_once"]
