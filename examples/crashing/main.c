// crashing: panics after a second, like Northstar's Rust example (exit code 101).
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("Crashing in 1 second\n");
  fflush(stdout);
  sleep(1);
  fprintf(stderr, "thread 'main' panicked: witness me!\n");
  return 101;
}
