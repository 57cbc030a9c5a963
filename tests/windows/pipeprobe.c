/* tests/windows/pipeprobe.c — a raw client of the helper's named pipe, for tests/windows/run.sh
 * (built there with x86_64-w64-mingw32-gcc, run under Wine). It does what the real CLI never
 * does: bad frames, and opening the pipe with a token the pipe's DACL must refuse.
 *
 * Usage: pipeprobe MODE PIPE [VERSION [NAME]]
 *   connect    hello, then the request to bring up the system tunnel NAME: prints the response
 *              itself, whose error kind the script checks (the CLI shows only its exit code)
 *   garbage    hello (protocol VERSION), then a frame that is not JSON
 *   oversized  hello, then a length prefix of 0xFFFFFFFF
 *   early      a request before any hello
 *   truncated  hello, then half a frame, then the client goes away
 *   first      create an instance of PIPE with FILE_FLAG_FIRST_PIPE_INSTANCE while the daemon
 *              serves it: Windows refuses (`refused 5`); prints `created` if the system allows it
 *   restricted open PIPE while impersonating a restricted copy of this process's token: every
 *              group deny-only (SYSTEM and Administrators included, so the DACL's grants do not
 *              apply), which Windows must refuse with ERROR_ACCESS_DENIED
 * Prints one line per event on stdout: `opened`, `denied <error>`, `created`, `refused <error>`, `frame <json>`, `eof`,
 * `error <what> <code>`; the script checks them. Exit 0 when the exchange ran (whatever the
 * daemon answered), 2 on bad usage, 1 when the pipe could not be used at all. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every frame the daemon sends is far below this here (hello, one error). */
#define MAX_PRINTED (64 * 1024)

static HANDLE open_pipe(const char *path)
{
    /* The daemon may be between two instances: wait for one, briefly. */
    for (int attempt = 0; attempt < 50; attempt++) {
        HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
        if (h != INVALID_HANDLE_VALUE)
            return h;
        DWORD err = GetLastError();
        if (err != ERROR_PIPE_BUSY && err != ERROR_FILE_NOT_FOUND) {
            printf("error open %lu\n", err);
            return INVALID_HANDLE_VALUE;
        }
        WaitNamedPipeA(path, 100);
    }
    printf("error open-timeout %lu\n", GetLastError());
    return INVALID_HANDLE_VALUE;
}

static int write_all(HANDLE h, const void *data, DWORD len)
{
    const char *p = data;
    while (len > 0) {
        DWORD n = 0;
        if (!WriteFile(h, p, len, &n, NULL)) {
            printf("error write %lu\n", GetLastError());
            return 0;
        }
        p += n;
        len -= n;
    }
    return 1;
}

/* 1 and the bytes when all `len` arrived; 0 at the end of the stream (or a read error). */
static int read_all(HANDLE h, void *data, DWORD len)
{
    char *p = data;
    while (len > 0) {
        DWORD n = 0;
        if (!ReadFile(h, p, len, &n, NULL) || n == 0) {
            DWORD err = GetLastError();
            if (err != ERROR_BROKEN_PIPE && err != ERROR_PIPE_NOT_CONNECTED && err != ERROR_SUCCESS)
                printf("error read %lu\n", err);
            return 0;
        }
        p += n;
        len -= n;
    }
    return 1;
}

static int write_frame(HANDLE h, const char *json)
{
    DWORD len = (DWORD)strlen(json);
    unsigned char prefix[4] = {len >> 24, len >> 16, len >> 8, len};
    return write_all(h, prefix, 4) && write_all(h, json, len);
}

/* Prints `frame <json>`, or `eof`; returns 0 at the end of the stream. */
static int read_frame(HANDLE h)
{
    unsigned char prefix[4];
    if (!read_all(h, prefix, 4)) {
        printf("eof\n");
        return 0;
    }
    DWORD len = (DWORD)prefix[0] << 24 | (DWORD)prefix[1] << 16 | (DWORD)prefix[2] << 8 | prefix[3];
    if (len > MAX_PRINTED) {
        printf("error frame-too-long %lu\n", len);
        return 0;
    }
    char *json = malloc(len + 1);
    if (json == NULL || !read_all(h, json, len)) {
        printf("eof\n");
        free(json);
        return 0;
    }
    json[len] = 0;
    printf("frame %s\n", json);
    free(json);
    return 1;
}

static int hello(HANDLE h, const char *version)
{
    char json[128];
    snprintf(json, sizeof json, "{\"hello\":{\"version\":%s,\"client\":\"pipeprobe\"}}", version);
    return write_frame(h, json) && read_frame(h);
}

/* Reads and prints every frame until the daemon closes the connection. */
static void drain(HANDLE h)
{
    while (read_frame(h)) {
    }
}

static int restricted(const char *path)
{
    HANDLE token, limited;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_ALL_ACCESS, &token)) {
        printf("error OpenProcessToken %lu\n", GetLastError());
        return 1;
    }
    DWORD size = 0;
    GetTokenInformation(token, TokenGroups, NULL, 0, &size);
    TOKEN_GROUPS *groups = malloc(size);
    if (groups == NULL || !GetTokenInformation(token, TokenGroups, groups, size, &size)) {
        printf("error GetTokenInformation %lu\n", GetLastError());
        return 1;
    }
    /* Every group deny-only (the logon SID cannot be, and need not be: the DACL does not name it). */
    SID_AND_ATTRIBUTES *deny = calloc(groups->GroupCount, sizeof *deny);
    DWORD count = 0;
    for (DWORD i = 0; i < groups->GroupCount; i++) {
        if (groups->Groups[i].Attributes & SE_GROUP_LOGON_ID)
            continue;
        deny[count].Sid = groups->Groups[i].Sid;
        deny[count].Attributes = 0;
        count++;
    }
    /* The user's own SID too: the descriptor's owner is SYSTEM, but be thorough. */
    TOKEN_USER *user = NULL;
    size = 0;
    GetTokenInformation(token, TokenUser, NULL, 0, &size);
    user = malloc(size);
    if (user == NULL || !GetTokenInformation(token, TokenUser, user, size, &size)) {
        printf("error GetTokenInformation-user %lu\n", GetLastError());
        return 1;
    }
    SID_AND_ATTRIBUTES *all = calloc(count + 1, sizeof *all);
    memcpy(all, deny, count * sizeof *deny);
    all[count].Sid = user->User.Sid;
    count++;
    if (!CreateRestrictedToken(token, 0, count, all, 0, NULL, 0, NULL, &limited)) {
        printf("error CreateRestrictedToken %lu\n", GetLastError());
        return 1;
    }
    HANDLE impersonation;
    if (!DuplicateToken(limited, SecurityImpersonation, &impersonation) ||
        !SetThreadToken(NULL, impersonation)) {
        printf("error impersonate %lu\n", GetLastError());
        return 1;
    }
    HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    DWORD err = GetLastError();
    RevertToSelf();
    printf("restricted-groups %lu\n", count);
    if (h == INVALID_HANDLE_VALUE) {
        printf("denied %lu\n", err);
        return 0;
    }
    printf("opened\n");
    CloseHandle(h);
    return 0;
}

static int first_instance(const char *path)
{
    HANDLE h = CreateNamedPipeA(path, PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
                                PIPE_TYPE_BYTE | PIPE_REJECT_REMOTE_CLIENTS, PIPE_UNLIMITED_INSTANCES,
                                4096, 4096, 0, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        printf("refused %lu\n", GetLastError());
        return 0;
    }
    printf("created\n");
    CloseHandle(h);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: pipeprobe connect|garbage|oversized|early|truncated|first|restricted PIPE [VERSION [NAME]]\n");
        return 2;
    }
    const char *mode = argv[1], *path = argv[2], *version = argc > 3 ? argv[3] : "0";
    if (strcmp(mode, "restricted") == 0)
        return restricted(path);
    if (strcmp(mode, "first") == 0)
        return first_instance(path);
    HANDLE h = open_pipe(path);
    if (h == INVALID_HANDLE_VALUE)
        return 1;
    printf("opened\n");
    if (strcmp(mode, "connect") == 0 && argc > 4) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"request\":{\"id\":1,\"request\":{\"command\":\"connect_system\",\"args\":{\"name\":\"%s\"}}}}",
                 argv[4]);
        if (hello(h, version) && write_frame(h, json))
            read_frame(h);
    } else if (strcmp(mode, "garbage") == 0) {
        if (hello(h, version) && write_frame(h, "this is not json"))
            drain(h);
    } else if (strcmp(mode, "oversized") == 0) {
        static const unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};
        if (hello(h, version) && write_all(h, huge, 4))
            drain(h);
    } else if (strcmp(mode, "early") == 0) {
        if (write_frame(h, "{\"request\":{\"id\":1,\"request\":{\"command\":\"list_tunnels\"}}}"))
            drain(h);
    } else if (strcmp(mode, "truncated") == 0) {
        static const unsigned char partial[9] = {0, 0, 0, 100, '{', '"', 'r', 'e', 'q'};
        if (hello(h, version))
            write_all(h, partial, sizeof partial);
        printf("closed\n");
    } else {
        fprintf(stderr, "pipeprobe: unknown mode '%s'\n", mode);
        CloseHandle(h);
        return 2;
    }
    CloseHandle(h);
    return 0;
}
