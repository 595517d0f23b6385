#!/bin/sh
# check_compose.sh [path/to/drainguard] - the deployment files in docker/
# agree with each other and with the engine, without Docker (there is no
# Docker engine on the CI machines) and without Python: POSIX sh and awk.
#
# It reads docker/compose.yaml, docker/drainguard.compose.yaml,
# docker/prometheus.yml, docker/redis.conf, docker/Dockerfile and the Grafana
# provisioning through a small YAML flattener (block mappings and block
# lists of scalars; block scalars are skipped; flow collections are kept as
# one string), which is enough because those files keep a regular layout
# (two-space indents, no anchors). It checks:
#   - the five services exist, each with an image, and every image tag is
#     pinned (no :latest, no missing tag), the Dockerfile's bases too, on
#     Debian 12;
#   - drainguard's compose config points at the compose services: brokers at
#     an advertised listener of kafka, redis.host/port at the redis service
#     and the port of redis.conf, redis.user at an ACL user the redis command
#     creates, the password's {env: NAME} in drainguard's environment, the
#     topics (and the engine's default topics) created by kafka-init;
#   - the metrics port is the one drainguard exposes, the Dockerfile exposes
#     and health-checks, and Prometheus scrapes under drainguard's service name;
#   - every named volume a service uses is declared, every declared one is
#     used, every file or directory mounted from docker/ exists, and the
#     config and rules are mounted read-only into a non-root, read-only
#     drainguard container with a tmpfs /tmp;
#   - the config's rule file is in the mounted rules directory;
#   - Grafana's datasource uid and dashboard path match the dashboard, the
#     dashboard is valid JSON, and every metric it queries is one the engine
#     declares (engine/*.c);
#   - with the binary given: the engine accepts the compose config (it is
#     started against a closed loopback port with the memory backend, and
#     must get as far as "started").
# Prints "check_compose: N passed, M failed"; exit status 1 on a failure.
set -u
BIN=${1:-}
case $BIN in "" | /*) ;; *) BIN=$PWD/$BIN ;; esac
cd "$(dirname "$0")/.." || exit 1
D=docker
COMPOSE=$D/compose.yaml
CONF=$D/drainguard.compose.yaml
PROM=$D/prometheus.yml
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_compose.XXXXXX")
pid=
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi; rm -rf "$tmp"' EXIT
pass=0
fail=0
skip=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
not_ok() { fail=$((fail + 1)); echo "FAIL - $1"; }
skipped() { skip=$((skip + 1)); echo "skip - $1"; }
# check "what" test-args...
check() {
    what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}

for f in "$COMPOSE" "$CONF" "$PROM" "$D/redis.conf" "$D/Dockerfile"; do
    [ -f "$f" ] || { not_ok "$f exists"; echo "check_compose: $pass passed, $fail failed"; exit 1; }
done

# flatten FILE: one line per scalar, "path<TAB>value"; a mapping or list
# key alone is "path<TAB>" (value empty); list items are path[N]; a block
# scalar's value is "<block>". Quotes around scalars are removed.
flatten() {
    awk '
    function unq(s) {
        if (s ~ /^".*"$/ || s ~ /^\047.*\047$/) return substr(s, 2, length(s) - 2)
        return s
    }
    function strip(s,   i, c, q) {          # a comment: " #" outside quotes
        q = ""
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (q != "") { if (c == q) q = ""; continue }
            if (c == "\"" || c == "\047") { q = c; continue }
            if (c == "#" && (i == 1 || substr(s, i - 1, 1) ~ /[ \t]/)) return substr(s, 1, i - 1)
        }
        return s
    }
    function emit(p, v) { printf "%s\t%s\n", p, v }
    function keyline(n, t, parent,   k, v, full) {
        k = t; sub(/:.*/, "", k)
        v = t; sub(/^[^:]*:[ \t]*/, "", v)
        k = unq(k)
        full = (parent == "" ? k : parent "." k)
        if (v == "") { top++; ind[top] = n; path[top] = full; emit(full, ""); return }
        if (v ~ /^[|>][-+0-9]*$/) { inblock = 1; bind = n; emit(full, "<block>"); return }
        emit(full, unq(v))
    }
    BEGIN { top = 0; inblock = 0 }
    {
        line = $0
        sub(/\r$/, "", line)
        match(line, /^ */); n = RLENGTH
        if (inblock) {
            if (line ~ /^[ \t]*$/ || n > bind) next
            inblock = 0
        }
        line = strip(line)
        sub(/[ \t]+$/, "", line)
        if (line ~ /^[ \t]*$/ || line ~ /^---/) next
        t = substr(line, n + 1)
        while (top > 0 && ind[top] >= n) top--
        parent = (top > 0 ? path[top] : "")
        if (t ~ /^- / || t == "-") {
            item = parent "[" (cnt[parent] + 0) "]"
            cnt[parent]++
            rest = substr(t, 3)
            if (rest ~ /^[A-Za-z0-9_."\047\/-]+:( |$)/) {
                top++; ind[top] = n; path[top] = item
                keyline(n + 2, rest, item)
            } else
                emit(item, unq(rest))
            next
        }
        if (t ~ /^[^ ]+:( |$)/ || t ~ /^"[^"]*":( |$)/) keyline(n, t, parent)
    }' "$1"
}
# json_balanced FILE: braces and brackets nest properly outside strings (the
# fallback when neither python3 nor jq can parse JSON here)
json_balanced() {
    awk '{ s = s $0 "\n" }
        END {
            n = length(s); d = 0; q = 0
            for (i = 1; i <= n; i++) {
                c = substr(s, i, 1)
                if (q) { if (c == "\\") i++; else if (c == "\"") q = 0; continue }
                if (c == "\"") q = 1
                else if (c == "{" || c == "[") st[++d] = c
                else if (c == "}" || c == "]") { if (d == 0 || (c == "}") != (st[d] == "{")) exit 1; d-- }
            }
            exit (d != 0 || q)
        }' "$1"
}
# get FLAT PATH: the value of one path
get() { awk -F '\t' -v p="$2" '$1 == p { print $2; exit }' "$1"; }
# vals FLAT PREFIX: the values of PREFIX[N] (a list of scalars)
vals() { awk -F '\t' -v p="$2" 'index($1, p "[") == 1 && substr($1, length(p) + 2) ~ /^[0-9]+\]$/ { print $2 }' "$1"; }
has() { awk -F '\t' -v p="$2" '$1 == p { f = 1 } END { exit !f }' "$1"; }

flatten "$COMPOSE" >"$tmp/compose"
flatten "$CONF" >"$tmp/conf"
flatten "$PROM" >"$tmp/prom"
C=$tmp/compose

# ---- services and images ----------------------------------------------------
services=$(awk -F '\t' '$1 ~ /^services\.[^.]+$/ { sub(/^services\./, "", $1); print $1 }' "$C")
for s in kafka redis drainguard prometheus grafana; do
    check "service $s is defined" has "$C" "services.$s"
done
pinned() { # IMAGE: name:tag with a tag that is not latest, or a digest
    case $1 in
    *@sha256:*) return 0 ;;
    *:latest | "") return 1 ;;
    esac
    tag=${1##*/}
    case $tag in *:?*) return 0 ;; *) return 1 ;; esac
}
for s in $services; do
    img=$(get "$C" "services.$s.image")
    if [ -z "$img" ]; then
        not_ok "service $s names an image"
        continue
    fi
    check "service $s: image $img has a pinned tag" pinned "$img"
done
# the Dockerfile: every FROM is a pinned image or an ARG whose default is one
dfrom=$(awk '
    /^ARG [A-Za-z_]+=/ { a = $2; sub(/=.*/, "", a); v = $2; sub(/^[^=]*=/, "", v); arg[a] = v }
    /^FROM / { img = $2; if (img ~ /^\$\{[A-Za-z_]+\}$/) { a = substr(img, 3, length(img) - 3); img = arg[a] } if (!seen[img]++) print img }
' "$D/Dockerfile")
for img in $dfrom; do
    check "Dockerfile: base $img has a pinned tag" pinned "$img"
    case $img in
    debian:12.* | debian:bookworm-*) ok "Dockerfile: base $img is Debian 12" ;;
    *) not_ok "Dockerfile: base $img is Debian 12 (debian:12.N-slim or debian:bookworm-DATE-slim)" ;;
    esac
done
check "Dockerfile: runs as a non-root user" grep -Eq '^USER +[1-9][0-9]*(:[0-9]+)?$' "$D/Dockerfile"

# ---- drainguard's config against the services -------------------------------
cvals() { # KEY of the compose config: a list, a flow list or a scalar
    v=$(vals "$tmp/conf" "$1")
    [ -n "$v" ] && { echo "$v"; return; }
    get "$tmp/conf" "$1" | tr -d '[]' | tr ',' '\n' | sed 's/^ *//; s/ *$//' | grep -v '^$'
}
adv=$(get "$C" "services.kafka.environment.KAFKA_ADVERTISED_LISTENERS")
for b in $(cvals brokers); do
    host=${b%:*}
    check "config brokers: $host is a compose service" has "$C" "services.$host"
    case ",$adv," in
    *"//$b,"*) ok "config brokers: $b is an advertised listener of kafka" ;;
    *) not_ok "config brokers: $b is an advertised listener of kafka ($adv)" ;;
    esac
done
rhost=$(get "$tmp/conf" redis.host)
rport=$(get "$tmp/conf" redis.port)
rport=${rport:-6379}
check "config redis.host: '$rhost' is a compose service" has "$C" "services.$rhost"
confport=$(awk '$1 == "port" { print $2 }' "$D/redis.conf")
check "config redis.port $rport is redis.conf's port (${confport:-6379})" [ "$rport" = "${confport:-6379}" ]
ruser=$(get "$tmp/conf" redis.user)
if [ -n "$ruser" ]; then
    check "config redis.user '$ruser' is an ACL user the redis service creates" \
        grep -Eq "^ +user $ruser on " "$COMPOSE"
fi
envs=$(grep -o '{env: *[A-Za-z_][A-Za-z0-9_]*}' "$CONF" | sed 's/{env: *//; s/}//' | sort -u)
for e in $envs; do
    check "config {env: $e} is set in drainguard's environment" has "$C" "services.drainguard.environment.$e"
done
# topics: the config's and the engine's defaults (run --help) are created
created=$(grep -E '^ +for spec in ' "$COMPOSE" | sed 's/.* in //; s/; do.*//' | tr ' ' '\n' | sed 's/:.*//')
topics=$(
    cvals input_topics
    get "$tmp/conf" decisions_topic
    get "$tmp/conf" dlq_topic
    echo drainguard-audit
    if [ -n "$BIN" ] && [ -x "$BIN" ]; then
        "$BIN" run --help 2>&1 | sed -n 's/^ *--[a-z-]*topics* [A-Z]* *default \([A-Za-z0-9._-]*\)$/\1/p'
    fi
)
for t in $(echo "$topics" | sort -u); do
    case " $(echo $created) " in
    *" $t "*) ok "topic $t is created by kafka-init" ;;
    *) not_ok "topic $t is created by kafka-init" ;;
    esac
done

# ---- metrics port ------------------------------------------------------------
exposes() { # SERVICE PORT: in its expose: or ports: (container side)
    awk -F '\t' -v s="$1" 'index($1, "services." s ".expose[") == 1 || index($1, "services." s ".ports[") == 1 { print $2 }' "$C" |
        grep -Eq "(^|:)$2(/tcp)?$"
}
maddr=$(get "$tmp/conf" metrics)
mport=${maddr##*:}
if [ -z "$maddr" ]; then
    not_ok "the compose config sets metrics: HOST:PORT"
else
    check "drainguard exposes the metrics port $mport" exposes drainguard "$mport"
    check "Dockerfile EXPOSEs $mport" grep -Eq "^EXPOSE( [0-9]+)* $mport( |$)" "$D/Dockerfile"
    check "Dockerfile health check uses port $mport" grep -q "DG_HEALTH_PORT:-$mport}" "$D/Dockerfile"
    # prometheus: a static target drainguard:PORT, or DNS discovery of the
    # name drainguard on PORT
    scraped=$(awk -F '\t' '
        $1 ~ /^scrape_configs\[[0-9]+\]\.static_configs\[[0-9]+\]\.targets\[[0-9]+\]$/ { print $2 }
        $1 ~ /^scrape_configs\[[0-9]+\]\.dns_sd_configs\[[0-9]+\]\.names\[[0-9]+\]$/ { k = $1; sub(/\.names\[.*/, "", k); n[k] = n[k] " " $2 }
        $1 ~ /^scrape_configs\[[0-9]+\]\.dns_sd_configs\[[0-9]+\]\.port$/ { k = $1; sub(/\.port$/, "", k); p[k] = $2 }
        END { for (k in n) { split(substr(n[k], 2), a, " "); for (i in a) print a[i] ":" p[k] } }
    ' "$tmp/prom")
    case " $(echo $scraped) " in
    *" drainguard:$mport "*) ok "prometheus scrapes drainguard:$mport" ;;
    *) not_ok "prometheus scrapes drainguard:$mport (it scrapes: $(echo $scraped))" ;;
    esac
fi

# ---- volumes and mounts -------------------------------------------------------
declared=$(awk -F '\t' '$1 ~ /^volumes\.[^.]+$/ { sub(/^volumes\./, "", $1); print $1 }' "$C")
used=""
for s in $services; do
    for m in $(vals "$C" "services.$s.volumes"); do
        src=${m%%:*}
        case $src in
        ./* | ../* | /*)
            case $src in /*) p=$src ;; *) p=$D/$src ;; esac
            check "service $s mounts $src, which exists" test -e "$p"
            ;;
        *)
            used="$used $src"
            case " $(echo $declared) " in
            *" $src "*) ok "service $s: volume $src is declared" ;;
            *) not_ok "service $s: volume $src is declared under volumes:" ;;
            esac
            ;;
        esac
    done
done
for v in $declared; do
    case "$used " in
    *" $v "*) ok "volume $v is used by a service" ;;
    *) not_ok "volume $v is used by a service" ;;
    esac
done
for s in kafka redis grafana; do
    check "service $s keeps its data in a named volume" \
        sh -c "awk -F '\t' '\$1 ~ /^services\\.$s\\.volumes\\[/ { print \$2 }' '$C' | grep -Eq '^[a-z][a-z0-9-]*:/'"
done
check "redis has the append-only file on (redis.conf)" grep -Eq '^appendonly +yes' "$D/redis.conf"
dgm=$(vals "$C" services.drainguard.volumes)
cfgpath=$(get "$C" "services.drainguard.command" | sed -n 's/.*"--config", *"\([^"]*\)".*/\1/p')
cfgpath=${cfgpath:-/etc/drainguard/drainguard.yaml}
check "drainguard's config $cfgpath is $CONF, read-only" \
    sh -c 'echo "$1" | grep -qx "./$(basename "$2"):$3:ro"' _ "$dgm" "$CONF" "$cfgpath"
rules=$(get "$tmp/conf" rules)
rdir=""
for m in $dgm; do
    tgt=${m#*:}
    tgt=${tgt%:ro}
    case $rules in
    "$tgt"/*)
        rdir=$m
        case $m in *:ro) ok "drainguard's rules ($tgt) are mounted read-only" ;; *) not_ok "drainguard's rules ($tgt) are mounted read-only" ;; esac
        f=$D/${m%%:*}/${rules#"$tgt"/}
        check "the config's rules $rules are in the repository ($f)" test -f "$f"
        if [ -n "$BIN" ] && [ -x "$BIN" ]; then
            check "the config's rules $rules pass drainguard check" sh -c '"$1" check "$2" >/dev/null 2>&1' _ "$BIN" "$f"
        fi
        ;;
    esac
done
[ -n "$rdir" ] || not_ok "the config's rules ($rules) are inside a directory mounted into drainguard"
u=$(get "$C" services.drainguard.user)
case ${u%%:*} in
"" | 0 | root) not_ok "drainguard runs as a non-root user (user: $u)" ;;
*) ok "drainguard runs as a non-root user ($u)" ;;
esac
check "drainguard's root file system is read-only" [ "$(get "$C" services.drainguard.read_only)" = true ]
check "drainguard has a tmpfs on /tmp" sh -c 'echo "$1" | grep -q "^/tmp"' _ "$(vals "$C" services.drainguard.tmpfs)"
check "drainguard waits for redis to be healthy" \
    [ "$(get "$C" services.drainguard.depends_on.redis.condition)" = service_healthy ]
check "drainguard waits for the topics" \
    [ "$(get "$C" services.drainguard.depends_on.kafka-init.condition)" = service_completed_successfully ]

# ---- grafana ----------------------------------------------------------------
G=$D/grafana
flatten "$G/provisioning/datasources/prometheus.yaml" >"$tmp/ds"
flatten "$G/provisioning/dashboards/drainguard.yaml" >"$tmp/dp"
dsuid=$(get "$tmp/ds" "datasources[0].uid")
dsurl=$(get "$tmp/ds" "datasources[0].url")
check "grafana datasource points at the prometheus service ($dsurl)" \
    sh -c 'case "$1" in http://prometheus:9090*) exit 0;; *) exit 1;; esac' _ "$dsurl"
dpath=$(get "$tmp/dp" "providers[0].options.path")
check "grafana's dashboard provider path $dpath is the mounted docker/grafana/dashboards" \
    sh -c 'echo "$1" | grep -qx "./grafana/dashboards:$2:ro"' _ "$(vals "$C" services.grafana.volumes)" "$dpath"
for j in "$G"/dashboards/*.json; do
    [ -f "$j" ] || { not_ok "a dashboard in $G/dashboards"; continue; }
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import json' 2>/dev/null; then
        check "$j is valid JSON (python3 -m json.tool)" sh -c 'python3 -m json.tool "$1" >/dev/null 2>&1' _ "$j"
    elif command -v jq >/dev/null 2>&1; then
        check "$j is valid JSON (jq)" sh -c 'jq empty "$1" >/dev/null 2>&1' _ "$j"
    else
        # no JSON parser here: brackets and braces balance outside strings
        check "$j has balanced brackets (no python3 or jq here for a full parse)" json_balanced "$j"
    fi
    check "$j uses the provisioned datasource uid '$dsuid'" \
        sh -c 'grep -o "\"uid\": *\"[^\"]*\"" "$1" | grep -v "\"uid\": *\"drainguard\"" | grep -qv "\"$2\"" && exit 1; exit 0' _ "$j" "$dsuid"
    names=$(grep -o 'drainguard_[a-z0-9_]*' "$j" | sed -E 's/_(bucket|sum|count)$//' | sort -u)
    if ! grep -q 'drainguard_' engine/metrics*.c engine/cmd_run.c engine/pipeline.c 2>/dev/null; then
        skipped "metric names in $j: the engine declares no drainguard_ metrics yet"
        continue
    fi
    for n in $names; do
        # declared in full ("drainguard_x") or after a prefix ("x")
        if grep -Eq "\"($n|${n#drainguard_})\"" engine/*.c; then
            ok "dashboard metric $n is declared by the engine"
        else
            not_ok "dashboard metric $n is declared by the engine (engine/*.c)"
        fi
    done
done

# ---- the engine accepts the compose config ---------------------------------------
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    skipped "the engine accepts $CONF (no drainguard binary given)"
else
    # the real Redis and brokers are not here: the memory backend, a closed
    # loopback port for the brokers, the repository's rules, metrics on a
    # free loopback port; the config's keys, values and {env:} are all read
    # (a copy of the config whose metrics listener is on a free loopback port)
    sed 's/^metrics:.*/metrics: 127.0.0.1:0/' "$CONF" >"$tmp/compose-config.yaml"
    set -- run --config "$tmp/compose-config.yaml" --state memory --brokers 127.0.0.1:1 --rules rules/default.yaml
    for e in $envs; do export "$e=check-compose"; done
    started() { grep -v 'not started' "$tmp/run.out" | grep -q 'started'; }
    "$BIN" "$@" >"$tmp/run.out" 2>&1 &
    pid=$!
    i=0
    while [ $i -lt 200 ] && kill -0 "$pid" 2>/dev/null && ! started; do
        sleep 0.1
        i=$((i + 1))
    done
    if started; then
        ok "the engine accepts $CONF"
    else
        not_ok "the engine accepts $CONF:"
        sed 's/^/    /' "$tmp/run.out" | head -20
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
fi

# ---- the Redis ACL users of compose.yaml, live ------------------------------------
# redis-server with docker/redis.conf and exactly the ACL lines of the redis
# service (on a unix socket in $tmp), `drainguard broker`, the demo events:
# the engine as user drainguard decides them all, `drainguard freezes` as
# dgadmin places and releases a freeze, the engine's user may not release
# one, and Redis denied nothing else (ACL LOG, read by a test-only user).
live_acl() {
    R=$tmp/redis.sock
    sed -e "s#^port .*#port 0#" -e "s#^dir .*#dir $tmp#" -e "s#^bind .*#bind 127.0.0.1#" \
        -e "s#^appendfsync .*#appendfsync no#" "$D/redis.conf" >"$tmp/redis.conf"
    echo "unixsocket $R" >>"$tmp/redis.conf"
    echo "unixsocketperm 700" >>"$tmp/redis.conf"
    grep -E '^ +user [a-z]+ ' "$COMPOSE" | sed -e 's/^ *//' \
        -e 's/\$\$DG_REDIS_PASSWORD/engine-pw/' -e 's/\$\$DG_ADMIN_REDIS_PASSWORD/admin-pw/' >"$tmp/acl.conf"
    echo "user checker on >checker-pw ~* &* +@all" >>"$tmp/acl.conf"
    redis-server "$tmp/redis.conf" - <"$tmp/acl.conf" >"$tmp/redis.log" 2>&1 &
    rpid=$!
    "$BIN" broker >"$tmp/broker.out" 2>"$tmp/broker.err" &
    bpid=$!
    pids="$rpid $bpid"
    i=0
    while [ $i -lt 100 ] && ! { [ -S "$R" ] && grep -q '^127\.0\.0\.1:' "$tmp/broker.out"; }; do
        sleep 0.1
        i=$((i + 1))
    done
    if ! [ -S "$R" ]; then
        not_ok "redis-server starts with docker/redis.conf and the compose ACL users:"
        sed 's/^/    /' "$tmp/redis.log" | tail -5
        return
    fi
    ok "redis-server starts with docker/redis.conf and the compose ACL users"
    B=$(head -1 "$tmp/broker.out")
    [ -n "$B" ] || { not_ok "drainguard broker starts"; return; }
    sed -e "s#^brokers:.*#brokers: $B#" -e "s#^metrics:.*#metrics: 127.0.0.1:0#" \
        -e "s#^  host: .*#  unix: $R#" -e '/^  port: /d' "$CONF" >"$tmp/engine.yaml"
    # a short session: the mock broker waits it out before a new member joins
    if grep -q '^kafka:$' "$tmp/engine.yaml"; then
        sed -i 's/^kafka:$/kafka:\n  consumer:\n    session.timeout.ms: 6000/' "$tmp/engine.yaml"
    else
        printf 'kafka:\n  consumer:\n    session.timeout.ms: 6000\n' >>"$tmp/engine.yaml"
    fi
    sed -e "s#^brokers:.*#brokers: $B#" -e "s#^  host: .*#  unix: $R#" -e '/^  port: /d' \
        "$D/drainguard.admin.yaml" >"$tmp/admin.yaml"
    ev=tests/demo/events.jsonl
    "$BIN" replay --rules rules/default.yaml --input "$ev" --output "$tmp/replay.jsonl" --quiet 2>/dev/null
    n=$(wc -l <"$tmp/replay.jsonl")
    "$BIN" produce --brokers "$B" --topic withdrawal-events --input "$ev" --key-field account_id 2>>"$tmp/produce.err" ||
        { not_ok "demo events produced"; return; }
    DG_REDIS_PASSWORD=engine-pw "$BIN" run --config "$tmp/engine.yaml" --rules rules/default.yaml \
        >"$tmp/engine.out" 2>"$tmp/engine.err" &
    epid=$!
    pids="$epid $pids"
    check "the engine, as Redis user drainguard, decides all $n demo events" \
        sh -c '"$1" consume --brokers "$2" --topic withdrawal-decisions --count "$3" --timeout 60s --output "$4" 2>/dev/null &&
               [ "$(wc -l <"$4")" -eq "$3" ]' _ "$BIN" "$B" "$n" "$tmp/decisions.jsonl"
    # the engine's freeze gauge reads the freezes every few seconds
    sleep 3
    kill "$epid" 2>/dev/null
    wait "$epid" 2>/dev/null
    check "the engine logged no Redis permission error" sh -c '! grep -i "noperm" "$1"' _ "$tmp/engine.err"
    export DG_ADMIN_REDIS_PASSWORD=admin-pw
    check "drainguard freezes add, as dgadmin" sh -c '"$1" freezes add destination bc1q-check --reason check --by check_compose \
        --config "$2" >>"$3" 2>&1' _ "$BIN" "$tmp/admin.yaml" "$tmp/admin.out"
    check "drainguard freezes list, as dgadmin, shows it" sh -c '"$1" freezes list --config "$2" 2>&1 | grep -q bc1q-check' \
        _ "$BIN" "$tmp/admin.yaml"
    check "drainguard freezes release, as dgadmin" sh -c '"$1" freezes release destination bc1q-check --reason check \
        --by check_compose --config "$2" >>"$3" 2>&1' _ "$BIN" "$tmp/admin.yaml" "$tmp/admin.out"
    sed -e 's/^  user: dgadmin/  user: drainguard/' -e 's/DG_ADMIN_REDIS_PASSWORD/DG_REDIS_PASSWORD/' "$tmp/admin.yaml" >"$tmp/as-engine.yaml"
    DG_REDIS_PASSWORD=engine-pw "$BIN" freezes add global --reason check --by check_compose --config "$tmp/admin.yaml" \
        >>"$tmp/admin.out" 2>&1
    check "the engine's Redis user may not release a freeze" sh -c 'DG_REDIS_PASSWORD=engine-pw "$1" freezes release global \
        --reason check --by check_compose --config "$2" 2>&1 | grep -Eq "NOPERM|can.t run this command"' _ "$BIN" "$tmp/as-engine.yaml"
    REDISCLI_AUTH=checker-pw redis-cli -s "$R" --user checker acl log >"$tmp/acl.log" 2>&1
    # ACL LOG: field names and values on alternate lines; the one denial
    # expected is the release above (the engine's user may EVAL, for its
    # commit checks, but the release script's HGET is refused)
    denied=$(awk 'p == "object" { printf "%s ", $0 } { p = $0 }' "$tmp/acl.log")
    check "Redis denied nothing else (ACL LOG: ${denied:-empty})" [ "$denied" = "hget " ]
}
if [ -z "$BIN" ] || [ ! -x "$BIN" ] || ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    skipped "the compose Redis ACL users, live (needs the drainguard binary, redis-server and redis-cli)"
else
    pids=""
    live_acl
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
fi

if [ "$skip" -gt 0 ]; then
    echo "check_compose: $pass passed, $fail failed, $skip skipped"
else
    echo "check_compose: $pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
