// SPDX-License-Identifier: MIT
#include "sockaddr_text.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

void sockaddr_text(const struct sockaddr_storage *ss, const char *unset, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
			inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], host, sizeof(host));
			snprintf(out, len, "%s:%u", host, ntohs(a6->sin6_port));
		} else {
			inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
			snprintf(out, len, "[%s]:%u", host, ntohs(a6->sin6_port));
		}
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a4 = (const void *)ss;

		inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(a4->sin_port));
	} else {
		snprintf(out, len, "%s", unset);
	}
}

uint16_t sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return 0;
}
