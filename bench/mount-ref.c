// Reference for bench/mount.bench.ts: the physical limit of parallel mount
// on this machine, in plain C with pthreads, and Northstar's "classic" way.
//
//   mount-ref configure <threads>   LOOP_CTL_GET_FREE + LOOP_CONFIGURE, no lock
//   mount-ref classic <threads>     GET_FREE + LOOP_SET_FD + LOOP_SET_STATUS64
//                                   behind one mutex (as Northstar does)
//
// Reads "<path> <offset> <size> <target>" lines on stdin. Per image: mkdir
// target, attach (retry EBUSY at once), mount squashfs read-only, close the
// loop fd; then, timed separately, umount2 + rmdir (AUTOCLEAR detaches).
// Prints one JSON object: {"mount_ms":…, "umount_ms":…, "lat_ms":[…]}, the
// latencies counted from the start of the mount-all to each image mounted.
// Must run in a private mount namespace (the bench re-execs itself there).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
struct loop_config {
  __u32 fd;
  __u32 block_size;
  struct loop_info64 info;
  __u64 __reserved[8];
};
#endif

struct image {
  char path[512];
  unsigned long long offset, size;
  char target[512];
  double lat_ms;
};

static struct image* images;
static int count;
static atomic_int next_index;
static int classic;
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static double run_start;  // latency = run start → this image mounted (as the pool measures it)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char* what, const char* path) {
  fprintf(stderr, "mount-ref: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

static int attach_one(int ctl, int backing, struct image* im) {
  struct loop_info64 info;
  memset(&info, 0, sizeof info);
  info.lo_offset = im->offset;
  info.lo_sizelimit = im->size;
  info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
  for (;;) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) die("LOOP_CTL_GET_FREE", "");
    char dev[32];
    snprintf(dev, sizeof dev, "/dev/loop%d", n);
    int lfd = open(dev, O_RDONLY | O_CLOEXEC);
    if (lfd < 0) {
      if (errno == ENOENT || errno == ENXIO) continue;
      die("open", dev);
    }
    int r;
    if (!classic) {
      struct loop_config cfg;
      memset(&cfg, 0, sizeof cfg);
      cfg.fd = backing;
      cfg.info = info;
      r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
    } else {
      r = ioctl(lfd, LOOP_SET_FD, backing);
      if (r == 0) {
        while ((r = ioctl(lfd, LOOP_SET_STATUS64, &info)) != 0 && errno == EAGAIN) {
        }
      }
    }
    if (r == 0) return lfd;
    if (errno != EBUSY) die("attach", dev);
    close(lfd);
  }
}

static void* worker(void* arg) {
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) die("open", "/dev/loop-control");
  for (;;) {
    int i = atomic_fetch_add(&next_index, 1);
    if (i >= count) break;
    struct image* im = &images[i];
    if (mkdir(im->target, 0755) != 0 && errno != EEXIST) die("mkdir", im->target);
    int backing = open(im->path, O_RDONLY | O_CLOEXEC);
    if (backing < 0) die("open", im->path);
    if (classic) pthread_mutex_lock(&attach_lock);
    int lfd = attach_one(ctl, backing, im);
    if (classic) pthread_mutex_unlock(&attach_lock);
    close(backing);
    char dev[64];
    struct loop_info64 li;
    if (ioctl(lfd, LOOP_GET_STATUS64, &li) != 0) die("LOOP_GET_STATUS64", im->path);
    snprintf(dev, sizeof dev, "/dev/loop%u", li.lo_number);
    if (mount(dev, im->target, "squashfs", MS_RDONLY | MS_NOSUID, NULL) != 0) die("mount", im->target);
    close(lfd);
    im->lat_ms = now_ms() - run_start;
  }
  close(ctl);
  return NULL;
}

static void* unworker(void* arg) {
  for (;;) {
    int i = atomic_fetch_add(&next_index, 1);
    if (i >= count) break;
    if (umount2(images[i].target, UMOUNT_NOFOLLOW) != 0) die("umount2", images[i].target);
    if (rmdir(images[i].target) != 0) die("rmdir", images[i].target);
  }
  return NULL;
}

static double run(int threads, void* (*fn)(void*)) {
  pthread_t t[256];
  atomic_store(&next_index, 0);
  double t0 = now_ms();
  run_start = t0;
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, fn, NULL);
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  return now_ms() - t0;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: mount-ref configure|classic <threads> < images\n");
    return 2;
  }
  classic = strcmp(argv[1], "classic") == 0;
  int threads = atoi(argv[2]);
  if (threads < 1 || threads > 256) threads = 1;
  int cap = 16;
  images = calloc(cap, sizeof *images);
  struct image im;
  while (scanf("%511s %llu %llu %511s", im.path, &im.offset, &im.size, im.target) == 4) {
    if (count == cap) images = realloc(images, (cap *= 2) * sizeof *images);
    images[count++] = im;
  }
  double mount_ms = run(threads, worker);
  double umount_ms = run(threads, unworker);
  printf("{\"mount_ms\":%.3f,\"umount_ms\":%.3f,\"lat_ms\":[", mount_ms, umount_ms);
  for (int i = 0; i < count; i++) printf("%s%.3f", i ? "," : "", images[i].lat_ms);
  printf("]}\n");
  return 0;
}
