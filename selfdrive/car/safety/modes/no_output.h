// no_output: takes part in the bus (ACKs, rx counted by the core) but refuses every frame we would send.
#pragma once

#include "selfdrive/car/safety/safety_core.h"

extern const safety_hooks_t no_output_hooks;
