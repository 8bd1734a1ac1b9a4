// POSIX/Linux calls Swift's Glibc module leaves out: <unistd.h> declares pipe2(2) and <spawn.h>
// posix_spawn_file_actions_addclosefrom_np(3) only under _GNU_SOURCE, which that module is built without.
// The symbols are glibc's (closefrom since 2.34).
#include <spawn.h>
int pipe2(int pipefd[2], int flags);
int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
