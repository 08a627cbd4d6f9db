// start-floor: the floor of container start latency for bench/start.bench.ts.
// The least a runtime must do, in C: clone into new pid, mount, ipc, uts and
// net namespaces, make the mounts private, bind the root onto itself,
// pivot_root into it, exec the program, and reap it. Prints one line per
// iteration: the nanoseconds from clone to reaped exit.
//   start-floor <rootfs> <iterations> <path> [args...]
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char* root;
static char** argv_child;
static int devnull;

static int child(void* arg) {
  (void)arg;
  // Only raw syscalls from here on; a failure exits with the step's number.
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) _exit(10);
  if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) != 0) _exit(11);
  if (chdir(root) != 0) _exit(12);
  if (syscall(SYS_pivot_root, ".", ".") != 0) _exit(13);
  if (umount2(".", MNT_DETACH) != 0) _exit(14);
  if (chdir("/") != 0) _exit(15);
  dup2(devnull, 1);
  dup2(devnull, 2);
  char* envp[] = {NULL};
  execve(argv_child[0], argv_child, envp);
  _exit(127);
}

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: start-floor <rootfs> <iterations> <path> [args...]\n");
    return 2;
  }
  root = argv[1];
  int n = atoi(argv[2]);
  argv_child = argv + 3;
  devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  static char stack[256 * 1024];
  for (int i = 0; i < n; i++) {
    long long t0 = now_ns();
    int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | SIGCHLD;
    pid_t pid = clone(child, stack + sizeof(stack), flags, NULL);
    if (pid < 0) {
      fprintf(stderr, "clone: %s\n", strerror(errno));
      return 1;
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) {
      fprintf(stderr, "waitpid: %s\n", strerror(errno));
      return 1;
    }
    long long t1 = now_ns();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "child failed: status 0x%x\n", status);
      return 1;
    }
    printf("%lld\n", t1 - t0);
  }
  return 0;
}
