// token-client: creates a token for token-server and presents it there.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/console.h"

int main(void) {
  static char buf[4096];
  int con = console_fd();
  console_connect(con);
  const char* r =
      console_call(con, "{\"request\":{\"token_create\":{\"target\":\"token-server\",\"shared\":\"aGVsbG8h\"}}}", buf,
                   sizeof buf);
  const char* key = "\"token\":\"";
  const char* p = r ? strstr(r, key) : NULL;
  if (!p) {
    fprintf(stderr, "token_create failed: %s\n", r ? r : "(no reply)");
    return 1;
  }
  p += strlen(key);
  char token[256] = {0};
  snprintf(token, sizeof token, "%.*s", (int)(strchr(p, '"') - p), p);
  for (int attempt = 0; attempt < 100; attempt++) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(6543), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr*)&a, sizeof a) == 0) {
      char line[512], reply[64] = {0};
      int n = snprintf(line, sizeof line, "token-client %s\n", token);
      if (write(s, line, n) != n) return 1;
      ssize_t got = read(s, reply, sizeof reply - 1);
      if (got > 0 && reply[got - 1] == '\n') reply[got - 1] = 0;
      printf("Received: %s\n", reply);
      fflush(stdout);
      close(s);
      return 0;
    }
    close(s);
    usleep(100000);
  }
  fprintf(stderr, "token-server is not listening\n");
  return 1;
}
