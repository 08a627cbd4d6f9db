// seccomp: runs under the default seccomp profile; prints a line now and then.
#include <stdio.h>
#include <unistd.h>

int main(void) {
  for (unsigned long i = 0;; i++) {
    printf("%lu: still alive under the default seccomp profile (pid %d)\n", i, getpid());
    fflush(stdout);
    sleep(2);
  }
}
