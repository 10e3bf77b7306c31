/*
 * Helper for vmove's test guest (busybox initramfs). Busybox alone cannot dirty memory fast
 * enough under TCG nor do aligned O_DIRECT writes, so the guest's /init calls this for:
 *   vmove-guest dirty MIB          keep rewriting MIB MiB of memory (one word per page, forever)
 *   vmove-guest disk-read DEV      print the counter stored in sector 0 of DEV (0 when none)
 *   vmove-guest disk-write DEV N   store counter N in sector 0 of DEV, synchronously
 *   vmove-guest power-button       power off when the ACPI power button is pressed
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <unistd.h>

#define SECTOR 512
#define MAGIC "vmove-disk-counter "

static int dirty(long mib) {
  size_t len = (size_t)mib << 20;
  volatile uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (mem == MAP_FAILED) { perror("mmap"); return 1; }
  size_t words_per_page = 4096 / sizeof(uint64_t), pages = len / 4096;
  for (uint64_t pass = 1;; pass++)
    for (size_t p = 0; p < pages; p++) mem[p * words_per_page] = pass;
}

static int disk_read(const char *dev) {
  int fd = open(dev, O_RDONLY | O_DIRECT);
  if (fd < 0) { perror(dev); return 1; }
  void *buf;
  if (posix_memalign(&buf, 4096, 4096) != 0) return 1;
  long counter = 0;
  if (pread(fd, buf, 4096, 0) >= SECTOR && memcmp(buf, MAGIC, strlen(MAGIC)) == 0)
    counter = strtol((char *)buf + strlen(MAGIC), NULL, 10);
  printf("%ld\n", counter);
  return 0;
}

static int disk_write(const char *dev, long counter) {
  int fd = open(dev, O_WRONLY | O_DIRECT | O_DSYNC);
  if (fd < 0) { perror(dev); return 1; }
  char *buf;
  if (posix_memalign((void **)&buf, 4096, 4096) != 0) return 1;
  memset(buf, 0, 4096);
  snprintf(buf, SECTOR, MAGIC "%ld\n", counter);
  if (pwrite(fd, buf, 4096, 0) != 4096) { perror("pwrite"); return 1; }
  return close(fd);
}

static int power_button(void) {
  struct pollfd fds[32];
  int n = 0;
  DIR *dir = opendir("/dev/input");
  for (struct dirent *e; dir && (e = readdir(dir)) && n < 32;) {
    if (strncmp(e->d_name, "event", 5) != 0) continue;
    char path[300];
    snprintf(path, sizeof path, "/dev/input/%s", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) fds[n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
  }
  if (n == 0) { fprintf(stderr, "power-button: no input devices\n"); return 1; }
  for (;;) {
    if (poll(fds, n, -1) < 0) continue;
    for (int i = 0; i < n; i++) {
      struct input_event ev;
      if (!(fds[i].revents & POLLIN) || read(fds[i].fd, &ev, sizeof ev) != sizeof ev) continue;
      if (ev.type == EV_KEY && ev.code == KEY_POWER && ev.value == 1) {
        printf("vmove-poweroff\n");
        fflush(stdout);
        sync();
        reboot(RB_POWER_OFF);
      }
    }
  }
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "dirty") == 0) return dirty(atol(argv[2]));
  if (argc == 3 && strcmp(argv[1], "disk-read") == 0) return disk_read(argv[2]);
  if (argc == 4 && strcmp(argv[1], "disk-write") == 0) return disk_write(argv[2], atol(argv[3]));
  if (argc == 2 && strcmp(argv[1], "power-button") == 0) return power_button();
  fprintf(stderr, "usage: vmove-guest dirty MIB | disk-read DEV | disk-write DEV N | power-button\n");
  return 2;
}
