#!/usr/bin/env bash
# Generates the test PKI with the openssl CLI into DIR (idempotent: skips if done).
#   ca / ca2             two unrelated CAs (EC P-256)
#   server               server cert for 10.x test addresses, 127.0.0.1, ::1, localhost
#   client-ec, client-rsa   good clients (clientAuth EKU)
#   client-other-ca      signed by ca2
#   client-expired, client-future   validity window in the past / future
#   client-server-eku    EKU serverAuth only
#   server-enc.key       the server key, encrypted with a passphrase
# Policy stage (.done-policy, added to an existing PKI):
#   client-spiffe / client-spiffe-dev   SAN URI spiffe://example.org/ns/{prod,dev}/web
#   client-dns           SAN DNS api.prod.example.org
#   client-ou            subject OU=payments, CN=client-ou
#   inter                an intermediate CA under ca; client-inter signed by it
#   client-revoked       revoked in ca.crl (openssl ca -revoke / -gencrl)
#   ca-empty.crl         ca's CRL before the revocation; ca2.crl: signed by ca2
#   server-expired       an expired server certificate
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -f .done ] && [ -f .done-policy ] && exit 0

ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

mkca() { # name cn
	ec "$1.key"
	openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 3650 -subj "/CN=$2" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
	mkdir -p "$1.db/certs"; : > "$1.db/index.txt"; echo 1000 > "$1.db/serial"
	cat > "$1.cnf" <<CNF
[ ca ]
default_ca = this
[ this ]
dir = $PWD/$1.db
database = \$dir/index.txt
new_certs_dir = \$dir/certs
serial = \$dir/serial
certificate = $PWD/$1.crt
private_key = $PWD/$1.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = supplied
CNF
}

# sign CA NAME KEYTYPE CN EXT [openssl-ca date args...]
sign() {
	local ca=$1 name=$2 keytype=$3 cn=$4 ext=$5; shift 5
	if [ "$keytype" = rsa ]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$name.key" 2>/dev/null
	else
		ec "$name.key"
	fi
	openssl req -new -key "$name.key" -out "$name.csr" -subj "${SUBJ:-/CN=$cn}"
	printf '%b\n' "$ext" > "$name.ext"
	openssl ca -batch -config "$ca.cnf" -in "$name.csr" -out "$name.crt" -extfile "$name.ext" \
		-notext "$@" 2>/dev/null
	rm -f "$name.csr"
}

client_ext='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'
if [ ! -f .done ]; then
mkca ca "moat test CA"
mkca ca2 "unrelated CA"
sign ca server ec server "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1,IP:10.200.0.1,IP:10.201.0.1,IP:fd00:200::1" -days 365
sign ca client-ec ec client-ec "$client_ext" -days 365
sign ca client-rsa rsa client-rsa "$client_ext" -days 365
sign ca2 client-other-ca ec client-other-ca "$client_ext" -days 365
sign ca client-expired ec client-expired "$client_ext" -startdate 20200101000000Z -enddate 20200201000000Z
sign ca client-future ec client-future "$client_ext" -startdate 20990101000000Z -enddate 20991231000000Z
sign ca client-server-eku ec client-server-eku \
	'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth' -days 365
openssl pkey -in server.key -out server-enc.key -aes256 -passout pass:secret
touch .done
fi

crl() { openssl ca -config "$1.cnf" -gencrl -crldays 30 -out "$2" 2>/dev/null; }
sign ca client-spiffe ec client-spiffe "$client_ext\nsubjectAltName=URI:spiffe://example.org/ns/prod/web" -days 365
sign ca client-spiffe-dev ec client-spiffe-dev "$client_ext\nsubjectAltName=URI:spiffe://example.org/ns/dev/web" -days 365
sign ca client-dns ec client-dns "$client_ext\nsubjectAltName=DNS:api.prod.example.org" -days 365
SUBJ="/OU=payments/CN=client-ou" sign ca client-ou ec client-ou "$client_ext" -days 365 -preserveDN
sign ca server-expired ec server "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth" \
	-startdate 20200101000000Z -enddate 20200201000000Z
# An intermediate CA and a client under it.
mkca inter "moat test intermediate"
openssl req -new -key inter.key -subj "/CN=moat test intermediate" -out inter.csr
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > inter.ext
openssl ca -batch -config ca.cnf -in inter.csr -out inter.crt -extfile inter.ext -notext -days 365 2>/dev/null
rm -f inter.csr
sign inter client-inter ec client-inter "$client_ext" -days 365
cat ca.crt inter.crt > ca-with-inter.crt
sign ca client-revoked ec client-revoked "$client_ext" -days 365
crl ca ca-empty.crl
openssl ca -config ca.cnf -revoke client-revoked.crt 2>/dev/null
crl ca ca.crl
crl ca2 ca2.crl
touch .done-policy
