"""Daemons learn the car from the CarParams param or, on a full disk where card cannot store it, from the carParams
message card then publishes every second."""

import errno
import threading
import time

from cereal import messaging
from common.params import Params
from selfdrive.car.car_params import wait_car_params
from selfdrive.car.car_specific import CarSetup, build_plan
from selfdrive.car.card import CAR_PARAMS_UNSTORED_PERIOD_S, Card
from selfdrive.car.fingerprinting import FingerprintResult


def rav4_plan():
    return build_plan(FingerprintResult("TOYOTA_RAV4", "fixed", {0: {}}, 0), CarSetup())


class FullParams(Params):
    def put(self, key, value):
        raise OSError(errno.ENOSPC, "No space left on device")


def waiter(out: list) -> threading.Thread:
    t = threading.Thread(target=lambda: out.append(wait_car_params()), daemon=True)
    t.start()
    return t


def test_the_param_is_enough():
    Params().put("CarParams", rav4_plan().CP.to_bytes())
    assert wait_car_params().carFingerprint == "TOYOTA_RAV4"


def test_without_the_param_the_message_is_taken_and_garbage_before_it_is_not():
    out: list = []
    t = waiter(out)
    pm = messaging.PubMaster(["carParams"])
    try:
        deadline = time.monotonic() + 20
        while not out and time.monotonic() < deadline:
            pm.sock["carParams"].send(b"\x00garbage")  # a damaged message on the service: logged, waited past
            msg = messaging.new_message("carParams")
            msg.carParams = rav4_plan().CP
            time.sleep(0.05)
            pm.send("carParams", msg)
            t.join(0.2)
    finally:
        pm.close()
    assert out and out[0].carFingerprint == "TOYOTA_RAV4"
    assert Params().get("CarParams") is None


def test_card_on_a_full_disk_publishes_carparams_every_second():
    pm_sock = messaging.sub_sock("carParams")
    can_sock = messaging.sub_sock("can")
    card = Card(rav4_plan(), can_sock, FullParams())
    try:
        assert card.cp_period == CAR_PARAMS_UNSTORED_PERIOD_S
        got = []
        card.publish_params()
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            card.publish_params()
            if (dat := pm_sock.receive(50)) is not None:
                got.append(messaging.log_from_bytes(dat).carParams.carFingerprint)
        assert got == ["TOYOTA_RAV4"] * 3
        assert Params().get("CarParams") is None
    finally:
        card.pm.close()
        pm_sock.close()
        can_sock.close()


def test_card_with_a_stored_param_keeps_the_slow_rate():
    card = Card(rav4_plan(), messaging.sub_sock("can"), Params())
    try:
        assert card.cp_period > 10 * CAR_PARAMS_UNSTORED_PERIOD_S
        assert Params().get("CarParams") is not None
    finally:
        card.pm.close()
