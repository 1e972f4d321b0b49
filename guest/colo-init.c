/*
 * The init of the COLO tests' Linux guest (PID 1 of an initrd, static).
 *
 * A COLO secondary must be a replica of its primary: after every checkpoint
 * its guest must run what the primary's guest would. This guest gives the
 * bugs that break that somewhere to show:
 *  - it rewrites a page of code every ROUNDS_PER_CODE rounds and runs it
 *    at every round, checking what the code returns (a secondary that runs
 *    stale translations of the primary's code prints "colo-guest: CODE
 *    MISMATCH");
 *  - it loads and unloads a kernel module now and then (new kernel code in
 *    pages that held other code before);
 *  - it keeps a working set of user pages hot (written at every round, so
 *    that they stay in TCG's TLB), with a pattern it checks at each round
 *    ("colo-guest: DATA MISMATCH");
 *  - it prints "colo-guest: round N" on the console every ROUNDS_PER_LINE
 *    rounds, so that a test sees that it runs.
 * Anything wrong ends in a line with MISMATCH; the kernel's own Oops, BUG
 * or panic show on the console too.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WORKING_SET_PAGES 2048          /* 8 MiB */
#define PAGE 4096
#define ROUNDS_PER_LINE 512
#define ROUNDS_PER_CODE 16
#define ROUNDS_PER_MODULE 256
#define MODULE_PATH "/e1000.ko"
#define MODULE_NAME "e1000"

static int console = -1;

static void say(const char *fmt, ...)
{
    char line[160];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0 && console >= 0) {
        (void)!write(console, line, (size_t)n < sizeof(line) ? n : sizeof(line) - 1);
    }
}

/*
 * Write "mov $value, %eax; ret" at @code, which the next call runs.
 * x86-64 keeps the instruction cache coherent: no flush is needed on real
 * hardware, and TCG must notice the write as the hardware would.
 */
static void write_code(uint8_t *code, uint32_t value)
{
    code[0] = 0xb8;
    memcpy(code + 1, &value, sizeof(value));
    code[5] = 0xc3;
}

static void load_module(int round)
{
    int fd = open(MODULE_PATH, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return;
    }
    if (syscall(SYS_finit_module, fd, "", 0) == 0) {
        syscall(SYS_delete_module, MODULE_NAME, O_NONBLOCK);
    } else if (round == 0) {
        say("colo-guest: cannot load " MODULE_PATH "\n");
    }
    close(fd);
}

int main(void)
{
    uint8_t *code, *data;
    uint32_t round;

    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    console = open("/dev/console", O_WRONLY | O_NOCTTY);
    code = mmap(NULL, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    data = mmap(NULL, WORKING_SET_PAGES * PAGE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (code == MAP_FAILED || data == MAP_FAILED) {
        say("colo-guest: mmap failed\n");
        return 1;
    }
    say("colo-guest: start\n");

    for (round = 0;; round++) {
        uint32_t (*fn)(void) = (uint32_t (*)(void))code;
        uint32_t got;

        /*
         * The code changes every ROUNDS_PER_CODE rounds, and runs at every
         * round: after a checkpoint, the secondary runs the code that the
         * primary wrote, which it did not write itself.
         */
        if (round % ROUNDS_PER_CODE == 0) {
            write_code(code, round / ROUNDS_PER_CODE);
        }
        got = fn();
        if (got != round / ROUNDS_PER_CODE) {
            say("colo-guest: CODE MISMATCH round %u ran %u\n", round, got);
        }
        for (int p = 0; p < WORKING_SET_PAGES; p++) {
            uint32_t *w = (uint32_t *)(data + (size_t)p * PAGE);

            if (round && w[0] != round - 1) {
                say("colo-guest: DATA MISMATCH round %u page %d has %u\n",
                    round, p, w[0]);
            }
            w[0] = round;
        }
        if (round % ROUNDS_PER_MODULE == 0) {
            load_module(round);
        }
        if (round % ROUNDS_PER_LINE == 0) {
            say("colo-guest: round %u\n", round);
        }
    }
}
