"""torqued: carState + carControl + carOutput -> the car's steering response -> liveTorqueParameters, one per carState.

Learns the car's lateral acceleration per unit torque, its offset and friction while roadpilot steers
(selfdrive/locationd/torque_estimator.py says how); controlsd's torque controller uses the estimate. Paced by
carState (100 Hz), and every carState is answered (the lockstep simulator waits for the answer, as for controlsd's).
Time is counted in carState cycles and the fit is redone every FIT_POINTS new points, so a replay or a lockstep drive
learns the same, at the same cycles, whatever the machine's load and whenever torqued started. The estimate is stored
per car in the LiveTorqueParameters param every STORE_S while it is being learnt (in the background: a full disk
costs the stored copy, never the estimate in memory) and is the starting point of the next drive of the same car; a
stored record that is corrupt, another car's or implausible is ignored.
"""

import time

from cereal import messaging
from common.params import Params
from common.realtime import DT_CTRL
from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.car.car_params import wait_car_params
from selfdrive.controls.lib.drive_helpers import finite_or
from selfdrive.controls.lib.latcontrol_torque import TorqueParams
from selfdrive.locationd.torque_estimator import CycleSampler, Estimate, TorqueEstimator, stored_response

SUBSCRIBES = ("carState", "carControl", "carOutput")
PUBLISHES = ("liveTorqueParameters",)
FIT_POINTS = 10             # new points between fits: a point is 10 steady cycles, so once a second while learning
STORE_S = 60.0
POLL_MS = 100


class Torqued:
    def __init__(self, CP, params: Params | None = None, sm: messaging.SubMaster | None = None,
                 pm: messaging.PubMaster | None = None):
        self.CP = CP
        self.params = params if params is not None else Params()
        self.sm = sm or messaging.SubMaster(SUBSCRIBES, poll="carState")
        self.pm = pm or messaging.PubMaster(list(PUBLISHES))
        self.car = str(CP.carFingerprint)
        stored = stored_response(self.params.get("LiveTorqueParameters"), self.car)
        # carParams' torque tuning, read and checked as controlsd reads it (ValueError: none to learn against)
        self.est = TorqueEstimator(TorqueParams.from_car_params(CP).response(), stored)
        cloudlog.info("torqued: start", extra={"car": self.car, "prior": vars(self.est.prior),
                                              "stored": self.est.stored is not None})
        self.sampler = CycleSampler(self.est, CP)
        self.last_store = 0  # the carState cycle of the last store
        self.last_rejected = ""
        self.new_points = 0

    def step(self) -> None:
        """One carState."""
        CS = self.sm["carState"]
        angle = finite_or(CS.steeringAngleDeg, 0.0) - finite_or(CS.steeringAngleOffsetDeg, 0.0)
        lat_active = bool(self.sm["carControl"].latActive) and self.sm.alive["carControl"]
        self.new_points += self.sampler.step(CS.vEgo, angle, self.sm["carOutput"].actuatorsOutput.torque, lat_active,
                                             bool(CS.steeringPressed))
        if self.new_points >= FIT_POINTS:
            self.new_points = 0
            self._refit()
        self.publish(self.est.estimate)

    def _refit(self) -> None:
        e = self.est.update()
        if e.rejected != self.last_rejected:
            if e.rejected:
                cloudlog.warning("torqued: fit rejected", extra={"why": e.rejected, "points": e.points})
            self.last_rejected = e.rejected
        if e.source in ("learning", "learned") and (self.sampler.cycle - self.last_store) * DT_CTRL >= STORE_S:
            record = self.est.to_json(self.car)
            self.params.put_nonblocking("LiveTorqueParameters", record)
            self.last_store = self.sampler.cycle
            cloudlog.info("torqued: stored", extra=record)

    def publish(self, e: Estimate) -> None:
        msg = messaging.new_message("liveTorqueParameters", valid=self.sm.all_checks(list(SUBSCRIBES)))
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
        lt.priorStored = self.est.stored is not None
        lt.carStateMonoTime = self.sm.logMonoTime["carState"]
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
