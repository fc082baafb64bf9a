"""The streaming runtime: IMU bytes from any transport in, recognised actions out (no torch).

    transport -> decoder -> channel map -> calibration -> (resampling) -> sliding windows
              -> activity gate -> model -> smoothing with hysteresis -> events -> sinks

See :mod:`c3t_edge.runtime.pipeline` and docs/RUNTIME.md.
"""

from c3t_edge.runtime.events import (
    ActionEvent,
    DeviceNotice,
    GapEvent,
    LinkNotice,
    Notice,
    Summary,
    WindowResult,
)
from c3t_edge.runtime.model import BundleModel, ModelSpec, WindowModel, load_model, spec_from_metadata
from c3t_edge.runtime.pipeline import PipelineConfig, PipelineFeed, StreamPipeline
from c3t_edge.runtime.signal import IdentityCalibration, LinearResampler
from c3t_edge.runtime.sinks import JsonSink, ListSink, TextSink
from c3t_edge.runtime.smoothing import ActionSmoother, ActivityGate, GateConfig, SmoothingConfig
from c3t_edge.runtime.windows import SlidingWindow, WindowBatch

__all__ = [
    "ActionEvent", "ActionSmoother", "ActivityGate", "BundleModel", "DeviceNotice",
    "GapEvent", "GateConfig", "IdentityCalibration", "JsonSink", "LinearResampler", "LinkNotice",
    "ListSink", "ModelSpec", "Notice", "PipelineConfig", "SlidingWindow", "SmoothingConfig", "StreamPipeline",
    "Summary", "TextSink", "WindowBatch", "WindowModel", "WindowResult", "load_model",
    "PipelineFeed", "spec_from_metadata",
]
