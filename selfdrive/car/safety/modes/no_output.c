#include "selfdrive/car/safety/modes/no_output.h"

static bool no_output_init(uint32_t param) {
  (void)param;
  return true;
}

static int no_output_rx(const safety_frame_t *f, uint64_t now_us) {
  (void)f;
  (void)now_us;
  return SAFETY_OK;
}

static int no_output_tx(const safety_frame_t *f, uint64_t now_us) {
  (void)f;
  (void)now_us;
  return SAFETY_MODE;
}

const safety_hooks_t no_output_hooks = {
  .name = "no_output",
  .listen_only = false,
  .init = no_output_init,
  .rx = no_output_rx,
  .tx = no_output_tx,
};
