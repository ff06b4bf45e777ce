/* SPDX-License-Identifier: MIT */
/* Socket addresses as people read them: "10.0.0.1:443", "[fd00::1]:443". */
#ifndef MOAT_SOCKADDR_TEXT_H
#define MOAT_SOCKADDR_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* IPv4-mapped IPv6 prints as IPv4; any other family prints `unset`. */
void sockaddr_text(const struct sockaddr_storage *ss, const char *unset, char *out, size_t len);
/* The port in host order (0 for other families). */
uint16_t sockaddr_port(const struct sockaddr_storage *ss);

#endif
