#!/usr/bin/env python3
"""Generate (or mutate) a deterministic Travis-CI-Enterprise-like tree for backup benchmarks.

    gen_tree.py DIR [--size-gb G] [--seed S]        create DIR/etc/travis and DIR/var/travis
    gen_tree.py DIR --mutate [--seed S2]            apply "a day of database activity" to DIR

The tree imitates what a Travis CI Enterprise platform host keeps:

* ``etc/travis``: travis.yml (with an ``encryption:`` key block and the RabbitMQ password),
  PEM certificates and keys, a licence file, a few small config files, one symlink.
* ``var/travis/postgresql/data``: a PostgreSQL 11-style cluster. Relation files are made of
  8 KiB pages (page header, line pointers, tuples of mixed ints and text packed from the end,
  zeroed free space; b-tree index pages; TOAST pages holding already-compressed data) and are
  split into segments (``<relfilenode>``, ``<relfilenode>.1``, ...) like the 1 GiB segments of
  a real cluster, only smaller. ``pg_wal`` holds whole WAL segments (16 MiB from 0.5 GiB up),
  partly full-page images, partly random-ish. ``global``, ``pg_xact`` and friends are small.
* ``var/travis/rabbitmq``: mnesia tables, message store and queue index files.
* ``var/travis/log``: text logs with timestamps and job ids (and a few rotated .gz files).
* a few thousand small files (catalog relations, static assets, per-job metadata).

Everything is derived from the seed with named random streams, so the same seed and size
always give byte-identical contents and identical mtimes. ``--mutate`` is deterministic too,
given the tree it starts from and its own seed: it rewrites a few percent of the 8 KiB pages
of a subset of relations (mostly near the end of the file, where recent rows live, the rest
scattered), appends pages to some relations, adds 2-4 WAL segments and removes as many of the
oldest, appends to logs, adds a few files and deletes a few. Mutated files get the current
mtime, as they would on a live host.

Only the Python standard library is used.
"""

import argparse
import base64
import bisect
import os
import random
import struct
import sys
import time
import zlib

PAGE = 8192
KIB = 1024
MIB = 1024 * 1024
GIB = 1024 * MIB

# 2023-05-01T00:00:00Z; generated files get mtimes within the 30 days before this.
BASE_EPOCH = 1682899200

WORDS = (
    "the a of to and in is for on with build job test passed failed errored canceled started "
    "created queued received booting running finished install script before_install "
    "after_success deploy cache bundle npm yarn pip gradle maven cargo go make cmake rake "
    "rspec pytest jest mocha junit travis worker hub api logs gatekeeper scheduler sync "
    "listener enterprise platform github repository branch master main develop release "
    "feature fix bug update merge pull request commit tag push cron api_request docker "
    "container image ubuntu xenial bionic focal trusty linux osx amd64 arm64 ruby python node "
    "java scala php rust golang elixir erlang clojure haskell perl android c cpp jdk openjdk8 "
    "openjdk11 oraclejdk8 2.7 3.6 3.7 3.8 10 12 14 stable nightly beta env matrix include "
    "exclude allow_failures fast_finish stage lint unit integration e2e coverage report upload "
    "artifact dependency version bump refactor cleanup readme docs config yaml json timeout "
    "retry network connection refused reset error warning info debug notice user organization "
    "owner admin permission token secure encrypted key value payload webhook notification "
    "email slack irc state number duration queue priority private public default custom label "
    "add remove change improve support handle avoid use allow ensure check set get new old "
    "initial final first last next previous database migration schema index table column row "
    "query transaction lock vacuum analyze replica primary backup restore snapshot".split()
)

STATES = ["passed", "failed", "errored", "canceled", "started", "created", "queued", "received"]
ORGS = ["acme", "initech", "globex", "umbrella", "hooli", "stark", "wayne", "tyrell",
        "cyberdyne", "soylent", "wonka", "vandelay", "oscorp", "aperture", "blackmesa"]
REPOS = ["api", "web", "frontend", "backend", "infra", "terraform", "ansible", "mobile-ios",
         "mobile-android", "data-pipeline", "ml-models", "docs", "website", "sdk-ruby",
         "sdk-python", "sdk-go", "billing", "auth", "search", "notifications", "gateway",
         "payments", "reporting", "admin", "cli", "chef-cookbooks", "monorepo", "legacy-app"]
BRANCHES = ["master", "main", "develop", "staging", "release/2.3", "release/2.4", "hotfix/login",
            "feature/search", "feature/billing-v2", "dependabot/npm/lodash-4.17.21",
            "renovate/rails-6.x", "fix/flaky-spec", "gh-pages"]
LANGS = ["ruby", "python", "node_js", "java", "go", "php", "rust", "scala", "android", "cpp"]
NAMES = ["Alice Smith", "Bob Jones", "Carol White", "Dan Brown", "Eve Black", "Frank Green",
         "Grace Hopper", "Heidi Klum", "Ivan Petrov", "Judy Chen", "Mallory Stone", "Oscar Wild",
         "Peggy Olson", "Trent Reznor", "Victor Hugo", "Walter White", "dependabot[bot]"]
HOSTS = ["travis-worker-1", "travis-worker-2", "travis-worker-3", "travis-platform"]


def _vocabulary():
    """WORDS plus a few thousand made-up words, with Zipf-like weights like natural text."""
    r = random.Random(20230501)
    syl = ("ba be bi bo bu ca ce ci co cu da de di do du fa fe fi fo ga ge gi go ha he hi ho ja "
           "ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po ra re ri ro ru "
           "sa se si so su ta te ti to tu va ve vi vo wa we wi xa ya yo za ze zi zo ar er ir or "
           "ur an en in on un al el il ol st tr pr str th sh ch ng nt").split()
    extra = set()
    while len(extra) < 4000:
        extra.add("".join(r.choice(syl) for _ in range(r.randrange(2, 5))))
    words = list(WORDS)
    r.shuffle(words)
    words += sorted(extra)
    cum = []
    acc = 0.0
    for i in range(len(words)):
        acc += 1.0 / (i + 60)
        cum.append(acc)
    return words, cum


VOCAB, VOCAB_CUM = _vocabulary()


def rng_for(seed, *names):
    """An independent, deterministic random stream for one part of the tree."""
    return random.Random("/".join([str(seed)] + [str(n) for n in names]))


def pad8(b):
    return b + b"\0" * (-len(b) & 7)


def varlena(s):
    """PostgreSQL short varlena: 1-byte header for values below 127 bytes, else 4 bytes."""
    if isinstance(s, str):
        s = s.encode()
    n = len(s)
    if n < 127:
        return bytes(((n + 1) << 1 | 1,)) + s
    return struct.pack("<I", (n + 4) << 2) + s


def hexstr(rng, nbytes):
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "little").hex()


def sentence(rng, n):
    return " ".join(rng.choices(VOCAB, cum_weights=VOCAB_CUM, k=n))


def ts_us(rng, day_span=30):
    """A timestamp as PostgreSQL stores it: microseconds since 2000-01-01."""
    return (BASE_EPOCH - 946684800) * 1000000 - int(rng.random() * day_span * 86400 * 1000000)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


# --------------------------------------------------------------------------------------------
# PostgreSQL heap tuples. Each pool entry is a MAXALIGNed tuple: 24-byte HeapTupleHeader
# followed by the row's columns. Pages are built from contiguous runs of a pool, so different
# pages start at different places and a pool bigger than a chunk keeps data from repeating.
# --------------------------------------------------------------------------------------------

def tuple_header(rng, natts):
    rnd = rng.random
    xmin = 500000 + int(rnd() * 8500000)
    xmax = 0 if rnd() < 0.85 else xmin + 1 + int(rnd() * 50000)
    return struct.pack("<IIIHHHHHB", xmin, xmax, 0, 0, 1 + int(rnd() * 4000), 1 + int(rnd() * 200),
                       natts, 0x0902 if xmax == 0 else 0x0102, 24) + b"\0"


def row_jobs(rng, i):
    state = rng.choice(STATES)
    t0 = ts_us(rng)
    cols = struct.pack("<qiiqq", 1000000 + i, rng.randrange(1, 3000), rng.randrange(1, 40),
                       8000000 + rng.randrange(4000000), 600000 + rng.randrange(200000))
    cols += varlena(state) + varlena("%d.%d" % (rng.randrange(1, 9000), rng.randrange(1, 30)))
    cols = pad8(cols) + struct.pack("<qqqq", t0, t0 + rng.randrange(10**8),
                                    t0 + rng.randrange(10**8, 10**9), t0 + rng.randrange(10**9, 4 * 10**9))
    cols += varlena("builds.%s" % rng.choice(["linux", "docker", "gce", "ec2", "osx"]))
    cols += varlena(rng.choice(["Repository", "Organization", "User"]))
    cols += varlena(rng.choice(["linux", "osx", "windows"])) + varlena(rng.choice(LANGS))
    return tuple_header(rng, 17) + pad8(cols)


def row_commits(rng, i):
    org, repo = rng.choice(ORGS), rng.choice(REPOS)
    sha = hexstr(rng, 20)
    name = rng.choice(NAMES)
    email = name.lower().replace(" ", ".").replace("[", "").replace("]", "") + "@example.com"
    msg = sentence(rng, rng.randrange(4, 40))
    cols = struct.pack("<qi", 8000000 + i, rng.randrange(1, 3000)) + varlena(sha)
    cols += varlena("refs/heads/" + rng.choice(BRANCHES)) + varlena(rng.choice(BRANCHES))
    cols += varlena(msg.capitalize())
    cols += varlena("https://github.example.com/%s/%s/compare/%s...%s" % (org, repo, hexstr(rng, 6), sha[:12]))
    cols = pad8(cols) + struct.pack("<q", ts_us(rng))
    cols += varlena(name) + varlena(email) + varlena(name) + varlena(email)
    cols = pad8(cols) + struct.pack("<qq", ts_us(rng), ts_us(rng))
    return tuple_header(rng, 14) + pad8(cols)


def row_requests(rng, i):
    org, repo = rng.choice(ORGS), rng.choice(REPOS)
    payload = ('{"ref":"refs/heads/%s","before":"%s","after":"%s","repository":{"id":%d,'
               '"name":"%s","full_name":"%s/%s","private":true,"owner":{"login":"%s"}},'
               '"pusher":{"name":"%s"},"head_commit":{"message":"%s","timestamp":"%s"}}') % (
        rng.choice(BRANCHES), hexstr(rng, 20), hexstr(rng, 20), rng.randrange(1, 3000), repo, org,
        repo, org, rng.choice(NAMES), sentence(rng, rng.randrange(3, 20)),
        iso(BASE_EPOCH - rng.randrange(2592000)))
    cols = struct.pack("<qiq", 700000 + i, rng.randrange(1, 3000), 8000000 + rng.randrange(4000000))
    cols += varlena(rng.choice(["finished", "started", "created"]))
    cols += varlena(rng.choice(["push", "pull_request", "cron", "api"])) + varlena(payload)
    cols = pad8(cols) + struct.pack("<qq", ts_us(rng), ts_us(rng))
    cols += varlena(rng.choice(["approved", "rejected", "accepted"])) + varlena(hexstr(rng, 10))
    return tuple_header(rng, 12) + pad8(cols)


def row_configs(rng, i):
    lang = rng.choice(LANGS)
    cfg = ('{"language":"%s","os":"%s","dist":"%s","%s":["%s"],"script":["%s"],'
           '"before_install":["%s"],"cache":{"directories":["%s"]},"env":{"jobs":["%s=%d"]}}') % (
        lang, rng.choice(["linux", "osx"]), rng.choice(["xenial", "bionic", "focal", "trusty"]),
        lang, rng.choice(["2.7", "3.8", "10", "12", "stable"]), sentence(rng, rng.randrange(2, 8)),
        sentence(rng, rng.randrange(2, 8)), rng.choice(["vendor/bundle", "node_modules", "$HOME/.m2"]),
        rng.choice(["DB", "SUITE", "RAILS_ENV"]), rng.randrange(100))
    cols = struct.pack("<qi", 300000 + i, rng.randrange(1, 3000)) + varlena(hexstr(rng, 20)) + varlena(cfg)
    return tuple_header(rng, 4) + pad8(cols)


def log_line(rng, t):
    kind = rng.random()
    if kind < 0.3:
        return "\x1b[32;1m$ %s %s\x1b[0m\r\n" % (rng.choice(["bundle exec rspec", "npm test", "pytest -q",
                                                            "make test", "go test ./...", "mvn -B verify"]),
                                               sentence(rng, rng.randrange(0, 4)))
    if kind < 0.55:
        return "travis_time:end:%08x:start=%d,finish=%d,duration=%d\r\n" % (
            rng.getrandbits(32), t, t + rng.randrange(10**9), rng.randrange(10**9))
    if kind < 0.8:
        return "%s ... %s (%d.%02ds)\r\n" % (sentence(rng, rng.randrange(2, 9)).capitalize(),
                                              rng.choice(["ok", "ok", "ok", "PASSED", "FAILED", "skipped"]),
                                              rng.randrange(5), rng.randrange(100))
    return "Fetching %s-%d.%d.%d.gem (100%%)\r\n" % (rng.choice(WORDS), rng.randrange(10),
                                                    rng.randrange(30), rng.randrange(20))


def row_log_parts(rng, i):
    t = 1682000000000000000 + i * 1000003
    text = "".join(log_line(rng, t) for _ in range(rng.randrange(2, 25)))
    cols = struct.pack("<qqi", 50000000 + i, 900000 + i // 40, i % 40) + varlena(text)
    cols = pad8(cols + b"\x01") + struct.pack("<q", ts_us(rng))
    return tuple_header(rng, 6) + pad8(cols)


def row_small(rng, i):
    """Users, repositories, branches, permissions...: short rows."""
    org, repo = rng.choice(ORGS), rng.choice(REPOS)
    cols = struct.pack("<qii", i + 1, rng.randrange(1, 3000), rng.randrange(1, 500))
    cols += varlena("%s/%s" % (org, repo)) + varlena(rng.choice(BRANCHES)) + b"\x01\x00"
    cols = pad8(cols) + struct.pack("<qq", ts_us(rng), ts_us(rng))
    if rng.random() < 0.4:
        cols += varlena(hexstr(rng, 16))
    return tuple_header(rng, 8) + pad8(cols)


def row_catalog(rng, i):
    """System catalog rows: names, oids, flags, lots of zero padding (NameData is 64 bytes)."""
    name = ("%s_%s_%d" % (rng.choice(WORDS), rng.choice(WORDS), rng.randrange(1000))).encode()[:63]
    cols = struct.pack("<I", 1000 + i) + name + b"\0" * (64 - len(name))
    cols += struct.pack("<IIIhbbbb", rng.randrange(11, 20000), 10, rng.randrange(3), rng.choice([-1, 4, 8]),
                        1, rng.randrange(3), 0, 0)
    if rng.random() < 0.5:
        cols += varlena(sentence(rng, rng.randrange(1, 10)))
    return tuple_header(rng, 12) + pad8(cols)


ROW_KINDS = {
    "jobs": row_jobs,
    "commits": row_commits,
    "requests": row_requests,
    "configs": row_configs,
    "log_parts": row_log_parts,
    "small": row_small,
    "catalog": row_catalog,
}


class Pool:
    """A run of pre-built tuples and their cumulative page cost (tuple + line pointer)."""

    def __init__(self, rng, kind, nbytes):
        make = ROW_KINDS[kind]
        self.tuples = []
        self.cum = [0]
        total = 0
        i = 0
        while total < nbytes or len(self.tuples) < 400:
            t = make(rng, i)
            self.tuples.append(t)
            total += len(t) + 4
            self.cum.append(total)
            i += 1
        self.n = len(self.tuples)


class PageMaker:
    def __init__(self, seed, pool_budget, tag):
        self.seed = seed
        self.tag = tag
        self.pool_budget = pool_budget
        self.pools = {}
        self.lsn = (rng_for(seed, tag, "lsn").randrange(1, 50) << 32)

    def pool(self, kind):
        p = self.pools.get(kind)
        if p is None:
            budget = self.pool_budget.get(kind, 2 * MIB)
            p = Pool(rng_for(self.seed, self.tag, "pool", kind), kind, budget)
            self.pools[kind] = p
        return p

    def header(self, rng, lower, upper, special):
        self.lsn += rng.randrange(200, 90000)
        return struct.pack("<IIHHHHHHI", self.lsn >> 32, self.lsn & 0xFFFFFFFF, rng.getrandbits(16),
                           rng.choice((0, 0, 4)), lower, upper, special, 0x2004,
                           0 if rng.random() < 0.7 else rng.randrange(500000, 9000000))

    def heap(self, rng, kind):
        pool = self.pool(kind)
        r = rng.random()
        # Most pages are full; some have room left by deletes and updates, some are half empty.
        if r < 0.7:
            free = 0
        elif r < 0.95:
            free = rng.randrange(PAGE // 10, PAGE // 2)
        else:
            free = rng.randrange(PAGE // 2, PAGE - 600)
        budget = PAGE - 24 - free
        cum = pool.cum
        start = rng.randrange(pool.n)
        end = bisect.bisect_right(cum, cum[start] + budget, start) - 1
        if end >= pool.n:
            end = pool.n
        if end <= start:  # tuple bigger than the page budget: take just one if it fits at all
            end = start + 1 if cum[start + 1] - cum[start] <= PAGE - 24 else start
        tups = pool.tuples[start:end]
        base = cum[start]
        lps = []
        for j in range(start, end):
            ln = len(pool.tuples[j])
            off = PAGE - (cum[j + 1] - base - 4 * (j - start + 1))
            lps.append(off | (1 << 15) | (ln << 17))
        k = end - start
        lower = 24 + 4 * k
        upper = PAGE - (cum[end] - base - 4 * k)
        hdr = self.header(rng, lower, upper, PAGE)
        tups.reverse()
        return b"".join((hdr, struct.pack("<%dI" % k, *lps), bytes(upper - lower), *tups))

    def btree(self, rng, key0, step, random_ctid):
        """A b-tree leaf page: sorted int8 keys with heap pointers, 16-byte special space."""
        n = 407 if rng.random() < 0.7 else rng.randrange(150, 407)
        vals = []
        key = key0
        blk = key0 // 60
        for j in range(n):
            key += step if step else rng.randrange(0, 2)
            if random_ctid:
                vals += (rng.getrandbits(20), rng.randrange(1, 60), 16, key)
            else:
                blk += (j % 60 == 0)
                vals += (blk, j % 60 + 1, 16, key)
        items = struct.pack("<" + "IHHq" * n, *vals)
        lps = struct.pack("<%dI" % n, *[(PAGE - 16 - 16 * (j + 1)) | (1 << 15) | (16 << 17) for j in range(n)])
        lower = 24 + 4 * n
        upper = PAGE - 16 - 16 * n
        hdr = self.header(rng, lower, upper, PAGE - 16)
        special = struct.pack("<IIIHH", rng.getrandbits(20), rng.getrandbits(20), 0, 0, 1 | 0xFF80 * 0)
        return b"".join((hdr, lps, bytes(upper - lower), items, special)), key

    def toast(self, rng, textrng):
        """TOAST chunks: values PostgreSQL already compressed with pglz (weakly compressible)."""
        out = []
        used = 24
        k = 0
        while used + 2032 <= PAGE:
            raw = "".join(log_line(textrng, 0) for _ in range(8)).encode()[:1996]
            c = zlib.compress(raw + rng.randbytes(1200), 1)
            chunk = (c[:1500] + raw[:496])[:1996]
            out.append(pad8(tuple_header(rng, 3) + struct.pack("<IiI", rng.getrandbits(24), k, 0) + chunk))
            used += len(out[-1]) + 4
            k += 1
        lps = []
        off = PAGE
        for t in out:
            off -= len(t)
            lps.append(off | (1 << 15) | (len(t) << 17))
        lower = 24 + 4 * len(out)
        hdr = self.header(rng, lower, off, PAGE)
        out.reverse()
        return b"".join((hdr, struct.pack("<%dI" % len(lps), *lps), bytes(off - lower), *out))


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------

def pow2_at_most(x, lo, hi):
    v = lo
    while v * 2 <= min(x, hi):
        v *= 2
    return v


class Tree:
    def __init__(self, root, seed, size_gb):
        self.root = os.path.abspath(root)
        self.seed = seed
        self.size_gb = size_gb
        self.total = int(size_gb * GIB)
        self.written = 0
        self.files = 0
        self.mt = rng_for(seed, "mtime")
        self.seg_bytes = max(PAGE * 128, min(GIB, int(self.total / 16) // PAGE * PAGE))
        self.wal_seg = 16 * MIB if size_gb >= 0.5 else pow2_at_most(self.total // 40, MIB, 16 * MIB)

    # -- file helpers --
    def path(self, rel):
        return os.path.join(self.root, rel)

    def mkdir(self, rel, mode=0o755):
        p = self.path(rel)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def stamp(self, p):
        t = BASE_EPOCH - self.mt.randrange(30 * 86400)
        os.utime(p, ns=(t * 10**9 + self.mt.randrange(10**9),) * 2, follow_symlinks=False)

    def write(self, rel, data, mode=0o644):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        self.stamp(p)
        self.written += len(data)
        self.files += 1

    def write_iter(self, rel, chunks, mode=0o600):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        n = 0
        with open(p, "wb") as f:
            buf = []
            blen = 0
            for c in chunks:
                buf.append(c)
                blen += len(c)
                if blen >= 4 * MIB:
                    f.write(b"".join(buf))
                    n += blen
                    buf, blen = [], 0
            f.write(b"".join(buf))
            n += blen
        os.chmod(p, mode)
        self.stamp(p)
        self.written += n
        self.files += 1
        return n

    # -- parts --
    def generate(self):
        os.makedirs(self.root, exist_ok=True)
        t0 = time.time()
        self.gen_etc()
        self.gen_postgres()
        self.gen_rabbitmq()
        self.gen_redis()
        self.gen_logs()
        self.gen_small_files()
        # Directory mtimes last, deepest first, so that creating children does not undo them.
        for d, _, _ in sorted(os.walk(self.root), key=lambda e: -e[0].count(os.sep)):
            self.stamp(d)
        return time.time() - t0

    def gen_etc(self):
        rng = rng_for(self.seed, "etc")
        self.mkdir("etc/travis", 0o755)
        self.mkdir("etc/travis/config", 0o750)
        self.mkdir("etc/travis/ssl", 0o700)
        enc_key = hexstr(rng, 32)
        amqp = hexstr(rng, 12)
        yml = ("# managed by the platform; do not edit by hand\n"
               "enterprise: true\nhost: travis.example.com\n"
               "encryption:\n  key: %s\n" % enc_key +
               "amqp:\n  host: localhost\n  port: 5672\n  username: travis\n  password: %s\n  vhost: travis\n" % amqp +
               "database:\n  adapter: postgresql\n  host: localhost\n  database: travis_production\n"
               "  username: travis\n  password: %s\n  pool: 25\n" % hexstr(rng, 12) +
               "logs_database:\n  database: travis_logs_production\n  username: travis\n  password: %s\n" % hexstr(rng, 12) +
               "redis:\n  url: redis://localhost:6379\n"
               "github:\n  api_url: https://github.example.com/api/v3\n  client_id: %s\n  client_secret: %s\n"
               % (hexstr(rng, 10), hexstr(rng, 20)) +
               "ssl:\n  cert: /etc/travis/ssl/server.crt\n  key: /etc/travis/ssl/server.key\n"
               "queue:\n  limit:\n    by_owner: {}\n    default: 5\n"
               "".join("  %s: %d\n" % (w, rng.randrange(100)) for w in rng.sample(WORDS, 30)))
        self.write("etc/travis/config/travis.yml", yml, 0o600)
        os.symlink("config/travis.yml", self.path("etc/travis/travis.yml"))
        self.stamp(self.path("etc/travis/travis.yml"))
        for name, label, nbytes in (("server.crt", "CERTIFICATE", 1400), ("server.key", "PRIVATE KEY", 1200),
                                    ("ca.crt", "CERTIFICATE", 1500), ("chain.pem", "CERTIFICATE", 2800),
                                    ("dhparam.pem", "DH PARAMETERS", 520), ("worker.key", "RSA PRIVATE KEY", 1700)):
            b64 = base64.b64encode(rng.getrandbits(nbytes * 8).to_bytes(nbytes, "little")).decode()
            body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
            self.write("etc/travis/ssl/" + name, "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, body, label),
                       0o600 if "key" in name else 0o644)
        lic = ("license_id: %s\ncustomer: Example Corp\nseats: %d\nexpires_at: 2024-05-01\nchannel: stable\n"
               "signature: |\n" % (hexstr(rng, 16), rng.randrange(10, 500)))
        sig = hexstr(rng, 256)
        lic += "".join("  %s\n" % sig[i:i + 64] for i in range(0, len(sig), 64))
        self.write("etc/travis/license.rli", lic, 0o600)
        self.write("etc/travis/config/worker.env", "".join(
            "TRAVIS_WORKER_%s=%s\n" % (w.upper(), hexstr(rng, 4)) for w in rng.sample(WORDS, 25)), 0o600)
        self.write("etc/travis/config/replicated.conf", '{"DaemonAuthenticationType":"password","TlsBootstrapType":'
                   '"server-path","TlsBootstrapHostname":"travis.example.com","ReleaseChannel":"stable"}\n')
        self.write("etc/travis/config/nginx.conf", "".join(
            "location /%s {\n  proxy_pass http://127.0.0.1:%d;\n  proxy_set_header Host $host;\n}\n"
            % (w, 3000 + i) for i, w in enumerate(rng.sample(WORDS, 20))))
        self.write("etc/travis/config/rabbitmq.config", "[{rabbit, [{tcp_listeners, [5672]}, "
                   "{default_user, <<\"travis\">>}, {vm_memory_high_watermark, 0.4}]}].\n")
        self.write("etc/travis/config/settings.json", "{%s}\n" % ",".join(
            '"%s":"%s"' % (w, hexstr(rng, 6)) for w in rng.sample(WORDS, 40)))
        self.write("etc/travis/config/postgresql.env", "POSTGRES_USER=travis\nPOSTGRES_PASSWORD=%s\n" % hexstr(rng, 12),
                   0o600)
        self.write("etc/travis/VERSION", "2.2.8\n")

    def gen_postgres(self):
        rng = rng_for(self.seed, "pg")
        data = "var/travis/postgresql/data"
        w0 = self.written
        self.mkdir("var/travis", 0o755)
        self.mkdir("var/travis/postgresql", 0o755)
        self.mkdir(data, 0o700)
        total = self.total
        pg_budget = int(total * 0.70)
        wal_budget = int(total * 0.09)
        # Pools: big enough that a page's run of tuples rarely repeats within a chunk.
        pb = min(16 * MIB, max(MIB, pg_budget // 16))
        self.pm = PageMaker(self.seed, {"jobs": pb, "commits": pb, "requests": pb, "configs": pb // 2,
                                        "log_parts": pb, "small": pb // 4, "catalog": MIB}, "gen")
        for f, txt in (("PG_VERSION", "11\n"), ("postgresql.auto.conf", "# Do not edit this file manually!\n"),
                       ("postmaster.opts", "/usr/lib/postgresql/11/bin/postgres \"-D\" \"/var/lib/postgresql/data\"\n"),
                       ("pg_ident.conf", "# MAPNAME  SYSTEM-USERNAME  PG-USERNAME\n"),
                       ("pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 md5\nhost all all ::1/128 md5\n"
                        "host all all all md5\n"),
                       ("postgresql.conf", "".join("%s = %s\t\t# %s\n" % (w, rng.randrange(1000), sentence(rng, 6))
                                                   for w in rng.choices(WORDS, k=300)))):
            self.write("%s/%s" % (data, f), txt, 0o600)
        for d in ("pg_commit_ts", "pg_dynshmem", "pg_logical/snapshots", "pg_logical/mappings", "pg_notify",
                  "pg_replslot", "pg_serial", "pg_snapshots", "pg_stat", "pg_stat_tmp", "pg_tblspc",
                  "pg_twophase", "pg_wal/archive_status"):
            self.mkdir("%s/%s" % (data, d), 0o700)
        self.write(data + "/pg_logical/replorigin_checkpoint", b"\x00" * 8 + struct.pack("<I", 0x1257DADE), 0o600)
        self.write(data + "/pg_stat/global.stat", rng.randbytes(2000) + bytes(6000), 0o600)
        self.write(data + "/pg_stat/db_0.stat", rng.randbytes(600) + bytes(1200), 0o600)
        # Commit log: 2 bits per transaction, almost all "committed" (0b01).
        nx = max(1, int(3 * min(1.0, self.size_gb)))
        for i in range(nx):
            body = bytearray(b"\x55" * (256 * KIB))
            for _ in range(400):
                body[rng.randrange(len(body))] = rng.choice((0x54, 0x51, 0x45, 0x15, 0x00))
            if i == nx - 1:
                body[200 * KIB:] = bytes(56 * KIB)
            self.write("%s/pg_xact/%04X" % (data, i), bytes(body), 0o600)
        self.write(data + "/pg_multixact/offsets/0000", bytes(8 * KIB), 0o600)
        self.write(data + "/pg_multixact/members/0000", bytes(8 * KIB), 0o600)
        self.write(data + "/pg_subtrans/%04X" % nx, bytes(64 * KIB), 0o600)
        # Databases: three small ones of catalogs only, the platform's and the logs'.
        cat_scale = min(1.0, self.size_gb / 0.5)
        catalog_oids = sorted(rng.sample(range(112, 13000), 230))
        small_dbs = [1, 13066, 13067]
        for oid in small_dbs + [16400, 16401]:
            self.gen_catalogs("%s/base/%d" % (data, oid), catalog_oids, cat_scale, rng_for(self.seed, "cat", oid))
        self.gen_catalogs(data + "/global", catalog_oids[:50], cat_scale * 0.5, rng_for(self.seed, "cat", "global"))
        self.write(data + "/global/pg_control", struct.pack("<QII", rng.getrandbits(64), 1100, 201809051)
                   + rng.randbytes(280) + bytes(PAGE - 296), 0o600)
        self.write(data + "/global/pg_filenode.map", struct.pack("<II", 0x592717, 40) + rng.randbytes(480)
                   + bytes(24), 0o600)
        rest = max(PAGE * 64, pg_budget - (self.written - w0))
        # The platform database (relation kind, share of the rest) and the logs database.
        travis = [("jobs", "jobs", 0.16), ("commits", "commits", 0.12), ("requests", "requests", 0.12),
                  ("job_configs", "configs", 0.06), ("build_configs", "configs", 0.03),
                  ("builds", "jobs", 0.06), ("repositories", "small", 0.015), ("branches", "small", 0.01),
                  ("users", "small", 0.005), ("permissions", "small", 0.01), ("stages", "small", 0.015),
                  ("requests_toast", "toast", 0.04),
                  ("jobs_pkey", "pk", 0.025), ("jobs_repository_id", "fk", 0.02), ("commits_pkey", "pk", 0.015),
                  ("builds_pkey", "pk", 0.01), ("requests_pkey", "pk", 0.01), ("jobs_state_idx", "fk", 0.01)]
        logs = [("log_parts", "log_parts", 0.15), ("logs", "small", 0.02), ("logs_toast", "toast", 0.07),
                ("log_parts_pkey", "pk", 0.02), ("log_parts_log_id", "fk", 0.015)]
        relno = 16500
        for db, rels in ((16400, travis), (16401, logs)):
            for name, kind, share in rels:
                relno += rng.randrange(1, 40)
                npages = max(1, int(rest * share) // PAGE)
                self.gen_relation("%s/base/%d/%d" % (data, db, relno), kind, npages, rng_for(self.seed, "rel", relno))
        self.gen_wal(data + "/pg_wal", wal_budget, rng)

    def gen_catalogs(self, d, oids, scale, rng):
        self.mkdir(d, 0o700)
        self.write(d + "/PG_VERSION", "11\n", 0o600)
        for oid in oids:
            r = rng.random()
            if r < 0.3:
                npages = 0
            elif r < 0.7:
                npages = rng.randrange(1, 3)
            elif r < 0.95:
                npages = rng.randrange(3, 15)
            else:
                npages = rng.randrange(25, 100)
            npages = int(npages * scale + 0.5) if npages > 2 else npages
            self.write_iter("%s/%d" % (d, oid), (self.pm.heap(rng, "catalog") for _ in range(npages)))
            if npages >= 4:
                self.write("%s/%d_fsm" % (d, oid), self.fsm(rng, npages), 0o600)
                self.write("%s/%d_vm" % (d, oid), self.vm(rng, npages), 0o600)
        if not d.endswith("global"):
            self.write(d + "/pg_filenode.map", struct.pack("<II", 0x592717, 15) + rng.randbytes(180) + bytes(324), 0o600)
            self.write(d + "/pg_internal.init", b"".join(self.pm.heap(rng, "catalog")[:6000] for _ in range(
                max(1, int(20 * scale)))), 0o600)

    def fsm(self, rng, npages):
        pages = []
        for i in range(3):
            hdr = struct.pack("<IIHHHHHHI", 0, rng.getrandbits(32), 0, 0, 24, PAGE, PAGE, 0x2004, 0)
            body = bytearray(PAGE - 24)
            if i == 2:
                for j in range(min(npages, 4000)):
                    body[4000 + j] = rng.randrange(0, 255) if rng.random() < 0.3 else 0
            pages.append(hdr + bytes(body))
        return b"".join(pages)

    def vm(self, rng, npages):
        hdr = struct.pack("<IIHHHHHHI", 0, rng.getrandbits(32), 0, 0, 24, PAGE, PAGE, 0x2004, 0)
        bits = bytes(rng.choice((0x03, 0x03, 0x01, 0x00)) for _ in range(min(PAGE - 24, (npages + 3) // 4)))
        return hdr + bits + bytes(PAGE - 24 - len(bits))

    def relation_pages(self, kind, npages, rng, key0=1):
        pm = self.pm
        if kind in ("pk", "fk"):
            key = key0
            for _ in range(npages):
                page, key = pm.btree(rng, key, 1 if kind == "pk" else 0, kind == "fk")
                yield page
        elif kind == "toast":
            textrng = random.Random(rng.getrandbits(64))
            for _ in range(npages):
                yield pm.toast(rng, textrng)
        else:
            for _ in range(npages):
                yield pm.heap(rng, kind)

    def gen_relation(self, path, kind, npages, rng):
        per_seg = self.seg_bytes // PAGE
        pages = self.relation_pages(kind, npages, rng)
        seg = 0
        left = npages
        while left > 0 or seg == 0:
            n = min(per_seg, left)
            name = path if seg == 0 else "%s.%d" % (path, seg)
            self.write_iter(name, (next(pages) for _ in range(n)))
            left -= n
            seg += 1
        if kind not in ("pk", "fk"):
            self.write(path + "_fsm", self.fsm(rng, npages), 0o600)
            self.write(path + "_vm", self.vm(rng, npages), 0o600)

    def wal_segment(self, rng, seg_size, tli_seg, pm):
        """WAL: 8 KiB pages with a page header; records carry full-page images, tuples and noise."""
        out = []
        for pno in range(seg_size // PAGE):
            hdr = struct.pack("<HHIQI", 0xD098, 0x0005 if pno == 0 else 0x0004, 1,
                              tli_seg * seg_size + pno * PAGE, 0) + bytes(4)
            body = []
            room = PAGE - 24
            r = rng.random()
            if r < 0.45:
                fpi = pm.heap(rng, rng.choice(("jobs", "commits", "requests", "log_parts")))
                body.append(fpi[:room])
            elif r < 0.75:
                while room > 120:
                    t = pm.pool(rng.choice(("jobs", "small", "configs"))).tuples[rng.randrange(400)]
                    rec = struct.pack("<IIQBBH", len(t) + 24, rng.getrandbits(32), rng.getrandbits(40),
                                      0x10, 10, 0) + rng.randbytes(4) + t
                    rec = rec[:room]
                    body.append(rec)
                    room -= len(rec)
            else:
                body.append(rng.randbytes(room))
            page = hdr + b"".join(body)
            out.append(page + bytes(PAGE - len(page)))
        return b"".join(out)

    def gen_wal(self, d, budget, rng):
        self.mkdir(d, 0o700)
        n = max(2, budget // self.wal_seg)
        first = rng.randrange(0x20, 0x80)
        for i in range(n):
            seg = first + i
            self.write_iter("%s/%s" % (d, wal_name(seg)), [self.wal_segment(rng, self.wal_seg, seg, self.pm)])
        # The newest segment is in progress: its tail is zeroed.
        p = "%s/%s" % (self.path(d), wal_name(first + n - 1))
        with open(p, "r+b") as f:
            f.seek(self.wal_seg // 3)
            f.write(bytes(self.wal_seg - self.wal_seg // 3))
        self.stamp(p)

    def gen_rabbitmq(self):
        rng = rng_for(self.seed, "rabbit")
        base = "var/travis/rabbitmq/mnesia/rabbit@travis-platform"
        self.mkdir("var/travis/rabbitmq", 0o755)
        self.mkdir(base, 0o750)
        budget = int(self.total * 0.05)
        for t in ("rabbit_durable_queue", "rabbit_durable_exchange", "rabbit_durable_route", "rabbit_user",
                  "rabbit_vhost", "rabbit_user_permission", "rabbit_runtime_parameters", "rabbit_topic_permission"):
            self.write("%s/%s.DCD" % (base, t), b"cXM" + rng.randbytes(40) + ("".join(
                "{%s,<<\"%s\">>,true,false,[]}." % (t, w) for w in rng.choices(WORDS, k=rng.randrange(5, 120)))).encode(), 0o640)
            if rng.random() < 0.5:
                self.write("%s/%s.DCL" % (base, t), rng.randbytes(rng.randrange(100, 3000)), 0o640)
        self.write(base + "/schema.DAT", rng.randbytes(3000) + sentence(rng, 2000).encode(), 0o640)
        self.write(base + "/DECISION_TAB.LOG", rng.randbytes(600), 0o640)
        self.write(base + "/LATEST.LOG", rng.randbytes(200), 0o640)
        self.write(base + "/nodes_running_at_shutdown", b"cXM\x83l\x00\x00\x00\x01d\x00\x16rabbit@travis-platform", 0o640)
        vh = "%s/msg_stores/vhosts/%s" % (base, hexstr(rng, 16).upper())
        self.mkdir(vh + "/msg_store_transient", 0o750)
        n = 0
        fno = rng.randrange(10, 90)
        rdq_size = min(16 * MIB, max(256 * KIB, budget // 6))
        while n < budget * 0.8:
            self.write_iter("%s/msg_store_persistent/%d.rdq" % (vh, fno), self.rdq(rng, rdq_size), 0o640)
            n += rdq_size
            fno += 1
        for q in range(12):
            qd = "%s/queues/%s" % (vh, hexstr(rng, 16).upper())
            self.write(qd + "/journal.jif", rng.randbytes(rng.randrange(0, 4000)), 0o640)
            for seg in range(rng.randrange(1, 4)):
                idx = b"".join(struct.pack("<HQ", 0x8000 | rng.getrandbits(14), rng.getrandbits(64)) + rng.randbytes(16)
                               + bytes(6) for _ in range(rng.randrange(50, 2000)))
                self.write("%s/%d.idx" % (qd, seg), idx, 0o640)
        self.write(vh + "/.vhost", b"travis", 0o640)
        self.write(vh + "/recovery.dets", rng.randbytes(1000) + bytes(4000), 0o640)

    def rdq(self, rng, size):
        n = 0
        while n < size:
            body = ('{"type":"job:test:start","job":{"id":%d,"number":"%d.%d","queue":"builds.linux",'
                    '"state":"queued"},"repository":{"slug":"%s/%s"},"config":{"language":"%s","script":["%s"]},'
                    '"env_vars":[%s],"timeouts":{"hard_limit":3000,"log_silence":600},"source":{"event_type":"%s"},'
                    '"uuid":"%s"}') % (rng.randrange(10**6, 10**7), rng.randrange(9000), rng.randrange(30),
                                       rng.choice(ORGS), rng.choice(REPOS), rng.choice(LANGS),
                                       sentence(rng, rng.randrange(5, 60)),
                                       ",".join('{"name":"%s","value":"%s","public":false}' % (w.upper(), hexstr(rng, 16))
                                                for w in rng.choices(WORDS, k=rng.randrange(0, 8))),
                                       rng.choice(["push", "pull_request", "cron"]), hexstr(rng, 16))
            msg = rng.randbytes(16) + b"\x83h\x06d\x00\x0fbasic_message" + body.encode()
            rec = struct.pack(">Q", len(msg)) + msg + b"\xff"
            n += len(rec)
            yield rec

    def gen_redis(self):
        rng = rng_for(self.seed, "redis")
        self.mkdir("var/travis/redis", 0o750)
        size = int(self.total * 0.01)
        parts = [b"REDIS0009"]
        n = 9
        while n < size:
            k = ("travis:%s:%d" % (rng.choice(WORDS), rng.randrange(10**7))).encode()
            v = rng.randbytes(rng.randrange(20, 400)) if rng.random() < 0.5 else sentence(rng, rng.randrange(3, 60)).encode()
            rec = b"\x00" + bytes((len(k),)) + k + struct.pack("<H", len(v)) + v
            parts.append(rec)
            n += len(rec)
        self.write("var/travis/redis/dump.rdb", b"".join(parts), 0o640)

    def log_lines(self, rng, comp, t, nbytes):
        """Log lines with timestamps, request and job ids: compresses about 5-10x."""
        msgs = [sentence(rng, rng.randrange(2, 9)).replace(" ", "_") for _ in range(60)]
        texts = [sentence(rng, rng.randrange(4, 14)) for _ in range(40)]
        paths = ["/%s/%s" % (rng.choice(("repos", "jobs", "builds", "logs", "v3/repo")), rng.choice(REPOS))
                 for _ in range(30)]
        out = []
        n = 0
        levels = ("I", "I", "I", "I", "I", "I", "W", "E", "D")
        job = rng.randrange(10**6, 2 * 10**6)
        tid = hexstr(rng, 4)
        last_sec, stamp = -1, ""
        nginx = comp.startswith("nginx")
        while n < nbytes:
            t += rng.randrange(0, 40000)
            sec, us = divmod(t, 1000000)
            if sec != last_sec:
                last_sec, stamp = sec, iso(sec)
            r = rng.random()
            if r < 0.2:
                tid = hexstr(rng, 4)
                job += rng.randrange(0, 3)
            if nginx:
                line = '10.0.3.%d - - [%s +0000] "%s %s/%d HTTP/1.1" %d %d "-" "%s" 0.%03d\n' % (
                    rng.randrange(2, 9), stamp, rng.choice(("GET", "GET", "GET", "POST", "PATCH")), rng.choice(paths),
                    job - rng.randrange(50), rng.choice((200, 200, 200, 200, 304, 404, 500)), rng.randrange(100, 9000),
                    rng.choice(("Travis/1.0", "curl/7.58.0", "Mozilla/5.0 (X11; Linux x86_64)")), rng.randrange(1000))
            elif r < 0.75:
                line = "%s.%06d+00:00 %s.%d %s TID=%s job=%d repo=%s/%s state=%s msg=%s\n" % (
                    stamp, us, comp, rng.randrange(1, 3), rng.choice(levels), tid, job, rng.choice(ORGS),
                    rng.choice(REPOS), rng.choice(STATES), rng.choice(msgs))
            else:
                line = "%s.%06d+00:00 %s.%d %s TID=%s %s\n" % (stamp, us, comp, rng.randrange(1, 3),
                                                                rng.choice(levels), tid, rng.choice(texts))
            out.append(line)
            n += len(line)
        return "".join(out).encode(), t

    def gen_logs(self):
        rng = rng_for(self.seed, "logs")
        self.mkdir("var/travis/log", 0o755)
        budget = int(self.total * 0.10)
        comps = ["travis-api", "travis-hub", "travis-logs", "travis-scheduler", "travis-gatekeeper",
                 "travis-sync", "travis-listener", "nginx-access", "nginx-error", "rabbitmq", "postgresql",
                 "replicated", "travis-tasks", "travis-web"]
        weights = [rng.random() ** 2 + 0.02 for _ in comps]
        tw = sum(weights)
        for c, w in zip(comps, weights):
            size = int(budget * 0.85 * w / tw)
            t = (BASE_EPOCH - 7 * 86400) * 1000000
            data, _ = self.log_lines(rng, c, t, size)
            self.write("var/travis/log/%s.log" % c, data, 0o640)
            # Rotated, gzipped: incompressible for the backup tool.
            data, _ = self.log_lines(rng, c, t - 7 * 86400 * 1000000, int(size * 0.15 * 5))
            self.write("var/travis/log/%s.log.1.gz" % c, zlib.compress(data, 6), 0o640)

    def gen_small_files(self):
        rng = rng_for(self.seed, "small")
        # Static assets of the web UI and per-job metadata: a few thousand small files.
        n_assets = int(800 + 700 * min(1.0, self.size_gb))
        for i in range(n_assets):
            d = "var/travis/platform/assets/%s/%s" % (rng.choice(("js", "css", "img", "fonts", "locales")),
                                                      rng.choice(WORDS))
            ext = rng.choice(("js", "css", "svg", "json", "map"))
            body = sentence(rng, rng.randrange(10, 600))
            if ext == "map":
                body = '{"version":3,"mappings":"%s"}' % hexstr(rng, rng.randrange(50, 1500))
            self.write("%s/%s-%s.%s" % (d, rng.choice(WORDS), hexstr(rng, 8), ext), body)
        n_jobs = int(1000 + 1000 * min(1.0, self.size_gb))
        for i in range(n_jobs):
            jid = 1000000 + i * 7
            self.write("var/travis/platform/jobs/%03d/%d.json" % (jid // 1000 % 1000, jid),
                       '{"id":%d,"state":"%s","repo":"%s/%s","started_at":"%s","worker":"%s","script":"%s"}\n' % (
                           jid, rng.choice(STATES), rng.choice(ORGS), rng.choice(REPOS),
                           iso(BASE_EPOCH - rng.randrange(2592000)), rng.choice(HOSTS),
                           sentence(rng, rng.randrange(3, 40))), 0o640)


def wal_name(seg):
    return "%08X%08X%08X" % (1, seg >> 8, seg & 0xFF)


# --------------------------------------------------------------------------------------------
# Mutation: a day of database activity
# --------------------------------------------------------------------------------------------

def walk_files(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if not os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return out


def mutate(root, seed, fraction):
    root = os.path.abspath(root)
    t0 = time.time()
    rng = rng_for(seed, "mutate")
    files = walk_files(root)
    data = "var/travis/postgresql/data"
    stats = {"pages_rewritten": 0, "pages_appended": 0, "files_added": 0, "files_removed": 0, "wal_added": 0,
             "log_bytes_appended": 0}
    size_of = {f: os.path.getsize(os.path.join(root, f)) for f in files}
    total = sum(size_of.values())
    tree = Tree(root, seed, total / GIB)
    tree.stamp = lambda p: None  # files written now keep the current mtime
    pb = min(8 * MIB, max(MIB, total // 100))
    pm = PageMaker(seed, {k: pb for k in ROW_KINDS}, "mutate")
    tree.pm = pm

    # Relation files of the two big databases, grouped per relation (segments together).
    rels = {}
    for f in files:
        parts = f.split("/")
        if f.startswith(data + "/base/") and len(parts) == 7 and parts[5] in ("16400", "16401"):
            name = parts[6]
            if "_" in name or not name.split(".")[0].isdigit() or int(name.split(".")[0]) < 16384:
                continue
            rels.setdefault("/".join(parts[:6]) + "/" + name.split(".")[0], []).append(f)
    kind_of = {}
    for rel, segs in rels.items():
        with open(os.path.join(root, segs[0]), "rb") as fh:
            head = fh.read(PAGE)
        special = struct.unpack_from("<H", head, 16)[0] if len(head) >= 24 else PAGE
        kind_of[rel] = "pk" if special != PAGE else rng.choice(("jobs", "commits", "requests", "log_parts", "small"))
    relnames = sorted(rels)
    touched = rng.sample(relnames, max(1, int(len(relnames) * 0.4)))
    # Segment size: the size of segment 0 of any relation that has a segment 1.
    seg_bytes = 1 << 40
    for segs in rels.values():
        if len(segs) > 1:
            seg_bytes = size_of[min(segs, key=len)]
            break
    for rel in sorted(touched):
        segs = sorted(rels[rel], key=lambda s: int(s.rsplit(".", 1)[1]) if "." in s.rsplit("/", 1)[1] else 0)
        npages = sum(size_of[s] for s in segs) // PAGE
        if npages == 0:
            continue
        kind = kind_of[rel]
        nrew = max(1, int(npages * fraction))
        targets = set()
        for _ in range(nrew):
            if rng.random() < 0.6:  # recent rows: the last tenth of the relation
                targets.add(npages - 1 - rng.randrange(max(1, npages // 10)))
            else:
                targets.add(rng.randrange(npages))
        per_seg = max(1, seg_bytes // PAGE)
        handles = {}
        try:
            for pg in sorted(targets):
                si, off = divmod(pg, per_seg)
                si = min(si, len(segs) - 1)
                off = pg - si * per_seg
                fh = handles.get(si)
                if fh is None:
                    fh = handles[si] = open(os.path.join(root, segs[si]), "r+b")
                if kind == "pk":
                    page, _ = pm.btree(rng, pg * 407 + 1, 1, False)
                else:
                    page = pm.heap(rng, kind)
                fh.seek(off * PAGE)
                fh.write(page)
                stats["pages_rewritten"] += 1
        finally:
            for fh in handles.values():
                fh.close()
        # Half the touched relations also grow.
        if rng.random() < 0.5:
            grow = max(1, int(npages * rng.uniform(0.002, 0.02)))
            last = segs[-1]
            room = per_seg - size_of[last] // PAGE
            pages = tree.relation_pages(kind if kind != "pk" else "pk", grow, rng, key0=npages * 400)
            with open(os.path.join(root, last), "ab") as fh:
                for _ in range(min(grow, room)):
                    fh.write(next(pages))
            nseg = len(segs)
            left = grow - min(grow, room)
            while left > 0:
                n = min(per_seg, left)
                with open(os.path.join(root, "%s.%d" % (rel, nseg)), "wb") as fh:
                    for _ in range(n):
                        fh.write(next(pages))
                os.chmod(os.path.join(root, "%s.%d" % (rel, nseg)), 0o600)
                nseg += 1
                left -= n
                stats["files_added"] += 1
            stats["pages_appended"] += grow
        for aux in ("_fsm", "_vm"):
            p = os.path.join(root, rel + aux)
            if os.path.exists(p):
                with open(p, "r+b") as fh:
                    body = tree.fsm(rng, npages) if aux == "_fsm" else tree.vm(rng, npages)
                    fh.write(body[:os.path.getsize(p)])

    # One new table (a migration) with its index.
    newrel = 99000 + rng.randrange(1000)
    tree.gen_relation("%s/base/16400/%d" % (data, newrel), "small", rng.randrange(4, 40), rng)
    tree.gen_relation("%s/base/16400/%d" % (data, newrel + 1), "pk", rng.randrange(1, 6), rng)
    stats["files_added"] += 6

    # WAL: a few new segments, as many of the oldest removed.
    wal_dir = os.path.join(root, data, "pg_wal")
    segs = sorted(f for f in os.listdir(wal_dir) if len(f) == 24)
    if segs:
        seg_size = os.path.getsize(os.path.join(wal_dir, segs[0]))
        last = int(segs[-1][8:16], 16) << 8 | int(segs[-1][16:], 16)
        nadd = rng.randrange(2, 5)
        for i in range(nadd):
            name = wal_name(last + 1 + i)
            with open(os.path.join(wal_dir, name), "wb") as fh:
                fh.write(tree.wal_segment(rng, seg_size, last + 1 + i, pm))
            os.chmod(os.path.join(wal_dir, name), 0o600)
        for old in segs[:min(nadd, len(segs) - 1)]:
            os.remove(os.path.join(wal_dir, old))
        stats["wal_added"] = nadd
        stats["files_added"] += nadd
        stats["files_removed"] += min(nadd, len(segs) - 1)

    # pg_xact, pg_control, stats: small rewrites.
    xact = sorted(f for f in files if f.startswith(data + "/pg_xact/"))
    if xact:
        with open(os.path.join(root, xact[-1]), "r+b") as fh:
            fh.seek(200 * KIB)
            fh.write(b"\x55" * (rng.randrange(4, 40) * KIB))
    for f in (data + "/global/pg_control", data + "/pg_stat/global.stat"):
        p = os.path.join(root, f)
        if os.path.exists(p):
            with open(p, "r+b") as fh:
                fh.write(rng.randbytes(296))

    # Logs: a day more of lines.
    logs = [f for f in files if f.startswith("var/travis/log/") and f.endswith(".log")]
    for f in logs:
        p = os.path.join(root, f)
        comp = os.path.basename(f)[:-4]
        add = max(1000, int(size_of[f] * rng.uniform(0.02, 0.12)))
        data_b, _ = tree.log_lines(rng, comp, BASE_EPOCH * 1000000 + rng.randrange(86400 * 10**6), add)
        with open(p, "ab") as fh:
            fh.write(data_b)
        stats["log_bytes_appended"] += len(data_b)

    # RabbitMQ: one message store file consumed and removed, one new one written.
    rdq = sorted((f for f in files if f.endswith(".rdq")), key=lambda f: int(os.path.basename(f)[:-4]))
    if rdq:
        d = os.path.dirname(rdq[-1])
        nxt = int(os.path.basename(rdq[-1])[:-4]) + 1
        size = size_of[rdq[0]]
        with open(os.path.join(root, d, "%d.rdq" % nxt), "wb") as fh:
            for rec in tree.rdq(rng, size):
                fh.write(rec)
        if len(rdq) > 1:
            os.remove(os.path.join(root, rdq[0]))
            stats["files_removed"] += 1
        stats["files_added"] += 1

    # Small files: a few new job records, a few deleted ones, an asset rebuilt.
    jobs = [f for f in files if f.startswith("var/travis/platform/jobs/")]
    for f in rng.sample(jobs, min(len(jobs), 5)):
        os.remove(os.path.join(root, f))
        stats["files_removed"] += 1
    jid = 9000000 + rng.randrange(10**5)
    for i in range(rng.randrange(20, 60)):
        p = os.path.join(root, "var/travis/platform/jobs/new/%d.json" % (jid + i))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as fh:
            fh.write('{"id":%d,"state":"%s","script":"%s"}\n' % (jid + i, rng.choice(STATES),
                                                                 sentence(rng, rng.randrange(3, 40))))
        stats["files_added"] += 1
    assets = [f for f in files if f.startswith("var/travis/platform/assets/")]
    for f in rng.sample(assets, min(len(assets), 3)):
        os.remove(os.path.join(root, f))
        with open(os.path.join(root, f.rsplit("-", 1)[0] + "-" + hexstr(rng, 8) + "." + f.rsplit(".", 1)[1]), "w") as fh:
            fh.write(sentence(rng, rng.randrange(50, 600)))
        stats["files_added"] += 1
        stats["files_removed"] += 1
    stats["seconds"] = round(time.time() - t0, 2)
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--size-gb", type=float, default=2.0, help="approximate total size in GiB (default 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mutate", action="store_true", help="apply a day of database activity to an existing tree")
    ap.add_argument("--fraction", type=float, default=0.03,
                    help="with --mutate: share of pages rewritten in each touched relation (default 0.03)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    if a.mutate:
        if not os.path.isdir(os.path.join(a.dir, "var/travis/postgresql/data")):
            sys.exit("gen_tree.py: %s is not a generated tree" % a.dir)
        stats = mutate(a.dir, a.seed, a.fraction)
        if not a.quiet:
            print("mutated %s: %s" % (a.dir, " ".join("%s=%s" % kv for kv in stats.items())))
        return
    if os.path.exists(a.dir) and os.listdir(a.dir):
        sys.exit("gen_tree.py: %s exists and is not empty" % a.dir)
    if a.size_gb <= 0:
        sys.exit("gen_tree.py: --size-gb must be positive")
    t = Tree(a.dir, a.seed, a.size_gb)
    secs = t.generate()
    if not a.quiet:
        print("generated %s: %d files, %.1f MiB in %.1f s" % (a.dir, t.files, t.written / MIB, secs))


if __name__ == "__main__":
    main()
