/*
 * tests/windows/fakewintun/tunbridge.c — TEST ONLY: the Linux side of the fake wintun.dll
 * (fakewintun.c next to this file). Run inside the test's network namespace:
 *
 *   tunbridge IFNAME PORT
 *
 * creates the TUN device IFNAME (IFF_TUN | IFF_NO_PI: bare IP packets), binds UDP 127.0.0.1:PORT,
 * prints "ready" on stdout, then copies every packet the kernel routes into IFNAME to the fake
 * Wintun session (whose address it learns from the session's first, empty, datagram) and every
 * datagram from that session into IFNAME, one packet per datagram, until SIGTERM/SIGINT. The
 * caller configures IFNAME's addresses, MTU and routes with ip(8), as Warren's platform layer
 * would on Windows. The device goes when the process exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s IFNAME PORT\n", argv[0]);
        return 2;
    }
    int tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tun < 0) {
        perror("tunbridge: /dev/net/tun");
        return 1;
    }
    struct ifreq ifr = {0};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[1]);
    if (ioctl(tun, TUNSETIFF, &ifr) < 0) {
        fprintf(stderr, "tunbridge: TUNSETIFF %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int size = 4 << 20;
    setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (sock < 0 || bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
        fprintf(stderr, "tunbridge: bind 127.0.0.1:%s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("ready\n");
    fflush(stdout);

    struct sockaddr_in session = {0};
    socklen_t session_len = 0;
    unsigned long to_session = 0, to_tun = 0;
    static unsigned char buf[65536];
    struct pollfd fds[2] = {{.fd = tun, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
    while (!stop) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("tunbridge: poll");
            return 1;
        }
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(tun, buf, sizeof buf);
            /* Before the session has said hello there is nobody to hand the packet to: dropped. */
            if (n > 0 && session_len > 0 &&
                sendto(sock, buf, (size_t)n, 0, (struct sockaddr *)&session, session_len) == n)
                to_session++;
        }
        if (fds[1].revents & POLLIN) {
            struct sockaddr_in from;
            socklen_t from_len = sizeof from;
            ssize_t n = recvfrom(sock, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
            if (n == 0) {
                session = from;
                session_len = from_len;
                fprintf(stderr, "tunbridge: session at 127.0.0.1:%u\n", ntohs(from.sin_port));
            } else if (n > 0 && write(tun, buf, (size_t)n) == n) {
                to_tun++;
            }
        }
    }
    fprintf(stderr, "tunbridge: stopped; %lu packets to the session, %lu to %s\n", to_session, to_tun,
            argv[1]);
    return 0;
}
