// POSIX/Linux calls Swift's Glibc module leaves out: <unistd.h> declares pipe2(2) only under _GNU_SOURCE,
// which that module is built without. The symbol is glibc's.
int pipe2(int pipefd[2], int flags);
