// inspect: dumps what a container sees of itself: ids, groups, cwd,
// environment, fds, capabilities, namespaces, mounts and limits.
#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char** environ;

static void dump(const char* path) {
  printf("%s:\n", path);
  FILE* f = fopen(path, "r");
  if (!f) {
    perror(path);
    return;
  }
  char line[1024];
  while (fgets(line, sizeof line, f)) printf("    %s", line);
  fclose(f);
}

static void links(const char* dir) {
  printf("%s:\n", dir);
  DIR* d = opendir(dir);
  if (!d) return;
  struct dirent* e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[512], t[512];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    ssize_t n = readlink(p, t, sizeof t - 1);
    t[n > 0 ? n : 0] = 0;
    printf("    %s: %s\n", e->d_name, t);
  }
  closedir(d);
}

int main(void) {
  char cwd[PATH_MAX];
  gid_t groups[64];
  printf("getpid: %d\ngetppid: %d\ngetuid: %d\ngetgid: %d\ngetsid: %d\n", getpid(), getppid(), getuid(), getgid(),
         getsid(0));
  int n = getgroups(64, groups);
  printf("getgroups:");
  for (int i = 0; i < n; i++) printf(" %d", groups[i]);
  printf("\npwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
  printf("environment:\n");
  for (char** e = environ; *e; e++) printf("    %s\n", *e);
  links("/proc/self/fd");
  links("/proc/self/ns");
  dump("/proc/self/status");
  dump("/proc/self/mounts");
  dump("/proc/self/limits");
  fflush(stdout);
  for (;;) pause();
}
