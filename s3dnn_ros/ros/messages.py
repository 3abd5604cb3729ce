"""
Detection and diagnostic messages.

Detections are ``vision_msgs/msg/Classification`` or ``std_msgs/msg/String`` holding JSON, as the
node's ``detections_format`` says (``auto``: Classification when vision_msgs is importable)::

    {"header": {"stamp": {"sec": ..., "nanosec": ...}, "frame_id": ...}, "camera": ...,
     "classes": [{"id": ..., "label": ..., "score": ...}], "latency_ms": ..., "deadline_ms": ...,
     "missed": ...}

Classification carries the header and the classes (``class_id`` is the label when a labels file is
given, else the class id as text); latency and the deadline outcome are only in the JSON form and,
for both forms, on /diagnostics. With Classification and labels the node also publishes, once and
transient local, a ``vision_msgs/msg/LabelInfo`` mapping every class id to its name
(:func:`label_info`).
"""
from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from std_msgs.msg import String


@dataclass
class Detection:
    camera: str
    header: Any            # std_msgs/Header of the source image
    class_ids: list[int]
    scores: list[float]
    labels: list[str] | None
    latency_ms: float
    deadline_ms: float
    missed: bool


def vision_msgs_types():
    """(Classification, ObjectHypothesis) when vision_msgs is importable, else None."""
    try:
        from vision_msgs.msg import Classification, ObjectHypothesis
    except ImportError:
        return None
    return Classification, ObjectHypothesis


def vision_msgs_label_types():
    """(LabelInfo, VisionClass) when vision_msgs is importable, else None."""
    try:
        from vision_msgs.msg import LabelInfo, VisionClass
    except ImportError:
        return None
    return LabelInfo, VisionClass


def label_info(types, labels: list[str], header) -> Any:
    """
    Return a vision_msgs/LabelInfo naming every class id.

    ``types`` is (LabelInfo, VisionClass).
    """
    info_type, class_type = types
    return info_type(header=header, threshold=0.0,
                     class_map=[class_type(class_id=i, class_name=name)
                                for i, name in enumerate(labels)])


class DetectionEncoder:
    """
    Builds the detection message of the type chosen once at start.

    Classification with ``types`` (Classification, ObjectHypothesis), JSON in String without them.
    """

    def __init__(self, types=None):
        self._types = types
        self.msg_type = self._types[0] if self._types else String
        self.type_name = ('vision_msgs/msg/Classification' if self._types
                          else 'std_msgs/msg/String (JSON)')

    def encode(self, detection: Detection):
        if self._types:
            classification, hypothesis = self._types
            msg = classification()
            msg.header = detection.header
            msg.results = [hypothesis(class_id=_label(detection, i), score=float(score))
                           for i, score in enumerate(detection.scores)]
            return msg
        return String(data=json.dumps(to_json(detection)))


def _label(detection: Detection, index: int) -> str:
    class_id = detection.class_ids[index]
    return detection.labels[class_id] if detection.labels else str(class_id)


def to_json(detection: Detection) -> dict:
    header = detection.header
    return {
        'header': {'stamp': {'sec': header.stamp.sec, 'nanosec': header.stamp.nanosec},
                   'frame_id': header.frame_id},
        'camera': detection.camera,
        'classes': [{'id': class_id,
                     'label': detection.labels[class_id] if detection.labels else None,
                     'score': round(float(score), 7)}
                    for class_id, score in zip(detection.class_ids, detection.scores)],
        'latency_ms': round(detection.latency_ms, 4),
        'deadline_ms': detection.deadline_ms,
        'missed': detection.missed,
    }


LEVELS = {'OK': DiagnosticStatus.OK, 'WARN': DiagnosticStatus.WARN,
          'ERROR': DiagnosticStatus.ERROR}


def status(name: str, level: str, message: str, hardware_id: str,
           values: dict[str, Any]) -> DiagnosticStatus:
    """Return a DiagnosticStatus with ``values`` as KeyValue strings (floats with 4 decimals)."""
    return DiagnosticStatus(level=LEVELS[level], name=name, message=message,
                            hardware_id=hardware_id,
                            values=[KeyValue(key=key,
                                             value=f'{value:.4f}' if isinstance(value, float)
                                             else str(value))
                                    for key, value in values.items()])
