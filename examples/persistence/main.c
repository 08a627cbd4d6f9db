// persistence: writes and reads /data/file once a second; counts its starts
// in /data/starts so a restart shows the data survived.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  unsigned long starts = 0;
  FILE* s = fopen("/data/starts", "r");
  if (s) {
    if (fscanf(s, "%lu", &starts) != 1) starts = 0;
    fclose(s);
  }
  s = fopen("/data/starts", "w");
  if (!s) {
    perror("/data/starts");
    return 1;
  }
  fprintf(s, "%lu\n", ++starts);
  fclose(s);
  printf("Start number %lu\n", starts);
  for (;;) {
    printf("Writing Hello! to /data/file\n");
    FILE* f = fopen("/data/file", "w");
    if (!f) {
      perror("/data/file");
      return 1;
    }
    fputs("Hello!", f);
    fclose(f);
    char buf[64] = {0};
    f = fopen("/data/file", "r");
    if (!f || !fgets(buf, sizeof buf, f)) return 1;
    fclose(f);
    printf("Content of /data/file: %s\n", buf);
    fflush(stdout);
    sleep(1);
  }
}
