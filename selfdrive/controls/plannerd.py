"""plannerd: modelV2 → longitudinalPlan at the model's rate (20 Hz).

The MPC plan (speeds/accels over 10 s) behind the model's lead, toward the car's set speed, slowing for the path's
curves, with the forward collision warning. Longitudinal only: controlsd plans the steering from modelV2 itself
(controls/lib/lateral_planner.py).

The lead: the car's radar track that is the model's lead (liveTracks, from card), else the model's lead
(controls/lib/radar_lead.py).

Validity: the plan is valid when modelV2 and carState are alive, on frequency and valid. selfdriveState
(personality, engaged) is checked for being alive only: its own validity depends on our plan, and
folding it back in would let one bad message keep both invalid forever. The radar is not needed for a valid
plan: without it (not alive, invalid: a car without one, its bus not connected) the model places the lead.
"""

import time

from cereal import messaging
from common.realtime import DT_MDL, Ratekeeper
from common.swaglog import cloudlog, cloudlog_bind
from selfdrive.car.car_params import wait_car_params
from selfdrive.controls.lib.drive_helpers import finite_or
from selfdrive.controls.lib.latcontrol_torque import TorqueParams
from selfdrive.controls.lib.longitudinal_planner import LongitudinalPlanner, PlanOutput, curve_lat_accel, parse_radar
from selfdrive.controls.lib.model_data import parse_model
from selfdrive.controls.lib.radar_lead import RadarView

SUBSCRIBES = ("modelV2", "carState", "selfdriveState", "liveTracks", "liveTorqueParameters")
PUBLISHES = ("longitudinalPlan",)
# a plan is made only from a new model: a stalled model shows downstream as the plan going silent (controlsd and
# selfdrived see it not alive); the wait ends this often so SubMaster's health of the other inputs stays current
POLL_MS = int(4 * DT_MDL * 1000)


class Planner:
    def __init__(self, CP, sm: messaging.SubMaster | None = None, pm: messaging.PubMaster | None = None):
        self.CP = CP
        self.sm = sm or messaging.SubMaster(SUBSCRIBES, poll="modelV2", ignore_valid=["selfdriveState"])
        self.pm = pm or messaging.PubMaster(list(PUBLISHES))
        self.long = LongitudinalPlanner(CP.longitudinalActuatorDelay, CP.vEgoStopping)
        try:
            self.car_torque: TorqueParams | None = TorqueParams.from_car_params(CP)
        except ValueError:
            self.car_torque = None  # no torque tuning: curves at A_LAT_CURVE
        self.radar_ok: bool | None = None  # whether the last plan had radar data (logged when it changes)

    def radar(self) -> RadarView | None:
        """The newest radar cycle, when it is alive and valid."""
        ok = self.sm.seen["liveTracks"] and self.sm.alive["liveTracks"] and self.sm.valid["liveTracks"]
        if ok != self.radar_ok:
            if ok:
                cloudlog.info("radar tracks coming: the lead is the radar track the model's lead matches")
            else:
                cloudlog.warning("no valid radar tracks: the lead is the model's alone",
                                 extra={"seen": self.sm.seen["liveTracks"], "alive": self.sm.alive["liveTracks"],
                                        "valid": self.sm.valid["liveTracks"]})
            self.radar_ok = ok
        return parse_radar(self.sm["liveTracks"], self.sm.logMonoTime["liveTracks"] * 1e-9) if ok else None

    def step(self) -> PlanOutput:
        """One plan from the newest inputs."""
        CS, sd = self.sm["carState"], self.sm["selfdriveState"]
        model = parse_model(self.sm["modelV2"])
        v_ego = finite_or(CS.vEgo, 0.0)
        # opendbc fills cruiseState.speed (m/s) on cars whose cruise sets the speed; otherwise card's vCruise
        v_cruise = CS.cruiseState.speed if CS.cruiseState.speed > 0 else CS.vCruise
        long_active = sd.active and not CS.gasPressed
        # the schema's default personality (enum 0) is aggressive: until selfdrived speaks, plan as standard
        personality = str(sd.personality) if self.sm.seen["selfdriveState"] else "standard"
        return self.long.update(v_ego, CS.aEgo, v_cruise, model, long_active, personality, self.radar(),
                                self.sm.logMonoTime["modelV2"] * 1e-9, self.curve_lat_accel())

    def curve_lat_accel(self) -> float:
        """What curves are slowed down to: within what the car's steering turns at full torque, as torqued learnt it
        (when valid and plausible for this car, as controlsd takes it), else as carParams says; less while little of
        this car is learnt (curve_lat_accel)."""
        if self.car_torque is None:
            return curve_lat_accel(0.0)  # A_LAT_CURVE
        p, trust, fit = self.car_torque, 0.0, None
        lt = self.sm["liveTorqueParameters"]
        if self.sm.alive["liveTorqueParameters"] and self.sm.valid["liveTorqueParameters"]:
            learned = self.car_torque.learned(lt.latAccelFactor, lt.latAccelOffset, lt.friction)
            if learned is not None:
                p, trust = learned, 1.0 if lt.priorStored else lt.confidence
                fit = lt.latAccelFactorFit if lt.fitValid else None
        return curve_lat_accel(p.lat_accel_factor, trust, fit)

    def publish(self, out: PlanOutput) -> None:
        msg = messaging.new_message("longitudinalPlan", valid=self.sm.all_checks(["modelV2", "carState"])
                                    and self.sm.all_alive(["selfdriveState"]))
        p = msg.longitudinalPlan
        p.modelMonoTime = self.sm.logMonoTime["modelV2"]
        p.carStateMonoTime = self.sm.logMonoTime["carState"]
        p.liveTorqueParametersMonoTime = self.sm.logMonoTime["liveTorqueParameters"]
        p.selfdriveStateMonoTime = self.sm.logMonoTime["selfdriveState"]
        p.liveTracksMonoTime = self.sm.logMonoTime["liveTracks"]
        p.t = out.t.tolist()
        p.speeds = out.speeds.tolist()
        p.accels = out.accels.tolist()
        p.jerks = out.jerks.tolist()
        p.aTarget = out.a_target
        p.shouldStop = out.should_stop
        p.hasLead = out.has_lead
        p.leadSource = out.lead_source
        if out.lead is not None:
            p.leadDistance, p.leadSpeed, p.leadAccel = float(out.lead.x), float(out.lead.v), float(out.lead.a)
        p.fcw = out.fcw
        p.vCruise = out.v_cruise
        p.solverExecutionTime = out.solve_time
        p.personality = self.sm["selfdriveState"].personality
        p.allowThrottle = True
        self.pm.send("longitudinalPlan", msg)

    def run(self) -> None:
        rk = Ratekeeper(1.0 / DT_MDL, print_delay_threshold=None)
        last_log = 0.0
        while True:
            self.sm.update(POLL_MS)
            if not self.sm.updated["modelV2"]:
                continue
            out = self.step()
            self.publish(out)
            if not out.solver_ok and time.monotonic() - last_log > 1.0:
                cloudlog.warning("longitudinal MPC gave no usable solution: fallback plan")
                last_log = time.monotonic()
            rk.monitor_time()


def main() -> None:
    cloudlog_bind(name="plannerd")
    Planner(wait_car_params()).run()


if __name__ == "__main__":
    main()
