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
 * Anything wrong ends in a line with MISMATCH (also a disk ahead of the
 * memory, below); the kernel's own Oops, BUG
 * or panic show on the console too.
 *
 * With colo_service=PORT on the kernel's command line (the kernel hands
 * it to init as an environment variable), the guest is also what a COLO
 * user runs: a TCP service with a disk, for the full-stack tests of
 * scripts/fullstack.py. It loads the modules listed in /modules/order,
 * gives eth0 the address colo_ip=A.B.C.D/N, and serves one client at a
 * time on PORT, one request per line:
 *  - "w N": write record N to sector N of /dev/vda (O_DIRECT | O_DSYNC:
 *    on the disk when the reply leaves) and reply "ok N". The sector
 *    must be blank before: each record is written once, and the guest's
 *    memory knows which it wrote. A sector that already holds something
 *    means a disk ahead of the memory, as a secondary's would be if it
 *    took over with a checkpoint's RAM but a disk that has writes of the
 *    interval after it; the reply is then "err ahead N", and nothing is
 *    written;
 *  - "o N": as "w N", after a TCP connection of the guest's own to
 *    colo_peer=A.B.C.D:PORT: it sends "hello N" there and waits for
 *    "ack N" (as a service that calls its database would);
 *  - "c N": read sectors 1..N back and reply "good N", or "bad K" for
 *    the first sector K that does not hold record K;
 *  - "b MS KIB": write blocks of KIB KiB one after the other for MS
 *    milliseconds, each on the disk before the next (O_DIRECT | O_DSYNC),
 *    in the disk's last BENCH_WINDOW bytes, and reply "bench N P50 P90 P99
 *    MAX BYTES US": how many writes, their latencies' percentiles in us,
 *    and the bytes written in US microseconds (the client benchmark's
 *    disk figures, scripts/netbench.py).
 * The checks above keep running beside it, at the lowest priority and
 * without the module (which might be the NIC's).
 *
 * With colo_httpd=PORT as well, Debian's busybox httpd (in the initrd:
 * scripts/linux-guest.sh) serves /www on PORT, beside the service, for the
 * client benchmark of scripts/netbench.py; its CGIs are in guest/www.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKING_SET_PAGES 2048          /* 8 MiB */
#define PAGE 4096
#define ROUNDS_PER_LINE 512
#define ROUNDS_PER_CODE 16
#define ROUNDS_PER_MODULE 256
#define MODULE_PATH "/modules/e1000.ko"
#define MODULE_NAME "e1000"
#define SECTOR 512
#define DISK "/dev/vda"
#define BENCH_WINDOW (8 << 20)
#define BENCH_MAX_WRITES 65536

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

/* The checks; with @modules, it also loads and unloads MODULE_PATH */
static int check_loop(int modules)
{
    uint8_t *code, *data;
    uint32_t round;

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
        if (modules && round % ROUNDS_PER_MODULE == 0) {
            load_module(round);
        }
        if (round % ROUNDS_PER_LINE == 0) {
            say("colo-guest: round %u\n", round);
        }
    }
}

/* Load the modules named in /modules/order, one per line, in that order */
static void load_modules(void)
{
    char name[64], path[96];
    FILE *order = fopen("/modules/order", "r");

    while (order && fgets(name, sizeof(name), order)) {
        int fd;

        name[strcspn(name, "\n")] = 0;
        snprintf(path, sizeof(path), "/modules/%s.ko", name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0) {
            say("colo-guest: cannot load %s: %s\n", path, strerror(errno));
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    if (order) {
        fclose(order);
    }
}

/* Give eth0 @cidr ("A.B.C.D/N") and bring it up */
static int configure_eth0(const char *cidr)
{
    struct ifreq ifr = { .ifr_name = "eth0" };
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    char addr[32];
    int prefix = 24, s, ret = 0;
    const char *slash = strchr(cidr, '/');

    snprintf(addr, sizeof(addr), "%.*s",
             slash ? (int)(slash - cidr) : (int)strlen(cidr), cidr);
    if (slash) {
        prefix = atoi(slash + 1);
    }
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sin->sin_family = AF_INET;
    if (s < 0 || inet_pton(AF_INET, addr, &sin->sin_addr) != 1 ||
        ioctl(s, SIOCSIFADDR, &ifr) < 0) {
        ret = -1;
    }
    sin->sin_addr.s_addr = htonl(prefix ? ~0u << (32 - prefix) : 0);
    if (ret || ioctl(s, SIOCSIFNETMASK, &ifr) < 0 ||
        ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        ret = -1;
    } else {
        ifr.ifr_flags |= IFF_UP;
        ret = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    if (s >= 0) {
        close(s);
    }
    return ret;
}

/* Record @n as the service writes it: its number, then a pattern of it */
static void fill_record(uint8_t *buf, uint32_t n)
{
    int len = snprintf((char *)buf, SECTOR, "colo-record %u\n", n);

    for (int i = len; i < SECTOR; i++) {
        buf[i] = (uint8_t)(n * 31 + i);
    }
}

/* Whether sector @n of @disk is still blank (never written), in @buf */
static int sector_blank(int disk, uint8_t *buf, uint32_t n)
{
    if (pread(disk, buf, SECTOR, (off_t)n * SECTOR) != SECTOR) {
        return 0;
    }
    for (int i = 0; i < SECTOR; i++) {
        if (buf[i]) {
            return 0;
        }
    }
    return 1;
}

/* "c N": the first sector of 1..@n that does not hold its record, or 0 */
static uint32_t check_records(int disk, uint8_t *buf, uint8_t *want,
                              uint32_t n)
{
    for (uint32_t k = 1; k <= n; k++) {
        fill_record(want, k);
        if (pread(disk, buf, SECTOR, (off_t)k * SECTOR) != SECTOR ||
            memcmp(buf, want, SECTOR)) {
            return k;
        }
    }
    return 0;
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* "b @ms @kib": synchronous writes of @kib KiB for @ms ms, into @reply */
static void disk_bench(int disk, uint32_t ms, uint32_t kib, char *reply,
                       size_t size)
{
    static uint32_t lat[BENCH_MAX_WRITES];
    size_t bytes = (size_t)kib << 10;
    uint64_t disk_bytes = 0, written = 0;
    int64_t start = now_us(), end = start + (int64_t)ms * 1000, t;
    uint32_t n = 0;
    off_t base, off = 0;
    void *buf;

    if (ioctl(disk, BLKGETSIZE64, &disk_bytes) < 0 ||
        disk_bytes < BENCH_WINDOW || !kib || bytes > BENCH_WINDOW ||
        posix_memalign(&buf, PAGE, bytes)) {
        snprintf(reply, size, "err bench\n");
        return;
    }
    memset(buf, 0xbe, bytes);
    base = disk_bytes - BENCH_WINDOW;
    for (t = start; t < end && n < BENCH_MAX_WRITES; n++) {
        if (off + bytes > BENCH_WINDOW) {
            off = 0;
        }
        if (pwrite(disk, buf, bytes, base + off) != (ssize_t)bytes) {
            free(buf);
            snprintf(reply, size, "err bench write: %s\n", strerror(errno));
            return;
        }
        off += bytes;
        written += bytes;
        lat[n] = now_us() - t;
        t += lat[n];
    }
    free(buf);
    qsort(lat, n, sizeof(lat[0]), compare_u32);
    snprintf(reply, size, "bench %u %u %u %u %u %llu %lld\n", n,
             lat[n / 2], lat[n * 9 / 10], lat[n * 99 / 100], lat[n - 1],
             (unsigned long long)written, (long long)(t - start));
}

/* "hello @n" to colo_peer over a connection of its own: 0 once acked */
static int call_peer(uint32_t n)
{
    const char *peer = getenv("colo_peer");
    struct sockaddr_in sin = { .sin_family = AF_INET };
    char addr[32], line[64], want[32];
    const char *colon = peer ? strchr(peer, ':') : NULL;
    int s, len, ret = -1;
    ssize_t got = 0;

    if (!colon) {
        return -1;
    }
    snprintf(addr, sizeof(addr), "%.*s", (int)(colon - peer), peer);
    sin.sin_port = htons(atoi(colon + 1));
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        return -1;
    }
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    len = snprintf(line, sizeof(line), "hello %u\n", n);
    snprintf(want, sizeof(want), "ack %u\n", n);
    if (s >= 0 && connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        write(s, line, len) == len) {
        while (got < (ssize_t)strlen(want)) {
            ssize_t r = read(s, line + got, sizeof(line) - 1 - got);

            if (r <= 0) {
                break;
            }
            got += r;
        }
        line[got] = 0;
        ret = strcmp(line, want) ? -1 : 0;
    }
    if (s >= 0) {
        close(s);
    }
    return ret;
}

/* Answer one request line @req into @reply */
static void serve_request(int disk, uint8_t *buf, uint8_t *want,
                          const char *req, char *reply, size_t size)
{
    char op = 0;
    uint32_t n = 0, kib = 0, bad;

    if (sscanf(req, "%c %u %u", &op, &n, &kib) < 2 || n == 0) {
        snprintf(reply, size, "err bad request\n");
    } else if (op == 'b') {
        disk_bench(disk, n, kib, reply, size);
    } else if (op == 'o' && call_peer(n) < 0) {
        snprintf(reply, size, "err peer %u: %s\n", n, strerror(errno));
    } else if ((op == 'w' || op == 'o') && !sector_blank(disk, buf, n)) {
        say("colo-guest: DISK MISMATCH: sector %u written before: "
            "the disk is ahead of the memory\n", n);
        snprintf(reply, size, "err ahead %u\n", n);
    } else if (op == 'w' || op == 'o') {
        fill_record(buf, n);
        if (pwrite(disk, buf, SECTOR, (off_t)n * SECTOR) != SECTOR) {
            snprintf(reply, size, "err write %u: %s\n", n, strerror(errno));
        } else {
            snprintf(reply, size, "ok %u\n", n);
        }
    } else if (op == 'c') {
        bad = check_records(disk, buf, want, n);
        if (bad) {
            snprintf(reply, size, "bad %u\n", bad);
        } else {
            snprintf(reply, size, "good %u\n", n);
        }
    } else {
        snprintf(reply, size, "err bad request\n");
    }
}

/* Serve the connection @c until the client closes it */
static void serve_client(int c, int disk)
{
    static uint8_t buf[SECTOR] __attribute__((aligned(SECTOR)));
    static uint8_t want[SECTOR];
    char line[128], reply[128];
    size_t used = 0;
    int one = 1;

    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (;;) {
        ssize_t got = read(c, line + used, sizeof(line) - 1 - used);
        char *nl;

        if (got <= 0) {
            return;
        }
        used += got;
        line[used] = 0;
        while ((nl = strchr(line, '\n'))) {
            *nl = 0;
            serve_request(disk, buf, want, line, reply, sizeof(reply));
            if (write(c, reply, strlen(reply)) < 0) {
                return;
            }
            used -= nl + 1 - line;
            memmove(line, nl + 1, used + 1);
        }
        if (used == sizeof(line) - 1) {
            return;
        }
    }
}

static int open_disk(void)
{
    for (int i = 0; i < 100; i++) {
        int disk = open(DISK, O_RDWR | O_DIRECT | O_DSYNC | O_CLOEXEC);

        if (disk >= 0) {
            return disk;
        }
        usleep(100 * 1000);
    }
    say("colo-guest: cannot open " DISK ": %s\n", strerror(errno));
    return -1;
}

static int listen_on(int port)
{
    struct sockaddr_in sin = {
        .sin_family = AF_INET,
        .sin_port = htons(port),
        .sin_addr.s_addr = htonl(INADDR_ANY),
    };
    int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (s < 0 ||
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(s, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        listen(s, 4) < 0) {
        say("colo-guest: cannot listen on %d: %s\n", port, strerror(errno));
        return -1;
    }
    return s;
}

/* As PID 1, reap what httpd's children leave behind them */
static void reap_children(int sig)
{
    int saved = errno;

    while (waitpid(-1, NULL, WNOHANG) > 0) {
        continue;
    }
    errno = saved;
}

/* busybox httpd on @port, in the foreground of a child of its own */
static void start_httpd(const char *port)
{
    struct sigaction sa = { .sa_handler = reap_children,
                            .sa_flags = SA_RESTART | SA_NOCLDSTOP };
    pid_t pid;

    sigaction(SIGCHLD, &sa, NULL);
    /* For the CGIs (/proc/self/schedstat) */
    mkdir("/proc", 0555);
    mount("proc", "/proc", "proc", 0, NULL);
    pid = fork();
    if (pid == 0) {
        execl("/bin/busybox", "busybox", "httpd", "-f", "-p", port,
              "-h", "/www", (char *)NULL);
        say("colo-guest: cannot run httpd: %s\n", strerror(errno));
        _exit(1);
    }
    if (pid < 0) {
        say("colo-guest: cannot run httpd: %s\n", strerror(errno));
        return;
    }
    say("colo-guest: httpd on port %s\n", port);
}

static int service(int port, const char *cidr)
{
    const char *httpd = getenv("colo_httpd");

    int disk, s;

    load_modules();
    if (!cidr || configure_eth0(cidr) < 0) {
        say("colo-guest: cannot configure eth0 as %s: %s\n",
            cidr ? cidr : "(no colo_ip)", strerror(errno));
        return 1;
    }
    disk = open_disk();
    s = listen_on(port);
    if (disk < 0 || s < 0) {
        return 1;
    }
    if (fork() == 0) {
        (void)!nice(19);
        return check_loop(0);
    }
    if (httpd) {
        start_httpd(httpd);
    }
    say("colo-guest: service on port %d\n", port);
    for (;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);

        if (c >= 0) {
            say("colo-guest: client connected\n");
            serve_client(c, disk);
            close(c);
            say("colo-guest: client gone\n");
        }
    }
}

int main(void)
{
    const char *port = getenv("colo_service");

    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    console = open("/dev/console", O_WRONLY | O_NOCTTY);
    if (port) {
        service(atoi(port), getenv("colo_ip"));
        say("colo-guest: service failed\n");
        for (;;) {
            pause();
        }
    }
    return check_loop(1);
}
