"""controlsd: carState + longitudinalPlan + selfdriveState → carControl and controlsState, at 100 Hz.

Paced by carState. carControl is also the safety heartbeat: canbridged takes every carControl as the
heartbeat that keeps the safety layer's controls allowed, so one goes out every cycle — also when
carState is late: then the controllers run on the newest carState while it is alive (under 10 periods old: a
late cycle on a loaded machine must not drop the steering torque, which the car's torque rate limits take
0.4 s to bring back), and everything is released after that (enabled = false). Never "enabled" unless
selfdrived is alive and says so. The maths lives in lib/controls_logic.py.

Validity: carControl/controlsState are valid when carState and the plan are alive, on frequency and
valid, and selfdriveState is alive (its validity depends on ours, see plannerd).

Steering response: torqued's liveTorqueParameters, when valid and plausible for the car, replace carParams'
lateral acceleration factor, offset and friction in the torque controller; without torqued carParams' stay.
"""

import dataclasses

from cereal import messaging
from common.realtime import DT_CTRL, PRIO_CTRL_LOW, Ratekeeper, set_realtime_priority
from common.swaglog import cloudlog_bind
from selfdrive.car.car_params import wait_car_params
from selfdrive.controls.lib.controls_logic import ControlsLogic, PlanView, SelfdriveView

SUBSCRIBES = ("carState", "longitudinalPlan", "selfdriveState", "liveTorqueParameters")
PUBLISHES = ("carControl", "controlsState")
POLL_S = 2 * DT_CTRL  # carState two periods late: send a carControl anyway (the heartbeat)


class Controls:
    def __init__(self, CP, sm: messaging.SubMaster | None = None, pm: messaging.PubMaster | None = None):
        self.CP = CP
        self.sm = sm or messaging.SubMaster(SUBSCRIBES, poll="carState", ignore_valid=["selfdriveState"])
        self.pm = pm or messaging.PubMaster(list(PUBLISHES))
        self.logic = ControlsLogic(CP)
        self.plan = PlanView()
        self.rk = Ratekeeper(1.0 / DT_CTRL, print_delay_threshold=None)

    def inputs(self) -> tuple[SelfdriveView, PlanView]:
        sm = self.sm
        sd = sm["selfdriveState"]
        alive = sm.alive["selfdriveState"] and sm.alive["carState"]
        # before selfdrived's first message its struct is all defaults (personality "aggressive"): say "standard", as
        # selfdrived does until it reads the setting
        personality = str(sd.personality) if sm.seen["selfdriveState"] else "standard"
        view = SelfdriveView(enabled=bool(sd.enabled) and alive, active=bool(sd.active) and alive,
                             alert_sound=str(sd.alertSound), alert_visual=str(sd.alertVisual), personality=personality,
                             car_state_mono=sd.carStateMonoTime)
        age = (sm.logMonoTime["carState"] - sm.logMonoTime["longitudinalPlan"]) * 1e-9
        if sm.updated["longitudinalPlan"]:
            self.plan = PlanView.from_msg(sm["longitudinalPlan"], age)
        elif not sm.alive["longitudinalPlan"]:
            # no plan: hold the lane we were steering for, ask for no acceleration (selfdrived is disengaging us)
            self.plan = PlanView(desired_curvature=self.plan.desired_curvature, age=age)
        else:
            self.plan = dataclasses.replace(self.plan, age=age)
        return view, self.plan

    def step(self) -> None:
        sd, plan = self.inputs()
        if self.sm.updated["liveTorqueParameters"] and self.sm.valid["liveTorqueParameters"]:
            self.logic.update_torque(self.sm["liveTorqueParameters"])
        valid = self.sm.all_checks(["carState", "longitudinalPlan"]) and self.sm.all_alive(["selfdriveState"])
        cc = messaging.new_message("carControl", valid=valid)
        cs = messaging.new_message("controlsState", valid=valid)
        self.logic.update(self.sm["carState"], sd, plan, cc.carControl, cs.controlsState,
                          self.sm.logMonoTime["carState"])
        cs.controlsState.cumLagMs = max(-self.rk.remaining * 1000.0, 0.0)
        cs.controlsState.longitudinalPlanMonoTime = self.sm.logMonoTime["longitudinalPlan"]
        cs.controlsState.selfdriveStateMonoTime = self.sm.logMonoTime["selfdriveState"]
        cs.controlsState.carStateMonoTime = self.sm.logMonoTime["carState"]
        cs.controlsState.liveTorqueParametersMonoTime = self.sm.logMonoTime["liveTorqueParameters"]
        self.pm.send("carControl", cc)
        self.pm.send("controlsState", cs)

    def run(self) -> None:
        poll_ms = int(POLL_S * 1000)  # on the process's clock (common.clock: the world's in lockstep)
        while True:
            self.sm.update(poll_ms)
            self.step()
            self.rk.monitor_time()


def main() -> None:
    cloudlog_bind(name="controlsd")
    set_realtime_priority(PRIO_CTRL_LOW)
    Controls(wait_car_params()).run()


if __name__ == "__main__":
    main()
