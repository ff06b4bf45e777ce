#!/usr/bin/env bash
# lanes: host san
# Policy files: each identity matcher (SAN URI with wildcards, SAN DNS, CN,
# OU, certificate and SPKI SHA-256 pins) admits the clients it names and
# refuses the others with reason policy_denied; the app sees only the admitted.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
policy vs0.conf <<P
$(port_section 8443 'allow_uri = spiffe://example.org/ns/prod/*')
P
start_moatd
expect_ok client-spiffe $SRV_IP 8443
expect_refused client-spiffe-dev $SRV_IP 8443
expect_reason policy_denied
expect_refused client-ec $SRV_IP 8443
log "allow_uri spiffe://example.org/ns/prod/*: prod admitted, dev and no-URI refused"

# rules KEY=VALUE...: rewrites the policy and reloads.
rules() {
	policy vs0.conf <<P
$(port_section 8443 "$@")
P
	reload_ok
}

rules 'allow_uri = spiffe://example.org/**'
expect_ok client-spiffe $SRV_IP 8443
expect_ok client-spiffe-dev $SRV_IP 8443
rules 'allow_dns = *.prod.example.org'
expect_ok client-dns $SRV_IP 8443
expect_refused client-spiffe $SRV_IP 8443
rules 'allow_dns = *.example.org'
expect_refused client-dns $SRV_IP 8443
log "allow_uri ** crosses segments; allow_dns * stays in one label"

rules 'allow_cn = client-e*' 'allow_cn = client-rsa'
expect_ok client-ec $SRV_IP 8443
expect_ok client-rsa $SRV_IP 8443
expect_refused client-dns $SRV_IP 8443
rules 'allow_ou = payments'
expect_ok client-ou $SRV_IP 8443
expect_refused client-ec $SRV_IP 8443
log "allow_cn (exact and wildcard), allow_ou"

rules "allow_cert_sha256 = $(cert_sha256 "$PKI/client-rsa.crt" | sed 's/../&:/g; s/:$//')"
expect_ok client-rsa $SRV_IP 8443
expect_refused client-ec $SRV_IP 8443
rules "allow_spki_sha256 = $(spki_sha256 "$PKI/client-ec.crt")"
expect_ok client-ec $SRV_IP 8443
expect_refused client-rsa $SRV_IP 8443
log "certificate and SPKI pins"

# Several kinds at once: any match admits.
rules 'allow_ou = payments' 'allow_uri = spiffe://example.org/ns/dev/*'
expect_ok client-ou $SRV_IP 8443
expect_ok client-spiffe-dev $SRV_IP 8443
expect_refused client-spiffe $SRV_IP 8443
before=$(app_connections 8443)
expect_refused client-rsa $SRV_IP 8443
[ "$(app_connections 8443)" = "$before" ] || fail "a refused identity reached the app"
moat status | grep -q 'policy_denied=' || fail "status does not count policy_denied"
grep -q 'reason=policy_denied: certificate verify failed: application verification failure (depth=0 subject="CN=client-rsa")' \
	"$T/moatd.log" || fail "policy refusal not logged with the subject"
log "rules combine as OR; refusals logged and counted, the app saw none"
stop_moatd
