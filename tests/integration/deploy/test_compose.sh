#!/usr/bin/env bash
# test_compose.sh: the container and monitoring files, checked without a
# Docker engine and without the local stack (CMakeLists.txt in this folder, label
# "deploy").
#
#   1. docker-compose.yml parses with `docker-compose config` (Debian's
#      docker-compose package), with the committed env example, for every
#      profile, and has the shape docs/deploy.md promises;
#   2. deploy/Dockerfile installs packages only from dev/install-deps.sh
#      (one source of truth), builds exactly the installed targets, and its
#      runtime package set covers every library the binaries link;
#   3. the image's entrypoint and health check behave (fake daemon, fake
#      /proc);
#   4. deploy/grafana-dashboard.json, deploy/prometheus.yml and the alert
#      rules parse and use only baton's metric names, and every metric is on
#      the dashboard and in docs/deploy.md.
#
# Usage: test_compose.sh [BINARY...]   (the four built binaries; ctest passes
# them; without them the library check looks in $BATON_BIN_DIR or build/).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
work=$(mktemp -d /tmp/baton-test-compose.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "-- $*"; }

# The metric names of the ops issue: the dashboard, the alerts and the docs
# must use these and only these (histograms add _bucket, _sum, _count).
METRICS="baton_ingest_messages_total baton_ingest_rejected_total
baton_ingest_enqueued_total baton_ingest_batch_seconds baton_ingest_paused
baton_kafka_consumer_lag baton_redis_roundtrip_seconds
baton_maintenance_tasks_total baton_queue_ready baton_queue_scheduled
baton_queue_running baton_queue_dead baton_history_backlog_events
baton_history_batch_seconds baton_history_events_written_total
baton_worker_tasks_claimed_total baton_worker_tasks_succeeded_total
baton_worker_tasks_failed_total baton_worker_tasks_retried_total
baton_worker_tasks_dead_total baton_worker_stale_refusals_total
baton_worker_tasks_canceled_total baton_task_run_seconds baton_worker_threads
baton_redis_durability_relaxed"
HISTOGRAMS="baton_ingest_batch_seconds baton_redis_roundtrip_seconds
baton_history_batch_seconds baton_task_run_seconds"
export METRICS HISTOGRAMS

# ------------------------------------------------------------------ 1 ----
note "docker-compose config"
command -v docker-compose >/dev/null ||
  fail "docker-compose not found: this test needs Debian's docker-compose package (apt-get install docker-compose; dev/install-deps.sh should list it)"
command -v python3 >/dev/null || fail "python3 not found (dev/install-deps.sh installs it)"
python3 -c 'import yaml' 2>/dev/null ||
  fail "python3 cannot import yaml: install Debian's python3-yaml (docker-compose depends on it)"

# The compose variables at their defaults: none from this shell, and an
# empty --env-file in place of a developer's .env next to the compose file.
: >"$work/empty.env"
unset BATON_TASK_PARTITIONS KAFKA_EXTERNAL_HOST KAFKA_EXTERNAL_BIND KAFKA_EXTERNAL_PORT \
  REDIS_MAXMEMORY REDIS_APPENDFSYNC WORKER_STOP_GRACE BATON_IMAGE
compose() {
  # The example stands in for the real secrets file, which is never
  # committed; BATON_ENV_FILE is how docker-compose.yml lets it.
  BATON_ENV_FILE="$root/deploy/compose.env.example" \
    docker-compose --project-directory "$root" -f "$root/docker-compose.yml" \
    --env-file "$work/empty.env" "$@"
}
compose config -q || fail "docker-compose config rejects docker-compose.yml"
compose --profile tools --profile monitoring config -q ||
  fail "docker-compose config rejects docker-compose.yml with the tools and monitoring profiles"
compose --profile tools --profile monitoring config >"$work/compose.yml" 2>"$work/compose.err" ||
  fail "docker-compose config: $(cat "$work/compose.err")"
# A missing env file is an error, never a stack without secrets.
if BATON_ENV_FILE="$work/missing.env" \
    docker-compose --project-directory "$root" -f "$root/docker-compose.yml" \
    --env-file "$work/empty.env" config -q 2>/dev/null; then
  fail "docker-compose config passed with a missing env file"
fi

python3 - "$root" "$work/compose.yml" <<'EOF' || fail "docker-compose.yml: shape (above)"
import re, sys, yaml
root, resolved = sys.argv[1], sys.argv[2]
c = yaml.safe_load(open(resolved))
s = c["services"]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

need = {"kafka", "kafka-init", "redis", "postgres", "migrate", "scheduler", "worker",
        "ctl", "prometheus", "grafana"}
check(need <= set(s), f"services missing: {sorted(need - set(s))}")

k = s["kafka"]
check(k["image"].startswith("apache/kafka:"), "kafka: not the official apache/kafka image")
env = k.get("environment", {})
check(env.get("KAFKA_PROCESS_ROLES") == "broker,controller", "kafka: not KRaft broker+controller")
check("kafka:9092" in env.get("KAFKA_ADVERTISED_LISTENERS", ""), "kafka: no listener for the compose network")
check(str(env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")).lower() == "false", "kafka: topics auto-created")
check("healthcheck" in k, "kafka: no healthcheck")
init = " ".join(map(str, s["kafka-init"].get("command", [])))
for t in ("baton.tasks ", "baton.tasks.dlq"):
    check(f"--topic {t}" in init + " ", f"kafka-init does not create {t.strip()}")
check(re.search(r"--topic baton.tasks\s*\\?\s*--partitions 16", init) is not None,
      "kafka-init: baton.tasks not created with 16 partitions by default")

r = s["redis"]
check(r["image"].startswith("redis:7"), "redis: not Redis 7")
rc = " ".join(map(str, r["command"]))
for opt in ("--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction", "--maxmemory "):
    check(opt in rc, f"redis: command lacks {opt.strip()}")
check(any(str(v).endswith(":/data") or ":/data:" in str(v) for v in r.get("volumes", [])),
      "redis: /data is not on a volume")

p = s["postgres"]
check(p["image"].startswith("postgres:16"), "postgres: not PostgreSQL 16")
check(any(":/var/lib/postgresql/data" in str(v) for v in p.get("volumes", [])), "postgres: no data volume")
check("pg-data" in c.get("volumes", {}), "postgres: pg-data is not a named volume")

m = s["migrate"]
check(m.get("command") == ["batonctl", "migrate"], "migrate: not `batonctl migrate`")
for name in ("scheduler", "worker"):
    svc = s[name]
    dep = svc.get("depends_on", {})
    check(dep.get("migrate", {}).get("condition") == "service_completed_successfully",
          f"{name}: does not wait for migrate to complete")
    check(svc.get("image") == m.get("image") and "build" in svc, f"{name}: not the baton image")
check(s["scheduler"]["depends_on"].get("kafka-init", {}).get("condition") == "service_completed_successfully",
      "scheduler: does not wait for the topics")
check(s["scheduler"]["environment"].get("BATON_METRICS_PORT") == "9464", "scheduler: metrics port is not 9464")

w = s["worker"]
check("container_name" not in w, "worker: container_name prevents --scale")
check(not w.get("ports"), "worker: host ports prevent --scale")
check(w["environment"].get("BATON_METRICS_PORT") == "9465", "worker: metrics port is not 9465")
check(w.get("init") is True, "worker: no init process to reap command handlers' orphans")
check(w.get("command") == ["baton-worker"], "worker: command is not baton-worker")

# `config` folds env files into environment; the file itself must name it.
raw_services = yaml.safe_load(open(f"{root}/docker-compose.yml"))["services"]
for name in ("migrate", "scheduler", "worker", "ctl", "postgres", "redis"):
    check("BATON_ENV_FILE" in str(raw_services[name].get("env_file")), f"{name}: no env_file")

# No secret in the compose file itself: the example's values appear only
# through the env file.
example = dict(l.split("=", 1) for l in open(f"{root}/deploy/compose.env.example").read().splitlines()
               if l and not l.startswith("#") and "=" in l)
raw = open(f"{root}/docker-compose.yml").read()
for key, value in example.items():
    if "PASSWORD" in key:
        check(value not in raw, f"docker-compose.yml contains the secret value of {key}")
check(example.get("PGPASSWORD") == example.get("POSTGRES_PASSWORD"),
      "compose.env.example: PGPASSWORD differs from POSTGRES_PASSWORD")
check(f":{example.get('REDIS_PASSWORD')}@" in example.get("BATON_REDIS_URL", ""),
      "compose.env.example: BATON_REDIS_URL does not carry REDIS_PASSWORD")

pm = " ".join(map(str, s["prometheus"].get("volumes", [])))
check("deploy/prometheus.yml:/etc/prometheus/prometheus.yml" in pm, "prometheus: deploy/prometheus.yml not mounted")
check("deploy/prometheus-alerts.yml:/etc/prometheus/baton-alerts.yml" in pm, "prometheus: alert rules not mounted")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
EOF

# ------------------------------------------------------------------ 2 ----
note "Dockerfile: packages from dev/install-deps.sh"
deps="$root/dev/install-deps.sh"
"$deps" --print build >"$work/build.txt" || fail "install-deps.sh --print build failed"
"$deps" --print runtime >"$work/runtime.txt" || fail "install-deps.sh --print runtime failed"
if "$deps" --print nonsense >/dev/null 2>&1; then fail "install-deps.sh --print accepts an unknown set"; fi

python3 - "$root" "$work/build.txt" "$work/runtime.txt" <<'EOF' || fail "deploy/Dockerfile (above)"
import re, sys, glob, os
root, build_txt, runtime_txt = sys.argv[1:]
errors = []
build = open(build_txt).read().split()
runtime = open(runtime_txt).read().split()

# The PACKAGES block of install-deps.sh, read independently of the script.
text = open(f"{root}/dev/install-deps.sh").read()
block = re.search(r"# BEGIN PACKAGES.*?\n(.*?)# END PACKAGES", text, re.S).group(1)
packages = [l.strip() for l in block.splitlines() if l.strip() and not l.strip().startswith(("#", "PACKAGES=", ")"))]
if not set(build) <= set(packages):
    errors.append(f"--print build lists packages not in PACKAGES: {sorted(set(build) - set(packages))}")
missing_dev = [p for p in packages if p.endswith("-dev") and p not in build]
if missing_dev:
    errors.append(f"--print build misses -dev packages of PACKAGES: {missing_dev}")
for tool in ("build-essential", "cmake", "pkg-config", "check"):
    if tool not in build:
        errors.append(f"--print build misses {tool}")
for lib in ("librdkafka1", "libhiredis0.14", "libpq5", "libjansson4", "libmicrohttpd12", "ca-certificates"):
    if lib not in runtime:
        errors.append(f"--print runtime misses {lib}")
if any(p.endswith("-dev") for p in runtime):
    errors.append("--print runtime lists -dev packages")

# Dockerfile instructions, continuation lines joined, comments dropped.
lines, cur = [], ""
for raw in open(f"{root}/deploy/Dockerfile").read().splitlines():
    if raw.strip().startswith("#") and not cur:
        continue
    if raw.strip().startswith("#"):
        continue
    if raw.rstrip().endswith("\\"):
        cur += raw.rstrip()[:-1] + " "
        continue
    cur += raw
    if cur.strip():
        lines.append(cur.strip())
    cur = ""
stages, stage = {}, None
for l in lines:
    m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", l, re.I)
    if m:
        stage = m.group(2) or m.group(1)
        stages[stage] = []
        continue
    if stage:
        stages[stage].append(l)
if set(stages) != {"build", "runtime"}:
    errors.append(f"Dockerfile stages are {sorted(stages)}, expected build and runtime")
arg = re.search(r"ARG DEBIAN_IMAGE=(\S+)", open(f"{root}/deploy/Dockerfile").read())
if not arg or not arg.group(1).startswith("debian:12"):
    errors.append("Dockerfile: base image is not debian:12")

def installs(stage):
    out = []
    for l in stages.get(stage, []):
        if not l.startswith("RUN"):
            continue
        for m in re.finditer(r"apt-get\s+install\s+(.*?)(?:&&|$)", l):
            out.append(m.group(1))
    return out

for stage, which in (("build", "build"), ("runtime", "runtime")):
    inst = installs(stage)
    if len(inst) != 1:
        errors.append(f"{stage} stage: expected one apt-get install, found {len(inst)}")
        continue
    words = inst[0].split()
    want = f"$(/usr/local/share/baton/install-deps.sh --print {which})"
    if want not in inst[0]:
        errors.append(f"{stage} stage: apt-get install does not take its list from `install-deps.sh --print {which}`")
    # Nothing but options and that one list: no package named in the Dockerfile.
    rest = inst[0].replace(want, " ").split()
    literal = [w for w in rest if not w.startswith("-")]
    if literal:
        errors.append(f"{stage} stage: apt-get install names packages itself: {literal}")
    if not any(l.startswith("COPY dev/install-deps.sh /usr/local/share/baton/install-deps.sh") for l in stages[stage]):
        errors.append(f"{stage} stage: does not copy dev/install-deps.sh where it runs it")
for stage, ls in stages.items():
    for l in ls:
        if re.search(r"\b[a-z0-9.+-]+-dev\b", l) and l.startswith("RUN"):
            errors.append(f"{stage} stage: a RUN line names a -dev package: {l}")

# The targets the build stage builds are exactly those with an install() rule.
m = re.search(r'targets="([^"]+)"', " ".join(stages.get("build", [])))
built = set(m.group(1).split()) if m else set()
installed = set()
for f in glob.glob(f"{root}/**/CMakeLists.txt", recursive=True) + glob.glob(f"{root}/**/*.cmake", recursive=True):
    if "/build" in f[len(root):]:
        continue
    for m in re.finditer(r"install\s*\(\s*TARGETS\s+([^)]*?)\s+(?:RUNTIME|DESTINATION|LIBRARY|ARCHIVE)", open(f).read()):
        installed.update(m.group(1).split())
if built != {"baton-scheduler", "baton-worker", "batonctl", "baton-submit", "baton_static", "baton_shared"}:
    errors.append(f"build stage builds {sorted(built)}")
if built != installed:
    errors.append(f"build stage targets {sorted(built)} differ from the install() targets {sorted(installed)}")

rt = " ".join(stages.get("runtime", []))
if not re.search(r"^USER\s+(?!0\b|root\b)\S+", "\n".join(stages.get("runtime", [])), re.M):
    errors.append("runtime stage: no non-root USER")
if "HEALTHCHECK" not in rt or "baton-healthcheck" not in rt:
    errors.append("runtime stage: no HEALTHCHECK with baton-healthcheck")
if not re.search(r'ENTRYPOINT \[.*docker-entrypoint.sh"\]', rt):
    errors.append("runtime stage: entrypoint is not docker-entrypoint.sh")
for tool in ("curl", "wget", "python3", "build-essential", "cmake"):
    if tool in runtime:
        errors.append(f"runtime set has {tool}")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
EOF

note "runtime packages cover the binaries' libraries"
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  bdir=${BATON_BIN_DIR:-$root/build}
  bins=("$bdir/scheduler/baton-scheduler" "$bdir/worker/baton-worker" "$bdir/ctl/batonctl" "$bdir/producer/baton-submit")
fi
for b in "${bins[@]}"; do
  [ -x "$b" ] || fail "binary $b not found: build first (or pass the binaries as arguments)"
done
command -v readelf >/dev/null || fail "readelf not found (binutils, from build-essential)"
# What every Debian image has: the Essential packages and what they depend
# on (libc6 among them).
dpkg-query -W -f='${Package}\t${Essential}\t${Pre-Depends}, ${Depends}\n' | python3 -c '
import re, sys
deps, todo = {}, []
for line in sys.stdin:
    name, essential, d = line.rstrip("\n").split("\t")
    deps[name] = [re.split(r"[\s:(]", a.strip())[0] for a in re.split(r"[,|]", d) if a.strip()]
    if essential == "yes":
        todo.append(name)
seen = set()
while todo:
    n = todo.pop()
    if n in seen or n not in deps:
        continue
    seen.add(n)
    todo.extend(deps[n])
print("\n".join(sorted(seen)))' >"$work/base.txt"
grep -qx libc6 "$work/base.txt" || fail "could not work out the packages of a base Debian image"
ldconfig -p >"$work/ldconfig.txt" # a file, not a pipe: no SIGPIPE under pipefail
multiarch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo "$multiarch")
for b in "${bins[@]}"; do
  for lib in $(readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    path=$(awk -v l="$lib" -v m="/$multiarch/" '$1 == l && index($NF, m) && !p {print $NF; p = 1}' "$work/ldconfig.txt")
    [ -n "$path" ] || path=$(awk -v l="$lib" '$1 == l && !p {print $NF; p = 1}' "$work/ldconfig.txt")
    [ -n "$path" ] || fail "$(basename "$b") needs $lib, which ldconfig does not know"
    pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null ||
          dpkg -S "${path#/usr}" 2>/dev/null || true)
    pkg=${pkg%%:*}
    [ -n "$pkg" ] || fail "$(basename "$b") needs $lib ($path), which no package owns"
    grep -qx "$pkg" "$work/runtime.txt" && continue
    grep -qx "$pkg" "$work/base.txt" && continue
    fail "$(basename "$b") needs $lib from $pkg, which install-deps.sh --print runtime lacks"
  done
done

# ------------------------------------------------------------------ 3 ----
note "entrypoint and health check"
entry="$root/deploy/docker-entrypoint.sh"
check="$root/deploy/docker-healthcheck.sh"
for f in "$entry" "$check"; do
  [ -x "$f" ] || fail "$f is not executable"
done
sh -n "$entry" || fail "docker-entrypoint.sh: syntax"
bash -n "$check" || fail "docker-healthcheck.sh: syntax"

mkdir -p "$work/bin"
for b in baton-scheduler baton-worker batonctl; do
  printf '#!/bin/sh\necho "%s port=${BATON_METRICS_PORT:-unset} args=$*"\n' "$b" >"$work/bin/$b"
  chmod +x "$work/bin/$b"
done
ep() { env -u BATON_METRICS_PORT PATH="$work/bin:$PATH" "$@"; }
[ "$(ep sh "$entry" baton-scheduler)" = "baton-scheduler port=9464 args=" ] || fail "entrypoint: scheduler port"
[ "$(ep sh "$entry" baton-worker --concurrency 2)" = "baton-worker port=9465 args=--concurrency 2" ] ||
  fail "entrypoint: worker port"
[ "$(ep sh "$entry" --concurrency 2)" = "baton-worker port=9465 args=--concurrency 2" ] ||
  fail "entrypoint: arguments only should run a worker"
[ "$(ep BATON_METRICS_PORT=7000 sh "$entry" baton-worker)" = "baton-worker port=7000 args=" ] ||
  fail "entrypoint: BATON_METRICS_PORT not respected"
[ "$(ep sh "$entry" batonctl queues)" = "batonctl port=unset args=queues" ] ||
  fail "entrypoint: batonctl got a metrics port"

# A fake daemon's /healthz (200) and /readyz (503), and a fake /proc with
# one baton process whose cmdline and environ the check reads.
cat >"$work/server.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200 if self.path == "/healthz" else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
python3 "$work/server.py" >"$work/port" &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
[ -n "$port" ] || fail "test HTTP server did not start"

fakeproc() { # fakeproc ENVIRON ARGV...
  rm -rf "$work/proc" && mkdir -p "$work/proc/4242" "$work/proc/77"
  printf 'sleep\0' >"$work/proc/77/cmdline"
  printf '%s\0' "$1" >"$work/proc/4242/environ"
  shift
  printf '%s\0' "$@" >"$work/proc/4242/cmdline"
}
hc() { BATON_HEALTHCHECK_PROC="$work/proc" bash "$check" "$@"; }
fakeproc "BATON_METRICS_PORT=$port" /usr/local/bin/baton-worker
hc >/dev/null || fail "health check: /healthz 200 reported unhealthy: $(hc)"
if hc /readyz >/dev/null; then fail "health check: /readyz 503 reported healthy"; fi
fakeproc "BATON_METRICS_PORT=1" baton-scheduler --metrics-port "$port"
hc >/dev/null || fail "health check: --metrics-port flag not followed: $(hc)"
fakeproc "BATON_METRICS_PORT=1" baton-scheduler "--metrics-port=$port"
hc >/dev/null || fail "health check: --metrics-port=N not followed: $(hc)"
fakeproc "BATON_METRICS_PORT=0" baton-worker
if hc >/dev/null; then fail "health check: metrics port 0 reported healthy"; fi
rm -rf "$work/proc" && mkdir -p "$work/proc/77" && printf 'sleep\0' >"$work/proc/77/cmdline"
if hc >/dev/null; then fail "health check: no daemon reported healthy"; fi

# ------------------------------------------------------------------ 4 ----
note "Grafana dashboard, Prometheus configuration, alert rules, docs"
python3 - "$root" <<'EOF' || fail "monitoring files (above)"
import json, os, re, sys, yaml
root = sys.argv[1]
metrics = set(os.environ["METRICS"].split())
hist = set(os.environ["HISTOGRAMS"].split())
errors = []

def names(expr):
    out = set()
    for n in re.findall(r"\bbaton_[a-z0-9_]+\b", expr):
        for suf in ("_bucket", "_sum", "_count"):
            if n.endswith(suf) and n[: -len(suf)] in hist:
                n = n[: -len(suf)]
        out.add(n)
    return out

# Grafana
d = json.load(open(f"{root}/deploy/grafana-dashboard.json"))
if not 36 <= d.get("schemaVersion", 0) <= 39:
    errors.append(f"dashboard schemaVersion {d.get('schemaVersion')} is not Grafana 10's")
tl = d.get("templating", {}).get("list", [])
dsvar = [v for v in tl if v.get("type") == "datasource" and v.get("query") == "prometheus"]
if not dsvar:
    errors.append("dashboard has no Prometheus datasource variable")
var = "${%s}" % dsvar[0]["name"] if dsvar else None
used, ids = set(), set()
for p in d["panels"]:
    if p["id"] in ids:
        errors.append(f"duplicate panel id {p['id']}")
    ids.add(p["id"])
    g = p["gridPos"]
    if g["x"] + g["w"] > 24:
        errors.append(f"panel {p.get('title')} is wider than the grid")
    if p["type"] == "row":
        continue
    if p.get("datasource", {}).get("uid") != var:
        errors.append(f"panel {p.get('title')} does not use the datasource variable")
    if not p.get("targets"):
        errors.append(f"panel {p.get('title')} has no query")
    for t in p.get("targets", []):
        if t.get("datasource", {}).get("uid") != var:
            errors.append(f"panel {p.get('title')}: a query does not use the datasource variable")
        used |= names(t["expr"])
for v in tl:
    if v.get("type") == "query":
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        used |= names(q)
unknown = used - metrics
if unknown:
    errors.append(f"dashboard uses metrics not in the list: {sorted(unknown)}")
if metrics - used:
    errors.append(f"dashboard lacks panels for: {sorted(metrics - used)}")

# Prometheus
p = yaml.safe_load(open(f"{root}/deploy/prometheus.yml"))
jobs = {j["job_name"]: j for j in p.get("scrape_configs", [])}
for job, svc, port in (("baton-scheduler", "scheduler", 9464), ("baton-worker", "worker", 9465)):
    sd = jobs.get(job, {}).get("dns_sd_configs", [])
    if not any(svc in c.get("names", []) and c.get("port") == port for c in sd):
        errors.append(f"prometheus.yml: {job} does not discover {svc}:{port} by DNS")
if "/etc/prometheus/baton-alerts.yml" not in p.get("rule_files", []):
    errors.append("prometheus.yml: alert rules not loaded")
a = yaml.safe_load(open(f"{root}/deploy/prometheus-alerts.yml"))
rules = [r for g in a["groups"] for r in g["rules"]]
if not rules:
    errors.append("no alert rules")
for r in rules:
    bad = names(r["expr"]) - metrics
    if bad:
        errors.append(f"alert {r.get('alert')} uses unknown metrics {sorted(bad)}")
for f in ("datasource.yml", "dashboards.yml"):
    yaml.safe_load(open(f"{root}/deploy/grafana/{f}"))

# docs/deploy.md explains every metric.
doc = open(f"{root}/docs/deploy.md").read()
undocumented = [m for m in sorted(metrics) if m not in doc]
if undocumented:
    errors.append(f"docs/deploy.md does not explain: {undocumented}")
bad = names(doc) - metrics
if bad:
    errors.append(f"docs/deploy.md names unknown metrics: {sorted(bad)}")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
EOF

# PromQL syntax of every query, when promtool (Debian's prometheus package)
# is there; everything above runs without it.
if command -v promtool >/dev/null; then
  note "promtool: configuration, alert rules and dashboard queries"
  sed "s#/etc/prometheus/baton-alerts.yml#$root/deploy/prometheus-alerts.yml#" \
    "$root/deploy/prometheus.yml" >"$work/prometheus.yml"
  promtool check config "$work/prometheus.yml" >/dev/null || fail "promtool check config"
  python3 - "$root" "$work/dash-rules.yml" <<'EOF'
import json, sys, yaml
d = json.load(open(f"{sys.argv[1]}/deploy/grafana-dashboard.json"))
rules = []
for p in d["panels"]:
    for t in p.get("targets", []):
        e = t["expr"].replace("$__rate_interval", "5m").replace("$queue", ".*").replace("$type", ".*")
        rules.append({"record": f"baton:dashboard_query:{len(rules)}", "expr": e})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
EOF
  promtool check rules "$work/dash-rules.yml" >/dev/null || fail "promtool: a dashboard query does not parse"
else
  note "promtool not found (Debian package prometheus): PromQL syntax not checked"
fi

echo "ok: compose, Dockerfile, entrypoint, health check, dashboard, Prometheus files"
