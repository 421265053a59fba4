// silent: sends nothing, and the adapter may stay listen-only (no ACKs on the bus).
#pragma once

#include "selfdrive/car/safety/safety_core.h"

extern const safety_hooks_t silent_hooks;
