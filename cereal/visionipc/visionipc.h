// VisionIPC shared memory: one POSIX shm segment per camera stream, N NV12 frame buffers.
//
// Layout (all offsets from the start of the segment, every part 64-byte aligned):
//   [0, 4096)               segment header (vipc_shm_header) + one vipc_buf_header per buffer
//   data_offset + i*buf_stride   buffer i: Y plane (stride*height bytes), then UV plane at uv_offset
//                                (stride*height/2 bytes, interleaved U,V)
//
// Each buffer header holds a sequence number used as a seqlock: the writer makes it odd, copies the
// frame in, then makes it even again. A reader remembers the even value it was notified of and
// compares it before and after using the pixels; any change means the buffer was (being) rewritten.
#pragma once

#include <stddef.h>
#include <stdint.h>

#define VIPC_MAGIC 0x43504956u  // "VIPC" little-endian
#define VIPC_VERSION 1u
#define VIPC_MAX_BUFFERS 64u
#define VIPC_MAX_DIM 16384u

// Geometry and identity of one segment, as plain fields (the Python side reads and writes this).
typedef struct {
  uint32_t stream;
  uint32_t num_buffers;
  uint32_t width;
  uint32_t height;
  uint32_t stride;       // bytes per row of Y and of UV (>= width)
  uint32_t uv_offset;    // UV plane offset inside a buffer (stride * height)
  uint64_t frame_size;   // bytes of one NV12 frame without padding: width * height * 3 / 2
  uint64_t buf_stride;   // bytes between the starts of consecutive buffers
  uint64_t data_offset;  // offset of buffer 0
  uint64_t total_size;   // size of the whole segment
  uint64_t generation;   // random per server instance: a restarted server has a new one
  int32_t server_pid;
} vipc_info;

// What the writer stored with a frame.
typedef struct {
  uint64_t seq;
  uint64_t frame_id;
  uint64_t timestamp_sof;
  uint64_t timestamp_eof;
  uint32_t valid;
} vipc_frame_meta;

// Error codes (negative returns); -errno values from the OS are returned as they are.
#define VIPC_E_ARG (-1000)       // bad geometry or index
#define VIPC_E_NOTREADY (-1001)  // segment exists but its server has not finished setting it up
#define VIPC_E_BADHDR (-1002)    // wrong magic/version or inconsistent geometry
#define VIPC_E_SIZE (-1003)      // mapping smaller than the header says

// Shared memory objects. Returns an fd, or -errno.
int vipc_shm_create(const char *name, uint64_t size);
int vipc_shm_open_ro(const char *name);
int vipc_shm_unlink(const char *name);

// Fills `info`'s geometry fields for a frame size; returns 0 or VIPC_E_ARG.
int vipc_layout(uint32_t num_buffers, uint32_t width, uint32_t height, uint32_t stride, vipc_info *info);

// Server: writes the headers into a fresh mapping and marks it ready (release) as the last step.
int vipc_server_init(void *base, uint64_t mapped_size, const vipc_info *info);
// Server, one frame in three steps. begin marks buffer `idx` as being rewritten (seq odd; *seq_out is
// the sequence number the frame will have). copy writes one contiguous NV12 frame (Y rows of `width`,
// then UV rows of `width`); a producer can instead write the pixels in place. commit stores the meta
// and makes seq even (*seq_out): the frame is complete. All return 0 or VIPC_E_ARG.
int vipc_write_begin(void *base, uint32_t idx, uint64_t *seq_out);
int vipc_write_copy(void *base, uint32_t idx, const uint8_t *frame, uint64_t len);
int vipc_write_commit(void *base, uint32_t idx, uint64_t frame_id, uint64_t timestamp_sof, uint64_t timestamp_eof,
                      uint32_t valid, uint64_t *seq_out);
// Server: marks the segment closed (readers may look at it before their mapping goes).
void vipc_server_close(void *base);

// Client: validates a mapping and copies its header into `info`. Returns 0 or a VIPC_E_* code.
int vipc_read_info(const void *base, uint64_t mapped_size, vipc_info *info);
// Client: 1 if buffer `idx` holds the frame with sequence number `seq` (meta copied to *meta when
// non-NULL, consistently with it), 0 if it is being or has been rewritten.
int vipc_read_begin(const void *base, uint32_t idx, uint64_t seq, vipc_frame_meta *meta);
// Client: after using the pixels, 1 if they were not touched since vipc_read_begin, else 0.
int vipc_read_check(const void *base, uint32_t idx, uint64_t seq);
// 1 if the server marked the segment closed.
int vipc_is_closed(const void *base);
