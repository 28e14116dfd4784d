/* Force-included into ../shared/yardsticks/minrelay.c by bench/run
 * (gcc -include), whose source we build as it is and do not copy.
 *
 * minrelay frees a session in closeboth() while a later event of the same
 * epoll_wait() batch may still point to it (both ends closing at once, as
 * every iperf3 test does at its end): a use after free that crashes it. This
 * delays each free() until 4096 later ones on the same thread, more than one
 * batch (256 events) can make, so a freed session stays readable until the
 * batch is over. The relay's data path is unchanged. Drop this file once
 * minrelay.c defers its frees itself. */
#define _GNU_SOURCE /* as minrelay.c does; this file comes first (accept4) */
#include <stdlib.h>

static void quarantined_free(void *p) {
  static __thread void *ring[4096];
  static __thread unsigned next;
  free(ring[next]);
  ring[next] = p;
  next = (next + 1) % 4096;
}
#define free(p) quarantined_free(p)
