/* hostsig: catches SIGINT and SIGTERM sent from Linux (to its pid, or to
 * margay from the terminal): first while busy in user mode without syscalls,
 * then while blocked in pause(). Prints its pid, then what it caught; exits 7. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile int got;
static void h(int s){ got = s; }
int main(void){
  signal(SIGINT, h); signal(SIGTERM, h);
  printf("ready %d\n", getpid()); fflush(stdout);
  volatile unsigned long x = 0;
  while (!got) x++;              /* busy: no syscalls, needs the NMI path */
  printf("caught %d\n", got); fflush(stdout);
  got = 0;
  while (!got) pause();          /* blocked in the kernel */
  printf("caught %d\n", got);
  return 7;
}
