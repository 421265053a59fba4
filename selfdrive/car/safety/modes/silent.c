#include "selfdrive/car/safety/modes/silent.h"

static bool silent_init(uint32_t param) {
  (void)param;
  return true;
}

static int silent_rx(const safety_frame_t *f, uint64_t now_us) {
  (void)f;
  (void)now_us;
  return SAFETY_OK;
}

static int silent_tx(const safety_frame_t *f, uint64_t now_us) {
  (void)f;
  (void)now_us;
  return SAFETY_MODE;
}

const safety_hooks_t silent_hooks = {
  .name = "silent",
  .listen_only = true,
  .init = silent_init,
  .rx = silent_rx,
  .tx = silent_tx,
};
