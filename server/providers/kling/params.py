"""Kling's own request parameters: the mode (which also sets the resolution, and decides
whether sound or a last frame is possible), sound, camera control, cfg_scale, watermark.
Each rule Kling documents is checked here, so a request Kling would refuse is a 400
naming the field before anything is sent. Pure functions on plain data."""
from __future__ import annotations

from server.errors import invalid_request
from server.providers import video_shape as shape
from server.providers.kling.models import CFG_SCALE, SOUND, VOICE_LIST, KlingModel

CAMERA_TYPES = ("simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward")
CAMERA_AXES = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")
CAMERA_RANGE = 10  # each axis of a "simple" move is from -10 to 10


def tail_param(neutral: dict) -> str:
    return f"metadata.{shape.LAST_FRAME}" if shape.LAST_FRAME in neutral else "metadata.image_tail"


def last_frame(neutral: dict, own: dict) -> str | None:
    """The last frame, asked by the neutral key or by Kling's own name (`image_tail`)."""
    if shape.LAST_FRAME in neutral and "image_tail" in own:
        raise invalid_request("Give the last frame once: metadata.last_frame or metadata.image_tail.",
                              "metadata.image_tail")
    value = neutral.get(shape.LAST_FRAME, own.pop("image_tail", None))
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid_request("The last frame must be an image URL or base64.", tail_param(neutral))
    return value


def sound(neutral: dict, own: dict) -> str | None:
    """"on", "off" or None (not asked), from the neutral `audio` or Kling's own `sound`."""
    if shape.AUDIO in neutral and SOUND in own:
        raise invalid_request("Ask for sound once: metadata.audio or metadata.sound.", f"metadata.{SOUND}")
    if shape.AUDIO in neutral:
        audio = neutral[shape.AUDIO]
        if not isinstance(audio, bool):
            raise invalid_request("metadata.audio must be true or false.", f"metadata.{shape.AUDIO}")
        return "on" if audio else "off"
    value = own.pop(SOUND, None)
    if value is not None and value not in ("on", "off"):
        raise invalid_request("The Kling sound must be 'on' or 'off'.", f"metadata.{SOUND}")
    return value


def choose_mode(spec: KlingModel, asked: object, resolution: object, wants_sound: bool, has_tail: bool,
                tail_param_name: str) -> str:
    """The mode to ask: the one asked (by name or by resolution), else the model's first
    mode that can give what was asked (sound, a last frame). Asking sound or a last frame
    of a mode that has neither is a 400 naming it."""
    if asked is not None and asked not in spec.modes:
        raise invalid_request(f"This Kling model takes the modes {', '.join(spec.modes)}.", "metadata.mode")
    if resolution is not None:
        if not isinstance(resolution, str):
            raise invalid_request("metadata.resolution must be a name such as '720p'.",
                                  f"metadata.{shape.RESOLUTION}")
        fitted = shape.nearest_resolution(spec.caps, None, None, resolution)
        by_resolution = spec.mode_for_resolution(fitted)
        if asked is not None and asked != by_resolution:
            raise invalid_request(f"The Kling mode '{asked}' renders at {spec.resolution_of_mode.get(str(asked))}, "
                                  f"not {fitted}.", f"metadata.{shape.RESOLUTION}")
        asked = by_resolution
    sound_param = f"metadata.{shape.AUDIO}"
    if wants_sound and has_tail and spec.tail_excludes_sound:
        raise invalid_request("This Kling model takes either a last frame or sound, not both.", sound_param)
    if asked is not None:
        mode = str(asked)
        if wants_sound and mode not in spec.sound_modes:
            raise invalid_request(f"This Kling model makes sound only in the modes {_names(spec.sound_modes)}.",
                                  sound_param)
        if has_tail and mode not in spec.tail_modes:
            raise invalid_request(f"This Kling model takes a last frame only in the modes "
                                  f"{_names(spec.tail_modes)}.", tail_param_name)
        return mode
    for mode in spec.modes:
        if (not wants_sound or mode in spec.sound_modes) and (not has_tail or mode in spec.tail_modes):
            return mode
    # unreachable for the declared models: a model with sound or a tail has a mode for it
    raise invalid_request("No mode of this Kling model can give what was asked.", "metadata.mode")


def _names(modes: tuple[str, ...]) -> str:
    return ", ".join(modes) or "none"


def check_own(own: dict, sound_value: str | None, has_tail: bool) -> None:
    """Kling's other parameters, as its documentation bounds them."""
    if CFG_SCALE in own:
        scale = own[CFG_SCALE]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= 1:
            raise invalid_request("The Kling cfg_scale must be a number from 0 to 1.", f"metadata.{CFG_SCALE}")
    if "camera_control" in own:
        camera_control(own["camera_control"])
        # Kling takes one of: a last frame, a motion brush, a camera move.
        if has_tail:
            raise invalid_request("Kling takes a camera move or a last frame, not both.", "metadata.camera_control")
    if has_tail and own.keys() & {"static_mask", "dynamic_masks"}:
        raise invalid_request("Kling takes a motion brush or a last frame, not both.", "metadata.static_mask"
                              if "static_mask" in own else "metadata.dynamic_masks")
    if VOICE_LIST in own and sound_value != "on":
        raise invalid_request("Voices need sound: set metadata.audio to true.", f"metadata.{VOICE_LIST}")
    if "watermark_info" in own:
        info = own["watermark_info"]
        if not isinstance(info, dict) or not isinstance(info.get("enabled"), bool) or len(info) != 1:
            raise invalid_request("The Kling watermark_info must be {\"enabled\": true|false}.",
                                  "metadata.watermark_info")


def camera_control(value: object) -> None:
    """{"type": one of CAMERA_TYPES, "config": {one axis: -10..10}} ("simple" only has a config)."""
    param = "metadata.camera_control"
    if not isinstance(value, dict) or value.get("type") not in CAMERA_TYPES or set(value) - {"type", "config"}:
        raise invalid_request(f"The Kling camera_control is {{\"type\": {'|'.join(CAMERA_TYPES)}, \"config\"}}.",
                              param)
    config = value.get("config")
    if value["type"] != "simple":
        if config:
            raise invalid_request("Only a 'simple' camera move takes a config.", param)
        return
    if not isinstance(config, dict) or set(config) - set(CAMERA_AXES):
        raise invalid_request(f"A 'simple' camera move needs a config with one of {', '.join(CAMERA_AXES)}.", param)
    moving = []
    for axis, amount in config.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or abs(amount) > CAMERA_RANGE:
            raise invalid_request(f"The camera's {axis} must be a number from -10 to 10.", param)
        if amount:
            moving.append(axis)
    if len(moving) != 1:
        raise invalid_request("A 'simple' camera move changes exactly one axis (the others 0).", param)


def watermark(value: object, own: dict) -> dict:
    if not isinstance(value, bool):
        raise invalid_request("metadata.watermark must be true or false.", f"metadata.{shape.WATERMARK}")
    if "watermark_info" in own:
        raise invalid_request("Ask for the watermark once: metadata.watermark or metadata.watermark_info.",
                              "metadata.watermark_info")
    return {"enabled": value}
