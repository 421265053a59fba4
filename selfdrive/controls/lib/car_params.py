"""The CarParams every onboard daemon starts from: written by card to the CarParams param."""

import capnp

from cereal import car
from common.params import Params
from common.swaglog import cloudlog

PERSONALITIES = ("aggressive", "standard", "relaxed")  # LongitudinalPersonality param values 0, 1, 2


def car_params_from_bytes(raw: bytes):
    """A CarParams builder from its serialized bytes; ValueError when they are not a CarParams."""
    try:
        with car.CarParams.from_bytes(bytes(raw)) as reader:
            CP = reader.as_builder()
            CP.carFingerprint  # noqa: B018 - reads the struct now, so garbage fails here
            return CP
    except (capnp.KjException, ValueError, TypeError) as e:
        raise ValueError(f"CarParams param is not a serialized CarParams: {str(e)[:200]}") from e


def wait_car_params(params: Params | None = None):
    """Blocks until card has written CarParams, then returns it. A daemon cannot do anything useful before."""
    params = params or Params()
    raw = params.get("CarParams", block=True, timeout=5.0)
    while raw is None:
        cloudlog.info("waiting for CarParams (written by card)")
        raw = params.get("CarParams", block=True, timeout=5.0)
    return car_params_from_bytes(raw)


def personality_name(value: int | None) -> str:
    return PERSONALITIES[value] if isinstance(value, int) and 0 <= value < len(PERSONALITIES) else "standard"
