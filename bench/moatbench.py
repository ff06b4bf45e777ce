#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""moat benchmark harness (make bench).

Compares moat with stunnel, HAProxy and nginx (stream), all enforcing mutual
TLS with the same certificates in front of the same plaintext backend, plus
two references without TLS: direct plaintext (the ceiling) and a splice(2)
relay (the no-crypto bound).

Topology: two network namespaces joined by a veth pair. The client runs in
one; proxies, moat and the backend run in the other (the "server side").
The client is pinned to one CPU, the server side (proxy + backend) to another.

Python 3 standard library only. Run as root. Settings come from the
environment (see README or --help):

  BENCH_QUICK=1            ~1 minute smoke version
  BENCH_TARGETS            space/comma list, default: all known targets
  BENCH_MOAT_VARIANTS      ';'-separated NAME:DAEMON_ARGS:ATTACH_ARGS (VM lane)
  BENCH_RUNS, BENCH_BULK_BYTES, BENCH_HS_SECONDS, BENCH_HS_CONCURRENCY,
  BENCH_LAT_COUNT, BENCH_SESSIONS, BENCH_CLIENT_CPU, BENCH_SERVER_CPU,
  BENCH_QUIET_IDLE, BENCH_QUIET_WAIT, BENCH_QUIET_BUDGET, BENCH_STEAL_MAX, BENCH_FOREIGN_MAX,
  BENCH_CIPHERSUITES, BENCH_TIMEOUT_SCALE, BENCH_CAVEAT
"""

import argparse
import csv
import datetime
import os
import platform
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

GIB = 1 << 30
MIB = 1 << 20
SRV_IP = '10.231.0.1'
CLI_IP = '10.231.0.2'
BACKEND_LO_PORT = 8400      # backend for the proxies, on 127.0.0.1
PORTS = {'stunnel': 8441, 'haproxy': 8442, 'nginx': 8443, 'splice': 8444,
         'direct': 8446}
MOAT_PORT_BASE = 8450       # moat variants: the backend itself listens here
TCG_CAVEAT = ('VM lane: under TCG emulation crypto costs about 3x more relative to '
              'copying than on real hardware; compare targets within this run only, '
              'never with host numbers.')

T0 = time.monotonic()


def log(msg):
    print(f'[{time.monotonic() - T0:7.1f}s] {msg}', file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class EnforcementError(BenchError):
    pass


class TargetFailed(BenchError):
    pass


# --------------------------------------------------------------------------
# settings

def env_num(name, default, conv=float):
    v = os.environ.get(name, '').strip()
    if not v:
        return default
    try:
        return conv(v)
    except ValueError:
        raise BenchError(f'{name}={v!r} is not a number')


def parse_size(s):
    m = re.fullmatch(r'(\d+)([KMG]?)(i?B)?', s.strip(), re.I)
    if not m:
        raise BenchError(f'bad size {s!r}')
    return int(m.group(1)) << {'': 0, 'K': 10, 'M': 20, 'G': 30}[m.group(2).upper()]


class Config:
    def __init__(self, args):
        q = self.quick = bool(args.quick or os.environ.get('BENCH_QUICK', '') not in ('', '0'))
        self.runs = int(env_num('BENCH_RUNS', 1 if q else 3, int))
        bb = os.environ.get('BENCH_BULK_BYTES', '')
        self.bulk_bytes = parse_size(bb) if bb else (64 * MIB if q else GIB)
        self.hs_seconds = env_num('BENCH_HS_SECONDS', 0.5 if q else 2.0)
        self.hs_conc = int(env_num('BENCH_HS_CONCURRENCY', 32, int))
        self.lat_count = int(env_num('BENCH_LAT_COUNT', 2000 if q else 20000, int))
        self.lat_size = 64
        sess = os.environ.get('BENCH_SESSIONS', '') or ('100,500' if q else '1000,9000')
        self.sessions = sorted(int(x) for x in re.split(r'[ ,]+', sess.strip()) if x)
        self.quiet_idle = env_num('BENCH_QUIET_IDLE', 0.90)
        self.quiet_wait = env_num('BENCH_QUIET_WAIT', 0.5 if q else 4.0)
        # Total waiting allowed for quiet, so a busy machine cannot stretch the run
        # without bound; afterwards each sample just records how busy it was.
        self.quiet_budget = env_num('BENCH_QUIET_BUDGET', 10.0 if q else 120.0)
        self.tscale = env_num('BENCH_TIMEOUT_SCALE', 1.0)
        self.settle = 0.3 if q else 1.0
        self.speed_seconds = 1
        self.steal_max = env_num('BENCH_STEAL_MAX', 0.05)
        self.foreign_max = env_num('BENCH_FOREIGN_MAX', 0.05)
        self.suites = os.environ.get('BENCH_CIPHERSUITES', 'TLS_AES_128_GCM_SHA256')
        self.caveat = os.environ.get('BENCH_CAVEAT', '') or (TCG_CAVEAT if args.vm else '')
        if self.runs < 1 or not self.sessions or self.sessions[0] < 1:
            raise BenchError('BENCH_RUNS and BENCH_SESSIONS must be positive')
        ncpu = os.cpu_count() or 1
        dflt_client, dflt_server = ('0', '1') if ncpu >= 2 else ('', '')
        self.client_cpu = os.environ.get('BENCH_CLIENT_CPU', dflt_client)
        self.server_cpu = os.environ.get('BENCH_SERVER_CPU', dflt_server)
        self.ncpu = ncpu


# --------------------------------------------------------------------------
# /proc readers

CLK_TCK = os.sysconf('SC_CLK_TCK')
PAGE_KIB = os.sysconf('SC_PAGE_SIZE') // 1024


def machine_cpu():
    """Ticks over all CPUs: busy (user..softirq), idle (idle+iowait), steal, total.
    Steal is time the hypervisor gave to someone else: not our work, but noise."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    idle = v[3] + v[4]
    steal = v[7]
    total = sum(v[:8])  # guest time is already inside user
    return {'busy': total - idle - steal, 'idle': idle, 'steal': steal, 'total': total}


def cpu_delta(a, b):
    d = {k: b[k] - a[k] for k in a}
    d['total'] = max(1, d['total'])
    return d


def proc_children_map():
    kids = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(')') + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def proc_tree(roots):
    if not roots:
        return []
    kids = proc_children_map()
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def proc_cpu_s(pids):
    """user+sys CPU seconds of these processes (all their threads)."""
    t = 0
    for p in pids:
        try:
            with open(f'/proc/{p}/stat') as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(')') + 2:].split()
        t += int(fields[11]) + int(fields[12])
    return t / CLK_TCK


def proc_rss_kib(pids):
    t = 0
    for p in pids:
        try:
            with open(f'/proc/{p}/status') as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        t += int(line.split()[1])
        except OSError:
            continue
    return t


def kernel_mem_kib():
    """Slab + TCP socket memory (the metric), and kernel stacks (for threads)."""
    mi = {}
    with open('/proc/meminfo') as f:
        for line in f:
            k, v = line.split(':', 1)
            mi[k] = int(v.split()[0])
    tcp_pages = 0
    with open('/proc/net/sockstat') as f:
        for line in f:
            if line.startswith('TCP:'):
                w = line.split()
                tcp_pages = int(w[w.index('mem') + 1])
    return {'kern': mi.get('Slab', 0) + tcp_pages * PAGE_KIB,
            'kstack': mi.get('KernelStack', 0)}


def loadavg1():
    with open('/proc/loadavg') as f:
        return float(f.read().split()[0])


def wait_quiet(cfg):
    """Wait until the machine is quiet; returns (quiet, idle_fraction, waited_s)."""
    start = time.monotonic()
    limit = min(cfg.quiet_wait, max(0.0, cfg.quiet_budget))
    while True:
        a = machine_cpu()
        time.sleep(0.25)
        d = cpu_delta(a, machine_cpu())
        idle = d['idle'] / d['total']   # steal counts as not idle
        waited = time.monotonic() - start
        if idle >= cfg.quiet_idle or waited >= limit:
            cfg.quiet_budget -= max(0.0, waited - 0.25)
            return idle >= cfg.quiet_idle, idle, waited


# --------------------------------------------------------------------------
# processes

def run(argv, check=True, timeout=60, env=None, capture=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.STDOUT if capture else None,
                       timeout=timeout, env=env, text=True)
    if check and r.returncode != 0:
        raise BenchError(f'command failed ({r.returncode}): {shlex.join(argv)}\n{r.stdout or ""}')
    return r


class LineReader:
    def __init__(self, f):
        self.fd = f.fileno()
        self.buf = b''

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise EOFError
                self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line.decode(errors='replace')


class Proc:
    """A child in its own process group, so it and its children stop together."""

    def __init__(self, name, argv, logdir, env=None, pipe=False):
        self.name = name
        self.argv = argv
        self.logpath = os.path.join(logdir, f'{name}.log')
        self.logf = open(self.logpath, 'ab')
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if pipe else self.logf,
                                  stderr=self.logf, env=env, start_new_session=True)
        self.reader = LineReader(self.p.stdout) if pipe else None

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def send(self, line):
        self.p.stdin.write((line + '\n').encode())
        self.p.stdin.flush()

    def expect(self, prefix, timeout):
        while True:
            try:
                line = self.reader.readline(timeout)
            except (TimeoutError, EOFError) as e:
                raise BenchError(f'{self.name}: no "{prefix}" line ({type(e).__name__}); '
                                 f'log: {self.log_tail()}')
            if line.startswith(prefix):
                return line

    def log_tail(self, n=600):
        try:
            self.logf.flush()
            with open(self.logpath, 'rb') as f:
                return f.read()[-n:].decode(errors='replace').strip()
        except OSError:
            return ''

    def stop(self, timeout=5.0):
        if self.alive():
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)
        else:
            self.p.wait()
        for f in (self.p.stdin, self.p.stdout):
            if f:
                f.close()
        self.logf.close()


def parse_kv(line):
    return {k: v for k, _, v in (w.partition('=') for w in line.split()[1:]) if _}


# --------------------------------------------------------------------------
# network namespaces

class Netns:
    def __init__(self):
        tag = f'{os.getpid() % 100000}'
        self.srv = f'mbench{tag}s'
        self.cli = f'mbench{tag}c'
        self.up = []

    def setup(self):
        v_s, v_c = f'{self.srv}v', f'{self.cli}v'
        for ns in (self.srv, self.cli):
            run(['ip', 'netns', 'add', ns])
            self.up.append(ns)
        run(['ip', 'link', 'add', v_s, 'netns', self.srv, 'type', 'veth',
             'peer', 'name', v_c, 'netns', self.cli])
        for ns, dev, ip in ((self.srv, v_s, SRV_IP), (self.cli, v_c, CLI_IP)):
            run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
            run(['ip', '-n', ns, 'addr', 'add', f'{ip}/24', 'dev', dev])
            run(['ip', '-n', ns, 'link', 'set', dev, 'up'])
            # Per-namespace TCP settings: many short connections must not run out
            # of ports, and TIME_WAIT sockets would blur the kernel-memory deltas.
            for k, v in (('net.ipv4.ip_local_port_range', '1024 65000'),
                         ('net.ipv4.tcp_max_tw_buckets', '0'),
                         ('net.core.somaxconn', '4096')):
                run(self.prefix(ns) + ['sysctl', '-q', '-w', f'{k}={v}'])

    def prefix(self, ns, cpu=''):
        p = ['nsenter', f'--net=/run/netns/{ns}']
        if cpu:
            p += ['taskset', '-c', cpu]
        return p

    def inode(self, ns):
        return os.stat(f'/run/netns/{ns}').st_ino

    def teardown(self):
        for ns in self.up:
            run(['ip', 'netns', 'del', ns], check=False)
        self.up = []


# --------------------------------------------------------------------------
# certificates

def make_certs(d):
    """ECDSA P-256 and RSA-2048 sets (CA, server, client) and a rogue client."""
    def newkey(kind):
        return (['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] if kind == 'ec'
                else ['-newkey', 'rsa:2048'])

    def ext(path, text):
        with open(path, 'w') as f:
            f.write(text)
        return path

    sets = {}
    for kind in ('ec', 'rsa', 'rogue'):
        k = 'ec' if kind == 'rogue' else kind
        p = os.path.join(d, kind)
        os.makedirs(p)
        j = lambda n: os.path.join(p, n)  # noqa: E731
        run(['openssl', 'req', '-x509', '-new', '-nodes', *newkey(k), '-days', '30',
             '-keyout', j('ca.key'), '-out', j('ca.pem'), '-subj', f'/CN=moat-bench {kind} CA',
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
        roles = (('client', 'clientAuth'),) if kind == 'rogue' else \
            (('server', 'serverAuth'), ('client', 'clientAuth'))
        for role, eku in roles:
            run(['openssl', 'req', '-new', '-nodes', *newkey(k), '-keyout', j(f'{role}.key'),
                 '-out', j(f'{role}.csr'), '-subj', f'/CN=moat-bench {kind} {role}'])
            e = ext(j(f'{role}.ext'),
                    f'basicConstraints=CA:FALSE\nextendedKeyUsage={eku}\n'
                    f'keyUsage=critical,digitalSignature,keyEncipherment\n'
                    f'subjectAltName=IP:{SRV_IP},IP:127.0.0.1,DNS:localhost\n')
            run(['openssl', 'x509', '-req', '-in', j(f'{role}.csr'), '-CA', j('ca.pem'),
                 '-CAkey', j('ca.key'), '-CAcreateserial', '-days', '30',
                 '-extfile', e, '-out', j(f'{role}.pem')])
        if kind != 'rogue':
            with open(j('server-combined.pem'), 'w') as out:
                for n in ('server.pem', 'server.key'):
                    with open(j(n)) as f:
                        out.write(f.read())
        sets[kind] = {n: j(n) for n in ('ca.pem', 'server.pem', 'server.key', 'client.pem',
                                         'client.key', 'server-combined.pem')}
    return sets


# --------------------------------------------------------------------------
# targets

class Target:
    tls = True
    group = None  # targets sharing a group cannot run at the same time

    def __init__(self, bench, name, port):
        self.b = bench
        self.name = name
        self.port = port
        self.procs = []
        self.running_certs = None
        self.failed = None
        self.cipher = ''

    def available(self):
        return None  # or a reason to skip

    def roots(self):
        return [p.pid for p in self.procs if p.alive()]

    def pids(self):
        return proc_tree(self.roots())

    def spawn(self, name, argv, env=None):
        pr = Proc(f'{self.name}-{name}', self.b.net.prefix(self.b.net.srv, self.b.cfg.server_cpu)
                  + argv, self.b.logdir, env=env)
        self.procs.append(pr)
        return pr

    def start(self, certs):
        raise NotImplementedError

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []
        self.running_certs = None

    def wait_ready(self, certs, timeout=10.0):
        """Poll until a client with a good certificate gets through."""
        deadline = time.monotonic() + timeout * self.b.cfg.tscale
        last = None
        while time.monotonic() < deadline:
            for p in self.procs:
                if not p.alive():
                    raise TargetFailed(f'{p.name} exited: {p.log_tail()}')
            last = self.b.probe(self, certs, 'good')
            if last.get('verdict') == 'accepted':
                self.cipher = '{proto} {cipher} {group}'.format(**{
                    k: last.get(k, '?') for k in ('proto', 'cipher', 'group')}) if self.tls else ''
                return
            time.sleep(0.2)
        raise TargetFailed(f'{self.name} does not accept a valid client: {last}; '
                           + ' | '.join(p.log_tail(300) for p in self.procs))

    def conf(self, name, text):
        path = os.path.join(self.b.tmp, f'{self.name}-{name}')
        with open(path, 'w') as f:
            f.write(text)
        return path


class Direct(Target):
    tls = False

    def start(self, certs):
        self.running_certs = certs
        self.wait_ready(certs)

    def roots(self):
        return []


class Splice(Target):
    tls = False

    def start(self, certs):
        self.spawn('relay', [self.b.tool('mb-splice'), '-l', f'{SRV_IP}:{self.port}',
                             '-c', f'127.0.0.1:{BACKEND_LO_PORT}'])
        self.running_certs = certs
        self.wait_ready(certs)


class Stunnel(Target):
    def available(self):
        return None if shutil.which('stunnel4') or shutil.which('stunnel') else \
            'stunnel4 not installed (make bench-deps)'

    def start(self, certs):
        c = self.conf('stunnel.conf', f"""
foreground = yes
pid =
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[mb]
accept = {SRV_IP}:{self.port}
connect = 127.0.0.1:{BACKEND_LO_PORT}
cert = {certs['server.pem']}
key = {certs['server.key']}
CAfile = {certs['ca.pem']}
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.3
""")
        self.spawn('stunnel', [shutil.which('stunnel4') or 'stunnel', c])
        self.running_certs = certs
        self.wait_ready(certs)


class Haproxy(Target):
    def available(self):
        return None if shutil.which('haproxy') else 'haproxy not installed (make bench-deps)'

    def start(self, certs):
        maxconn = max(self.b.cfg.sessions) + 200
        c = self.conf('haproxy.cfg', f"""
global
    maxconn {maxconn}
    nbthread 1
    ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
    mode tcp
    timeout connect 5s
    timeout client 600s
    timeout server 600s
frontend fe
    bind {SRV_IP}:{self.port} ssl crt {certs['server-combined.pem']} ca-file {certs['ca.pem']} verify required
    default_backend be
backend be
    server app 127.0.0.1:{BACKEND_LO_PORT}
""")
        self.spawn('haproxy', [shutil.which('haproxy'), '-db', '-f', c])
        self.running_certs = certs
        self.wait_ready(certs)


class Nginx(Target):
    MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so'

    def available(self):
        if not shutil.which('nginx'):
            return 'nginx not installed (make bench-deps)'
        if not os.path.exists(self.MODULE):
            return f'{self.MODULE} missing: install libnginx-mod-stream (make bench-deps)'
        return None

    def start(self, certs):
        d = os.path.join(self.b.tmp, 'nginx')
        os.makedirs(d, exist_ok=True)
        conns = 2 * max(self.b.cfg.sessions) + 500
        c = self.conf('nginx.conf', f"""
load_module {self.MODULE};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {min(conns + 100, 20000)};
pid {d}/nginx.pid;
error_log {d}/error.log error;
events {{ worker_connections {conns}; }}
stream {{
    server {{
        listen {SRV_IP}:{self.port} ssl;
        ssl_certificate {certs['server.pem']};
        ssl_certificate_key {certs['server.key']};
        ssl_client_certificate {certs['ca.pem']};
        ssl_verify_client on;
        ssl_protocols TLSv1.3;
        proxy_pass 127.0.0.1:{BACKEND_LO_PORT};
        proxy_timeout 600s;
    }}
}}
""")
        self.spawn('nginx', [shutil.which('nginx'), '-p', d, '-e', f'{d}/error.log', '-c', c])
        self.running_certs = certs
        self.wait_ready(certs)


class Moat(Target):
    group = 'moatd'

    def __init__(self, bench, name, port, daemon_args=(), attach_args=()):
        super().__init__(bench, name, port)
        self.daemon_args = list(daemon_args)
        self.attach_args = list(attach_args)
        self.moatd = os.path.join(bench.build, 'moatd')
        self.moat = os.path.join(bench.build, 'moat')
        self.run_dir = os.path.join(bench.tmp, f'{name}-run')

    def available(self):
        for b in (self.moatd, self.moat):
            if not os.access(b, os.X_OK):
                return f'{b} not built yet (run make)'
        return None

    def env(self):
        e = dict(os.environ)
        e['MOAT_RUN_DIR'] = self.run_dir
        return e

    def cli(self, *args, check=True):
        return run(self.b.net.prefix(self.b.net.srv) + [self.moat, *args], check=check,
                   env=self.env(), timeout=30 * self.b.cfg.tscale)

    def start(self, certs):
        os.makedirs(self.run_dir, exist_ok=True)
        d = self.spawn('moatd', [self.moatd, '-f', *self.daemon_args], env=self.env())
        deadline = time.monotonic() + 10 * self.b.cfg.tscale
        while True:
            if not d.alive():
                raise TargetFailed(f'moatd exited: {d.log_tail()}')
            if self.cli('status', check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise TargetFailed(f'moatd control socket not ready: {d.log_tail()}')
            time.sleep(0.1)
        r = self.cli('attach', str(self.port), '--ca', certs['ca.pem'], '--cert',
                     certs['server.pem'], '--key', certs['server.key'], *self.attach_args,
                     check=False)
        if r.returncode != 0:
            raise TargetFailed(f'moat attach failed: {r.stdout.strip()}')
        self.running_certs = certs
        self.wait_ready(certs)

    def stop(self):
        if self.procs and self.procs[0].alive():
            self.cli('detach', str(self.port), check=False)
        super().stop()
        # Pins this run's namespace may have left behind (never other namespaces').
        try:
            pin = f'/sys/fs/bpf/moat/{self.b.net.inode(self.b.net.srv)}'
        except OSError:
            return
        if os.path.isdir(pin):
            shutil.rmtree(pin, ignore_errors=True)


# --------------------------------------------------------------------------
# the bench

class Bench:
    def __init__(self, cfg, args):
        self.cfg = cfg
        self.args = args
        self.build = args.build
        self.tools = os.path.join(args.build, 'bench')
        self.out = args.out
        self.net = Netns()
        self.samples = []
        self.bound = {}
        self.skipped = {}
        self.failed = {}
        self.enforcement = {}
        self.backend = None

    def tool(self, name):
        return os.path.join(self.tools, name)

    # ---- targets
    def make_targets(self, names, variants):
        classes = {'stunnel': Stunnel, 'haproxy': Haproxy, 'nginx': Nginx,
                   'direct': Direct, 'splice': Splice}
        ts = []
        moat_port = MOAT_PORT_BASE
        for n in names:
            if n in classes:
                ts.append(classes[n](self, n, PORTS[n]))
            elif n in variants:
                da, aa = variants[n]
                ts.append(Moat(self, n, moat_port, da, aa))
                moat_port += 1
            else:
                raise BenchError(f'unknown target {n!r} (known: moat, {", ".join(classes)}, '
                                 'or a BENCH_MOAT_VARIANTS name)')
        return ts

    def client_argv(self, target, mode, certs, which='good', extra=()):
        argv = self.net.prefix(self.net.cli, self.cfg.client_cpu) + [
            self.tool('mb-client'), mode, '-a', f'{SRV_IP}:{target.port}',
            '--timeout', str(5 * self.cfg.tscale)]
        if target.tls:
            argv += ['--tls', '--ca', certs['ca.pem'], '--groups', 'X25519']
            if self.cfg.suites:
                argv += ['--ciphersuites', self.cfg.suites]
            if which == 'good':
                argv += ['--cert', certs['client.pem'], '--key', certs['client.key']]
            elif which == 'rogue':
                r = self.certsets['rogue']
                argv += ['--cert', r['client.pem'], '--key', r['client.key']]
        return argv + list(extra)

    def probe(self, target, certs, which):
        r = run(self.client_argv(target, 'probe', certs, which), check=False,
                timeout=30 * self.cfg.tscale)
        line = next((x for x in r.stdout.splitlines() if x.startswith('result')), '')
        kv = parse_kv(line)
        if not kv:
            kv = {'verdict': 'error', 'detail': r.stdout.strip().replace(' ', '_')[:200]}
        return kv

    def check_enforcement(self, t, certs, label):
        """A target must accept our client and reject one without a (trusted) cert."""
        if not t.tls:
            self.enforcement.setdefault(t.name, 'n/a (plaintext reference)')
            return
        res = []
        for which in ('none', 'rogue'):
            kv = self.probe(t, certs, which)
            v = kv.get('verdict')
            what = 'no client certificate' if which == 'none' else 'an untrusted client certificate'
            if v == 'accepted':
                raise EnforcementError(f'{t.name} ({label}) ACCEPTED a client with {what}; '
                                       'refusing to benchmark it')
            if v != 'rejected':
                raise EnforcementError(f'{t.name} ({label}): no verdict for a client with {what}: '
                                       f'{kv}')
            res.append(f'{which}:{kv.get("stage")}/{kv.get("detail", "")}')
        self.enforcement[f'{t.name} {label}'] = 'rejects ' + ', '.join(res)
        log(f'  {t.name} ({label}): accepts client cert, rejects ' + ', '.join(res))

    def ensure(self, t, certs, check=None):
        """Have t running with these certs (stopping any target of its group)."""
        if t.procs and t.running_certs is certs:
            for p in t.procs:
                if not p.alive():
                    raise TargetFailed(f'{p.name} died (exit {p.p.returncode}): {p.log_tail()}')
            return
        if t.running_certs is certs and isinstance(t, Direct):
            return
        if t.group:
            for o in self.targets:
                if o is not t and o.group == t.group and o.running_certs is not None:
                    o.stop()
        t.stop()
        t.start(certs)
        if check:
            self.check_enforcement(t, certs, check)
        self.warm_up(t, certs)

    def warm_up(self, t, certs):
        """A few hundred connections, so the first sample after a start is not a cold one."""
        w = Proc(f'warm-{t.name}', self.client_argv(t, 'rate', certs, extra=[
            '--concurrency', '4', '--seconds', '0.3']), self.logdir)
        try:
            w.p.wait(30 * self.cfg.tscale)
        finally:
            w.stop()

    def live_targets(self):
        return [t for t in self.targets if t.name not in self.skipped and t.name not in self.failed]

    def schedule(self, alternate=True):
        """Order of samples. Each run rotates the peers; with alternate, every TLS
        peer is followed by moat (peer, moat, peer, moat...), so slow drift hits
        moat and each peer alike. The plaintext references sit in between."""
        live = self.live_targets()
        moats = [t for t in live if isinstance(t, Moat)]
        peers = [t for t in live if not isinstance(t, Moat)]
        order = []
        for r in range(self.cfg.runs):
            k = r % max(1, len(peers))
            rot = peers[k:] + peers[:k]
            mk = r % max(1, len(moats))
            mrot = moats[mk:] + moats[:mk]
            if not (moats and alternate):
                order += [(t, r) for t in (mrot + rot)]
                continue
            followed = False
            for p in rot:
                order.append((p, r))
                if p.tls:
                    order += [(m, r) for m in mrot]
                    followed = True
            if not followed:
                order += [(m, r) for m in mrot]
        return order

    def record(self, t, metric, run_i, value, q, noise=(0.0, 0.0)):
        """q: the quiet check before the sample; noise: (steal, foreign) during it,
        as fractions of all CPU time: stolen by the hypervisor, and used by
        processes other than the client, the backend and the target."""
        steal, foreign = noise
        self.samples.append({'target': t.name, 'metric': metric, 'run': run_i,
                             'value': value, 'quiet': int(q[0]), 'idle_before': round(q[1], 3),
                             'steal': round(steal, 3), 'foreign': round(foreign, 3),
                             'noisy': int(not q[0] or steal > self.cfg.steal_max
                                          or foreign > self.cfg.foreign_max),
                             'load1': loadavg1(), 't': round(time.monotonic() - T0, 1)})

    def fail_target(self, t, err):
        log(f'  !! {t.name} failed: {err}')
        self.failed[t.name] = str(err).splitlines()[0][:300]
        try:
            t.stop()
        except Exception:  # noqa: BLE001 - best effort
            pass

    # ---- one measured client run, with CPU sampled around the measured part
    def measured(self, t, argv, timeout):
        c = Proc(f'client-{t.name}', argv, self.logdir, pipe=True)
        try:
            c.expect('ready', 30 * self.cfg.tscale)
            pids = t.pids()
            bpids = proc_tree([self.backend.pid])
            p0, b0 = proc_cpu_s(pids), proc_cpu_s(bpids)
            m0, w0 = machine_cpu(), time.monotonic()
            c.send('go')
            line = c.expect('result', timeout * self.cfg.tscale)
            p1, b1 = proc_cpu_s(pids), proc_cpu_s(bpids)
            m1, w1 = machine_cpu(), time.monotonic()
            c.p.wait(10)
        finally:
            c.stop()
        if c.p.returncode not in (0, None):
            raise BenchError(f'client exited {c.p.returncode}: {c.log_tail()}')
        with open(os.path.join(self.logdir, 'results.log'), 'a') as f:
            f.write(f'{t.name}: {line}\n')
        kv = parse_kv(line)
        d = cpu_delta(m0, m1)
        kv['_proxy_cpu_s'] = (p1 - p0) if pids else None
        kv['_machine_cpu_s'] = d['busy'] / CLK_TCK
        kv['_wall_s'] = w1 - w0
        # CPU used by anything but us (another job on the machine) during the sample.
        ours = (p1 - p0) + (b1 - b0) + float(kv.get('client_user_s', 0)) + \
            float(kv.get('client_sys_s', 0))
        kv['_noise'] = (d['steal'] / d['total'],
                        max(0.0, kv['_machine_cpu_s'] - ours) / (d['total'] / CLK_TCK))
        return kv

    # ---- metrics
    def bulk(self, t, run_i, direction):
        certs = self.certsets['ec']
        self.ensure(t, certs, 'ECDSA')
        q = wait_quiet(self.cfg)
        mode = 'bulk-up' if direction == 'up' else 'bulk-down'
        n = self.cfg.bulk_bytes
        kv = self.measured(t, self.client_argv(t, mode, certs, extra=[
            '--bytes', str(n), '--wait-go']), timeout=max(60, n / (20 * MIB)))
        gib, st = n / GIB, kv['_noise']
        self.record(t, f'bulk_{direction}_gbps', run_i, float(kv['gbps']), q, st)
        if kv['_proxy_cpu_s'] is not None:
            self.record(t, f'cpu_proxy_{direction}_s_per_gib', run_i, kv['_proxy_cpu_s'] / gib, q, st)
        self.record(t, f'cpu_machine_{direction}_s_per_gib', run_i, kv['_machine_cpu_s'] / gib, q,
                    st)
        return f'{float(kv["gbps"]):.2f} Gbit/s (steal {st[0]:.0%}, other {st[1]:.0%})'

    def rate(self, t, run_i, kind):
        certs = self.certsets[kind]
        self.ensure(t, certs, kind.upper())
        q = wait_quiet(self.cfg)
        kv = self.measured(t, self.client_argv(t, 'rate', certs, extra=[
            '--concurrency', str(self.cfg.hs_conc), '--seconds', str(self.cfg.hs_seconds),
            '--wait-go']), timeout=self.cfg.hs_seconds + 30)
        conns = int(kv['conns'])
        failed = int(kv.get('failed', 0))
        if conns == 0:
            raise TargetFailed(f'no connection completed: {kv.get("first_error")}')
        if failed > max(2, conns // 100):
            raise TargetFailed(f'{failed} of {conns + failed} connections failed: '
                               f'{kv.get("first_error")}')
        rate, st = float(kv['conns_per_s']), kv['_noise']
        self.record(t, f'hs_{kind}_per_s', run_i, rate, q, st)
        # How busy each side was: the load generator must not be the limit.
        cbusy = (float(kv['client_user_s']) + float(kv['client_sys_s'])) / kv['_wall_s']
        self.record(t, f'hs_{kind}_client_busy', run_i, cbusy, q, st)
        pbusy = ''
        if kv['_proxy_cpu_s'] is not None:
            self.record(t, f'hs_{kind}_proxy_cpu_us', run_i, kv['_proxy_cpu_s'] / conns * 1e6, q, st)
            self.record(t, f'hs_{kind}_proxy_busy', run_i, kv['_proxy_cpu_s'] / kv['_wall_s'], q, st)
            # What one proxy core could sustain, whatever limited this run.
            if kv['_proxy_cpu_s'] > 0:
                self.record(t, f'hs_{kind}_capacity', run_i, conns / kv['_proxy_cpu_s'], q, st)
            pbusy = f', proxy busy {kv["_proxy_cpu_s"] / kv["_wall_s"]:.2f}'
        return f'{rate:.0f} conn/s (client busy {cbusy:.2f}{pbusy}, steal {st[0]:.0%}, other {st[1]:.0%})'

    def latency(self, t, run_i):
        certs = self.certsets['ec']
        self.ensure(t, certs, 'ECDSA')
        q = wait_quiet(self.cfg)
        kv = self.measured(t, self.client_argv(t, 'latency', certs, extra=[
            '--count', str(self.cfg.lat_count), '--size', str(self.cfg.lat_size),
            '--wait-go']), timeout=60)
        for k in ('p50', 'p99', 'p999'):
            self.record(t, f'lat_{k}_us', run_i, float(kv[f'{k}_us']), q, kv['_noise'])
        return f'p50 {float(kv["p50_us"]):.1f} us'

    def memory(self, t, run_i):
        """Fresh target, warm-up, baseline, then N idle sessions for each N."""
        certs = self.certsets['ec']
        t.stop()
        self.ensure(t, certs)   # fresh process, warmed up
        nmax = max(self.cfg.sessions)
        c = Proc(f'idle-{t.name}', self.client_argv(t, 'idle', certs, extra=[
            '--count', str(nmax), '--concurrency', '64',
            '--timeout', str(15 * self.cfg.tscale)]), self.logdir, pipe=True)
        out = []
        try:
            c.expect('ready', 30)
            q = wait_quiet(self.cfg)
            time.sleep(self.cfg.settle)
            pids = t.pids()
            rss0, k0 = proc_rss_kib(pids), kernel_mem_kib()
            for n in self.cfg.sessions:
                c.send(f'open {n}')
                line = c.expect('opened', (60 + n / 50) * self.cfg.tscale)
                kv = parse_kv(line)
                if int(kv['alive']) != n:
                    raise TargetFailed(f'only {kv["alive"]} of {n} idle sessions up: '
                                       f'{kv.get("first_error")}')
                time.sleep(self.cfg.settle)
                c.send('check')
                kv = parse_kv('x ' + c.expect('alive=', 30))
                if int(kv['alive']) != n:
                    raise TargetFailed(f'{n - int(kv["alive"])} idle sessions dropped: '
                                       f'{kv.get("first_error")}')
                pids = t.pids()
                rss, k = proc_rss_kib(pids), kernel_mem_kib()
                if t.roots():
                    self.record(t, f'mem_rss_kib_{n}', run_i, (rss - rss0) / n, q)
                self.record(t, f'mem_kern_kib_{n}', run_i, (k['kern'] - k0['kern']) / n, q)
                self.record(t, f'mem_kstack_kib_{n}', run_i, (k['kstack'] - k0['kstack']) / n, q)
                out.append(f'{n}: rss {(rss - rss0) / n:.1f} kern {(k["kern"] - k0["kern"]) / n:.1f} KiB')
            c.send('quit')
            c.p.wait(60)
        finally:
            c.stop()
        # Leave no thousands of sockets closing behind for the next target.
        t.stop()
        return '; '.join(out)

    def crypto_bound(self):
        """Server-side crypto per TLS 1.3 mTLS handshake on one core:
        one signature, two verifies (client cert, CertificateVerify) and two
        X25519 operations (key generation and shared secret)."""
        q = wait_quiet(self.cfg)
        cpu = ['taskset', '-c', self.cfg.server_cpu] if self.cfg.server_cpu else []
        r = run(cpu + ['openssl', 'speed', '-mr', '-seconds', str(self.cfg.speed_seconds),
                       'ecdsap256', 'rsa2048', 'ecdhx25519'], timeout=120)
        sp = {}
        for line in r.stdout.splitlines():
            f = line.split(':')
            if line.startswith('+F2:'):
                sp['rsa_sign'], sp['rsa_verify'] = float(f[3]), float(f[4])
            elif line.startswith('+F4:'):
                sp['ec_sign'], sp['ec_verify'] = float(f[3]), float(f[4])
            elif line.startswith('+F5:'):
                sp['x25519'] = float(f[3])
        if len(sp) != 5:
            raise BenchError(f'cannot parse openssl speed output:\n{r.stdout[-2000:]}')
        self.speed = sp
        for kind in ('ec', 'rsa'):
            per = 1 / sp[f'{kind}_sign'] + 2 / sp[f'{kind}_verify'] + 2 / sp['x25519']
            self.bound[kind] = 1 / per
        self.speed_quiet = q[0]
        log(f'crypto bound per core: ECDSA {self.bound["ec"]:.0f}/s, RSA {self.bound["rsa"]:.0f}/s '
            f'(openssl speed: {", ".join(f"{k} {v:.0f}/s" for k, v in sp.items())})')

    # ---- driver
    def each(self, title, fn, alternate=True):
        log(f'== {title}')
        for t, r in self.schedule(alternate):
            if t.name in self.failed:
                continue
            if not self.backend.alive():
                raise BenchError(f'the backend died: {self.backend.log_tail()}')
            try:
                msg = fn(t, r)
                log(f'  {t.name:<10} run {r + 1}: {msg}')
            except EnforcementError:
                raise
            except (BenchError, subprocess.SubprocessError, KeyError, ValueError) as e:
                self.fail_target(t, e)

    def run(self):
        cfg = self.cfg
        if os.geteuid() != 0:
            raise BenchError('must run as root (network namespaces, BPF)')
        for tname in ('mb-client', 'mb-backend', 'mb-splice'):
            if not os.access(self.tool(tname), os.X_OK):
                raise BenchError(f'{self.tool(tname)} missing: run make bench-tools')
        for b in ('ip', 'nsenter', 'taskset', 'openssl', 'gnuplot'):
            if not shutil.which(b):
                raise BenchError(f'{b} not found: run make bench-deps')
        os.makedirs(self.out, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix='moatbench.')
        self.logdir = os.path.join(self.tmp, 'logs')
        os.makedirs(self.logdir)
        log(f'work dir {self.tmp}; {"QUICK " if cfg.quick else ""}runs={cfg.runs} '
            f'bulk={cfg.bulk_bytes // MIB} MiB hs={cfg.hs_seconds}s x{cfg.hs_conc} '
            f'lat={cfg.lat_count} sessions={cfg.sessions}; client CPU {cfg.client_cpu or "any"}, '
            f'server CPU {cfg.server_cpu or "any"}')
        if cfg.caveat:
            log(f'CAVEAT: {cfg.caveat}')

        variants = {'moat': ([], [])}
        for spec in filter(None, (s.strip() for s in
                                  os.environ.get('BENCH_MOAT_VARIANTS', '').split(';'))):
            name, _, rest = spec.partition(':')
            da, _, aa = rest.partition(':')
            variants[name] = (shlex.split(da), shlex.split(aa))
        names = re.split(r'[ ,]+', (self.args.targets or os.environ.get('BENCH_TARGETS', '')
                                    or 'moat stunnel haproxy nginx direct splice').strip())
        self.targets = self.make_targets([n for n in names if n], variants)
        for t in self.targets:
            why = t.available()
            if why:
                self.skipped[t.name] = why
                log(f'SKIP {t.name}: {why}')

        try:
            self.certsets = make_certs(os.path.join(self.tmp, 'certs'))
            self.net.setup()
            self.run_inner()
        finally:
            for t in self.targets:
                try:
                    t.stop()
                except Exception as e:  # noqa: BLE001 - keep tearing down
                    log(f'stopping {t.name}: {e}')
            if self.backend:
                self.backend.stop()
            self.net.teardown()
            if not self.args.keep_tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                log(f'kept {self.tmp}')

    def run_inner(self):
        cfg = self.cfg
        listen = [f'127.0.0.1:{BACKEND_LO_PORT}', f'0.0.0.0:{PORTS["direct"]}'] + \
            [f'0.0.0.0:{t.port}' for t in self.targets if isinstance(t, Moat)]
        argv = self.net.prefix(self.net.srv, cfg.server_cpu) + [self.tool('mb-backend')]
        for a in listen:
            argv += ['-l', a]
        self.backend = Proc('backend', argv, self.logdir, pipe=True)
        self.backend.expect('ready', 10)

        self.crypto_bound()

        log('== enforcement checks (ECDSA)')
        for t in self.live_targets():
            try:
                self.ensure(t, self.certsets['ec'], 'ECDSA')
            except TargetFailed as e:
                self.fail_target(t, e)
        self.each('bulk client->app', lambda t, r: self.bulk(t, r, 'up'))
        self.each('bulk app->client', lambda t, r: self.bulk(t, r, 'down'))
        self.each('latency', self.latency)
        self.each('handshakes ECDSA P-256', lambda t, r: self.rate(t, r, 'ec'))
        self.each('idle sessions (memory)', self.memory, alternate=False)
        log('== enforcement checks (RSA)')
        for t in self.live_targets():
            try:
                self.ensure(t, self.certsets['rsa'], 'RSA')
            except TargetFailed as e:
                self.fail_target(t, e)
        self.each('handshakes RSA-2048', lambda t, r: self.rate(t, r, 'rsa'))


# --------------------------------------------------------------------------
# reporting

METRICS = [
    # key, label, unit, better
    ('bulk_up_gbps', 'client->app', 'Gbit/s', 'higher'),
    ('bulk_down_gbps', 'app->client', 'Gbit/s', 'higher'),
    ('cpu_proxy_up_s_per_gib', 'proxy CPU up', 's/GiB', 'lower'),
    ('cpu_proxy_down_s_per_gib', 'proxy CPU down', 's/GiB', 'lower'),
    ('cpu_machine_up_s_per_gib', 'machine CPU up', 's/GiB', 'lower'),
    ('cpu_machine_down_s_per_gib', 'machine CPU down', 's/GiB', 'lower'),
    ('hs_ec_per_s', 'ECDSA conn/s', '1/s', 'higher'),
    ('hs_ec_ratio', 'ECDSA / bound', 'ratio', 'higher'),
    ('hs_ec_proxy_cpu_us', 'ECDSA proxy CPU/conn', 'us', 'lower'),
    ('hs_ec_capacity', 'ECDSA 1/(CPU/conn)', '1/s', 'higher'),
    ('hs_ec_proxy_busy', 'ECDSA proxy busy', 'CPUs', ''),
    ('hs_ec_client_busy', 'ECDSA client busy', 'CPUs', ''),
    ('hs_rsa_per_s', 'RSA conn/s', '1/s', 'higher'),
    ('hs_rsa_ratio', 'RSA / bound', 'ratio', 'higher'),
    ('hs_rsa_proxy_cpu_us', 'RSA proxy CPU/conn', 'us', 'lower'),
    ('hs_rsa_capacity', 'RSA 1/(CPU/conn)', '1/s', 'higher'),
    ('hs_rsa_proxy_busy', 'RSA proxy busy', 'CPUs', ''),
    ('hs_rsa_client_busy', 'RSA client busy', 'CPUs', ''),
    ('lat_p50_us', 'p50', 'us', 'lower'),
    ('lat_p99_us', 'p99', 'us', 'lower'),
    ('lat_p999_us', 'p99.9', 'us', 'lower'),
    ('lat_p50_added_us', '+p50 vs direct', 'us', 'lower'),
    ('lat_p99_added_us', '+p99 vs direct', 'us', 'lower'),
]


def summarize(bench):
    by = {}
    for s in bench.samples:
        by.setdefault((s['target'], s['metric']), []).append(s)
    summ = {}
    for (t, m), ss in by.items():
        v = [s['value'] for s in ss]
        summ[(t, m)] = {'median': statistics.median(v), 'min': min(v), 'max': max(v),
                        'n': len(v), 'noisy': sum(s['noisy'] for s in ss)}
    targets = [t.name for t in bench.targets]
    for t in targets:
        for kind in ('ec', 'rsa'):
            s = summ.get((t, f'hs_{kind}_per_s'))
            tobj = next(x for x in bench.targets if x.name == t)
            if s and kind in bench.bound and tobj.tls:
                b = bench.bound[kind]
                summ[(t, f'hs_{kind}_ratio')] = {'median': s['median'] / b, 'min': s['min'] / b,
                                                 'max': s['max'] / b, 'n': s['n'],
                                                 'noisy': s['noisy']}
        for k in ('p50', 'p99'):
            s, d = summ.get((t, f'lat_{k}_us')), summ.get(('direct', f'lat_{k}_us'))
            if s and d:
                summ[(t, f'lat_{k}_added_us')] = {'median': s['median'] - d['median'],
                                                  'min': None, 'max': None, 'n': s['n'],
                                                  'noisy': s['noisy']}
    for kind in ('ec', 'rsa'):
        if kind in bench.bound:
            summ[('crypto-bound', f'hs_{kind}_per_s')] = {
                'median': bench.bound[kind], 'min': None, 'max': None, 'n': 1, 'noisy': 0}
    return summ


def mem_metrics(bench):
    out = []
    for n in bench.cfg.sessions:
        out.append((f'mem_rss_kib_{n}', f'proxy RSS @{n}', 'KiB/session', 'lower'))
        out.append((f'mem_kern_kib_{n}', f'kernel @{n}', 'KiB/session', 'lower'))
        out.append((f'mem_kstack_kib_{n}', f'kernel stacks @{n}', 'KiB/session', 'lower'))
    return out


def fmt(v, unit=''):
    if v is None:
        return '-'
    if unit == 'ratio':
        return f'{v:.2f}'
    a = abs(v)
    if a >= 1000:
        return f'{v:.0f}'
    if a >= 100:
        return f'{v:.1f}'
    if a >= 10:
        return f'{v:.2f}'
    return f'{v:.3f}'


def cell(s, unit=''):
    if not s:
        return '-'
    c = fmt(s['median'], unit)
    if s['min'] is not None and s['n'] > 1:
        c += f' [{fmt(s["min"], unit)}-{fmt(s["max"], unit)}]'
    if s['noisy']:
        c += '!'
    return c


def text_table(rows, header):
    w = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: '  '.join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i])  # noqa: E731
                               for i, c in enumerate(r))
    return '\n'.join([line(header), '  '.join('-' * x for x in w)] + [line(r) for r in rows])


def machine_info(bench):
    def first(cmd):
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=10)
            return r.stdout.strip().splitlines()[0] if r.stdout.strip() else '?'
        except (OSError, subprocess.SubprocessError):
            return '?'
    cpu = '?'
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    with open('/proc/meminfo') as f:
        mem = int(f.readline().split()[1]) / (1 << 20)
    try:
        with open('/etc/debian_version') as f:
            deb = 'Debian ' + f.read().strip()
    except OSError:
        deb = platform.platform()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rev = first(['git', '-C', repo, 'describe', '--always', '--dirty'])
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'machine': f'{cpu}, {bench.cfg.ncpu} CPUs, {mem:.0f} GiB',
        'os': deb,
        'kernel': platform.release(),
        'openssl': first(['openssl', 'version']),
        'stunnel': first(['sh', '-c', '(stunnel4 -version || stunnel -version) 2>&1 | grep -m1 "^stunnel"']),
        'haproxy': first(['haproxy', '-v']),
        'nginx': first(['nginx', '-v']),
        'moat': rev if 'fatal' not in rev else 'no commit yet',
    }


def report(bench, elapsed):
    cfg = bench.cfg
    summ = summarize(bench)
    info = machine_info(bench)
    measured = [t.name for t in bench.targets if t.name not in bench.skipped]
    out = bench.out
    os.makedirs(out, exist_ok=True)

    # ---- CSVs
    with open(os.path.join(out, 'samples.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=['target', 'metric', 'run', 'value', 'quiet',
                                          'idle_before', 'steal', 'foreign', 'noisy', 'load1',
                                          't'])
        w.writeheader()
        w.writerows(bench.samples)
    allm = METRICS + mem_metrics(bench)
    with open(os.path.join(out, 'results.csv'), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['target', 'metric', 'unit', 'median', 'min', 'max', 'n', 'noisy', 'note'])
        for t in ['crypto-bound'] + [t.name for t in bench.targets]:
            if t in bench.skipped:
                w.writerow([t, 'skipped', '', '', '', '', 0, 0, bench.skipped[t]])
                continue
            if t in bench.failed:
                w.writerow([t, 'failed', '', '', '', '', 0, 0, bench.failed[t]])
            for key, _, unit, _ in allm:
                s = summ.get((t, key))
                if s:
                    w.writerow([t, key, unit, f'{s["median"]:.6g}',
                                '' if s['min'] is None else f'{s["min"]:.6g}',
                                '' if s['max'] is None else f'{s["max"]:.6g}', s['n'], s['noisy'], ''])

    # ---- text tables
    lines = []
    lines.append(f'moat benchmark, {info["date"]}: {info["machine"]}; {info["os"]}, '
                 f'Linux {info["kernel"]}; {info["openssl"]}')
    lines.append(f'{"QUICK smoke run, " if cfg.quick else ""}median [min-max] of {cfg.runs} run(s) '
                 f'per target (moat interleaved with every peer); "!" = some samples noisy (machine '
                 f'busy before, or CPU steal / other processes during). Client on CPU {cfg.client_cpu or "any"}, proxy+backend on CPU '
                 f'{cfg.server_cpu or "any"}. TLS 1.3, X25519, ECDSA P-256 certs unless noted.')
    if cfg.caveat:
        lines.append(f'CAVEAT: {cfg.caveat}')
    for t, why in bench.skipped.items():
        lines.append(f'SKIPPED {t}: {why}')
    for t, why in bench.failed.items():
        lines.append(f'FAILED {t}: {why}')
    ciphers = {t.name: t.cipher for t in bench.targets if t.cipher}
    if ciphers:
        lines.append('negotiated: ' + '; '.join(f'{k} {v}' for k, v in ciphers.items()))

    def section(title, keys):
        rows = []
        for t in measured + (['crypto-bound'] if any(k.startswith('hs_') for k, *_ in keys) else []):
            r = [t] + [cell(summ.get((t, k)), u) for k, _, u, _ in keys]
            if any(c != '-' for c in r[1:]):
                rows.append(r)
        hdr = ['target'] + [f'{lbl} ({u})' if u not in ('ratio',) else lbl for _, lbl, u, _ in keys]
        lines.append('')
        lines.append(title)
        lines.append(text_table(rows, hdr))

    M = {k: (k, lbl, u, b) for k, lbl, u, b in allm}
    section(f'Bulk transfer ({cfg.bulk_bytes // MIB} MiB each way), CPU seconds per GiB moved',
            [M[k] for k in ('bulk_up_gbps', 'bulk_down_gbps', 'cpu_proxy_up_s_per_gib',
                            'cpu_proxy_down_s_per_gib', 'cpu_machine_up_s_per_gib',
                            'cpu_machine_down_s_per_gib')])
    section(f'Full mTLS connections/s (handshake + 1-byte echo + close, no resumption, '
            f'{cfg.hs_conc} in flight); bound = openssl speed on one core: 1 sign + 2 verify + '
            f'2 X25519; 1/(CPU/conn) = what one proxy core could sustain; busy = CPUs used by '
            f'proxy and by client (client near 1.0 = the load generator was the limit)',
            [M[k] for k in ('hs_ec_per_s', 'hs_ec_ratio', 'hs_ec_proxy_cpu_us', 'hs_ec_capacity', 'hs_ec_proxy_busy',
                            'hs_ec_client_busy')])
    section('The same with RSA-2048 certificates (server and client)',
            [M[k] for k in ('hs_rsa_per_s', 'hs_rsa_ratio', 'hs_rsa_proxy_cpu_us', 'hs_rsa_capacity',
                            'hs_rsa_proxy_busy', 'hs_rsa_client_busy')])
    section(f'Latency of a {cfg.lat_size}-byte request/response on one connection '
            f'({cfg.lat_count} round trips)',
            [M[k] for k in ('lat_p50_us', 'lat_p99_us', 'lat_p999_us', 'lat_p50_added_us',
                            'lat_p99_added_us')])
    section('Memory per established idle session (proxy RSS delta; kernel = Slab + TCP socket '
            'memory, whole machine incl. client and backend sockets)',
            [M[f'mem_{w}_kib_{n}'] for n in cfg.sessions for w in ('rss', 'kern')])
    nz = sum(x['noisy'] for x in bench.samples)
    lines.append('')
    med = lambda k: statistics.median([x[k] for x in bench.samples] or [0])  # noqa: E731
    lines.append(f'Noise: {nz} of {len(bench.samples)} samples noisy (machine not quiet before, or '
                 f'during it >{cfg.steal_max:.0%} of CPU stolen by the hypervisor or '
                 f'>{cfg.foreign_max:.0%} used by other processes); median steal {med("steal"):.1%}, '
                 f'median other {med("foreign"):.1%}.')
    lines.append('Enforcement (checked before measuring): ' + '; '.join(
        f'{k} {v}' for k, v in bench.enforcement.items()))
    lines.append(f'Harness wall time {elapsed:.0f} s. CSV: {out}/results.csv, samples: '
                 f'{out}/samples.csv, chart: {out}/bench.png, README snippet: {out}/results.md')
    text = '\n'.join(lines)
    print(text)
    with open(os.path.join(out, 'results.txt'), 'w') as f:
        f.write(text + '\n')

    write_markdown(bench, summ, info, measured, elapsed)
    plot(bench, summ, info, measured)


def write_markdown(bench, summ, info, measured, elapsed):
    cfg = bench.cfg
    n9 = max(cfg.sessions)
    cols = [('bulk_up_gbps', 'client→app Gbit/s'), ('bulk_down_gbps', 'app→client Gbit/s'),
            ('hs_ec_per_s', 'ECDSA conn/s'), ('hs_rsa_per_s', 'RSA conn/s'),
            ('lat_p50_us', 'p50 µs'), ('lat_p99_us', 'p99 µs'), ('lat_p999_us', 'p99.9 µs'),
            (f'mem_rss_kib_{n9}', f'proxy KiB/session @{n9}'),
            (f'mem_kern_kib_{n9}', f'kernel KiB/session @{n9}'),
            ('cpu_proxy_up_s_per_gib', 'proxy CPU s/GiB ↑'),
            ('cpu_machine_up_s_per_gib', 'machine CPU s/GiB ↑')]
    md = ['<!-- generated by bench/moatbench.py (make bench) -->',
          f'Results of `make bench` on {info["date"]}{" (QUICK smoke run)" if cfg.quick else ""}.',
          '',
          f'- Machine: {info["machine"]}; {info["os"]}, Linux {info["kernel"]}',
          f'- Versions: {info["openssl"]}; {info["stunnel"]}; {info["haproxy"].split(" - ")[0]}; '
          f'{info["nginx"]}; moat {info["moat"]}',
          f'- Method: median of {cfg.runs} run(s) (min–max in build/bench/results.csv), targets '
          f'interleaved; client pinned to CPU {cfg.client_cpu or "any"}, proxy and backend to CPU '
          f'{cfg.server_cpu or "any"}; TLS 1.3 with X25519; {cfg.bulk_bytes // MIB} MiB bulk '
          f'transfers; {cfg.hs_conc} connections in flight for conn/s; {cfg.lat_size}-byte '
          f'ping-pong for latency; harness wall time {elapsed:.0f} s.',
          f'- Crypto bound on one core (openssl speed: 1 sign + 2 verify + 2 X25519 per handshake): '
          f'ECDSA {bench.bound.get("ec", 0):.0f}/s, RSA {bench.bound.get("rsa", 0):.0f}/s.']
    if cfg.caveat:
        md.append(f'- **Caveat:** {cfg.caveat}')
    for t, why in bench.skipped.items():
        md.append(f'- {t}: skipped ({why}).')
    for t, why in bench.failed.items():
        md.append(f'- {t}: FAILED ({why}).')
    md += ['', '| target | ' + ' | '.join(c for _, c in cols) + ' |',
           '|---|' + '---:|' * len(cols)]
    for t in measured:
        if t in bench.failed:
            continue
        md.append(f'| {t} | ' + ' | '.join(
            fmt(summ[(t, k)]['median']) if (t, k) in summ else '–' for k, _ in cols) + ' |')
    md += ['', 'direct = plaintext with no proxy (ceiling); splice = plaintext splice(2) relay '
           '(no-crypto bound). Kernel memory counts the whole machine (client and backend '
           'sockets too); compare it with direct.', '']
    with open(os.path.join(bench.out, 'results.md'), 'w') as f:
        f.write('\n'.join(md))


def plot(bench, summ, info, measured):
    cfg = bench.cfg
    out = bench.out
    names = [t for t in measured if t not in bench.failed]
    tls_names = [t for t in names if next(x for x in bench.targets if x.name == t).tls]
    n9 = max(cfg.sessions)
    bound_txt = 'crypto bound per core ' + ', '.join(
        f'{"ECDSA" if k == "ec" else "RSA"} {v:.0f}' for k, v in bench.bound.items()) + \
        '; * = client-bound'
    panels = [
        ('Bulk throughput, Gbit/s (higher is better)', names,
         [('bulk_up_gbps', 'client→app'), ('bulk_down_gbps', 'app→client')], None),
        ('Full mTLS connections/s (higher is better)\\n' + bound_txt, tls_names,
         [('hs_ec_per_s', 'ECDSA P-256'), ('hs_rsa_per_s', 'RSA-2048')], None),
        (f'Latency, {cfg.lat_size}-byte ping-pong, µs, log scale (lower is better)', names,
         [('lat_p50_us', 'p50'), ('lat_p99_us', 'p99'), ('lat_p999_us', 'p99.9')], 'log'),
        (f'Memory per idle session @{n9}, KiB (lower is better)', names,
         [(f'mem_rss_kib_{n9}', 'proxy RSS'), (f'mem_kern_kib_{n9}', 'kernel (whole machine)')],
         None),
        ('Proxy CPU seconds per GiB (lower is better)', names,
         [('cpu_proxy_up_s_per_gib', 'client→app'), ('cpu_proxy_down_s_per_gib', 'app→client')],
         None),
        ('Whole-machine CPU seconds per GiB (lower is better)', names,
         [('cpu_machine_up_s_per_gib', 'client→app'),
          ('cpu_machine_down_s_per_gib', 'app→client')], None),
    ]
    gp = ['set terminal pngcairo size 1800,1050 font "DejaVu Sans,11"',
          f'set output "{out}/bench.png"',
          'set style data histogram',
          'set style histogram errorbars gap 1.5 lw 1.2',
          'set style fill solid 0.85 border -1',
          'set boxwidth 0.9',
          'set grid ytics lc rgb "#dddddd"',
          'set key outside top center horizontal font ",10" samplen 1.5 width 1',
          'set datafile missing "NaN"',
          'set xtics nomirror font ",11"',
          'set ytics nomirror',
          'set border 3',
          'set yrange [0:*]',
          'set offsets 0, 0, graph 0.12, 0',
          'set termoption noenhanced']
    sub = f'{info["machine"]}, Linux {info["kernel"]}, {info["date"]}; median of {cfg.runs}, ' \
          f'bars = min..max' + (' - QUICK smoke run' if cfg.quick else '')
    notes = [f'{t} skipped: {w}' for t, w in bench.skipped.items()] + \
            [f'{t} failed' for t in bench.failed]
    if cfg.caveat:
        notes.append('VM/TCG: compare within run only')
    nz = sum(x['noisy'] for x in bench.samples)
    if nz:
        notes.append(f'{nz} of {len(bench.samples)} samples noisy '
                     '(busy machine, CPU steal or other processes)')
    title = 'moat vs stunnel / HAProxy / nginx (mutual TLS 1.3)\\n' + sub.replace('"', "'")
    if notes:
        title += '\\n' + '; '.join(notes).replace('"', "'")
    gp.append(f'set multiplot layout 2,3 title "{title}" font ",13"')
    colors = ['#1f77b4', '#ff7f0e', '#2ca02c']
    for i, (ptitle, tnames, series, extra) in enumerate(panels):
        dat = os.path.join(out, f'chart{i}.dat')
        with open(dat, 'w') as f:
            for t in tnames:
                row = [t]
                if any(k.startswith('hs_') for k, _ in series) and any(
                        (summ.get((t, f'hs_{kd}_client_busy')) or {}).get('median', 0) >= 0.85
                        for kd in ('ec', 'rsa')):
                    row = [t + '*']
                for key, _ in series:
                    s = summ.get((t, key))
                    if s is None:
                        row += ['NaN'] * 3
                    else:
                        lo = s['min'] if s['min'] is not None else s['median']
                        hi = s['max'] if s['max'] is not None else s['median']
                        row += [f'{s["median"]:.6g}', f'{lo:.6g}', f'{hi:.6g}']
                f.write(' '.join(row) + '\n')
        gp.append(f'set title "{ptitle}" font ",11"')
        gp.append('unset label')
        if extra == 'log':
            gp += ['set logscale y', 'set yrange [*:*]', 'set offsets 0, 0, 0, 0']
        else:
            gp += ['unset logscale y', 'set yrange [0:*]', 'set offsets 0, 0, graph 0.12, 0']
        if not tnames:
            gp.append('set label "no data" at graph 0.5, graph 0.5 center')
            gp.append('plot [0:1] [0:1] 2 notitle')
            continue
        plots = []
        for j, (_, label) in enumerate(series):
            c = 2 + 3 * j
            xt = ':xtic(1)' if j == 0 else ''
            plots.append(f'"{dat}" using {c}:{c + 1}:{c + 2}{xt} title "{label}" '
                         f'lc rgb "{colors[j]}"')
        gp.append('plot ' + ', '.join(plots))
    gp.append('unset multiplot')
    gpf = os.path.join(out, 'bench.gp')
    with open(gpf, 'w') as f:
        f.write('\n'.join(gp) + '\n')
    r = subprocess.run(['gnuplot', gpf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        raise BenchError(f'gnuplot failed: {r.stdout[-1000:]}')


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build', default=os.environ.get('BUILD', 'build'),
                    help='build directory holding moatd, moat and bench/ tools')
    ap.add_argument('--out', help='output directory (default BUILD/bench, or BUILD/bench/quick)')
    ap.add_argument('--targets', help='targets to run (default: BENCH_TARGETS or all)')
    ap.add_argument('--quick', action='store_true', help='smoke version (same as BENCH_QUICK=1)')
    ap.add_argument('--vm', action='store_true', help='running in an emulated VM: print the '
                    'TCG caveat with the results')
    ap.add_argument('--keep-tmp', action='store_true', help='keep configs, certs and logs')
    args = ap.parse_args()
    try:
        cfg = Config(args)
        if not args.out:
            args.out = os.path.join(args.build, 'bench', 'quick' if cfg.quick else '')
        args.out = os.path.normpath(args.out)
        bench = Bench(cfg, args)
        bench.run()
        report(bench, time.monotonic() - T0)
    except EnforcementError as e:
        log(f'ABORT: enforcement check failed: {e}')
        return 3
    except BenchError as e:
        log(f'ERROR: {e}')
        return 2
    except KeyboardInterrupt:
        log('interrupted')
        return 130
    if bench.failed:
        log(f'targets failed: {", ".join(bench.failed)}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
