/*
 * tests/windows/fakewintun/iphlpprobe.c — TEST ONLY: `iphlpprobe.exe IFNAME`, run under Wine in
 * the tunnel test's namespace, makes each IP Helper, Winsock and WFP call of Warren's Windows `up`
 * path (helper/src/sys/windows/net.rs, platform/{windows,monitor/windows,dns/windows,
 * firewall/windows}.rs, and the `tun` crate's adapter set-up) once, against the interface IFNAME
 * (the fake Wintun adapter's TUN):
 *
 *   iphlpprobe.exe            prints the names of the calls it can make, one a line
 *   iphlpprobe.exe IFNAME CALL  makes that one call and prints `CALL ok` or `CALL err=N` (the
 *                              Win32 or Winsock error number)
 *
 * One call per process, because Wine's unimplemented exports are stubs that end the process when
 * called (tunnel.sh reports such a call as `unimplemented`). The rows are filled in by hand, not by
 * the Initialize* functions, so that each call is tried on its own (each Initialize* is a call of
 * its own here). tests/windows/tunnel.sh compares these lines with wine-calls.expected, the
 * source of the README's "Windows under Wine" table. The addresses and routes it adds are in the
 * test's ranges (198.19.0.0/16) and in the test's namespace, and it removes what it added.
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <iphlpapi.h>
#include <netioapi.h>
#include <fwpmu.h>
#include <stdio.h>
#include <string.h>

#ifndef FWPM_SESSION_FLAG_DYNAMIC
#define FWPM_SESSION_FLAG_DYNAMIC 0x00000001
#endif

#define PROBE(name) static DWORD probe_##name(NET_LUID luid, NET_IFINDEX index)
#define UNUSED (void)luid, (void)index

static void CALLBACK on_interface(void *ctx, MIB_IPINTERFACE_ROW *row, MIB_NOTIFICATION_TYPE type)
{
    (void)ctx, (void)row, (void)type;
}
static void CALLBACK on_route(void *ctx, MIB_IPFORWARD_ROW2 *row, MIB_NOTIFICATION_TYPE type)
{
    (void)ctx, (void)row, (void)type;
}
static void CALLBACK on_address(void *ctx, MIB_UNICASTIPADDRESS_ROW *row, MIB_NOTIFICATION_TYPE type)
{
    (void)ctx, (void)row, (void)type;
}

PROBE(ConvertInterfaceLuidToIndex)
{
    UNUSED;
    NET_IFINDEX i;
    return ConvertInterfaceLuidToIndex(&luid, &i);
}
PROBE(ConvertInterfaceIndexToLuid)
{
    UNUSED;
    NET_LUID l;
    return ConvertInterfaceIndexToLuid(index, &l);
}
PROBE(ConvertInterfaceLuidToGuid)
{
    UNUSED;
    GUID g;
    return ConvertInterfaceLuidToGuid(&luid, &g);
}
PROBE(ConvertInterfaceLuidToAlias)
{
    UNUSED;
    WCHAR name[128];
    return ConvertInterfaceLuidToAlias(&luid, name, 128);
}
PROBE(InitializeIpInterfaceEntry)
{
    UNUSED;
    MIB_IPINTERFACE_ROW row;
    InitializeIpInterfaceEntry(&row);
    return NO_ERROR;
}
static DWORD get_interface(NET_LUID luid, ADDRESS_FAMILY family, MIB_IPINTERFACE_ROW *row)
{
    memset(row, 0, sizeof *row);
    row->Family = family;
    row->InterfaceLuid = luid;
    return GetIpInterfaceEntry(row);
}
PROBE(GetIpInterfaceEntry_AF_INET)
{
    UNUSED;
    MIB_IPINTERFACE_ROW row;
    return get_interface(luid, AF_INET, &row);
}
PROBE(GetIpInterfaceEntry_AF_INET6)
{
    UNUSED;
    MIB_IPINTERFACE_ROW row;
    return get_interface(luid, AF_INET6, &row);
}
PROBE(SetIpInterfaceEntry_AF_INET)
{
    UNUSED;
    /* The row filled in by hand, as if GetIpInterfaceEntry had worked. */
    MIB_IPINTERFACE_ROW row;
    memset(&row, 0, sizeof row);
    row.Family = AF_INET;
    row.InterfaceLuid = luid;
    row.InterfaceIndex = index;
    row.NlMtu = 1380;
    row.UseAutomaticMetric = TRUE;
    return SetIpInterfaceEntry(&row);
}
PROBE(DeleteUnicastIpAddressEntry)
{
    UNUSED;
    MIB_UNICASTIPADDRESS_ROW row;
    memset(&row, 0, sizeof row);
    row.InterfaceLuid = luid;
    row.Address.Ipv4.sin_family = AF_INET;
    row.Address.Ipv4.sin_addr.s_addr = htonl(0xC6130001); /* 198.19.0.1, the TUN's address */
    row.OnLinkPrefixLength = 24;
    return DeleteUnicastIpAddressEntry(&row);
}
PROBE(DeleteIpForwardEntry2)
{
    UNUSED;
    MIB_IPFORWARD_ROW2 row;
    memset(&row, 0, sizeof row);
    row.InterfaceLuid = luid;
    row.DestinationPrefix.Prefix.Ipv4.sin_family = AF_INET;
    row.DestinationPrefix.Prefix.Ipv4.sin_addr.s_addr = htonl(0xC6130600); /* 198.19.6.0/24 */
    row.DestinationPrefix.PrefixLength = 24;
    row.NextHop.Ipv4.sin_family = AF_INET;
    return DeleteIpForwardEntry2(&row);
}
PROBE(NotifyIpInterfaceChange)
{
    UNUSED;
    HANDLE h = NULL;
    DWORD rc = NotifyIpInterfaceChange(AF_UNSPEC, on_interface, NULL, FALSE, &h);
    if (rc == NO_ERROR)
        CancelMibChangeNotify2(h);
    return rc;
}
PROBE(NotifyRouteChange2)
{
    UNUSED;
    HANDLE h = NULL;
    DWORD rc = NotifyRouteChange2(AF_UNSPEC, on_route, NULL, FALSE, &h);
    if (rc == NO_ERROR)
        CancelMibChangeNotify2(h);
    return rc;
}
PROBE(NotifyUnicastIpAddressChange)
{
    UNUSED;
    HANDLE h = NULL;
    DWORD rc = NotifyUnicastIpAddressChange(AF_UNSPEC, on_address, NULL, FALSE, &h);
    if (rc == NO_ERROR)
        CancelMibChangeNotify2(h);
    return rc;
}
PROBE(InitializeUnicastIpAddressEntry)
{
    UNUSED;
    MIB_UNICASTIPADDRESS_ROW row;
    InitializeUnicastIpAddressEntry(&row);
    return NO_ERROR;
}
PROBE(CreateUnicastIpAddressEntry)
{
    UNUSED;
    MIB_UNICASTIPADDRESS_ROW row;
    memset(&row, 0, sizeof row);
    row.InterfaceLuid = luid;
    row.Address.Ipv4.sin_family = AF_INET;
    row.Address.Ipv4.sin_addr.s_addr = htonl(0xC6130909); /* 198.19.9.9 */
    row.OnLinkPrefixLength = 24;
    row.PrefixOrigin = IpPrefixOriginManual;
    row.SuffixOrigin = IpSuffixOriginManual;
    row.ValidLifetime = row.PreferredLifetime = 0xffffffff;
    row.DadState = IpDadStatePreferred;
    DWORD rc = CreateUnicastIpAddressEntry(&row);
    if (rc == NO_ERROR)
        DeleteUnicastIpAddressEntry(&row);
    return rc;
}
PROBE(InitializeIpForwardEntry)
{
    UNUSED;
    MIB_IPFORWARD_ROW2 row;
    InitializeIpForwardEntry(&row);
    return NO_ERROR;
}
PROBE(CreateIpForwardEntry2)
{
    UNUSED;
    MIB_IPFORWARD_ROW2 row;
    memset(&row, 0, sizeof row);
    row.InterfaceLuid = luid;
    row.DestinationPrefix.Prefix.Ipv4.sin_family = AF_INET;
    row.DestinationPrefix.Prefix.Ipv4.sin_addr.s_addr = htonl(0xC6130500); /* 198.19.5.0/24 */
    row.DestinationPrefix.PrefixLength = 24;
    row.NextHop.Ipv4.sin_family = AF_INET;
    row.Protocol = MIB_IPPROTO_NETMGMT;
    row.ValidLifetime = row.PreferredLifetime = 0xffffffff;
    DWORD rc = CreateIpForwardEntry2(&row);
    if (rc == NO_ERROR)
        DeleteIpForwardEntry2(&row);
    return rc;
}
PROBE(GetIpForwardTable2)
{
    UNUSED;
    MIB_IPFORWARD_TABLE2 *table = NULL;
    DWORD rc = GetIpForwardTable2(AF_UNSPEC, &table);
    if (rc == NO_ERROR)
        FreeMibTable(table);
    return rc;
}
PROBE(GetBestRoute2)
{
    UNUSED;
    SOCKADDR_INET dest, source;
    MIB_IPFORWARD_ROW2 best;
    memset(&dest, 0, sizeof dest);
    dest.Ipv4.sin_family = AF_INET;
    dest.Ipv4.sin_addr.s_addr = htonl(0xC6120002); /* 198.18.0.2, the peer's underlay address */
    return GetBestRoute2(NULL, 0, NULL, &dest, 0, &best, &source);
}
static DWORD sockopt(int family, int level, int name, DWORD value)
{
    WSADATA wsa;
    WSAStartup(MAKEWORD(2, 2), &wsa);
    SOCKET s = socket(family, SOCK_DGRAM, IPPROTO_UDP);
    DWORD rc = setsockopt(s, level, name, (char *)&value, sizeof value) == 0 ? NO_ERROR : (DWORD)WSAGetLastError();
    closesocket(s);
    return rc;
}
PROBE(setsockopt_IP_UNICAST_IF)
{
    UNUSED;
    return sockopt(AF_INET, IPPROTO_IP, IP_UNICAST_IF, htonl(index));
}
PROBE(setsockopt_IPV6_UNICAST_IF)
{
    UNUSED;
    return sockopt(AF_INET6, IPPROTO_IPV6, IPV6_UNICAST_IF, index);
}
/* The options quinn-udp 0.5 sets on each of the data plane's UDP sockets (its windows.rs), by
 * number: mingw's headers lack some of them. */
PROBE(getsockopt_IPV6_V6ONLY_on_IPv4)
{
    UNUSED;
    WSADATA wsa;
    WSAStartup(MAKEWORD(2, 2), &wsa);
    SOCKET s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    DWORD value = 0;
    int len = sizeof value;
    DWORD rc = getsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, (char *)&value, &len) == 0 ? NO_ERROR
                                                                                    : (DWORD)WSAGetLastError();
    closesocket(s);
    return rc;
}
PROBE(setsockopt_IP_DONTFRAGMENT)
{
    UNUSED;
    return sockopt(AF_INET, IPPROTO_IP, 14, 1);
}
PROBE(setsockopt_IP_PKTINFO)
{
    UNUSED;
    return sockopt(AF_INET, IPPROTO_IP, 19, 1);
}
PROBE(setsockopt_IP_RECVECN)
{
    UNUSED;
    return sockopt(AF_INET, IPPROTO_IP, 50, 1);
}
PROBE(setsockopt_IPV6_DONTFRAG)
{
    UNUSED;
    return sockopt(AF_INET6, IPPROTO_IPV6, 14, 1);
}
PROBE(setsockopt_IPV6_PKTINFO)
{
    UNUSED;
    return sockopt(AF_INET6, IPPROTO_IPV6, 19, 1);
}
PROBE(setsockopt_IPV6_RECVECN)
{
    UNUSED;
    return sockopt(AF_INET6, IPPROTO_IPV6, 50, 1);
}
PROBE(setsockopt_UDP_RECV_MAX_COALESCED_SIZE)
{
    UNUSED;
    return sockopt(AF_INET, IPPROTO_UDP, 3, 65527);
}
PROBE(SetInterfaceDnsSettings)
{
    UNUSED;
    /* Windows 10 2004+, not in mingw's headers: an export Wine lacks is ERROR_PROC_NOT_FOUND. */
    HMODULE iphlp = GetModuleHandleW(L"iphlpapi.dll");
    return iphlp && GetProcAddress(iphlp, "SetInterfaceDnsSettings") ? NO_ERROR : ERROR_PROC_NOT_FOUND;
}
PROBE(FwpmEngineOpen0)
{
    UNUSED;
    HANDLE engine = NULL;
    FWPM_SESSION0 session;
    memset(&session, 0, sizeof session);
    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    DWORD rc = FwpmEngineOpen0(NULL, RPC_C_AUTHN_DEFAULT, NULL, &session, &engine);
    if (rc == NO_ERROR)
        FwpmEngineClose0(engine);
    return rc;
}

#define ENTRY(name) {#name, probe_##name}
static const struct {
    const char *name;
    DWORD (*run)(NET_LUID, NET_IFINDEX);
} probes[] = {
    ENTRY(ConvertInterfaceLuidToIndex), ENTRY(ConvertInterfaceIndexToLuid),
    ENTRY(ConvertInterfaceLuidToGuid), ENTRY(ConvertInterfaceLuidToAlias),
    ENTRY(NotifyIpInterfaceChange), ENTRY(GetIpInterfaceEntry_AF_INET),
    ENTRY(GetIpInterfaceEntry_AF_INET6), ENTRY(InitializeIpInterfaceEntry),
    ENTRY(SetIpInterfaceEntry_AF_INET),
    ENTRY(InitializeUnicastIpAddressEntry),
    ENTRY(CreateUnicastIpAddressEntry), ENTRY(DeleteUnicastIpAddressEntry),
    ENTRY(InitializeIpForwardEntry),
    ENTRY(CreateIpForwardEntry2), ENTRY(DeleteIpForwardEntry2),
    ENTRY(GetIpForwardTable2), ENTRY(GetBestRoute2),
    ENTRY(NotifyRouteChange2), ENTRY(NotifyUnicastIpAddressChange),
    ENTRY(setsockopt_IP_UNICAST_IF), ENTRY(setsockopt_IPV6_UNICAST_IF),
    ENTRY(getsockopt_IPV6_V6ONLY_on_IPv4), ENTRY(setsockopt_IP_DONTFRAGMENT), ENTRY(setsockopt_IP_PKTINFO), ENTRY(setsockopt_IP_RECVECN),
    ENTRY(setsockopt_IPV6_DONTFRAG), ENTRY(setsockopt_IPV6_PKTINFO), ENTRY(setsockopt_IPV6_RECVECN),
    ENTRY(setsockopt_UDP_RECV_MAX_COALESCED_SIZE),
    ENTRY(SetInterfaceDnsSettings), ENTRY(FwpmEngineOpen0),
};

int main(int argc, char **argv)
{
    size_t i, count = sizeof probes / sizeof probes[0];
    if (argc == 1) {
        puts("ConvertInterfaceAliasToLuid");
        for (i = 0; i < count; i++)
            puts(probes[i].name);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: iphlpprobe [IFNAME CALL]\n");
        return 2;
    }
    WCHAR alias[128];
    MultiByteToWideChar(CP_UTF8, 0, argv[1], -1, alias, 128);
    NET_LUID luid;
    NET_IFINDEX index = 0;
    DWORD rc = ConvertInterfaceAliasToLuid(alias, &luid);
    if (strcmp(argv[2], "ConvertInterfaceAliasToLuid") == 0) {
        printf("%s %s%.0lu\n", argv[2], rc == NO_ERROR ? "ok" : "err=", rc);
        return 0;
    }
    if (rc != NO_ERROR || ConvertInterfaceLuidToIndex(&luid, &index) != NO_ERROR) {
        fprintf(stderr, "iphlpprobe: no interface %s (%lu)\n", argv[1], rc);
        return 1;
    }
    for (i = 0; i < count; i++) {
        if (strcmp(argv[2], probes[i].name) == 0) {
            rc = probes[i].run(luid, index);
            printf("%s %s%.0lu\n", argv[2], rc == NO_ERROR ? "ok" : "err=", rc);
            fflush(stdout);
            return 0;
        }
    }
    fprintf(stderr, "iphlpprobe: unknown call %s\n", argv[2]);
    return 2;
}
