// nstar-init: PID 1 of a container's pid namespace. Single-threaded, static.
// Placeholder until the launch issue: it only proves the target builds.
#include <stdio.h>

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "nstar-init: not implemented yet\n");
  return 1;
}
