#!/usr/bin/env bash
# broken.sh - build one certs directory per `meshca verify` test case: a few
# good ones and one per finding code, each differing from a good baseline in
# exactly one thing.
#
# See the "broken.sh" section of testdata/README.md for every case and how it
# is made; testdata/broken-cases.tsv lists the finding each broken case must give.
set -euo pipefail

prog=${0##*/}
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

GOOD_CASES=(good good-three-level good-multi-root good-crl good-recipe)
BROKEN_CASES=(
	weak-signature weak-key unsupported-key unsupported-curve key-encrypted
	not-ca no-keycertsign pathlen-exceeded incompatible-eku
	unknown-critical-extension negative-serial root-not-self-signed-ca
	untrusted-chain bad-signature expired not-yet-valid expires-soon
	outlives-root no-aki no-san locality-mismatch chain-without-root
	crl-missing crl-bad-signature revoked crl-signer-no-crlsign crl-stale
	key-ec-parameters-first ca-cert-csr-first key-explicit-curve
	critical-aia critical-issuer-alt-name critical-dirname-constraints
	constraints-exclude-istiod constraints-exclude-trust-domain eku-server-only
	crl-not-yet-valid crl-critical-extension crl-only-some-reasons
	crl-holds-certificate chain-holds-crl-with-crl root-pem-headers
	root-combined-no-newline
)
ALL_CASES=("${GOOD_CASES[@]}" "${BROKEN_CASES[@]}")

usage() {
	cat <<EOF
usage: $prog [options] OUTDIR [CASE...]

Writes OUTDIR/CASE/ for every CASE (default: all of them). Each is a certs
directory: CASE/root-cert.pem, CASE/root-key.pem and CASE/cluster1/
{ca-cert,ca-key,cert-chain,root-cert}.pem (+ ca-crl.pem for the CRL cases).
An existing OUTDIR/CASE directory is deleted first.

options:
  -j N        build N cases at a time (default: number of CPUs, at most 8)
  --check     afterwards, check every case built with openssl (verify, x509 -text,
              crl -text) and fail if one does not show its intended change
  -l, --list  print the case names and exit
  -h, --help  show this help

cases:
  good:   ${GOOD_CASES[*]}
  broken: (see broken-cases.tsv)
$(printf '%s\n' "${BROKEN_CASES[@]}" | paste -sd' ' | fold -s -w 70 | sed 's/ *$//; s/^/          /')
EOF
}

usage_error() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	printf "Try '%s --help' for more information.\n" "$prog" >&2
	exit 2
}

fail() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}

# run CMD...: run quietly; on failure print the command and its output, exit 1.
run() {
	local out
	if ! out=$("$@" 2>&1); then
		printf '%s: command failed: %s\n%s\n' "$prog" "$*" "$out" >&2
		exit 1
	fi
}

#------------------------------------------------------------------------
# arguments

JOBS=
CHECK=0
POSITIONAL=()
while (($#)); do
	case $1 in
	-j) (($# >= 2)) || usage_error "option -j requires a value"; JOBS=$2; shift 2 ;;
	-j*) JOBS=${1#-j}; shift ;;
	--check) CHECK=1; shift ;;
	-l | --list) printf '%s\n' "${ALL_CASES[@]}"; exit 0 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; POSITIONAL+=("$@"); break ;;
	-?*) usage_error "unknown option '$1'" ;;
	*) POSITIONAL+=("$1"); shift ;;
	esac
done
((${#POSITIONAL[@]} >= 1)) || usage_error "missing OUTDIR"
OUTDIR=${POSITIONAL[0]}
[[ -n $OUTDIR ]] || usage_error "OUTDIR must not be empty"
CASES=("${POSITIONAL[@]:1}")
((${#CASES[@]})) || CASES=("${ALL_CASES[@]}")
for c in "${CASES[@]}"; do
	[[ " ${ALL_CASES[*]} " == *" $c "* ]] || usage_error "unknown case '$c' (see --list)"
done
if [[ -z $JOBS ]]; then
	JOBS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
	((JOBS <= 8)) || JOBS=8
fi
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || usage_error "-j needs a positive integer (got '$JOBS')"

command -v openssl >/dev/null 2>&1 || fail "openssl not found in PATH"
ossl_version=$(openssl version 2>/dev/null || true)
# OpenSSL 3 only: 'ca -crl_lastupdate/-crl_nextupdate', 'x509 -ext', and
# 'authorityKeyIdentifier = none' to stop 'x509 -req' from adding an AKI.
[[ $ossl_version =~ ^OpenSSL\ ([0-9]+)\. ]] && ((BASH_REMATCH[1] >= 3)) ||
	fail "need OpenSSL 3.x, found '${ossl_version:-unknown}'"

# utc DAYS: the time DAYS days from now (negative = ago) as YYMMDDHHMMSSZ,
# the form 'openssl ca -startdate/-enddate/-crl_*update' take.
utc() {
	local d=$1
	date -u -d "$d days" +%y%m%d%H%M%SZ 2>/dev/null ||
		date -u -v"$( ((d < 0)) && echo "$d" || echo "+$d")"d +%y%m%d%H%M%SZ 2>/dev/null ||
		fail "'date' can compute neither 'date -d' (GNU) nor 'date -v' (BSD) offsets"
}
utc 0 >/dev/null

#------------------------------------------------------------------------
# building blocks. They work in the current directory (the case's scratch
# directory): an object NAME is NAME.key (PKCS#8 private key) + NAME.pem.

# genkey FILE TYPE: unencrypted PKCS#8 key, mode 0600.
genkey() {
	local f=$1 t=$2
	case $t in
	p256) run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$f" ;;
	p521) run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$f" ;;
	rsa2048 | rsa1024) run openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${t#rsa}" -out "$f" ;;
	ed25519) run openssl genpkey -algorithm ED25519 -out "$f" ;;
	*) fail "genkey: unknown key type $t" ;;
	esac
	chmod 600 "$f"
}

# new_serial: REPLY = a random positive 15-byte serial as hex digits (no 0x).
# (Set in the current shell, not printed: \$(...) would run \$RANDOM in a
# subshell, which older bash versions do not reseed.)
new_serial() {
	local i
	printf -v REPLY '%02x' $((1 + RANDOM % 127))
	for i in 1 2 3 4 5 6 7; do printf -v REPLY '%s%04x' "$REPLY" "$RANDOM"; done
}

# Minimal config for 'openssl req' (everything comes from -subj), so that
# the system openssl.cnf cannot add anything.
write_req_conf() {
	printf '[ req ]\ndistinguished_name = dn\nutf8 = yes\nstring_mask = utf8only\n[ dn ]\n' >req.conf
}

# csr NAME SUBJ KEYTYPE: NAME.csr for NAME.key (generated unless present).
csr() {
	[[ -f $1.key ]] || genkey "$1.key" "$3"
	[[ -f req.conf ]] || write_req_conf
	run openssl req -new -config req.conf -key "$1.key" -subj "$2" -out "$1.csr"
}

# mkroot NAME SUBJ DAYS KEYTYPE [EXTLINE...]: self-signed root NAME.pem.
# EXTLINEs ("name = value") are added to, or replace, the default extensions.
# Baseline root profile: critical CA:TRUE (no pathlen), critical keyUsage
# digitalSignature+keyCertSign+cRLSign, SKI, no AKI, sha256.
mkroot() {
	local n=$1 subj=$2 days=$3 kt=$4 l
	shift 4
	csr "$n" "$subj" "$kt"
	{
		echo '[ ext ]'
		# an EXTLINE replaces the default line of the same name
		for l in 'subjectKeyIdentifier = hash' 'basicConstraints = critical, CA:TRUE' \
			'keyUsage = critical, digitalSignature, keyCertSign, cRLSign'; do
			[[ " ${*%% *} " == *" ${l%% *} "* ]] || echo "$l"
		done
		for l; do echo "$l"; done
	} >"$n.ext"
	new_serial
	run openssl x509 -req -in "$n.csr" -signkey "$n.key" -sha256 -days "$days" \
		-set_serial "0x$REPLY" -extfile "$n.ext" -extensions ext -out "$n.pem"
}

# base_root: the baseline root, 'root' = O=Istio, CN=Root CA, P-256, 3650 days.
base_root() { mkroot root "/O=Istio/CN=Root CA" 3650 p256; }

# issue NAME ISSUER [key=value...]: CA certificate NAME.pem for NAME.key
# (generated unless present), signed by ISSUER.key as ISSUER.pem.
# The defaults are the baseline cluster CA profile; each key=value changes one:
#   subj=  key=(p256|p521|rsa2048|rsa1024|ed25519)  days=  md=  serial=
#   start=/end= (YYMMDDHHMMSSZ; then 'openssl ca' signs instead of 'x509 -req')
#   bc=  ku=  san=  eku=  aki=  extra=   (an empty value leaves the extension out)
issue() {
	local n=$1 iss=$2
	shift 2
	local subj="/O=Istio/CN=Intermediate CA/L=cluster1" key=p256 days=730 md=sha256
	local serial start='' end='' extra='' eku=''
	local bc="critical, CA:TRUE, pathlen:0"
	local ku="critical, digitalSignature, keyCertSign, cRLSign"
	local san="DNS:istiod.istio-system.svc"
	local aki=keyid
	local kv
	new_serial
	serial=0x$REPLY
	for kv; do
		case ${kv%%=*} in
		subj | key | days | md | serial | start | end | bc | ku | san | eku | aki | extra)
			printf -v "${kv%%=*}" '%s' "${kv#*=}" ;;
		*) fail "issue: unknown setting '$kv'" ;;
		esac
	done
	csr "$n" "$subj" "$key"
	{
		echo '[ ext ]'
		echo 'subjectKeyIdentifier = hash'
		[[ -z $bc ]] || echo "basicConstraints = $bc"
		[[ -z $ku ]] || echo "keyUsage = $ku"
		[[ -z $eku ]] || echo "extendedKeyUsage = $eku"
		[[ -z $san ]] || echo "subjectAltName = $san"
		# 'none' is how OpenSSL 3 is told not to add its default AKI.
		echo "authorityKeyIdentifier = ${aki:-none}"
		[[ -z $extra ]] || echo "$extra"
	} >"$n.ext"
	if [[ -n $start || -n $end ]]; then
		cadb "$iss"
		run openssl ca -batch -config "db-$iss/ca.conf" -notext -preserveDN -rand_serial \
			-cert "$iss.pem" -keyfile "$iss.key" -md "$md" \
			-startdate "${start:?}" -enddate "${end:?}" \
			-extfile "$n.ext" -extensions ext -in "$n.csr" -out "$n.pem"
	else
		run openssl x509 -req -in "$n.csr" -CA "$iss.pem" -CAkey "$iss.key" "-$md" \
			-days "$days" -set_serial "$serial" -extfile "$n.ext" -extensions ext -out "$n.pem"
	fi
}

# cadb ISSUER: an 'openssl ca' directory db-ISSUER/ (config, index, crlnumber).
cadb() {
	local d=db-$1
	[[ -d $d ]] && return 0
	mkdir "$d"
	: >"$d/index.txt"
	echo 1000 >"$d/crlnumber"
	new_serial
	echo "$REPLY" >"$d/serial"
	cat >"$d/ca.conf" <<EOF
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = $PWD/$d
database = \$dir/index.txt
new_certs_dir = \$dir
serial = \$dir/serial
crlnumber = \$dir/crlnumber
default_md = sha256
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
crl_extensions = crl_ext
[ policy_any ]
organizationName = optional
commonName = supplied
localityName = optional
[ crl_ext ]
authorityKeyIdentifier = keyid:always
EOF
}

# crl ISSUER OUT [revoke=NAME] [last=YYMMDDHHMMSSZ next=YYMMDDHHMMSSZ]:
# a v2 CRL (CRL number + AKI) signed by ISSUER, nextUpdate 30 days ahead
# unless last/next are given; revoke=NAME lists NAME.pem's serial first.
crl() {
	local iss=$1 out=$2 revoke='' last='' next='' ext='' kv
	shift 2
	for kv; do
		case ${kv%%=*} in
		revoke | last | next | ext) printf -v "${kv%%=*}" '%s' "${kv#*=}" ;;
		*) fail "crl: unknown setting '$kv'" ;;
		esac
	done
	cadb "$iss"
	if [[ -n $revoke ]]; then
		run openssl ca -batch -config "db-$iss/ca.conf" -cert "$iss.pem" -keyfile "$iss.key" \
			-revoke "$revoke.pem" -crl_reason keyCompromise
	fi
	local dates=()
	[[ -z $last ]] || dates+=(-crl_lastupdate "$last")
	[[ -z $next ]] || dates+=(-crl_nextupdate "$next")
	local conf=db-$iss/ca.conf
	if [[ -n $ext ]]; then
		# the baseline CRL extensions plus EXT (lines, sections allowed)
		conf=db-$iss/ca-ext.conf
		sed 's/^crl_extensions = crl_ext$/crl_extensions = crl_ext_more/' "db-$iss/ca.conf" >"$conf"
		printf '[ crl_ext_more ]\nauthorityKeyIdentifier = keyid:always\n%s\n' "$ext" >>"$conf"
	fi
	run openssl ca -batch -config "$conf" -cert "$iss.pem" -keyfile "$iss.key" \
		-md sha256 -gencrl "${dates[@]}" -out "$out"
}

# bundle [key=value...]: write the case directory $D from the scratch objects.
#   roots="root ..."   certificates of root-cert.pem (CASE/ and CASE/cluster1/)
#   rootkey=root       CASE/root-key.pem (the key of a certificate of root-cert.pem)
#   ca=ca              cluster1/ca-cert.pem from ca.pem
#   cakey=ca.key       cluster1/ca-key.pem
#   chain="root"       cert-chain.pem = ca.pem followed by these
#   crls=""            cluster1/ca-crl.pem = these CRL files (none: no ca-crl.pem)
bundle() {
	local roots=root rootkey=root ca=ca cakey=ca.key chain=root crls='' kv x
	for kv; do
		case ${kv%%=*} in
		roots | rootkey | ca | cakey | chain | crls) printf -v "${kv%%=*}" '%s' "${kv#*=}" ;;
		*) fail "bundle: unknown setting '$kv'" ;;
		esac
	done
	mkdir -p "$D/cluster1"
	: >"$D/root-cert.pem"
	for x in $roots; do cat "$x.pem" >>"$D/root-cert.pem"; done
	if [[ -n $rootkey ]]; then
		cp "$rootkey.key" "$D/root-key.pem"
		chmod 600 "$D/root-key.pem"
	fi
	cp "$D/root-cert.pem" "$D/cluster1/root-cert.pem"
	cp "$ca.pem" "$D/cluster1/ca-cert.pem"
	cp "$cakey" "$D/cluster1/ca-key.pem"
	chmod 600 "$D/cluster1/ca-key.pem"
	cat "$ca.pem" >"$D/cluster1/cert-chain.pem"
	for x in $chain; do cat "$x.pem" >>"$D/cluster1/cert-chain.pem"; done
	if [[ -n $crls ]]; then
		: >"$D/cluster1/ca-crl.pem"
		for x in $crls; do cat "$x" >>"$D/cluster1/ca-crl.pem"; done
	fi
}

#------------------------------------------------------------------------
# the cases: case_NAME runs in an empty scratch directory and writes $D.

# Good: the baseline.
case_good() { base_root; issue ca root; bundle; }

# Good: root -> Regional CA (pathlen:1) -> cluster CA (pathlen:0).
case_good-three-level() {
	base_root
	issue regional root subj="/O=Istio/CN=Regional CA" bc="critical, CA:TRUE, pathlen:1" san= days=1825
	issue ca regional
	bundle chain="regional root"
}

# Good: root-cert.pem = the signing root + an unrelated second root (rotation).
case_good-multi-root() {
	base_root
	mkroot root2 "/O=Istio/CN=New Root CA" 3650 p256
	issue ca root
	bundle roots="root root2"
}

# Good: ca-crl.pem = empty CRL of the root + empty CRL of the cluster CA.
case_good-crl() {
	base_root
	issue ca root
	crl root root.crl
	crl ca ca.crl
	bundle crls="root.crl ca.crl"
}

# Good: the real recipe (Istio's Makefile profile), RSA-2048 to stay fast.
case_good-recipe() { run "$here/recipe.sh" -q --key-type rsa-2048 "$D" cluster1; }

case_weak-signature() {
	mkroot root "/O=Istio/CN=Root CA" 3650 rsa2048
	issue ca root md=sha1
	bundle
}
case_weak-key() { base_root; issue ca root key=rsa1024; bundle; }
case_unsupported-key() { base_root; issue ca root key=ed25519; bundle; }
case_unsupported-curve() { base_root; issue ca root key=p521; bundle; }
case_key-encrypted() {
	base_root
	issue ca root
	run openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:test -in ca.key -out ca.enc.key
	bundle cakey=ca.enc.key
}
case_not-ca() { base_root; issue ca root bc="critical, CA:FALSE"; bundle; }
case_no-keycertsign() { base_root; issue ca root ku="critical, digitalSignature, cRLSign"; bundle; }
case_pathlen-exceeded() {
	base_root
	issue regional root subj="/O=Istio/CN=Regional CA" bc="critical, CA:TRUE, pathlen:0" san= days=1825
	issue ca regional
	bundle chain="regional root"
}
case_incompatible-eku() { base_root; issue ca root eku=clientAuth; bundle; }
case_unknown-critical-extension() {
	base_root
	issue ca root extra="1.2.3.4.5.6.7 = critical, ASN1:UTF8String:x"
	bundle
}
case_negative-serial() { base_root; issue ca root serial=-0x7e57ab1ec0ffee; bundle; }

# root-cert.pem (in CASE/ and cluster1/, so the two sets stay equal) = the root
# + cluster2's CA: a CA certificate issued by the root, so not self-signed.
# (A copy of cluster1's own CA would also make the verifier trust ca-cert.pem
# directly and then complain about cert-chain.pem's order.)
case_root-not-self-signed-ca() {
	base_root
	issue ca root
	issue stray root subj="/O=Istio/CN=Intermediate CA/L=cluster2"
	bundle roots="root stray"
}

# root-cert.pem = root A (O=Other, CN=Other Root); ca-cert.pem is signed by
# root B (the baseline O=Istio, CN=Root CA), which is in cert-chain.pem.
# Root B carries an AKI (keyid:always) because, not being trusted, it is
# judged as an intermediate, which would otherwise add a no-aki warning.
case_untrusted-chain() {
	mkroot rootA "/O=Other/CN=Other Root" 3650 p256
	mkroot root "/O=Istio/CN=Root CA" 3650 p256 "authorityKeyIdentifier = keyid:always"
	issue ca root
	bundle roots=rootA rootkey=rootA chain=root
}

# root-cert.pem = an impostor root: same subject as the signing root, other key.
case_bad-signature() {
	base_root
	issue ca root
	local ski
	ski=$(openssl x509 -in root.pem -noout -ext subjectKeyIdentifier | sed -n 's/^ *\([0-9A-F:]*\) *$/\1/p')
	mkroot impostor "/O=Istio/CN=Root CA" 3650 p256 "subjectKeyIdentifier = ${ski:?}"
	bundle roots=impostor rootkey=impostor chain=impostor
}

case_expired() { base_root; issue ca root start="$(utc -731)" end="$(utc -1)"; bundle; }
case_not-yet-valid() { base_root; issue ca root start="$(utc 1)" end="$(utc 731)"; bundle; }
case_expires-soon() { base_root; issue ca root days=10; bundle; }
case_outlives-root() { mkroot root "/O=Istio/CN=Root CA" 100 p256; issue ca root; bundle; }
case_no-aki() { base_root; issue ca root aki=none; bundle; }
case_no-san() { base_root; issue ca root san=; bundle; }
case_locality-mismatch() { base_root; issue ca root subj="/O=Istio/CN=Intermediate CA/L=cluster9"; bundle; }
case_chain-without-root() { base_root; issue ca root; bundle chain=; }

case_crl-missing() {
	base_root
	issue ca root
	crl root root.crl
	bundle crls=root.crl
}

# good-crl + a third CRL: issuer name = the cluster CA's subject (same bytes,
# made from the same -subj), signed by another key (a self-signed look-alike).
case_crl-bad-signature() {
	base_root
	issue ca root
	crl root root.crl
	crl ca ca.crl
	mkroot forger "/O=Istio/CN=Intermediate CA/L=cluster1" 3650 p256
	crl forger forged.crl
	bundle crls="root.crl ca.crl forged.crl"
}

case_revoked() {
	base_root
	issue ca root
	crl root root.crl revoke=ca
	crl ca ca.crl
	bundle crls="root.crl ca.crl"
}

case_crl-signer-no-crlsign() {
	base_root
	issue ca root ku="critical, digitalSignature, keyCertSign"
	crl root root.crl
	crl ca ca.crl
	bundle crls="root.crl ca.crl"
}

case_crl-stale() {
	base_root
	issue ca root
	crl root root.crl
	crl ca ca.crl last="$(utc -31)" next="$(utc -1)"
	bundle crls="root.crl ca.crl"
}

# ca-key.pem as `openssl ecparam -genkey` writes it: EC PARAMETERS, then the
# key. istiod reads only the first block.
case_key-ec-parameters-first() {
	run openssl ecparam -genkey -name prime256v1 -out ca.key
	base_root
	issue ca root
	bundle
}

# ca-cert.pem = the CSR, then the certificate.
case_ca-cert-csr-first() {
	base_root
	issue ca root
	bundle
	cat ca.csr ca.pem >"$D/cluster1/ca-cert.pem"
}

# ca-key.pem = the same key with explicit curve parameters (SEC1).
case_key-explicit-curve() {
	base_root
	issue ca root
	run openssl ec -in ca.key -param_enc explicit -out ca.explicit.key
	bundle cakey=ca.explicit.key
}

case_critical-aia() {
	base_root
	issue ca root extra="authorityInfoAccess = critical, caIssuers;URI:http://ca.example/root.crt"
	bundle
}
case_critical-issuer-alt-name() {
	base_root
	issue ca root extra="issuerAltName = critical, DNS:root.example"
	bundle
}
# Name constraints with a directoryName: Go leaves them unhandled.
case_critical-dirname-constraints() {
	base_root
	issue ca root extra=$'nameConstraints = critical, permitted;dirName:nc_dir\n[ nc_dir ]\nO = Istio'
	bundle
}
# The root excludes the intermediate's (and istiod's) DNS name.
case_constraints-exclude-istiod() {
	mkroot root "/O=Istio/CN=Root CA" 3650 p256 "nameConstraints = critical, excluded;DNS:istiod.istio-system.svc"
	issue ca root
	bundle
}
# The cluster CA excludes the trust domain: every workload certificate fails.
case_constraints-exclude-trust-domain() {
	base_root
	issue ca root extra="nameConstraints = critical, excluded;URI:cluster.local"
	bundle
}
case_eku-server-only() { base_root; issue ca root eku=serverAuth; bundle; }

case_crl-not-yet-valid() {
	base_root
	issue ca root
	crl root root.crl
	crl ca ca.crl last="$(utc 1)" next="$(utc 31)"
	bundle crls="root.crl ca.crl"
}
case_crl-critical-extension() {
	base_root
	issue ca root
	crl root root.crl
	crl ca ca.crl ext="1.2.3.4.5.6.7 = critical, ASN1:NULL"
	bundle crls="root.crl ca.crl"
}
case_crl-only-some-reasons() {
	base_root
	issue ca root
	crl root root.crl
	crl ca ca.crl ext=$'issuingDistributionPoint = critical, @idp\n[ idp ]\nfullname = URI:http://ca.example/ca.crl\nonlysomereasons = keyCompromise'
	bundle crls="root.crl ca.crl"
}
# good-crl + the cluster CA's certificate appended to ca-crl.pem.
case_crl-holds-certificate() {
	base_root
	issue ca root
	crl root root.crl
	crl ca ca.crl
	bundle crls="root.crl ca.crl"
	cat ca.pem >>"$D/cluster1/ca-crl.pem"
}
# good-crl + a CRL block appended to cert-chain.pem: with ca-crl.pem present,
# istiod parses every block of cert-chain.pem as a certificate.
case_chain-holds-crl-with-crl() {
	base_root
	issue ca root
	crl root root.crl
	crl ca ca.crl
	bundle crls="root.crl ca.crl"
	cat root.crl >>"$D/cluster1/cert-chain.pem"
}
# cluster1/root-cert.pem with a PEM header line: Go's certificate pool skips
# the block, so istiod has no root.
case_root-pem-headers() {
	base_root
	issue ca root
	bundle
	awk '{print} /-----BEGIN CERTIFICATE-----/{print "Comment: the mesh root"; print ""}' \
		root.pem >"$D/cluster1/root-cert.pem"
}
# The shape of Istio's samples/certs/root-cert-combined.pem: two roots, no
# final newline (cluster1's copy only). istiod accepts it: a warning.
case_root-combined-no-newline() {
	base_root
	mkroot root2 "/O=Istio/CN=New Root CA" 3650 p256
	issue ca root
	bundle roots="root root2"
	printf '%s' "$(cat root.pem root2.pem)" >"$D/cluster1/root-cert.pem"
}

#------------------------------------------------------------------------
# --check: openssl's view of each case. Runs inside $D, with a scratch
# directory $CK for a workload leaf issued by cluster1's CA when needed.

check_fail() {
	printf '%s: check failed: %s\n' "$prog" "$*" >&2
	CHECK_ERRORS=1
}
# certs FILE: 'x509 -text' of every certificate of FILE.
certs() {
	local f
	split_certs "$1" "$CK/certs"
	for f in "$CK"/certs.*.pem; do openssl x509 -in "$f" -noout -text 2>&1; done
}
# crls FILE: 'crl -text' of every CRL of FILE.
crls() {
	local blk
	while IFS= read -r -d '' blk; do
		openssl crl -noout -text <<<"$blk" 2>&1
	done < <(awk '/-----BEGIN X509 CRL-----/{b=""} {b=b $0 "\n"} /-----END X509 CRL-----/{printf "%s%c", b, 0}' "$1")
}
# has/hasnt FILE ERE: the text of the first certificate of FILE (not) matching.
has() { grep -Eq -- "$2" <<<"$(openssl x509 -in "$1" -noout -text 2>&1)" || check_fail "$1 lacks /$2/"; }
hasnt() { ! grep -Eq -- "$2" <<<"$(openssl x509 -in "$1" -noout -text 2>&1)" || check_fail "$1 shows /$2/"; }
# split_certs FILE PREFIX: PREFIX.1.pem, PREFIX.2.pem, ... one per certificate.
split_certs() {
	rm -f "$2".*.pem
	awk -v p="$2" '/-----BEGIN CERTIFICATE-----/{n++} n{print > (p "." n ".pem")}' "$1"
}
count() {
	local n
	n=$(grep -c -- "-----BEGIN $2-----" "$1" || true)
	((n == $3)) || check_fail "$1 holds $n $2 blocks, expected $3"
}
crl_has() { grep -Eq -- "$2" <<<"$(crls "$1")" || check_fail "$1 (CRLs) lack /$2/"; }

# verify_ok|verify_fails ERE [OPTS...]: 'openssl verify' of ca-cert.pem, with
# cluster1/root-cert.pem trusted and cluster1/cert-chain.pem as untrusted.
# leaf_ok|leaf_fails: the same for a workload leaf signed by ca-key.pem.
ossl_verify() {
	local target=$1
	shift
	openssl verify -CAfile cluster1/root-cert.pem -untrusted cluster1/cert-chain.pem "$@" "$target" 2>&1
}
verify_ok() { local o; o=$(ossl_verify cluster1/ca-cert.pem "$@") || check_fail "openssl verify $* failed: $o"; }
verify_fails() {
	local o re=$1
	shift
	if o=$(ossl_verify cluster1/ca-cert.pem "$@"); then check_fail "openssl verify $* passed, expected /$re/"; fi
	grep -Eq -- "$re" <<<"$o" || check_fail "openssl verify $*: expected /$re/, got: $o"
}
leaf() {
	[[ -f $CK/leaf.pem ]] && return 0
	printf '[ req ]\ndistinguished_name = dn\n[ dn ]\n[ ext ]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = URI:spiffe://cluster.local/ns/default/sa/default\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n' >"$CK/leaf.conf"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CK/leaf.key" 2>/dev/null &&
		openssl req -new -config "$CK/leaf.conf" -key "$CK/leaf.key" -subj "/O=Istio/CN=Workload" -out "$CK/leaf.csr" 2>/dev/null &&
		openssl x509 -req -in "$CK/leaf.csr" -CA cluster1/ca-cert.pem -CAkey cluster1/ca-key.pem -days 1 \
			-extfile "$CK/leaf.conf" -extensions ext -out "$CK/leaf.pem" 2>/dev/null ||
		check_fail "cannot issue a workload leaf with cluster1/ca-key.pem"
}
leaf_ok() { local o; leaf; o=$(ossl_verify "$CK/leaf.pem" "$@") || check_fail "openssl verify (leaf) $* failed: $o"; }
leaf_fails() {
	local o re=$1
	shift
	leaf
	if o=$(ossl_verify "$CK/leaf.pem" "$@"); then check_fail "openssl verify (leaf) $* passed, expected /$re/"; fi
	grep -Eq -- "$re" <<<"$o" || check_fail "openssl verify (leaf) $*: expected /$re/, got: $o"
}
days_left_between() { # FILE MIN MAX: FILE's notAfter is MIN..MAX days from now
	openssl x509 -in "$1" -noout -checkend $(($2 * 86400)) >/dev/null || check_fail "$1 ends before $2 days"
	! openssl x509 -in "$1" -noout -checkend $(($3 * 86400)) >/dev/null || check_fail "$1 lasts more than $3 days"
}

check_case() {
	C=$1
	CK=$SCRATCH/check-$C
	mkdir -p "$CK"
	(
		set +e # a failing command is a finding here, reported by check_fail
		CHECK_ERRORS=0
		cd "$D"
		for f in root-cert.pem cluster1/*.pem; do
			[[ $C == root-combined-no-newline || -z $(tail -c1 "$f") ]] || check_fail "$f does not end with a newline"
		done
		case $C in
		root-pem-headers | root-combined-no-newline) ;; # cluster1's copy is the change
		*) cmp -s root-cert.pem cluster1/root-cert.pem || check_fail "root-cert.pem differs from cluster1/root-cert.pem" ;;
		esac
		if [[ $C != key-encrypted && $C != key-explicit-curve ]]; then
			[[ $(openssl x509 -in cluster1/ca-cert.pem -noout -pubkey 2>&1) == $(openssl pkey -in cluster1/ca-key.pem -pubout 2>&1) ]] ||
				check_fail "ca-key.pem does not match ca-cert.pem"
		fi
		if [[ -f root-key.pem ]]; then
			local k found=0
			k=$(openssl pkey -in root-key.pem -pubout 2>&1)
			split_certs root-cert.pem "$CK/root"
			for f in "$CK"/root.*.pem; do
				[[ $(openssl x509 -in "$f" -noout -pubkey 2>&1) == "$k" ]] && found=1
			done
			((found)) || check_fail "root-key.pem matches no certificate of root-cert.pem"
		fi
		case $C in
		good | good-multi-root | good-crl | good-three-level | good-recipe)
			verify_ok -x509_strict
			leaf_ok -x509_strict -purpose sslserver
			;;
		esac
		case $C in
		good | good-multi-root | good-crl | good-three-level)
			has cluster1/ca-cert.pem 'Subject: O = Istio, CN = Intermediate CA, L = cluster1'
			has cluster1/ca-cert.pem 'CA:TRUE, pathlen:0'
			has cluster1/ca-cert.pem 'Digital Signature, Certificate Sign, CRL Sign'
			has cluster1/ca-cert.pem 'DNS:istiod.istio-system.svc'
			has cluster1/ca-cert.pem 'Authority Key Identifier'
			has cluster1/ca-cert.pem 'Signature Algorithm: ecdsa-with-SHA256'
			;;
		esac
		case $C in
		good) count cluster1/cert-chain.pem CERTIFICATE 2; has root-cert.pem 'Subject: O = Istio, CN = Root CA' ;;
		good-three-level)
			count cluster1/cert-chain.pem CERTIFICATE 3
			has cluster1/ca-cert.pem 'Issuer: O = Istio, CN = Regional CA'
			grep -q 'CA:TRUE, pathlen:1' <<<"$(certs cluster1/cert-chain.pem)" || check_fail "no pathlen:1 CA in the chain" ;;
		good-multi-root) count root-cert.pem CERTIFICATE 2 ;;
		good-crl)
			count cluster1/ca-crl.pem 'X509 CRL' 2
			[[ $(crls cluster1/ca-crl.pem | grep -c 'No Revoked Certificates') == 2 ]] || check_fail "CRLs are not empty"
			verify_ok -crl_check_all -CRLfile cluster1/ca-crl.pem
			leaf_ok -crl_check_all -CRLfile cluster1/ca-crl.pem ;;
		good-recipe) has cluster1/ca-cert.pem 'Signature Algorithm: sha256WithRSAEncryption' ;;
		weak-signature)
			has cluster1/ca-cert.pem 'Signature Algorithm: sha1WithRSAEncryption'
			verify_fails 'digest algorithm too weak' -auth_level 2 ;;
		weak-key)
			has cluster1/ca-cert.pem 'Public-Key: \(1024 bit\)'
			verify_fails 'EE certificate key too weak' -auth_level 2 ;;
		unsupported-key)
			has cluster1/ca-cert.pem 'Public Key Algorithm: ED25519'
			grep -q 'BEGIN PRIVATE KEY' cluster1/ca-key.pem || check_fail "ca-key.pem is not PKCS#8" ;;
		unsupported-curve) has cluster1/ca-cert.pem 'NIST CURVE: P-521' ;;
		key-encrypted)
			count cluster1/ca-key.pem 'ENCRYPTED PRIVATE KEY' 1
			[[ $(openssl pkey -in cluster1/ca-key.pem -passin pass:test -pubout 2>&1) == $(openssl x509 -in cluster1/ca-cert.pem -noout -pubkey) ]] ||
				check_fail "ca-key.pem (password 'test') does not match ca-cert.pem" ;;
		not-ca) has cluster1/ca-cert.pem 'CA:FALSE'; verify_ok; leaf_fails 'invalid CA certificate' ;;
		no-keycertsign)
			has cluster1/ca-cert.pem 'Digital Signature, CRL Sign$'
			verify_ok; leaf_fails 'key usage does not include certificate signing' ;;
		pathlen-exceeded)
			grep -q 'Subject: O = Istio, CN = Regional CA' <<<"$(certs cluster1/cert-chain.pem)" || check_fail "no Regional CA in the chain"
			[[ $(certs cluster1/cert-chain.pem | grep -c 'CA:TRUE, pathlen:0') == 2 ]] || check_fail "the two CAs are not both pathlen:0"
			verify_ok; leaf_fails 'path length constraint exceeded' ;;
		incompatible-eku)
			has cluster1/ca-cert.pem 'TLS Web Client Authentication'
			hasnt cluster1/ca-cert.pem 'TLS Web Server Authentication'
			leaf_fails 'unsuitable certificate purpose' -purpose sslserver ;;
		unknown-critical-extension)
			has cluster1/ca-cert.pem '1\.2\.3\.4\.5\.6\.7: critical'
			verify_fails 'unhandled critical extension' ;;
		negative-serial) has cluster1/ca-cert.pem '\(Negative\)|\(-0x' ;;
		root-not-self-signed-ca)
			count root-cert.pem CERTIFICATE 2
			split_certs root-cert.pem "$CK/root"
			has "$CK/root.2.pem" 'Subject: O = Istio, CN = Intermediate CA, L = cluster2'
			has "$CK/root.2.pem" 'Issuer: O = Istio, CN = Root CA'
			openssl verify -CAfile "$CK/root.1.pem" "$CK/root.2.pem" >/dev/null 2>&1 || check_fail "the 2nd certificate is not issued by the root"
			verify_ok -x509_strict ;;
		untrusted-chain)
			has cluster1/root-cert.pem 'Subject: O = Other, CN = Other Root'
			has cluster1/ca-cert.pem 'Issuer: O = Istio, CN = Root CA'
			verify_fails 'self-signed certificate in certificate chain' ;;
		bad-signature)
			has cluster1/root-cert.pem 'Subject: O = Istio, CN = Root CA'
			has cluster1/ca-cert.pem 'Issuer: O = Istio, CN = Root CA'
			verify_fails 'certificate signature failure' ;;
		expired) verify_fails 'certificate has expired' ;;
		not-yet-valid) verify_fails 'certificate is not yet valid' ;;
		expires-soon) verify_ok; days_left_between cluster1/ca-cert.pem 9 11 ;;
		outlives-root) verify_ok; days_left_between root-cert.pem 99 101; days_left_between cluster1/ca-cert.pem 729 731 ;;
		no-aki)
			hasnt cluster1/ca-cert.pem 'Authority Key Identifier'
			has cluster1/ca-cert.pem 'Subject Key Identifier'
			verify_ok; verify_fails 'Missing Authority Key Identifier' -x509_strict ;;
		no-san) verify_ok; hasnt cluster1/ca-cert.pem 'Subject Alternative Name' ;;
		locality-mismatch) verify_ok; has cluster1/ca-cert.pem 'Subject: O = Istio, CN = Intermediate CA, L = cluster9' ;;
		chain-without-root) verify_ok; count cluster1/cert-chain.pem CERTIFICATE 1 ;;
		crl-missing)
			count cluster1/ca-crl.pem 'X509 CRL' 1
			crl_has cluster1/ca-crl.pem 'Issuer: O = Istio, CN = Root CA'
			verify_ok -crl_check_all -CRLfile cluster1/ca-crl.pem
			leaf_fails 'unable to get certificate CRL' -crl_check_all -CRLfile cluster1/ca-crl.pem ;;
		crl-bad-signature)
			count cluster1/ca-crl.pem 'X509 CRL' 3
			[[ $(crls cluster1/ca-crl.pem | grep -c 'Issuer: O = Istio, CN = Intermediate CA, L = cluster1') == 2 ]] ||
				check_fail "expected 2 CRLs issued by the cluster CA's name"
			awk '/BEGIN X509 CRL/{n++} n==2' cluster1/ca-crl.pem >"$CK/second.crl"
			awk '/BEGIN X509 CRL/{n++} n==3' cluster1/ca-crl.pem >"$CK/third.crl"
			# ('openssl crl -CAfile' exits 0 either way; it prints the verdict)
			[[ $(openssl crl -noout -in "$CK/second.crl" -CAfile cluster1/ca-cert.pem 2>&1) == "verify OK" ]] ||
				check_fail "the cluster CA's CRL does not verify"
			[[ $(openssl crl -noout -in "$CK/third.crl" -CAfile cluster1/ca-cert.pem 2>&1) == *"verify failure"* ]] ||
				check_fail "the forged CRL verifies" ;;
		revoked)
			crl_has cluster1/ca-crl.pem "Serial Number: $(openssl x509 -in cluster1/ca-cert.pem -noout -serial | cut -d= -f2)"
			verify_fails 'certificate revoked' -crl_check_all -CRLfile cluster1/ca-crl.pem ;;
		crl-signer-no-crlsign)
			has cluster1/ca-cert.pem 'Digital Signature, Certificate Sign$'
			count cluster1/ca-crl.pem 'X509 CRL' 2
			verify_ok -crl_check_all -CRLfile cluster1/ca-crl.pem
			leaf_fails 'key usage does not include CRL signing' -crl_check_all -CRLfile cluster1/ca-crl.pem ;;
		crl-stale)
			count cluster1/ca-crl.pem 'X509 CRL' 2
			verify_ok -crl_check_all -CRLfile cluster1/ca-crl.pem
			leaf_fails 'CRL has expired' -crl_check_all -CRLfile cluster1/ca-crl.pem ;;
		key-ec-parameters-first)
			[[ $(grep -m1 -- '-----BEGIN' cluster1/ca-key.pem) == '-----BEGIN EC PARAMETERS-----' ]] ||
				check_fail "ca-key.pem does not start with EC PARAMETERS" ;;
		ca-cert-csr-first)
			[[ $(grep -m1 -- '-----BEGIN' cluster1/ca-cert.pem) == '-----BEGIN CERTIFICATE REQUEST-----' ]] ||
				check_fail "ca-cert.pem does not start with a CSR" ;;
		key-explicit-curve)
			grep -q 'Field Type: prime-field' <<<"$(openssl ec -in cluster1/ca-key.pem -noout -text 2>&1)" ||
				check_fail "ca-key.pem has no explicit curve parameters" ;;
		critical-aia) has cluster1/ca-cert.pem 'Authority Information Access: critical' ;;
		critical-issuer-alt-name) has cluster1/ca-cert.pem 'Issuer Alternative Name: critical' ;;
		critical-dirname-constraints) has cluster1/ca-cert.pem 'DirName:O ?= ?Istio' ;;
		constraints-exclude-istiod)
			has root-cert.pem 'Excluded:'
			verify_fails 'excluded subtree violation' ;;
		constraints-exclude-trust-domain)
			has cluster1/ca-cert.pem 'URI:cluster.local'
			leaf_fails 'excluded subtree violation' ;;
		eku-server-only) leaf_fails 'unsuitable certificate purpose' -purpose sslclient ;;
		crl-not-yet-valid) leaf_fails 'CRL is not yet valid' -crl_check_all -CRLfile cluster1/ca-crl.pem ;;
		crl-critical-extension)
			crl_has cluster1/ca-crl.pem '1\.2\.3\.4\.5\.6\.7: critical'
			leaf_fails 'unhandled critical CRL extension' -crl_check_all -CRLfile cluster1/ca-crl.pem ;;
		crl-only-some-reasons) crl_has cluster1/ca-crl.pem 'Some Reasons:|Only Some Reasons' ;;
		crl-holds-certificate | chain-holds-crl-with-crl)
			count cluster1/ca-crl.pem 'X509 CRL' 2 ;;
		root-pem-headers) grep -q '^Comment: ' cluster1/root-cert.pem || check_fail "no PEM header line" ;;
		root-combined-no-newline)
			count cluster1/root-cert.pem CERTIFICATE 2
			[[ -n $(tail -c1 cluster1/root-cert.pem) ]] || check_fail "cluster1/root-cert.pem ends with a newline" ;;
		esac
		exit "$CHECK_ERRORS"
	)
}

#------------------------------------------------------------------------
# main

mkdir -p -- "$OUTDIR" || fail "cannot create OUTDIR '$OUTDIR'"
OUTDIR=$(cd -- "$OUTDIR" && pwd)
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/broken.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf -- "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
umask 022

# build_one CASE: build OUTDIR/CASE from its own scratch directory.
build_one() {
	local c=$1
	D=$OUTDIR/$c
	rm -rf -- "$D"
	mkdir -p "$SCRATCH/$c" && cd "$SCRATCH/$c"
	"case_$c"
}

# check_one CASE: check OUTDIR/CASE (--check).
check_one() {
	D=$OUTDIR/$1
	check_case "$1"
}

# pool FUNC: run 'FUNC CASE' for every case in the background, at most $JOBS
# at a time. Output goes to SCRATCH/FUNC.CASE.log, the exit status to
# SCRATCH/FUNC.CASE.rc; errexit is on inside the inner subshell (which must not
# run in an 'if' or '&&' list, where bash would ignore -e). Afterwards FAILED
# holds the cases that failed, and their output has been printed.
pool() {
	local fn=$1 c
	for c in "${CASES[@]}"; do
		while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
		(
			set +e
			(set -e; "$fn" "$c") >"$SCRATCH/$fn.$c.log" 2>&1
			echo $? >"$SCRATCH/$fn.$c.rc"
		) &
		PIDS+=($!)
	done
	wait || true
	PIDS=()
	FAILED=()
	for c in "${CASES[@]}"; do
		if [[ $(cat "$SCRATCH/$fn.$c.rc" 2>/dev/null) != 0 ]]; then
			FAILED+=("$c")
			sed "s/^/[$c] /" "$SCRATCH/$fn.$c.log" >&2
		fi
	done
}

pool build_one
((${#FAILED[@]} == 0)) || fail "could not build: ${FAILED[*]}"

if ((CHECK)); then
	pool check_one
	((${#FAILED[@]} == 0)) || fail "check failed: ${FAILED[*]}"
	printf '%s: %d cases built and checked in %s\n' "$prog" "${#CASES[@]}" "$OUTDIR"
fi
