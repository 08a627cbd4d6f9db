// custom: reads its manifest's `custom` field through the console and prints
// "hello <properties.hello>".
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/console.h"

int main(void) {
  static char buf[1 << 16];
  char req[512];
  int fd = console_fd();
  console_connect(fd);
  snprintf(req, sizeof req, "{\"request\":{\"inspect\":{\"container\":\"%s\"}}}", getenv("NORTHSTAR_CONTAINER"));
  const char* r = console_call(fd, req, buf, sizeof buf);
  const char* key = "\"hello\":\"";
  const char* p = r ? strstr(r, key) : NULL;
  if (!p) {
    fprintf(stderr, "no custom.properties.hello in %s\n", r ? r : "(no reply)");
    return 1;
  }
  p += strlen(key);
  const char* e = strchr(p, '"');
  printf("hello %.*s\n", (int)(e - p), p);
  fflush(stdout);
  for (;;) pause();
}
