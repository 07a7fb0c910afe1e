#!/usr/bin/env bash
# bench/run.sh - build meshca (release) and time it against the openssl recipe
# (testdata/recipe.sh, Istio's Makefile.selfsigned.mk) on this machine.
#
#   bench/run.sh                     # 5 runs per case
#   BENCH_RUNS=10 bench/run.sh       # more runs
#
# Prints a Markdown report on stdout. See bench/README.md.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
RECIPE=$ROOT/testdata/recipe.sh

BENCH_RUNS=${BENCH_RUNS:-5}
BENCH_STARTUP_RUNS=${BENCH_STARTUP_RUNS:-50}
# BENCH_TMPFS=1 (default): if the temp dir is not on tmpfs and /dev/shm is a
# writable tmpfs, also run case b there (reference row "b-tmpfs"), to separate
# the cost of meshca's durable writes (fsync per file) from the rest.
BENCH_TMPFS=${BENCH_TMPFS:-1}
# BENCH_FLEET=1 (default): also run the fleet section (100 / 1,000 / 10,000
# ECDSA clusters: init, verify, rotate, verify --previous); 0 skips it; "only"
# runs nothing else. BENCH_FLEET_RUNS: runs per fleet command (default 3).
BENCH_FLEET=${BENCH_FLEET:-1}
BENCH_FLEET_RUNS=${BENCH_FLEET_RUNS:-3}
[[ $BENCH_FLEET =~ ^(0|1|only)$ ]] || { echo "run.sh: BENCH_FLEET must be 0, 1 or only (got '$BENCH_FLEET')" >&2; exit 2; }
[[ $BENCH_FLEET_RUNS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: BENCH_FLEET_RUNS must be a positive integer (got '$BENCH_FLEET_RUNS')" >&2; exit 2; }
RUN_MAIN=1
[[ $BENCH_FLEET != only ]] || RUN_MAIN=0
[[ $BENCH_TMPFS =~ ^[01]$ ]] || { echo "run.sh: BENCH_TMPFS must be 0 or 1 (got '$BENCH_TMPFS')" >&2; exit 2; }
[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: BENCH_RUNS must be a positive integer (got '$BENCH_RUNS')" >&2; exit 2; }
[[ $BENCH_STARTUP_RUNS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: BENCH_STARTUP_RUNS must be a positive integer (got '$BENCH_STARTUP_RUNS')" >&2; exit 2; }
((BENCH_RUNS >= 5)) || echo "run.sh: warning: BENCH_RUNS=$BENCH_RUNS (< 5), medians will be noisy" >&2

# Both tools read the Makefile's variables (meshca: INTERMEDIATE_KEYSZ is
# --key-type, ROOTCA_KEYSZ is --root-key-type, ...). Benchmark the defaults.
unset ROOTCA_DAYS ROOTCA_KEYSZ ROOTCA_ORG ROOTCA_CN \
	INTERMEDIATE_DAYS INTERMEDIATE_KEYSZ INTERMEDIATE_ORG INTERMEDIATE_CN INTERMEDIATE_SAN_DNS \
	WORKLOAD_DAYS WORKLOAD_CN SERVICE_ACCOUNT ISTIO_NAMESPACE MESHCA_PASSPHRASE_FILE

log() { printf '[bench] %s\n' "$*" >&2; }

command -v openssl >/dev/null || { echo "run.sh: openssl not found" >&2; exit 2; }
[[ -x $RECIPE ]] || { echo "run.sh: $RECIPE not found or not executable" >&2; exit 2; }

#------------------------------------------------------------------------
# build
log "cargo build --release --locked -p meshca-cli"
(cd "$ROOT" && cargo build --release --locked -p meshca-cli) >&2
MESHCA=${CARGO_TARGET_DIR:-$ROOT/target}/release/meshca
[[ $MESHCA == /* ]] || MESHCA=$ROOT/$MESHCA
[[ -x $MESHCA ]] || { echo "run.sh: built binary not found at $MESHCA" >&2; exit 1; }

#------------------------------------------------------------------------
# scratch space
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshca-bench.XXXXXX")
SHM=
cleanup() {
	rm -rf -- "$TMP"
	if [[ -n $SHM ]]; then rm -rf -- "$SHM"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

#------------------------------------------------------------------------
# timing helpers

# now: wall clock in seconds with microseconds. bash 5 has $EPOCHREALTIME
# (no fork); otherwise fall back to date.
if [[ -n ${EPOCHREALTIME:-} ]]; then
	now() { REPLY=${EPOCHREALTIME/,/.}; }
else
	now() { REPLY=$(date +%s.%N); }
fi

# Samples (seconds) per key, space separated.
declare -A SAMPLES=()
declare -A CPUWALL=()
# Key -> first error message.
declare -A FAILED=()
ANY_FAILED=0

# timed KEY CMD...: run CMD once in a subshell (stdout discarded, stderr kept),
# append its wall time to SAMPLES[KEY]. On failure record the error instead.
timed() {
	local key=$1 t0 t1 c0 c1 rc=0
	shift
	local errf=$TMP/stderr.$key
	own_cpu; c0=$REPLY
	now; t0=$REPLY
	("$@") >/dev/null 2>"$errf" || rc=$?
	now; t1=$REPLY
	own_cpu; c1=$REPLY
	if ((rc != 0)); then
		if [[ -z ${FAILED[$key]:-} ]]; then
			FAILED[$key]="exit $rc: $(head -c 2000 "$errf" | tr '\n' ' ')"
			log "FAILED ($key): ${FAILED[$key]}"
		fi
		ANY_FAILED=1
		return 0
	fi
	SAMPLES[$key]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.6f", b-a}') "
	# CPU time of the command (user + system, all threads) per second of wall time.
	CPUWALL[$key]+="$(awk -v a="$t0" -v b="$t1" -v c="$c0" -v d="$c1" 'BEGIN{ if (b > a) printf "%.3f", (d - c) / (b - a); else printf "0" }') "
}

# own_cpu: REPLY = CPU seconds (user + system) used so far by this shell's
# finished children. `times` must run in this shell, not in $(...).
own_cpu() {
	times >"$TMP/times.cpu"
	REPLY=$(sed -n 2p "$TMP/times.cpu" | tr -s ' ' '\n' | awk '
		/m/ { split($0, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
		END { printf "%.3f", t }')
}

# cpu_wall KEY: REPLY = median CPU/wall ratio of KEY's runs ("n/a" if none).
cpu_wall() {
	local s=${CPUWALL[$1]:-}
	if [[ -z ${s// /} ]]; then REPLY="n/a"; return; fi
	REPLY=$(printf '%s\n' $s | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
}

# stats KEY: sets MED MIN MAX (seconds) and N from SAMPLES[KEY]; returns 1 if none.
stats() {
	local s=${SAMPLES[$1]:-}
	[[ -n ${s// /} ]] || return 1
	read -r N MED MIN MAX < <(printf '%s\n' $s | sort -g | awk '
		{ v[NR] = $1 }
		END {
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%d %.6f %.6f %.6f\n", NR, m, v[1], v[NR]
		}')
}

# fmt SECONDS SCALE DECIMALS
fmt() { awk -v x="$1" -v s="$2" -v d="$3" 'BEGIN{printf "%.*f", d, x * s}'; }
# le A B: exit 0 if A <= B (floats)
le() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a <= b)}'; }

# clusters N: c1 .. cN
clusters() { local i; for ((i = 1; i <= $1; i++)); do printf 'c%d ' "$i"; done; }

# fresh [BASE]: a new, not yet existing output directory under BASE (default
# $TMP), in $REPLY; the previous one is removed first so runs do not pile up.
RUN_SEQ=0
LAST_OUT=
fresh() {
	if [[ -n $LAST_OUT ]]; then rm -rf -- "$LAST_OUT"; fi
	RUN_SEQ=$((RUN_SEQ + 1))
	LAST_OUT=${1:-$TMP}/out.$RUN_SEQ
	REPLY=$LAST_OUT
}

# check_tree DIR N: the cluster files exist for c1..cN (sanity check after a run).
check_tree() {
	local d=$1 n=$2 i f
	for ((i = 1; i <= n; i++)); do
		for f in ca-key.pem ca-cert.pem cert-chain.pem root-cert.pem; do
			[[ -s $d/c$i/$f ]] || { echo "missing $d/c$i/$f"; return 1; }
		done
	done
	[[ -s $d/root-cert.pem && -s $d/root-key.pem ]] || { echo "missing $d/root-*.pem"; return 1; }
}

#------------------------------------------------------------------------
# interference: CPU time that processes other than ours used while a case ran
# (all CPUs' busy time from /proc/stat minus the CPU time of this shell and
# its children from the `times` builtin), and hypervisor steal time.

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
declare -A INTERF=()
INTERF_SUSPECT=0
INTERF_ORDER=()

# cpu_snapshot: sets SNAP_BUSY SNAP_STEAL (ticks) SNAP_OWN (s) SNAP_WALL (s)
cpu_snapshot() {
	local line
	line=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $9; exit}' /proc/stat 2>/dev/null) || line=
	read -r SNAP_BUSY SNAP_STEAL <<<"${line:-0 0}"
	# `times` must run in this shell (not in $(...)) to see our children.
	times >"$TMP/times"
	SNAP_OWN=$(tr -s ' \n' '\n\n' <"$TMP/times" | awk '
		/m/ { split($0, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
		END { printf "%.3f", t }')
	now; SNAP_WALL=$REPLY
}

# cpu_begin / cpu_end CASE: record the interference for CASE.
cpu_begin() { cpu_snapshot; B_BUSY=$SNAP_BUSY B_STEAL=$SNAP_STEAL B_OWN=$SNAP_OWN B_WALL=$SNAP_WALL; }
cpu_end() {
	cpu_snapshot
	local res
	res=$(awk -v b0="$B_BUSY" -v b1="$SNAP_BUSY" -v s0="$B_STEAL" -v s1="$SNAP_STEAL" \
		-v o0="$B_OWN" -v o1="$SNAP_OWN" -v w0="$B_WALL" -v w1="$SNAP_WALL" \
		-v hz="$CLK_TCK" -v n="$NPROC" 'BEGIN {
			other = (b1 - b0) / hz - (o1 - o0); if (other < 0) other = 0
			steal = (s1 - s0) / hz
			cap = (w1 - w0) * n; if (cap <= 0) cap = 1
			pct = 100 * (other + steal) / cap
			printf "%.1f %.1f %.1f %.1f %d\n", other, 100 * other / cap, steal, 100 * steal / cap, (pct > 10)
		}')
	local other opct steal spct bad
	read -r other opct steal spct bad <<<"$res"
	INTERF[$1]="other processes $other CPU-s (${opct}% of capacity), steal $steal s (${spct}%)"
	if ((bad)); then
		INTERF[$1]+=" — **over 10 %, results suspect**"
		INTERF_SUSPECT=1
	fi
	INTERF_ORDER+=("$1")
}

#------------------------------------------------------------------------
# the commands being compared

read -r -a C10 <<<"$(clusters 10)"
read -r -a C100 <<<"$(clusters 100)"

# (a) root + 10 clusters, RSA-4096
a_meshca() { "$MESHCA" init -q --dir "$1" "${C10[@]}"; }
a_recipe() { "$RECIPE" -q "$1" "${C10[@]}"; }
# (a') the same with every openssl step strictly one after another, like
# plain `make` (no -j): recipe.sh generates all keys of one call in parallel,
# so call it once for the root alone and then once per cluster; each call
# reuses the root and generates exactly one key.
# (errexit does not apply inside `timed`'s `(...) || rc=$?`, hence the `|| return`.)
a_recipe_seq() {
	local c
	"$RECIPE" -q "$1" || return
	for c in "${C10[@]}"; do "$RECIPE" -q "$1" "$c" || return; done
}
# (b) root + 100 clusters, ECDSA P-256
b_meshca() { "$MESHCA" init -q --key-type ecdsa-p256 --dir "$1" "${C100[@]}"; }
b_recipe() { "$RECIPE" -q --key-type ecdsa-p256 "$1" "${C100[@]}"; }
# (c) verify a 100-cluster certs directory
c_meshca() { "$MESHCA" verify "$1"; }
c_openssl() {
	local c
	for c in "${C100[@]}"; do
		openssl verify -CAfile "$1/$c/root-cert.pem" -untrusted "$1/$c/cert-chain.pem" "$1/$c/ca-cert.pem" || return 1
	done
}

# gen_case KEY FUNC NCLUSTERS [BASE]: one timed run into a fresh dir, then sanity-check it.
gen_case() {
	local key=$1 fn=$2 n=$3 msg out
	fresh "${4:-}"
	out=$REPLY # (timed clobbers REPLY)
	local before=${SAMPLES[$key]:-}
	timed "$key" "$fn" "$out"
	if [[ ${SAMPLES[$key]:-} != "$before" ]] && ! msg=$(check_tree "$out" "$n"); then
		# Do not count a run that "succeeded" without writing the files.
		SAMPLES[$key]=$before
		[[ -n ${FAILED[$key]:-} ]] || FAILED[$key]="exit 0 but output incomplete: $msg"
		log "FAILED ($key): $msg"
		ANY_FAILED=1
	fi
}

#------------------------------------------------------------------------
# machine

CPU_MODEL=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
[[ -n $CPU_MODEL ]] || CPU_MODEL=$(uname -m)
NPROC=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
OSSL_VERSION=$(openssl version)
MESHCA_VERSION=$("$MESHCA" --version 2>&1 || echo "meshca --version failed")
BIN_BYTES=$(stat -c %s "$MESHCA" 2>/dev/null || wc -c <"$MESHCA")
fs_type() {
	local t
	t=$(df --output=fstype -- "$1" 2>/dev/null | tail -n 1) || t=
	[[ -n $t ]] || t=$(stat -f -c %T -- "$1" 2>/dev/null) || t="?"
	echo "$t"
}
TMP_FS=$(fs_type "$TMP")
if ((BENCH_TMPFS)) && [[ $TMP_FS != tmpfs && -d /dev/shm && -w /dev/shm && $(fs_type /dev/shm) == tmpfs ]]; then
	SHM=$(mktemp -d /dev/shm/meshca-bench.XXXXXX)
fi
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

#------------------------------------------------------------------------
# runs. meshca and openssl alternate run by run, so slow drift (thermal,
# noisy neighbours) hits both sides alike.

if ((RUN_MAIN)); then
cpu_begin
log "case a: root + 10 clusters, RSA-4096 ($BENCH_RUNS runs each of meshca, recipe.sh, sequential recipe)"
for ((r = 1; r <= BENCH_RUNS; r++)); do
	log "  a run $r/$BENCH_RUNS"
	gen_case a.m a_meshca 10
	gen_case a.o a_recipe 10
	gen_case a2.o a_recipe_seq 10
done

cpu_end "a, a'"
cpu_begin
log "case b: root + 100 clusters, ECDSA P-256 ($BENCH_RUNS runs)"
for ((r = 1; r <= BENCH_RUNS; r++)); do
	log "  b run $r/$BENCH_RUNS"
	gen_case b.m b_meshca 100
	gen_case b.o b_recipe 100
done
cpu_end b
if [[ -n $SHM ]]; then
	cpu_begin
	log "case b-tmpfs: the same in $SHM ($BENCH_RUNS runs)"
	for ((r = 1; r <= BENCH_RUNS; r++)); do
		gen_case bt.m b_meshca 100 "$SHM"
		gen_case bt.o b_recipe 100 "$SHM"
	done
	rm -rf -- "$LAST_OUT"
	LAST_OUT=
	cpu_end b-tmpfs
fi

cpu_begin
log "case c: verify a 100-cluster certs directory ($BENCH_RUNS runs)"
VDIR=$TMP/verify-certs
if ! out=$("$MESHCA" init -q --key-type ecdsa-p256 --dir "$VDIR" "${C100[@]}" 2>&1); then
	FAILED[c.m]="could not create the certs directory: $out"
	FAILED[c.o]=${FAILED[c.m]}
	ANY_FAILED=1
	log "FAILED (c): ${FAILED[c.m]}"
else
	# One untimed run of each: warms the page cache, and checks both accept it.
	("$MESHCA" verify "$VDIR") >/dev/null 2>&1 || log "note: meshca verify is not clean on the meshca-made directory (exit $?)"
	(c_openssl "$VDIR") >/dev/null 2>&1 || log "note: openssl verify fails on the meshca-made directory"
	for ((r = 1; r <= BENCH_RUNS; r++)); do
		timed c.m c_meshca "$VDIR"
		timed c.o c_openssl "$VDIR"
	done
fi

cpu_end c
cpu_begin
log "case d: start-up, $BENCH_STARTUP_RUNS runs each of 'meshca --version', 'openssl version', /bin/true"
# No subshell here: the fork of the subshell would be a large part of what is measured.
TRUE_BIN=$(type -P true || echo /bin/true)
for key in d.m d.o d.t; do
	case $key in
	d.m) cmd=("$MESHCA" --version) ;;
	d.o) cmd=(openssl version) ;;
	d.t) cmd=("$TRUE_BIN") ;;
	esac
	"${cmd[@]}" >/dev/null 2>&1 || true # warm-up
done
for ((r = 1; r <= BENCH_STARTUP_RUNS; r++)); do
	for key in d.m d.o d.t; do
		case $key in
		d.m) cmd=("$MESHCA" --version) ;;
		d.o) cmd=(openssl version) ;;
		d.t) cmd=("$TRUE_BIN") ;;
		esac
		now; t0=$REPLY
		if "${cmd[@]}" >/dev/null 2>"$TMP/stderr.$key"; then
			now; t1=$REPLY
			SAMPLES[$key]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.6f", b-a}') "
		else
			rc=$?
			[[ -n ${FAILED[$key]:-} ]] || FAILED[$key]="exit $rc: $(head -c 2000 "$TMP/stderr.$key" | tr '\n' ' ')"
			ANY_FAILED=1
		fi
	done
done
cpu_end d
fi

#------------------------------------------------------------------------
# fleet: every command at 100, 1,000 and 10,000 ECDSA P-256 clusters. The
# output directories are kept until the end: on ext4 without a journal,
# creating files right after deleting many is several times slower (the
# allocator skips recently freed inodes), which would time the deletion.

FLEET_SIZES=(100 1000 10000)
FLEET_ROTATE_SIZES=(100 1000)
fleet_init() { "$MESHCA" init -q --key-type ecdsa-p256 --dir "$1" "${FLEET_C[@]}"; }
fleet_verify() { "$MESHCA" verify -q "$1"; }
fleet_rotate() { "$MESHCA" rotate -q --dir "$1" --new-root "$2" --out "$3"; }
fleet_previous() { "$MESHCA" verify -q --multiroot --previous "$1" "$2"; }
if [[ $BENCH_FLEET != 0 ]]; then
	cpu_begin
	FLEET=$TMP/fleet
	mkdir -p "$FLEET"
	if ! out=$("$MESHCA" root -q --key-type ecdsa-p256 --dir "$FLEET/new-root" 2>&1); then
		FAILED[fleet.root]="could not create the new root: $out"
		ANY_FAILED=1
	fi
	for n in "${FLEET_SIZES[@]}"; do
		read -r -a FLEET_C <<<"$(clusters "$n")"
		log "fleet: init and verify of $n clusters ($BENCH_FLEET_RUNS runs each)"
		for ((r = 1; r <= BENCH_FLEET_RUNS; r++)); do
			d=$FLEET/mesh-$n-$r
			before=${SAMPLES[fi.$n]:-}
			timed "fi.$n" fleet_init "$d"
			if [[ ${SAMPLES[fi.$n]:-} != "$before" ]] && ! msg=$(check_tree "$d" "$n"); then
				SAMPLES[fi.$n]=$before
				FAILED[fi.$n]="exit 0 but output incomplete: $msg"
				ANY_FAILED=1
			fi
			# The file-system part of init alone (no keys, no certificates),
			# right after each init of 10,000 so both meet the file system in
			# the same state: what no implementation of init on this file
			# system goes under. (ext4 makes new inodes slowly for a while
			# after many were deleted, so the floor moves from run to run.)
			if ((n == 10000)) && command -v python3 >/dev/null; then
				timed "ff.10000" python3 "$ROOT/bench/fsfloor.py" "$FLEET/floor-$r" 10000
			fi
		done
		d=$FLEET/mesh-$n-1
		for ((r = 1; r <= BENCH_FLEET_RUNS; r++)); do timed "fv.$n" fleet_verify "$d"; done
	done
	for n in "${FLEET_ROTATE_SIZES[@]}"; do
		log "fleet: rotate and verify --previous of $n clusters ($BENCH_FLEET_RUNS runs each)"
		for ((r = 1; r <= BENCH_FLEET_RUNS; r++)); do
			timed "fr.$n" fleet_rotate "$FLEET/mesh-$n-1" "$FLEET/new-root" "$FLEET/rot-$n-$r"
		done
		for ((r = 1; r <= BENCH_FLEET_RUNS; r++)); do
			timed "fp.$n" fleet_previous "$FLEET/mesh-$n-1" "$FLEET/rot-$n-1/stage-1"
		done
	done
	cpu_end fleet
fi
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

#------------------------------------------------------------------------
# report

# cell KEY SCALE DEC UNIT: "median" and "min–max" cells (sets CELL_MED CELL_RANGE)
cell() {
	if stats "$1"; then
		CELL_MED="$(fmt "$MED" "$2" "$3") $4"
		CELL_RANGE="$(fmt "$MIN" "$2" "$3")–$(fmt "$MAX" "$2" "$3") $4"
		[[ $N == "$EXPECTED_N" ]] || CELL_RANGE+=" (n=$N)"
	else
		CELL_MED="FAILED"
		CELL_RANGE="—"
	fi
}

# ratio KEY_M KEY_O: sets RATIO (empty if a side has no samples)
ratio() {
	local mm mo
	RATIO=
	stats "$1" || return 0
	mm=$MED
	stats "$2" || return 0
	mo=$MED
	RATIO=$(awk -v a="$mm" -v b="$mo" 'BEGIN{ if (b > 0) printf "%.3f", a / b }')
}

# verdict COND...: PASS / MISS / n/a
verdict() { if "$@"; then echo PASS; else echo MISS; fi; }

row() { # LABEL KEY_M KEY_O SCALE DEC UNIT TARGET RESULT
	local label=$1 km=$2 ko=$3 s=$4 d=$5 u=$6 target=$7 result=$8
	cell "$km" "$s" "$d" "$u"; local mmed=$CELL_MED mr=$CELL_RANGE
	cell "$ko" "$s" "$d" "$u"; local omed=$CELL_MED orr=$CELL_RANGE
	ratio "$km" "$ko"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' \
		"$label" "$mmed" "$mr" "$omed" "$orr" "${RATIO:-—}" "$target" "$result"
}

EXPECTED_N=$BENCH_RUNS
ratio a.m a.o; R_A=$RATIO
ratio a.m a2.o; R_A2=$RATIO
ratio c.m c.o; R_C=$RATIO
T_A=$([[ -n $R_A ]] && verdict le "$R_A" 0.15 || echo "n/a")
T_A2=$([[ -n $R_A2 ]] && verdict le "$R_A2" 0.15 || echo "n/a")
T_B=$(stats b.m && verdict le "$MED" 0.2 || echo "n/a")
T_C=$([[ -n $R_C ]] && verdict le "$R_C" 0.05 || echo "n/a")
T_D1=$(stats d.m && verdict le "$MED" 0.005 || echo "n/a")
BIN_MIB=$(awk -v b="$BIN_BYTES" 'BEGIN{printf "%.2f", b / 1048576}')
T_D2=$(verdict le "$BIN_BYTES" $((8 * 1024 * 1024)))

echo "## meshca vs openssl recipe benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%SZ')"
echo "- machine: $NPROC CPUs (nproc), $CPU_MODEL, $(uname -sr)"
echo "- load average: $LOADAVG_START at start, $LOADAVG_END at end"
echo "- temp dir: $TMP ($TMP_FS)"
echo "- $OSSL_VERSION"
echo "- $MESHCA_VERSION, release build ($MESHCA)"
echo "- runs per case: $BENCH_RUNS (start-up: $BENCH_STARTUP_RUNS); wall-clock time per run; meshca and openssl runs interleaved"
echo
if ((RUN_MAIN)); then
echo "| case | meshca median | meshca min–max | openssl median | openssl min–max | ratio meshca/openssl (median) | target | result |"
echo "|---|---|---|---|---|---|---|---|"
row "a. root + 10 clusters, RSA-4096: \`meshca init\` vs \`recipe.sh\` (openssl key generations in parallel)" \
	a.m a.o 1 3 s "ratio ≤ 0.15" "$T_A"
row "a'. same, vs the recipe run sequentially like plain \`make\` (one recipe.sh call per key)" \
	a.m a2.o 1 3 s "(reference)" "($T_A2 vs 0.15)"
row "b. root + 100 clusters, ECDSA P-256: \`meshca init --key-type ecdsa-p256\` vs \`recipe.sh --key-type ecdsa-p256\`" \
	b.m b.o 1 3 s "meshca ≤ 0.2 s" "$T_B"
if [[ -n $SHM ]]; then
	row "b-tmpfs. the same in /dev/shm (tmpfs: fsync is free), for reference" \
		bt.m bt.o 1 3 s "(reference)" "($(stats bt.m && verdict le "$MED" 0.2 || echo "n/a") vs 0.2 s)"
fi
row "c. verify 100 clusters (ECDSA P-256): \`meshca verify D\` vs 100 × \`openssl verify\`" \
	c.m c.o 1 3 s "ratio ≤ 0.05" "$T_C"
EXPECTED_N=$BENCH_STARTUP_RUNS
row "d. start-up: \`meshca --version\` vs \`openssl version\`" \
	d.m d.o 1000 2 ms "meshca ≤ 5 ms" "$T_D1"
echo "| d. release binary size | $BIN_BYTES bytes ($BIN_MIB MiB) | | | | | ≤ 8 MiB | $T_D2 |"
echo
cpu_wall a.m; CW_M=$REPLY
cpu_wall a.o; CW_O=$REPLY
echo "Case a, CPU time per wall-clock second (median; $NPROC CPUs, so $NPROC.00 means every core busy the whole run): meshca $CW_M, recipe.sh $CW_O."
echo
if stats d.t; then
	echo "Process spawn floor on this machine (\`$TRUE_BIN\`, same loop): median $(fmt "$MED" 1000 2) ms, $(fmt "$MIN" 1000 2)–$(fmt "$MAX" 1000 2) ms."
	echo
fi
fi
if [[ $BENCH_FLEET != 0 ]]; then
	EXPECTED_N=$BENCH_FLEET_RUNS
	echo "### Fleet: ECDSA P-256 clusters, median of $BENCH_FLEET_RUNS (wall clock)"
	echo
	echo "| command | clusters | median | min–max | per cluster (median) | goal | result |"
	echo "|---|---|---|---|---|---|---|"
	fleet_row() { # LABEL KEY N GOAL_SECONDS(or empty)
		local label=$1 key=$2 n=$3 goal=$4 per="—" result="—" goal_txt="—"
		cell "$key" 1 3 s
		if stats "$key"; then
			per="$(awk -v m="$MED" -v n="$n" 'BEGIN{printf "%.3f", 1000 * m / n}') ms"
			[[ -z $goal ]] || result=$(verdict le "$MED" "$goal")
		fi
		[[ -z $goal ]] || goal_txt="≤ $goal s"
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$n" "$CELL_MED" "$CELL_RANGE" "$per" "$goal_txt" "$result"
	}
	for n in "${FLEET_SIZES[@]}"; do
		goal=; ((n != 10000)) || goal=3
		fleet_row "\`meshca init --key-type ecdsa-p256\`" "fi.$n" "$n" "$goal"
	done
	if stats "ff.10000"; then
		fleet_row "file-system floor of init: 10,000 dirs of 5 files written, synced, renamed into place (\`bench/fsfloor.py\`, no meshca; run after each init)" "ff.10000" 10000 ""
		# init less the floor run after it, pair by pair: meshca's own part.
		read -r -a fi_s <<<"${SAMPLES[fi.10000]:-}"
		read -r -a ff_s <<<"${SAMPLES[ff.10000]:-}"
		if ((${#fi_s[@]} == ${#ff_s[@]} && ${#fi_s[@]} > 0)); then
			for ((k = 0; k < ${#fi_s[@]}; k++)); do
				SAMPLES[fo.10000]+="$(awk -v a="${fi_s[k]}" -v b="${ff_s[k]}" 'BEGIN{printf "%.6f", a - b}') "
			done
			fleet_row "\`meshca init\` less the floor run after it (meshca's own part)" "fo.10000" 10000 ""
		fi
	fi
	for n in "${FLEET_SIZES[@]}"; do
		goal=; ((n != 10000)) || goal=1
		fleet_row "\`meshca verify\`" "fv.$n" "$n" "$goal"
	done
	for n in "${FLEET_ROTATE_SIZES[@]}"; do
		goal=; ((n != 1000)) || goal=2
		fleet_row "\`meshca rotate\` (3 stages)" "fr.$n" "$n" "$goal"
	done
	for n in "${FLEET_ROTATE_SIZES[@]}"; do
		goal=; ((n != 1000)) || goal=1
		fleet_row "\`meshca verify --previous\` (source → stage-1)" "fp.$n" "$n" "$goal"
	done
	echo
	echo "A linear command keeps the same cost per cluster from 100 to 10,000 clusters."
	echo
fi
echo "CPU used by other processes while each case ran (should be ~0 on an idle machine):"
echo
for k in "${INTERF_ORDER[@]}"; do echo "- $k: ${INTERF[$k]}"; done
echo
if ((INTERF_SUSPECT)); then
	echo "**Warning: the machine was busy with other work during at least one case; rerun on an idle machine.**"
	echo
fi
echo "Ratios below 1 mean meshca is faster. Targets only print PASS/MISS; they never fail the script."

if ((${#FAILED[@]})); then
	echo
	echo "### Failures"
	echo
	for key in $(printf '%s\n' "${!FAILED[@]}" | sort); do
		echo "- \`$key\`: ${FAILED[$key]}"
	done
fi

# Exit 1 only when a command under test failed (not on a target miss).
exit "$ANY_FAILED"
