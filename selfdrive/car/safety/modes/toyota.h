// Toyota with torque steering (STEERING_LKA) and, unless the stock DSU stays in charge, our own
// acceleration (ACC_CONTROL). The param follows opendbc's Toyota safetyParam: the low byte is the EPS
// torque scale in percent (RAV4: 73), bit 8 says the brake pedal is in 0x224 instead of 0x226, bit 9
// says the stock system keeps longitudinal control. Any other bit (angle steering, SecOC) asks for
// something this mode cannot check, so such a param is refused and the layer stays silent.
#pragma once

#include "selfdrive/car/safety/safety_core.h"

#define TOYOTA_PARAM_EPS_SCALE_MASK 0xFFU
#define TOYOTA_FLAG_ALT_BRAKE 0x100U
#define TOYOTA_FLAG_STOCK_LONGITUDINAL 0x200U

extern const safety_hooks_t toyota_hooks;
