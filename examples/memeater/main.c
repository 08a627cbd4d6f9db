// memeater: leaks 100 KiB every 10 ms (touching every page) until the memory
// cgroup's limit makes the OOM killer end it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  size_t total = 0;
  for (;;) {
    char* p = malloc(100 * 1024);
    if (!p) return 1;
    memset(p, 0xaa, 100 * 1024);
    total += 100;
    if (total % 1000 == 0) {
      printf("Eaten %zu KiB\n", total);
      fflush(stdout);
    }
    usleep(10000);
  }
}
