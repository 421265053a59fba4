"""controlsd's logic on its own: what it commands from a car state, a plan and a model frame."""

import numpy as np

from cereal import messaging
from selfdrive.controls.lib.controls_logic import STEER_LIMIT_DECEL, ControlsLogic, PlanView, SelfdriveView
from selfdrive.controls.tests.synth import car_params, car_state, parsed_model


def drive(curvature: float, cycles: int = 150) -> list[tuple[float, float, bool]]:
    """(aTarget, commanded accel, steering at its limit) per cycle, engaged at 10 m/s with the wheel straight, on a
    plan that wants +0.5 m/s² and a model whose path bends with `curvature`."""
    logic = ControlsLogic(car_params())
    CS = car_state(vEgo=10.0, cruise_enabled=True, cruise_speed=15.0, vCruise=15.0)
    plan = PlanView(accels=np.full(27, 0.5), speeds=np.full(27, 12.0))
    model = parsed_model(v=10.0, curvature=curvature)
    sd = SelfdriveView(enabled=True, active=True)
    out = []
    for i in range(cycles):
        cc, cst = messaging.new_message("carControl"), messaging.new_message("controlsState")
        logic.update(CS, sd, plan, cc.carControl, cst.controlsState, model=model if i % 5 == 0 else None)
        assert cc.carControl.longActive and cc.carControl.latActive
        out.append((cst.controlsState.aTarget, cc.carControl.actuators.accel, logic.last_lat.limited))
    return out


def test_slows_down_while_the_steering_cannot_turn_as_much_as_the_road_asks():
    # the car does not turn at all here (its wheel stays straight), so a 40 m curve runs the torque to its limit
    tight = drive(0.025)
    limited = [i for i, (_, _, lim) in enumerate(tight) if lim]
    assert limited and limited[0] < 100
    assert all(a <= -STEER_LIMIT_DECEL for a, _, lim in tight if lim)
    assert tight[-1][1] < 0.0                               # and the car is braking by the end
    # a gentle curve the steering can follow asks for no such thing: the plan's +0.5 stands
    gentle = drive(0.002)
    assert not any(lim for _, _, lim in gentle)
    assert all(abs(a - 0.5) < 1e-6 for a, _, _ in gentle)
