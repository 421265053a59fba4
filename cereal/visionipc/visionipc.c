// VisionIPC hot path: shared-memory setup, frame copy-in under a per-buffer seqlock, read checks.
// See visionipc.h for the layout. One writer (the server) per segment, any number of readers.
#define _POSIX_C_SOURCE 200809L

#include "cereal/visionipc/visionipc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HEADER_BYTES 128u
#define BUF_HEADER_BYTES 64u
#define PAGE 4096u

// Readers map the segment from other processes: the atomics must be plain memory, not locks.
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free to live in shared memory");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free to live in shared memory");

typedef struct {
  uint32_t magic;
  uint32_t version;
  _Atomic uint32_t ready;   // set last (release) by the server: the rest of the header is then complete
  _Atomic uint32_t closed;  // set by the server on a clean exit
  vipc_info info;
} vipc_shm_header;
_Static_assert(sizeof(vipc_shm_header) <= HEADER_BYTES, "segment header outgrew its slot");

// Every field is atomic (relaxed, except seq) so a reader racing the writer is defined behaviour;
// the pixels themselves are copied with memcpy and guarded only by the seq check.
typedef struct {
  _Atomic uint64_t seq;  // odd while being written
  _Atomic uint64_t frame_id;
  _Atomic uint64_t timestamp_sof;
  _Atomic uint64_t timestamp_eof;
  _Atomic uint32_t valid;
} vipc_buf_header;
_Static_assert(sizeof(vipc_buf_header) <= BUF_HEADER_BYTES, "buffer header outgrew its slot");

static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static vipc_shm_header *hdr(void *base) { return (vipc_shm_header *)base; }
static const vipc_shm_header *chdr(const void *base) { return (const vipc_shm_header *)base; }

static vipc_buf_header *buf_hdr(const void *base, uint32_t idx) {
  // Readers map the segment read-only; the header's atomics are only loaded through this pointer there.
  return (vipc_buf_header *)((uintptr_t)base + HEADER_BYTES + (uint64_t)idx * BUF_HEADER_BYTES);
}

int vipc_shm_create(const char *name, uint64_t size) {
  // A segment left by a SIGKILLed server with this name is replaced (the caller checked it is dead).
  if (shm_unlink(name) != 0 && errno != ENOENT) return -errno;
  int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  if (ftruncate(fd, (off_t)size) != 0) {
    int err = errno;
    close(fd);
    shm_unlink(name);
    return -err;
  }
  return fd;
}

int vipc_shm_open_ro(const char *name) {
  int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
  return fd < 0 ? -errno : fd;
}

int vipc_shm_unlink(const char *name) { return shm_unlink(name) == 0 ? 0 : -errno; }

int vipc_layout(uint32_t num_buffers, uint32_t width, uint32_t height, uint32_t stride,
                            vipc_info *info) {
  if (num_buffers < 1 || num_buffers > VIPC_MAX_BUFFERS) return VIPC_E_ARG;
  if (width < 2 || height < 2 || width > VIPC_MAX_DIM || height > VIPC_MAX_DIM) return VIPC_E_ARG;
  if ((width & 1u) || (height & 1u)) return VIPC_E_ARG;  // NV12 subsamples 2x2
  if (stride < width || stride > 2 * VIPC_MAX_DIM) return VIPC_E_ARG;
  info->num_buffers = num_buffers;
  info->width = width;
  info->height = height;
  info->stride = stride;
  info->uv_offset = stride * height;
  info->frame_size = (uint64_t)width * height * 3 / 2;
  info->buf_stride = round_up((uint64_t)stride * height * 3 / 2, PAGE);
  info->data_offset = round_up(HEADER_BYTES + (uint64_t)num_buffers * BUF_HEADER_BYTES, PAGE);
  info->total_size = info->data_offset + info->buf_stride * num_buffers;
  return 0;
}

int vipc_server_init(void *base, uint64_t mapped_size, const vipc_info *info) {
  vipc_info check = *info;
  if (vipc_layout(info->num_buffers, info->width, info->height, info->stride, &check) != 0) return VIPC_E_ARG;
  if (memcmp(&check, info, sizeof check) != 0) return VIPC_E_ARG;
  if (mapped_size < info->total_size) return VIPC_E_SIZE;
  vipc_shm_header *h = hdr(base);
  h->magic = VIPC_MAGIC;
  h->version = VIPC_VERSION;
  h->info = *info;
  atomic_store_explicit(&h->closed, 0, memory_order_relaxed);
  for (uint32_t i = 0; i < info->num_buffers; i++) {
    vipc_buf_header *b = buf_hdr(base, i);
    atomic_store_explicit(&b->seq, 0, memory_order_relaxed);  // 0: never written (frames start at 2)
    atomic_store_explicit(&b->valid, 0, memory_order_relaxed);
  }
  atomic_store_explicit(&h->ready, 1, memory_order_release);
  return 0;
}

int vipc_write_begin(void *base, uint32_t idx, uint64_t *seq_out) {
  if (idx >= hdr(base)->info.num_buffers) return VIPC_E_ARG;
  vipc_buf_header *b = buf_hdr(base, idx);
  uint64_t s = atomic_load_explicit(&b->seq, memory_order_relaxed);
  if (!(s & 1u)) {  // (odd: begun before and never committed; it stays marked)
    // Odd first, and visible before any pixel changes: a reader seeing new pixels then sees a new seq.
    atomic_store_explicit(&b->seq, ++s, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
  }
  *seq_out = s + 1;  // what the buffer will hold once committed
  return 0;
}

int vipc_write_copy(void *base, uint32_t idx, const uint8_t *frame, uint64_t len) {
  const vipc_info *in = &hdr(base)->info;
  if (idx >= in->num_buffers || len != in->frame_size) return VIPC_E_ARG;
  if (!(atomic_load_explicit(&buf_hdr(base, idx)->seq, memory_order_relaxed) & 1u)) return VIPC_E_ARG;  // not begun
  uint8_t *dst = (uint8_t *)base + in->data_offset + (uint64_t)idx * in->buf_stride;
  const uint64_t y_size = (uint64_t)in->width * in->height;
  if (in->stride == in->width) {
    memcpy(dst, frame, in->frame_size);  // Y and UV are adjacent: one copy
  } else {
    for (uint32_t r = 0; r < in->height; r++) memcpy(dst + (uint64_t)r * in->stride, frame + (uint64_t)r * in->width, in->width);
    uint8_t *uv = dst + in->uv_offset;
    for (uint32_t r = 0; r < in->height / 2; r++)
      memcpy(uv + (uint64_t)r * in->stride, frame + y_size + (uint64_t)r * in->width, in->width);
  }
  return 0;
}

int vipc_write_commit(void *base, uint32_t idx, uint64_t frame_id, uint64_t timestamp_sof, uint64_t timestamp_eof,
                      uint32_t valid, uint64_t *seq_out) {
  if (idx >= hdr(base)->info.num_buffers) return VIPC_E_ARG;
  vipc_buf_header *b = buf_hdr(base, idx);
  uint64_t s = atomic_load_explicit(&b->seq, memory_order_relaxed);
  if (!(s & 1u)) return VIPC_E_ARG;  // not begun
  atomic_store_explicit(&b->frame_id, frame_id, memory_order_relaxed);
  atomic_store_explicit(&b->timestamp_sof, timestamp_sof, memory_order_relaxed);
  atomic_store_explicit(&b->timestamp_eof, timestamp_eof, memory_order_relaxed);
  atomic_store_explicit(&b->valid, valid, memory_order_relaxed);
  atomic_store_explicit(&b->seq, s + 1, memory_order_release);  // even again: pixels and meta complete
  *seq_out = s + 1;
  return 0;
}

void vipc_server_close(void *base) { atomic_store_explicit(&hdr(base)->closed, 1, memory_order_release); }

int vipc_read_info(const void *base, uint64_t mapped_size, vipc_info *info) {
  if (mapped_size < PAGE) return VIPC_E_SIZE;
  const vipc_shm_header *h = chdr(base);
  if (atomic_load_explicit(&((vipc_shm_header *)h)->ready, memory_order_acquire) != 1) return VIPC_E_NOTREADY;
  if (h->magic != VIPC_MAGIC || h->version != VIPC_VERSION) return VIPC_E_BADHDR;
  vipc_info check = h->info;
  if (vipc_layout(check.num_buffers, check.width, check.height, check.stride, &check) != 0) return VIPC_E_BADHDR;
  if (memcmp(&check, &h->info, sizeof check) != 0) return VIPC_E_BADHDR;
  if (check.total_size > mapped_size) return VIPC_E_SIZE;
  *info = check;
  return 0;
}

int vipc_read_begin(const void *base, uint32_t idx, uint64_t seq, vipc_frame_meta *meta) {
  if (idx >= chdr(base)->info.num_buffers || (seq & 1u) || seq == 0) return 0;
  vipc_buf_header *b = buf_hdr(base, idx);
  if (atomic_load_explicit(&b->seq, memory_order_acquire) != seq) return 0;
  if (meta != NULL) {
    meta->seq = seq;
    meta->frame_id = atomic_load_explicit(&b->frame_id, memory_order_relaxed);
    meta->timestamp_sof = atomic_load_explicit(&b->timestamp_sof, memory_order_relaxed);
    meta->timestamp_eof = atomic_load_explicit(&b->timestamp_eof, memory_order_relaxed);
    meta->valid = atomic_load_explicit(&b->valid, memory_order_relaxed);
  }
  atomic_thread_fence(memory_order_acquire);
  return atomic_load_explicit(&b->seq, memory_order_relaxed) == seq;
}

int vipc_read_check(const void *base, uint32_t idx, uint64_t seq) {
  if (idx >= chdr(base)->info.num_buffers) return 0;
  // Orders the caller's pixel reads before the second look at seq (the seqlock's closing read).
  atomic_thread_fence(memory_order_acquire);
  return atomic_load_explicit(&buf_hdr(base, idx)->seq, memory_order_relaxed) == seq;
}

int vipc_is_closed(const void *base) {
  return atomic_load_explicit(&((vipc_shm_header *)base)->closed, memory_order_acquire) != 0;
}
