// token-server: accepts "<user> <token>" lines on 127.0.0.1:6543 and answers
// "yay!" when the runtime verifies the token (shared secret "hello!").
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
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(6543), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(s, (struct sockaddr*)&a, sizeof a) != 0 || listen(s, 8) != 0) {
    perror("bind");
    return 1;
  }
  printf("Listening on 127.0.0.1:6543\n");
  fflush(stdout);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char line[512] = {0}, user[128], token[256], req[1024];
    ssize_t n = read(c, line, sizeof line - 1);
    if (n > 0 && sscanf(line, "%127s %255s", user, token) == 2) {
      snprintf(req, sizeof req,
               "{\"request\":{\"token_verify\":{\"token\":\"%s\",\"user\":\"%s\",\"shared\":\"aGVsbG8h\"}}}", token,
               user);
      const char* r = console_call(con, req, buf, sizeof buf);
      int ok = r && strstr(r, "\"Ok\"") != NULL;
      printf("Token of %s: %s\n", user, r ? r : "(no reply)");
      fflush(stdout);
      if (write(c, ok ? "yay!\n" : "nay!\n", 5) != 5) perror("write");
    }
    close(c);
  }
}
