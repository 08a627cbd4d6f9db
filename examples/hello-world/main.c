// hello-world: greets once a second, forever.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
  const char* c = getenv("NORTHSTAR_CONTAINER");
  for (unsigned long i = 0;; i++) {
    printf("%lu: Hello again from %s!\n", i, c ? c : "unknown");
    fflush(stdout);
    sleep(1);
  }
}
