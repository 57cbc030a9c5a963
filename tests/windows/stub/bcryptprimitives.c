/* tests/windows/stub/bcryptprimitives.c — a stand-in bcryptprimitives.dll for running Windows
 * builds under Wine 8 (the `windows` stage of scripts/test.sh; tests/windows/run.sh builds it).
 *
 * Rust's standard library (1.78+) takes its random bytes (HashMap seeds) from ProcessPrng in
 * bcryptprimitives.dll, which Windows 10+ has and Wine 8.0 does not: without this DLL every Rust
 * executable fails to load there. Wine does have RtlGenRandom (advapi32's SystemFunction036), which
 * fills the buffer from the host's random source, so ProcessPrng is that and nothing else.
 * Test use only: never shipped, never on a real Windows (which has its own DLL of this name). */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG: fill larger requests in chunks. */
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
