// Minimal Northstar console client for the example containers: newline-
// delimited JSON over the socket whose fd is in NORTHSTAR_CONSOLE.
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int console_fd(void) {
  const char* s = getenv("NORTHSTAR_CONSOLE");
  if (!s) {
    fprintf(stderr, "NORTHSTAR_CONSOLE is not set\n");
    exit(1);
  }
  return atoi(s);
}

static void console_send(int fd, const char* line) {
  size_t n = strlen(line);
  while (n > 0) {
    ssize_t w = write(fd, line, n);
    if (w <= 0) exit(2);
    line += w;
    n -= (size_t)w;
  }
  if (write(fd, "\n", 1) != 1) exit(2);
}

// Reads one line (without the newline) into buf; skips notifications.
static char* console_recv(int fd, char* buf, size_t size) {
  for (;;) {
    size_t len = 0;
    for (;;) {
      char c;
      ssize_t r = read(fd, &c, 1);
      if (r <= 0) return NULL;
      if (c == '\n') break;
      if (len + 1 < size) buf[len++] = c;
    }
    buf[len] = 0;
    if (strncmp(buf, "{\"notification\"", 15) != 0) return buf;
  }
}

// Sends a request line and returns the response line.
static char* console_call(int fd, const char* request, char* buf, size_t size) {
  console_send(fd, request);
  return console_recv(fd, buf, size);
}

static void console_connect(int fd) {
  char buf[256];
  console_send(fd, "{\"connect\":{\"version\":\"0.9.3\",\"subscribe_notifications\":false}}");
  if (!console_recv(fd, buf, sizeof buf) || strstr(buf, "connect_ack") == NULL) {
    fprintf(stderr, "console handshake failed: %s\n", buf);
    exit(3);
  }
}
