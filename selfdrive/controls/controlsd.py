"""controlsd: carState + modelV2 + longitudinalPlan + selfdriveState → carControl and controlsState, at 100 Hz.

Paced by carState. carControl is also the safety heartbeat: canbridged takes every carControl as the
heartbeat that keeps the safety layer's controls allowed, so one goes out every cycle — also when
carState is late: then the controllers run on the newest carState while it is alive (under 10 periods old: a
late cycle on a loaded machine must not drop the steering torque, which the car's torque rate limits take
0.4 s to bring back), and everything is released after that (enabled = false). Never "enabled" unless
selfdrived is alive and says so. The maths lives in lib/controls_logic.py.

Lateral is planned here, from each new modelV2 (lib/lateral_planner.py); longitudinal by plannerd (longitudinalPlan).
A model gone quiet leaves the steering on its last frame's target, a plan gone quiet asks for no acceleration: either
way selfdrived, which checks both for being alive and fresh, is disengaging us (commIssue) meanwhile.

Validity: carControl/controlsState are valid when carState, modelV2 and the plan are alive, on frequency and
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
from selfdrive.controls.lib.model_data import ModelData, parse_model

SUBSCRIBES = ("carState", "modelV2", "longitudinalPlan", "selfdriveState", "liveTorqueParameters")
CHECKED = ("carState", "modelV2", "longitudinalPlan")  # alive, on frequency and valid for our outputs to be valid
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

    def inputs(self) -> tuple[SelfdriveView, PlanView, ModelData | None]:
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
            # no plan: ask for no acceleration (selfdrived is disengaging us)
            self.plan = PlanView(age=age)
        else:
            self.plan = dataclasses.replace(self.plan, age=age)
        model = parse_model(sm["modelV2"]) if sm.updated["modelV2"] else None
        return view, self.plan, model

    def step(self) -> None:
        sd, plan, model = self.inputs()
        if self.sm.updated["liveTorqueParameters"] and self.sm.valid["liveTorqueParameters"]:
            self.logic.update_torque(self.sm["liveTorqueParameters"])
        valid = self.sm.all_checks(CHECKED) and self.sm.all_alive(["selfdriveState"])
        cc = messaging.new_message("carControl", valid=valid)
        cs = messaging.new_message("controlsState", valid=valid)
        self.logic.update(self.sm["carState"], sd, plan, cc.carControl, cs.controlsState,
                          self.sm.logMonoTime["carState"], model)
        cs.controlsState.cumLagMs = max(-self.rk.remaining * 1000.0, 0.0)
        cs.controlsState.modelV2MonoTime = self.sm.logMonoTime["modelV2"]
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
