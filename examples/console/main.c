// console: talks to its own console — ident, a request it lacks the
// permission for, list, inspect of itself — then kills itself with SIGTERM.
#include <stdio.h>
#include <stdlib.h>

#include "../lib/console.h"

int main(void) {
  static char buf[1 << 16];
  char req[512];
  int fd = console_fd();
  const char* me = getenv("NORTHSTAR_CONTAINER");
  console_connect(fd);
  printf("ident: %s\n", console_call(fd, "{\"request\":\"ident\"}", buf, sizeof buf));
  printf("repositories: %s\n", console_call(fd, "{\"request\":\"repositories\"}", buf, sizeof buf));
  printf("list: %s\n", console_call(fd, "{\"request\":\"list\"}", buf, sizeof buf));
  snprintf(req, sizeof req, "{\"request\":{\"inspect\":{\"container\":\"%s\"}}}", me);
  printf("inspect: %s\n", console_call(fd, req, buf, sizeof buf));
  fflush(stdout);
  snprintf(req, sizeof req, "{\"request\":{\"kill\":{\"container\":\"%s\",\"signal\":15}}}", me);
  printf("Killing %s with SIGTERM\n", me);
  fflush(stdout);
  console_call(fd, req, buf, sizeof buf);
  for (;;) pause();
}
