"""UTD-MHAD action names and sensor placement (no heavy imports: the runtime reads these too)."""

from __future__ import annotations

#: The 27 UTD-MHAD actions, index i is action number i + 1, spelled as the dataset README spells them.
UTD_MHAD_ACTIONS: tuple[str, ...] = (
    "swipe left", "swipe right", "wave", "clap", "throw", "arm cross", "basketball shoot", "draw X",
    "draw circle (clockwise)", "draw circle (counter-clockwise)", "draw triangle", "bowling", "boxing",
    "baseball swing", "tennis swing", "arm curl", "tennis serve", "push", "knock", "catch",
    "pickup and throw", "jog", "walk", "sit to stand", "stand to sit", "lunge", "squat",
)

#: Actions 1-21 are recorded with the IMU on the right wrist, 22-27 on the right thigh.
WRIST_ACTION_NUMBERS: tuple[int, ...] = tuple(range(1, 22))
THIGH_ACTION_NUMBERS: tuple[int, ...] = tuple(range(22, 28))

#: IMU channel names, order and units of UTD-MHAD (and of every bundle trained on it).
IMU_CHANNELS: tuple[str, ...] = ("ax", "ay", "az", "gx", "gy", "gz")
IMU_UNITS: tuple[str, ...] = ("g", "g", "g", "deg/s", "deg/s", "deg/s")
UTD_MHAD_IMU_RATE_HZ = 50.0


def placement_of(action_number: int) -> str:
    """``"wrist"`` or ``"thigh"`` for a 1-based UTD-MHAD action number."""
    return "wrist" if action_number in WRIST_ACTION_NUMBERS else "thigh"


def action_numbers_for(placement: str) -> tuple[int, ...]:
    """The 1-based action numbers recorded at ``placement`` (``wrist``, ``thigh`` or ``all``)."""
    if placement == "wrist":
        return WRIST_ACTION_NUMBERS
    if placement == "thigh":
        return THIGH_ACTION_NUMBERS
    if placement == "all":
        return WRIST_ACTION_NUMBERS + THIGH_ACTION_NUMBERS
    raise ValueError(f"unknown placement {placement!r}: expected wrist, thigh or all")
