// cpueater: spins THREADS threads.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void* spin(void* arg) {
  volatile unsigned long x = 0;
  for (;;) x++;
  return arg;
}

int main(void) {
  const char* t = getenv("THREADS");
  const char* v = getenv("NORTHSTAR_VERSION");
  int n = t ? atoi(t) : 1;
  printf("Eating CPU with %d threads (v%s)!\n", n, v ? v : "?");
  fflush(stdout);
  for (int i = 1; i < n; i++) {
    pthread_t th;
    pthread_create(&th, NULL, spin, NULL);
  }
  spin(NULL);
  return 0;
}
