// sockets: receives on its own datagram socket (fd NORTHSTAR_SOCKET_hello)
// what it sends to the socket's path in the shared sockets directory.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void* receiver(void* arg) {
  int fd = *(int*)arg;
  for (;;) {
    char buf[128];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) break;
    buf[n] = 0;
    printf("Received %s\n", buf);
    fflush(stdout);
  }
  return NULL;
}

int main(void) {
  const char* s = getenv("NORTHSTAR_SOCKET_hello");
  if (!s) {
    fprintf(stderr, "NORTHSTAR_SOCKET_hello is not set\n");
    return 1;
  }
  int fd = atoi(s);
  pthread_t t;
  pthread_create(&t, NULL, receiver, &fd);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "/unix-sockets/%s:hello", getenv("NORTHSTAR_CONTAINER"));
  printf("Connecting to %s\n", addr.sun_path);
  fflush(stdout);
  int c = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (connect(c, (struct sockaddr*)&addr, sizeof addr) != 0) {
    perror("connect");
    return 1;
  }
  for (;;) {
    if (send(c, "Hello!", 6, 0) != 6) perror("send");
    sleep(1);
  }
}
