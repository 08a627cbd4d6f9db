// hello-resource: prints the content of /message/hello (a resource container).
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  for (unsigned long i = 0;; i++) {
    char buf[256] = {0};
    FILE* f = fopen("/message/hello", "r");
    if (!f) {
      perror("/message/hello");
      return 1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n')) buf[--n] = 0;
    printf("%lu: Content of /message/hello: %s\n", i, buf);
    fflush(stdout);
    sleep(1);
  }
}
