"""cffi API-mode definition of the VisionIPC C part (built by SCons: see cereal/visionipc/SConscript)."""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
ffibuilder.cdef("""
typedef struct {
  uint32_t stream, num_buffers, width, height, stride, uv_offset;
  uint64_t frame_size, buf_stride, data_offset, total_size, generation;
  int32_t server_pid;
} vipc_info;
typedef struct {
  uint64_t seq, frame_id, timestamp_sof, timestamp_eof;
  uint32_t valid;
} vipc_frame_meta;
#define VIPC_E_ARG ...
#define VIPC_E_NOTREADY ...
#define VIPC_E_BADHDR ...
#define VIPC_E_SIZE ...
#define VIPC_MAX_BUFFERS ...
#define VIPC_MAX_DIM ...
int vipc_shm_create(const char *name, uint64_t size);
int vipc_shm_open_ro(const char *name);
int vipc_shm_unlink(const char *name);
int vipc_layout(uint32_t num_buffers, uint32_t width, uint32_t height, uint32_t stride, vipc_info *info);
int vipc_server_init(void *base, uint64_t mapped_size, const vipc_info *info);
int vipc_write_begin(void *base, uint32_t idx, uint64_t *seq_out);
int vipc_write_copy(void *base, uint32_t idx, const uint8_t *frame, uint64_t len);
int vipc_write_commit(void *base, uint32_t idx, uint64_t frame_id, uint64_t timestamp_sof, uint64_t timestamp_eof,
                      uint32_t valid, uint64_t *seq_out);
void vipc_server_close(void *base);
int vipc_read_info(const void *base, uint64_t mapped_size, vipc_info *info);
int vipc_read_begin(const void *base, uint32_t idx, uint64_t seq, vipc_frame_meta *meta);
int vipc_read_check(const void *base, uint32_t idx, uint64_t seq);
int vipc_is_closed(const void *base);
""")
# SCons compiles visionipc.c itself and links it with the wrapper, so no sources are listed here.
ffibuilder.set_source("cereal.visionipc._visionipc", '#include "cereal/visionipc/visionipc.h"')
