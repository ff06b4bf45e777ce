/* SPDX-License-Identifier: MIT */
/* moatd's connection to the app for a verified session. */
#ifndef MOAT_APP_CONNECT_H
#define MOAT_APP_CONNECT_H

struct session;
struct steering;

void app_connect_init(struct steering *st);
/* Starts the non-blocking connect; the session moves to PHASE_CONNECTING. */
void app_connect_start(struct session *s);
/* On the backend socket's EPOLLOUT: checks the connect, sends the PROXY header, starts the data path. */
void app_connect_finish(struct session *s);
/* Drops the loopback exemption of this session's backend tuple, if any. */
void app_connect_clear_exemption(struct session *s);

#endif
