/* wintun-test.c: a stand-in wintun.dll for tests/windows/msi.sh ONLY — NOT Wintun and never for
 * release. It lets installer/windows/build-msi.sh --test-wintun build an MSI on a machine that
 * cannot download WireGuard LLC's signed wintun.dll; that MSI is named and marked
 * "TEST-NOT-FOR-RELEASE". It exports none of Wintun's functions, so a helper that loads it
 * fails to resolve WintunCreateAdapter and reports Wintun as missing. */
#include <windows.h>

__declspec(dllexport) const char *WarrenTestWintunNotForRelease(void)
{
    return "stand-in wintun.dll for Warren's installer tests, not Wintun";
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
