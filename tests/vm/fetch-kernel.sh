#!/usr/bin/env bash
# fetch-kernel.sh - download and cache a Debian kernel for moat's kTLS VM lane.
#
# Usage: tests/vm/fetch-kernel.sh [--refresh] [--quiet] SUITE
#   SUITE      bookworm | trixie | sid
#   --refresh  ask the archive for the suite's current kernel even if one is
#              cached, and replace the cache if the kernel changed
#   --quiet    print only the kernel release
#
# Environment:
#   MOAT_VM_CACHE    cache root (default /var/cache/moat-vm); the kernel goes to
#                    $MOAT_VM_CACHE/SUITE/
#   MOAT_VM_APT_URI  Debian archive URI to use instead of the one found in the
#                    machine's apt configuration (MOAT_VM_APT_SECURITY_URI: the
#                    same for the security archive; optional)
#   MOAT_VM_FULL_MODULES=1  keep all modules (default: drop drivers for hardware
#                    a qemu guest cannot have: sound, GPUs, wireless, ...)
#
# The machine's apt setup is never modified: the download uses a temporary
# sources list and private apt state/cache directories. The archive URI is
# taken from the machine's own apt configuration at run time.
#
# Cache layout ($MOAT_VM_CACHE/SUITE/):
#   release             kernel release (uname -r); written last, marks a complete cache
#   vmlinuz             the bzImage
#   vmlinux             uncompressed ELF kernel (only when it can boot via PVH)
#   config              kernel config
#   packages            the Debian packages (name version) the cache came from
#   lib/modules/REL/    modules (decompressed) with depmod's index files
#
# Prints the cached kernel release on stdout. Exit status: 0 ok, 1 error,
# 2 usage error, 3 archive unreachable.
set -euo pipefail

prog=${0##*/}
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit "${EXIT_CODE:-1}"; }
log() { [[ $quiet == 1 ]] || printf '%s: %s\n' "$prog" "$*" >&2; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit "${1:-2}"; }

refresh=0 quiet=0 suite=
while (($#)); do
    case $1 in
        --refresh) refresh=1 ;;
        --quiet|-q) quiet=1 ;;
        -h|--help) usage 0 ;;
        -*) printf '%s: unknown option %s\n' "$prog" "$1" >&2; usage >&2 ;;
        *) [[ -z $suite ]] || usage >&2; suite=$1 ;;
    esac
    shift
done
case $suite in
    bookworm|trixie|sid) ;;
    '') usage >&2 ;;
    *) EXIT_CODE=2 die "unsupported suite '$suite' (use bookworm, trixie or sid)" ;;
esac

for tool in apt-get apt-cache dpkg-deb depmod flock xz; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "'$tool' not found; install the VM lane's packages (make deps)"
done
arch=$(dpkg --print-architecture)
[[ $arch == amd64 ]] || die "the VM lane needs an amd64 host (this is $arch)"

cache_root=${MOAT_VM_CACHE:-/var/cache/moat-vm}
dest=$cache_root/$suite
mkdir -p "$cache_root" 2>/dev/null || die "cannot create cache directory $cache_root (run as root or set MOAT_VM_CACHE)"
[[ -w $cache_root ]] || die "cache directory $cache_root is not writable (run as root or set MOAT_VM_CACHE)"

cache_complete() {
    local rel
    [[ -s $dest/release ]] || return 1
    rel=$(<"$dest/release")
    [[ -s $dest/vmlinuz && -s $dest/lib/modules/$rel/modules.dep ]]
}

# One fetch per suite at a time (parallel vm-run.sh calls may race here).
exec 9>"$cache_root/.$suite.lock"
flock 9

if [[ $refresh == 0 ]] && cache_complete; then
    log "using cached kernel in $dest"
    cat "$dest/release"
    exit 0
fi

# ---------------------------------------------------------------------------
# Find the Debian archive URI (and its keyring) in the machine's apt config.

# Prints "KIND<TAB>URI<TAB>SIGNED-BY" for each enabled "deb" source with the main
# component; KIND is "base" for a base suite, "security" for a -security one.
apt_sources() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        # deb822: stanzas separated by blank lines; comments start with '#'.
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && comps ~ /(^| )main( |$)/ && enabled != "no") {
                    n = split(suites, s, " ")
                    base = sec = 0
                    for (i = 1; i <= n; i++) {
                        if (s[i] ~ /-security$/) sec = 1
                        else if (s[i] !~ /-(updates|backports|proposed-updates)$/ && s[i] !~ /\//) base = 1
                    }
                    split(uris, u, " ")
                    if (u[1] != "" && base) print "base\t" u[1] "\t" signed
                    if (u[1] != "" && sec) print "security\t" u[1] "\t" signed
                }
                types = uris = suites = comps = signed = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z-]+:/ {
                key = tolower($1); sub(/:.*/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val); gsub(/[ \t]+/, " ", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "components") comps = val
                else if (key == "signed-by") signed = val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        # one-line format: deb [opts] URI SUITE COMPONENT...
        awk '
            /^[ \t]*deb[ \t]/ {
                line = $0; sub(/#.*/, "", line)
                signed = ""
                if (match(line, /\[[^]]*\]/)) {
                    opts = substr(line, RSTART + 1, RLENGTH - 2)
                    line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
                    if (match(opts, /signed-by=[^ ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
                }
                n = split(line, w, /[ \t]+/)
                if (w[1] == "") { for (i = 1; i < n; i++) w[i] = w[i + 1]; n-- }
                main = 0
                for (i = 4; i <= n; i++) if (w[i] == "main") main = 1
                if (main && w[3] ~ /-security$/)
                    print "security\t" w[2] "\t" signed
                else if (main && w[3] !~ /-(updates|backports|proposed-updates)$/ && w[3] !~ /\//)
                    print "base\t" w[2] "\t" signed
            }
        ' "$f"
    done
}

# pick_source KIND: prints "URI<TAB>KEYRING" of the best Debian source of KIND.
pick_source() {
    local want=$1 kind uri signed best='' best_signed=''
    while IFS=$'\t' read -r kind uri signed; do
        [[ $kind == "$want" ]] || continue
        case $uri in
            http://*|https://*|ftp://*|file:*|mirror*) ;;
            *) continue ;;
        esac
        # Only sources signed by Debian's archive keys (or with no Signed-By).
        if [[ -n $signed && $signed != *debian-archive* ]]; then
            continue
        fi
        if [[ -z $best ]]; then best=$uri best_signed=$signed; fi
        # Prefer a plain .../debian (.../debian-security) archive.
        if [[ ${uri%/} == */debian || ${uri%/} == */debian-security ]]; then
            best=$uri best_signed=$signed
            break
        fi
    done < <(apt_sources)
    [[ -n $best ]] || return 1
    if [[ -z $best_signed && -r /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
        best_signed=/usr/share/keyrings/debian-archive-keyring.gpg
    fi
    case $best_signed in
        /*) ;;
        *) best_signed='' ;;  # inline keys are not copied; apt then uses trusted.gpg.d
    esac
    printf '%s\t%s\n' "$best" "$best_signed"
}

if [[ -n ${MOAT_VM_APT_URI:-} ]]; then
    src=$MOAT_VM_APT_URI$'\t'/usr/share/keyrings/debian-archive-keyring.gpg
    sec_src=${MOAT_VM_APT_SECURITY_URI:+$MOAT_VM_APT_SECURITY_URI$'\t'/usr/share/keyrings/debian-archive-keyring.gpg}
else
    src=$(pick_source base) ||
        die "no Debian archive found in /etc/apt/sources.list{,.d/} (set MOAT_VM_APT_URI to a Debian mirror URI)"
    sec_src=$(pick_source security) || sec_src=''
fi
uri=${src%%$'\t'*}

# ---------------------------------------------------------------------------
# Private apt state.

work=$(mktemp -d "$cache_root/.$suite.new.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" \
         "$work/apt/prefs.d" "$work/debs" "$work/x" "$work/out"
: >"$work/apt/status"
# stanza URI KEYRING SUITE...
stanza() {
    local u=$1 k=$2
    shift 2
    echo "Types: deb"
    echo "URIs: $u"
    echo "Suites: $*"
    echo "Components: main"
    [[ -z $k ]] || echo "Signed-By: $k"
    echo
}
{
    if [[ $suite == sid ]]; then
        stanza "$uri" "${src#*$'\t'}" sid
    else
        # A stable suite's newest kernel may sit in -updates or -security.
        stanza "$uri" "${src#*$'\t'}" "$suite" "$suite-updates"
        [[ -z $sec_src ]] || stanza "${sec_src%%$'\t'*}" "${sec_src#*$'\t'}" "$suite-security"
    fi
} >"$work/apt/sources.sources"

apt_opts=(
    -o "Dir::Etc::sourcelist=$work/apt/sources.sources"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::Etc::preferences=$work/apt/prefs"
    -o "Dir::Etc::preferencesparts=$work/apt/prefs.d"
    -o "Dir::State::lists=$work/apt/lists"
    -o "Dir::State::status=$work/apt/status"
    -o "Dir::Cache=$work/apt/cache"
    -o "APT::Architectures=$arch"
    -o "Acquire::Languages=none"
    -o "APT::Update::Error-Mode=any"
)
if [[ $(id -u) == 0 ]]; then
    # The private dirs are root's; downloading as _apt would only warn.
    apt_opts+=(-o "APT::Sandbox::User=root")
fi

if [[ $suite == sid ]]; then sec_src=""; fi
log "reading the $suite package index from $uri${sec_src:+ and ${sec_src%%$'\t'*}}"
if ! apt-get -q "${apt_opts[@]}" update >"$work/update.log" 2>&1 ||
   ! compgen -G "$work/apt/lists/*_Packages*" >/dev/null; then
    sed 's/^/    /' "$work/update.log" >&2
    EXIT_CODE=3 die "cannot reach the Debian archive ($uri, suite $suite); is the network up?"
fi

# linux-image-amd64 -> linux-image-<abi>-amd64 (-> linux-binary/modules/base-<abi>-amd64 on sid)
depends_of() {
    apt-cache "${apt_opts[@]}" depends --no-pre-depends --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "$1" 2>/dev/null |
        awk '$1 == "Depends:" || $1 == "|Depends:" { print $2 }'
}
image=$(depends_of linux-image-amd64 | grep -E '^linux-image-[0-9].*-amd64$' | head -n1) ||
    die "linux-image-amd64 in $suite does not depend on a linux-image-*-amd64 package"
flavour=${image#linux-image-}
pkgs=("$image")
while IFS= read -r p; do
    pkgs+=("$p")
done < <(depends_of "$image" | grep -E "^linux-(binary|modules|base)-${flavour//+/\\+}\$" | sort -u)

if [[ $refresh == 1 ]] && cache_complete; then
    cand=$(apt-cache "${apt_opts[@]}" policy "$image" | awk '$1 == "Candidate:" { print $2 }')
    if grep -qxF "$image $cand" "$dest/packages" 2>/dev/null; then
        log "cached kernel in $dest is current ($image $cand)"
        cat "$dest/release"
        exit 0
    fi
fi

log "downloading ${pkgs[*]}"
if ! (cd "$work/debs" && apt-get -q "${apt_opts[@]}" download "${pkgs[@]}") >"$work/download.log" 2>&1; then
    sed 's/^/    /' "$work/download.log" >&2
    EXIT_CODE=3 die "downloading ${pkgs[*]} from $uri failed"
fi

: >"$work/out/packages"
for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$work/x"
    # shellcheck disable=SC2016  # dpkg-deb format string, not shell
    dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >>"$work/out/packages"
done

# ---------------------------------------------------------------------------
# Lay out the cache.

moddir=
for d in "$work"/x/lib/modules/* "$work"/x/usr/lib/modules/*; do
    [[ -d $d/kernel ]] && { moddir=$d; break; }
done
[[ -n $moddir ]] || die "no kernel modules found in ${pkgs[*]}"
rel=${moddir##*/}

vmlinuz=
for f in "$work/x/boot/vmlinuz-$rel" "$moddir/vmlinuz"; do
    [[ -s $f ]] && { vmlinuz=$f; break; }
done
[[ -n $vmlinuz ]] || die "no vmlinuz for $rel found in ${pkgs[*]}"
config=
for f in "$work/x/boot/config-$rel" "$moddir/config"; do
    [[ -s $f ]] && { config=$f; break; }
done

out=$work/out
mkdir -p "$out/lib/modules" "$out/usr/lib"
mv "$vmlinuz" "$out/vmlinuz"
[[ -z $config ]] || cp "$config" "$out/config"
mv "$moddir" "$out/lib/modules/$rel"
ln -s ../../lib/modules "$out/usr/lib/modules"  # for kmod built with /usr/lib/modules
rm -f "$out/lib/modules/$rel"/{build,source,vmlinuz,config,System.map}
rm -rf "$work/x"

if [[ -s $out/config ]] && ! grep -qx 'CONFIG_TLS=[ym]' "$out/config"; then
    die "kernel $rel from $suite has no kTLS (CONFIG_TLS unset)"
fi

if [[ ${MOAT_VM_FULL_MODULES:-0} != 1 ]]; then
    # Drivers for hardware a qemu guest does not have; they are most of the size.
    (cd "$out/lib/modules/$rel/kernel" && rm -rf sound net/bluetooth net/mac80211 net/wireless \
        drivers/{gpu,media,infiniband,iio,staging,hid,usb,input,hwmon,bluetooth,isdn,mmc,video,platform,thunderbolt} \
        drivers/net/{wireless,ethernet,can,usb,wwan,ieee802154,hamradio,wan})
fi

log "decompressing modules"
jobs=$(nproc 2>/dev/null || echo 2)
find "$out/lib/modules/$rel" -name '*.ko.xz' -print0 | xargs -0 -r -n 64 -P "$jobs" xz -d
if find "$out/lib/modules/$rel" -name '*.ko.zst' -print -quit | grep -q .; then
    command -v zstd >/dev/null || die "modules are zstd-compressed; install zstd"
    find "$out/lib/modules/$rel" -name '*.ko.zst' -print0 | xargs -0 -r -n 64 -P "$jobs" zstd -q -d --rm
fi
find "$out/lib/modules/$rel" -name '*.ko.gz' -print0 | xargs -0 -r -n 64 -P "$jobs" gzip -d

depmod -b "$out" "$rel" || die "depmod failed for $rel"

# Uncompressed ELF kernel: qemu boots it through the PVH entry point, which
# skips the in-guest decompression (about 2 s under TCG). Same method as the
# kernel's scripts/extract-vmlinux: look for each compressor's magic number.
is_elf() { [[ $(head -c4 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; }
extract_vmlinux() {
    local img=$1 outf=$2 magic marker cmd pos
    while IFS='|' read -r magic marker cmd; do
        command -v "${cmd%% *}" >/dev/null 2>&1 || continue
        for pos in $(tr "$magic\n$marker" "\n$marker=" <"$img" | grep -abo "^$marker" || true); do
            pos=${pos%%:*}
            tail -c+"$pos" "$img" | $cmd >"$outf" 2>/dev/null || true
            is_elf "$outf" && return 0
        done
    done <<'EOF'
\3757zXZ\000|abcde|xz -dc
(\265/\375|xxx|zstd -dc
\037\213\010|xy|gzip -dc
\135\0\0\0|xxx|xz -dc --format=lzma
BZh|xy|bzip2 -dc
\002!L\030|xxx|lz4 -dc
\211\114\132|xy|lzop -dc
EOF
    rm -f "$outf"
    return 1
}
if grep -qx 'CONFIG_PVH=y' "$out/config" 2>/dev/null; then
    if extract_vmlinux "$out/vmlinuz" "$out/vmlinux"; then
        log "extracted uncompressed vmlinux ($(du -h --apparent-size "$out/vmlinux" | cut -f1))"
    else
        log "note: could not extract vmlinux; the VM will boot the bzImage"
    fi
fi

printf '%s\n' "$rel" >"$out/release"

# Swap the new cache in.
if [[ -e $dest ]]; then
    old=$(mktemp -d "$cache_root/.$suite.old.XXXXXX")
    mv "$dest" "$old/"
    mv "$out" "$dest"
    rm -rf "$old"
else
    mv "$out" "$dest"
fi
log "cached $suite kernel $rel in $dest ($(du -sh "$dest" | cut -f1))"
printf '%s\n' "$rel"
