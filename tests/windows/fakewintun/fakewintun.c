/*
 * tests/windows/fakewintun/fakewintun.c — a FAKE wintun.dll, for Warren's tests under Wine only.
 * It is NOT Wintun, has no driver behind it, and must never be shipped: tests/windows/run.sh
 * builds it into target/windows-wine/fake-wintun/wintun.dll and copies it next to its copy of
 * warren-helper's Windows unit-test binary (target/windows-wine/tunnel/); no installer recipe
 * refers to it.
 *
 * What it does: the 14 exports wintun-bindings 0.7 resolves (wintun.h's API; the `tun` crate calls
 * OpenAdapter, CreateAdapter, GetAdapterLUID, SetLogger, StartSession, GetReadWaitEvent,
 * ReceivePacket, ReleaseReceivePacket, AllocateSendPacket, SendPacket, EndSession, CloseAdapter),
 * with the packets of a session carried over a loopback UDP socket, one IP packet per datagram,
 * to tunbridge (tunbridge.c, next to this file) on the Linux side, which owns a real TUN device of
 * the same name in the test's network namespace and copies packets between that device and this
 * socket. Wine's services must run in that namespace too (tests/windows/tunnel.sh sees to it).
 *
 *   FAKE_WINTUN_PORT  the bridge's UDP port on 127.0.0.1 (required by WintunStartSession)
 *
 * The adapter's LUID is the one Wine gives the Linux interface of the adapter's name (the
 * bridge's TUN; ConvertInterfaceAliasToLuid), so Wine's IP Helper sees the adapter as an
 * interface of its own, as Windows would. WintunCreateAdapter fails with ERROR_FILE_NOT_FOUND
 * when there is no such interface (start the bridge first), WintunOpenAdapter always fails (no
 * adapter outlives a process here), so the `tun` crate creates one.
 *
 * The read-wait event is a manual-reset event, set while received packets are queued and reset by
 * the WintunReceivePacket call that finds the queue empty (which then fails with
 * ERROR_NO_MORE_ITEMS, as Wintun's does). A receiving thread fills the queue (at most QUEUE_MAX
 * packets; more are dropped, as a full ring would drop them).
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <iphlpapi.h>
#include <netioapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_MAX 1024
#define MAX_IP_PACKET 65535

typedef void(CALLBACK *WINTUN_LOGGER_CALLBACK)(int level, DWORD64 timestamp, const WCHAR *message);

typedef struct {
    WCHAR name[128];
    NET_LUID luid;
} ADAPTER;

/* A packet as handed out: its size, then its bytes (the pointer given to the caller). */
typedef struct PACKET {
    struct PACKET *next;
    DWORD size;
    BYTE data[];
} PACKET;

typedef struct {
    SOCKET sock;
    HANDLE read_event;
    HANDLE thread;
    CRITICAL_SECTION lock;
    PACKET *head, *tail;
    DWORD queued;
    volatile LONG closing;
    BYTE buf[MAX_IP_PACKET]; /* the receiving thread's */
} SESSION;

static WINTUN_LOGGER_CALLBACK logger;

static void say(int level, const char *fmt, ...)
{
    char text[512];
    WCHAR wide[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "fake wintun.dll: %s\n", text);
    if (logger) {
        MultiByteToWideChar(CP_UTF8, 0, text, -1, wide, 512);
        logger(level, 0, wide);
    }
}

static PACKET *packet_of(const BYTE *data)
{
    return (PACKET *)(data - offsetof(PACKET, data));
}

__declspec(dllexport) void WINAPI WintunSetLogger(WINTUN_LOGGER_CALLBACK callback)
{
    logger = callback;
}

__declspec(dllexport) DWORD WINAPI WintunGetRunningDriverVersion(void)
{
    return (0 << 16) | 14; /* "0.14", as the Wintun release the bindings were written for */
}

__declspec(dllexport) BOOL WINAPI WintunDeleteDriver(void)
{
    return TRUE;
}

__declspec(dllexport) ADAPTER *WINAPI WintunOpenAdapter(const WCHAR *name)
{
    (void)name;
    SetLastError(ERROR_FILE_NOT_FOUND);
    return NULL;
}

__declspec(dllexport) ADAPTER *WINAPI WintunCreateAdapter(const WCHAR *name, const WCHAR *tunnel_type,
                                                          const GUID *requested_guid)
{
    (void)tunnel_type;
    (void)requested_guid;
    ADAPTER *adapter = calloc(1, sizeof *adapter);
    if (!adapter) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    wcsncpy(adapter->name, name, 127);
    DWORD rc = ConvertInterfaceAliasToLuid(adapter->name, &adapter->luid);
    if (rc != NO_ERROR) {
        say(2, "no interface named %ls for the fake adapter (ConvertInterfaceAliasToLuid: %lu); "
               "is tunbridge running in this namespace?",
            adapter->name, rc);
        free(adapter);
        SetLastError(ERROR_FILE_NOT_FOUND);
        return NULL;
    }
    say(0, "adapter %ls: LUID 0x%llx (the Linux interface of that name)", adapter->name,
        (unsigned long long)adapter->luid.Value);
    return adapter;
}

__declspec(dllexport) void WINAPI WintunCloseAdapter(ADAPTER *adapter)
{
    free(adapter);
}

__declspec(dllexport) void WINAPI WintunGetAdapterLUID(ADAPTER *adapter, NET_LUID *luid)
{
    *luid = adapter->luid;
}

static DWORD WINAPI receiver(void *arg)
{
    SESSION *s = arg;
    for (;;) {
        int n = recv(s->sock, (char *)s->buf, sizeof s->buf, 0);
        if (s->closing)
            return 0;
        if (n <= 0) {
            /* A datagram the bridge could not take yet (ICMP port unreachable) is no reason to stop. */
            if (n < 0 && WSAGetLastError() == WSAECONNRESET)
                continue;
            say(2, "recv from the bridge failed (%d): the session stops receiving", WSAGetLastError());
            return 1;
        }
        PACKET *p = malloc(sizeof *p + (size_t)n);
        if (!p)
            continue;
        p->next = NULL;
        p->size = (DWORD)n;
        memcpy(p->data, s->buf, (size_t)n);
        EnterCriticalSection(&s->lock);
        if (s->queued >= QUEUE_MAX) {
            free(p);
        } else {
            if (s->tail)
                s->tail->next = p;
            else
                s->head = p;
            s->tail = p;
            s->queued++;
            SetEvent(s->read_event);
        }
        LeaveCriticalSection(&s->lock);
    }
}

__declspec(dllexport) SESSION *WINAPI WintunStartSession(ADAPTER *adapter, DWORD capacity)
{
    (void)capacity;
    const char *port = getenv("FAKE_WINTUN_PORT");
    if (!port || !*port) {
        say(2, "FAKE_WINTUN_PORT is not set: no bridge to carry adapter %ls's packets", adapter->name);
        SetLastError(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    WSADATA wsa;
    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
        SetLastError(ERROR_NOT_SUPPORTED);
        return NULL;
    }
    SESSION *s = calloc(1, sizeof *s);
    if (!s) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((u_short)atoi(port))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->sock = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    int size = 4 << 20;
    if (s->sock == INVALID_SOCKET ||
        setsockopt(s->sock, SOL_SOCKET, SO_RCVBUF, (char *)&size, sizeof size) != 0 ||
        connect(s->sock, (struct sockaddr *)&to, sizeof to) != 0) {
        say(2, "cannot reach the bridge at 127.0.0.1:%s (%d)", port, WSAGetLastError());
        if (s->sock != INVALID_SOCKET)
            closesocket(s->sock);
        free(s);
        SetLastError(ERROR_CONNECTION_REFUSED);
        return NULL;
    }
    /* An empty datagram says "here I am": the bridge sends the TUN's packets back to its source. */
    send(s->sock, "", 0, 0);
    InitializeCriticalSection(&s->lock);
    s->read_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    s->thread = CreateThread(NULL, 0, receiver, s, 0, NULL);
    if (!s->read_event || !s->thread) {
        say(2, "cannot create the session's event or thread (%lu)", GetLastError());
        closesocket(s->sock);
        free(s);
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return NULL;
    }
    say(0, "session on %ls: packets over 127.0.0.1:%s", adapter->name, port);
    return s;
}

__declspec(dllexport) void WINAPI WintunEndSession(SESSION *s)
{
    InterlockedExchange(&s->closing, 1);
    closesocket(s->sock); /* wakes the receiver's recv */
    WaitForSingleObject(s->thread, 5000);
    CloseHandle(s->thread);
    while (s->head) {
        PACKET *p = s->head;
        s->head = p->next;
        free(p);
    }
    CloseHandle(s->read_event);
    DeleteCriticalSection(&s->lock);
    free(s);
}

__declspec(dllexport) HANDLE WINAPI WintunGetReadWaitEvent(SESSION *s)
{
    return s->read_event;
}

__declspec(dllexport) BYTE *WINAPI WintunReceivePacket(SESSION *s, DWORD *size)
{
    EnterCriticalSection(&s->lock);
    PACKET *p = s->head;
    if (p) {
        s->head = p->next;
        if (!s->head)
            s->tail = NULL;
        s->queued--;
    } else {
        ResetEvent(s->read_event);
    }
    LeaveCriticalSection(&s->lock);
    if (!p) {
        SetLastError(ERROR_NO_MORE_ITEMS);
        return NULL;
    }
    *size = p->size;
    return p->data;
}

__declspec(dllexport) void WINAPI WintunReleaseReceivePacket(SESSION *s, const BYTE *packet)
{
    (void)s;
    free(packet_of(packet));
}

__declspec(dllexport) BYTE *WINAPI WintunAllocateSendPacket(SESSION *s, DWORD size)
{
    (void)s;
    if (size > MAX_IP_PACKET) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return NULL;
    }
    PACKET *p = malloc(sizeof *p + size);
    if (!p) {
        SetLastError(ERROR_BUFFER_OVERFLOW);
        return NULL;
    }
    p->next = NULL;
    p->size = size;
    return p->data;
}

__declspec(dllexport) void WINAPI WintunSendPacket(SESSION *s, const BYTE *packet)
{
    PACKET *p = packet_of(packet);
    if (send(s->sock, (const char *)p->data, (int)p->size, 0) < 0)
        say(1, "a packet to the bridge was lost (%d)", WSAGetLastError());
    free(p);
}
