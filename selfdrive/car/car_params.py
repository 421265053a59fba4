"""The CarParams every onboard daemon starts from: written by card to the CarParams param, and published on
`carParams` (every second while the param cannot be stored)."""

import capnp

from cereal import car, log, messaging
from common.params import Params
from common.swaglog import cloudlog

WAIT_POLL_S = 0.1
WAIT_LOG_POLLS = 50  # a "waiting" line every 5 s


def car_params_from_bytes(raw: bytes):
    """A CarParams builder from its serialized bytes; ValueError when they are not a CarParams."""
    try:
        with car.CarParams.from_bytes(bytes(raw)) as reader:
            return car_params_copy(reader)
    except (capnp.KjException, ValueError, TypeError) as e:
        raise ValueError(f"CarParams param is not a serialized CarParams: {str(e)[:200]}") from e


def car_params_copy(reader):
    """A CarParams builder copied from a reader (of the param's bytes or of a carParams message); ValueError when
    the reader's bytes are damaged.

    pycapnp 2.1.0 crashes the process on some damaged bytes instead of raising, so the copy takes a safe path:
      - as_builder() of a reader aborts (SIGABRT, a kj exception escaping C++) on an out-of-bounds pointer, where
        assigning the reader to a builder's field copies with the same checks and raises KjException;
      - reading a Text field through a reader segfaults when its last byte is not NUL but >= 0x80 (the error's
        text holds that raw byte), where reading it through a builder raises KjException;
    so: copy into an Event's carParams field, make that (now in bounds) a root builder, and read every field
    through the builder (to_dict) so that damage fails here, not in a daemon later. An enum value this schema does
    not name is refused too (pycapnp: RuntimeError "Member was null")."""
    try:
        holder = log.Event.new_message()
        holder.carParams = reader
        CP = holder.carParams.as_reader().as_builder()
        CP.to_dict()
        return CP
    except (capnp.KjException, ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"{type(e).__name__}: {str(e)[:200]}") from e


def wait_car_params(params: Params | None = None, sock: messaging.SubSocket | None = None):
    """Blocks until card has said what the car is, then returns its CarParams: the CarParams param, or a carParams
    message (on a full disk card cannot store the param). A daemon cannot do anything useful before."""
    params = params or Params()
    own = sock is None
    sock = sock or messaging.sub_sock("carParams", conflate=True)
    try:
        polls = 0
        while True:
            raw = params.get("CarParams")
            if raw is not None:
                return car_params_from_bytes(raw)
            dat = sock.receive(timeout_ms=int(WAIT_POLL_S * 1000))
            if dat is not None:
                try:
                    ev = messaging.log_from_bytes(dat)
                    if ev.which() == "carParams":
                        return car_params_copy(ev.carParams)
                except (messaging.MalformedMessage, ValueError) as e:
                    cloudlog.warning("unreadable carParams message", extra={"error": str(e)[:200]})
            polls += 1
            if polls % WAIT_LOG_POLLS == 0:
                cloudlog.info("waiting for CarParams (written and published by card)")
    finally:
        if own:
            sock.close()
