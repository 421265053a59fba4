"""torqued: carState + carControl + carOutput -> the car's steering response -> liveTorqueParameters (4 Hz).

Learns the car's lateral acceleration per unit torque, its offset and friction while roadpilot steers
(selfdrive/locationd/torque_estimator.py says how); controlsd's torque controller uses the estimate. Paced by
carState (100 Hz); time is counted in carState cycles, so a replay or a lockstep drive learns the same whatever the
machine's load. The estimate is stored per car in the LiveTorqueParameters param every STORE_S while it is being
learnt (in the background: a full disk costs the stored copy, never the estimate in memory) and is the starting
point of the next drive of the same car; a stored record that is corrupt, another car's or implausible is ignored.
"""

import math
import time
from collections import deque

from cereal import messaging
from common.params import Params
from common.realtime import DT_CTRL
from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.controls.lib.car_params import wait_car_params
from selfdrive.controls.lib.drive_helpers import curvature_from_steering, finite_or, slip_factor
from selfdrive.locationd.torque_estimator import Estimate, SteerResponse, TorqueEstimator, stored_response

SERVICES = ("carState", "carControl", "carOutput")
PUBLISHES = ("liveTorqueParameters",)
PUBLISH_EVERY = 25          # carState cycles: 4 Hz
FIT_EVERY = 100             # carState cycles: refit once a second
STORE_S = 60.0
RATE_SPAN = 10              # cycles over which the lateral acceleration's rate is taken (0.1 s)
POLL_MS = 100


def car_response(CP) -> SteerResponse:
    t = CP.lateralTuning.torque if CP.lateralTuning.which() == "torque" else None
    if t is None or not (math.isfinite(t.latAccelFactor) and t.latAccelFactor > 0):
        raise ValueError("carParams has no torque tuning: nothing to learn against")
    friction = max(finite_or(t.friction, 0.0), 0.0)
    return SteerResponse(float(t.latAccelFactor), finite_or(t.latAccelOffset, 0.0), friction)


class Torqued:
    def __init__(self, CP, params: Params | None = None, sm: messaging.SubMaster | None = None,
                 pm: messaging.PubMaster | None = None):
        self.CP = CP
        self.params = params if params is not None else Params()
        self.sm = sm or messaging.SubMaster(SERVICES, poll="carState")
        self.pm = pm or messaging.PubMaster(list(PUBLISHES))
        self.car = str(CP.carFingerprint)
        stored = stored_response(self.params.get("LiveTorqueParameters"), self.car)
        self.est = TorqueEstimator(car_response(CP), stored)
        cloudlog.info("torqued: start", extra={"car": self.car, "prior": vars(self.est.prior),
                                              "stored": self.est.stored is not None})
        self.slip = slip_factor(CP)
        lag = max(round(finite_or(CP.steerActuatorDelay, 0.1) / DT_CTRL), 0)
        self.torques: deque[float] = deque([0.0] * (lag + 1), maxlen=lag + 1)  # [0]: the command `lag` cycles ago
        self.las: deque[float] = deque(maxlen=RATE_SPAN + 1)
        self.cycle = 0
        self.last_store = 0
        self.last_rejected = ""

    def step(self) -> None:
        """One carState."""
        CS = self.sm["carState"]
        self.cycle += 1
        v = finite_or(CS.vEgo, 0.0)
        angle = finite_or(CS.steeringAngleDeg, 0.0) - finite_or(CS.steeringAngleOffsetDeg, 0.0)
        la = curvature_from_steering(angle, self.CP.steerRatio, self.CP.wheelbase, v, self.slip) * v * v \
            if abs(angle) < 3600.0 else math.nan
        self.las.append(la)
        rate = (self.las[-1] - self.las[0]) / ((len(self.las) - 1) * DT_CTRL) if len(self.las) > 1 else 0.0
        self.torques.append(finite_or(self.sm["carOutput"].actuatorsOutput.torque, 0.0))
        lat_active = bool(self.sm["carControl"].latActive) and self.sm.alive["carControl"]
        self.est.add(self.cycle * DT_CTRL, v, la, rate, self.torques[0], lat_active, bool(CS.steeringPressed))
        if self.cycle % FIT_EVERY == 0:
            self._refit()
        if self.cycle % PUBLISH_EVERY == 0:
            self.publish(self.est.estimate)

    def _refit(self) -> None:
        e = self.est.update()
        if e.rejected != self.last_rejected:
            if e.rejected:
                cloudlog.warning("torqued: fit rejected", extra={"why": e.rejected, "points": e.points})
            self.last_rejected = e.rejected
        if e.source in ("learning", "learned") and (self.cycle - self.last_store) * DT_CTRL >= STORE_S:
            self.params.put_nonblocking("LiveTorqueParameters", self.est.to_json(self.car))
            self.last_store = self.cycle
            cloudlog.info("torqued: stored", extra=self.est.to_json(self.car))

    def publish(self, e: Estimate) -> None:
        msg = messaging.new_message("liveTorqueParameters", valid=self.sm.all_checks(list(SERVICES)))
        lt = msg.liveTorqueParameters
        r = e.response
        lt.latAccelFactor, lt.latAccelOffset, lt.friction = r.lat_accel_factor, r.lat_accel_offset, r.friction
        lt.fitValid = e.fit is not None
        if e.fit is not None:
            lt.latAccelFactorFit, lt.latAccelOffsetFit, lt.frictionFit = \
                e.fit.lat_accel_factor, e.fit.lat_accel_offset, e.fit.friction
        lt.confidence = e.confidence
        lt.points = e.points
        lt.source = e.source
        lt.carLatAccelFactor = self.est.car.lat_accel_factor
        self.pm.send("liveTorqueParameters", msg)

    def run(self) -> None:
        while True:
            self.sm.update(POLL_MS)
            if self.sm.updated["carState"]:
                self.step()


def main() -> None:
    cloudlog_bind(name="torqued")
    CP = wait_car_params()
    try:
        torqued = Torqued(CP)
    except ValueError as e:
        # nothing steers this car by torque (dashcam, an angle-steered car): nothing to learn, nothing to publish.
        # Stay up idle: a daemon that ended would be restarted by the manager over and over
        cloudlog.info(f"torqued: idle: {e}")
        while True:
            time.sleep(3600.0)
    torqued.run()


if __name__ == "__main__":
    main()
