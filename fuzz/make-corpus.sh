#!/usr/bin/env bash
# Rebuilds the seed corpus under fuzz/corpus/ from fixtures: a meshca mesh
# (ECDSA and RSA-2048) and the openssl-made cases of testdata/broken.sh.
# usage: make-corpus.sh [TARGET...]   (default: every target; only the
# named targets' directories are replaced)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
all=(pem_bundle cert cluster_bundle secret_yaml inspect roundtrip goparse verify_mesh mesh_file)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
want() { [[ " ${targets[*]} " == *" $1 "* ]]; }
meshca=${MESHCA:-$root/target/release/meshca}
[[ -x $meshca ]] || (cd "$root" && cargo build --release -q -p meshca-cli)
"$meshca" init -q --dir "$work/ec" --key-type ecdsa-p256 cluster1
"$meshca" init -q --dir "$work/rsa" --key-type rsa-2048 cluster1
"$meshca" crl -q --dir "$work/ec" cluster1
bash "$root/testdata/broken.sh" "$work/broken" >/dev/null
c="$here/corpus"
for t in "${targets[@]}"; do
	rm -rf "${c:?}/$t"
	mkdir -p "$c/$t"
done
n=0
add() {
	n=$((n + 1))
	if want "$1"; then cp "$2" "$c/$1/seed-$n"; fi
}
for d in "$work/ec/cluster1" "$work/rsa/cluster1" "$work/broken"/{weak-key,unsupported-key,key-encrypted,pathlen-exceeded,crl-bad-signature,good-crl/cluster1}; do
	d=${d%/}; [[ -d $d/cluster1 ]] && d=$d/cluster1
	for f in "$d"/*.pem; do add pem_bundle "$f"; add inspect "$f"; done
	openssl x509 -in "$d/ca-cert.pem" -outform der -out "$work/der" && add cert "$work/der"
	# cluster_bundle: the files joined by the target's separator.
	{
		for f in ca-cert.pem ca-key.pem cert-chain.pem root-cert.pem ca-crl.pem cacerts.yaml; do
			[[ -f $d/$f ]] && cat "$d/$f"
			printf '\n--8<--\n'
		done
	} >"$work/bundle" && add cluster_bundle "$work/bundle"
	[[ -f $d/cacerts.yaml ]] && add secret_yaml "$d/cacerts.yaml"
done
"$meshca" secret --dir "$work/ec" --tls cluster1 >"$work/tls.yaml" && add secret_yaml "$work/tls.yaml"
printf 'abcdefghijklmnopqrstuvwxyz' >"$work/r1" && add roundtrip "$work/r1"
printf '\x01\xff\x0f\x10\x00\x05\x07\x03hello world mesh' >"$work/r2" && add roundtrip "$work/r2"

# goparse: certificate and CRL DER, from meshca, from broken.sh cases that
# exercise Go's extension rules, and one openssl certificate with every
# extension Go parses (all SAN and name-constraint kinds, policies, AIA, CRL DP).
"$meshca" revoke -q --dir "$work/ec" --reason key-compromise cluster1
cat >"$work/sink.cnf" <<'CNF'
[v3]
basicConstraints = critical, CA:TRUE, pathlen:1
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
extendedKeyUsage = serverAuth, clientAuth, 1.3.6.1.5.5.7.3.9
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:istiod.istio-system.svc, URI:spiffe://cluster.local/ns/istio-system/sa/istiod, URI:https://user@[::1]:8443/p?q, email:ops@mesh.example, IP:10.0.0.1, IP:fe80::1, dirName:dn_sect, RID:1.2.3.4, otherName:1.3.6.1.4.1.311.20.2.3;UTF8:upn@mesh.example
nameConstraints = critical, permitted;DNS:.cluster.local, permitted;URI:.cluster.local, permitted;email:mesh.example, permitted;IP:10.0.0.0/255.0.0.0, permitted;IP:fe80::/ffff:ffff::, excluded;DNS:bad.cluster.local, excluded;dirName:dn_sect
certificatePolicies = 2.5.29.32.0, @pol
policyConstraints = requireExplicitPolicy:0, inhibitPolicyMapping:1
policyMappings = 1.2.3.4:1.2.3.5
inhibitAnyPolicy = 2
crlDistributionPoints = URI:http://crl.mesh.example/root.crl
authorityInfoAccess = caIssuers;URI:http://ca.mesh.example/root.cer, OCSP;URI:http://ocsp.mesh.example
issuerAltName = DNS:root.mesh.example
[dn_sect]
O = Istio
CN = Other
[pol]
policyIdentifier = 1.3.6.1.4.1.99999.1
CPS.1 = "http://cps.mesh.example"
userNotice.1 = @notice
[notice]
explicitText = "mesh policy"
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "$work/sink-key.pem" \
	-subj "/C=CH/ST=ZH/L=cluster1/O=Istio/OU=mesh/CN=Every Extension CA/emailAddress=ops@mesh.example/serialNumber=42/DC=mesh" \
	-days 3650 -config "$work/sink.cnf" -extensions v3 -outform der -out "$work/der" 2>/dev/null
add goparse "$work/der"
for p in "$work/ec/root-cert.pem" "$work/rsa/cluster1/ca-cert.pem" "$work/broken"/{critical-aia,critical-dirname-constraints,constraints-exclude-trust-domain,negative-serial,unknown-critical-extension,unsupported-key}/cluster1/ca-cert.pem; do
	openssl x509 -in "$p" -outform der -out "$work/der" && add goparse "$work/der"
done
for p in "$work/ec/root-crl.pem" "$work/ec/cluster1/ca-crl.pem" "$work/broken"/{revoked,crl-critical-extension,crl-only-some-reasons}/cluster1/ca-crl.pem; do
	openssl crl -in "$p" -outform der -out "$work/der" && add goparse "$work/der"
done

# verify_mesh: two marker-offset bytes, then root-cert.pem, root-key.pem,
# root-crl.pem and per cluster its six files, joined by the separator.
mesh_seed() { # mesh_seed OFFSET DIR CLUSTER...
	local off=$1 d=$2 f cl
	shift 2
	{
		printf "\\x$(printf %02x $((off >> 8)))\\x$(printf %02x $((off & 255)))"
		for f in root-cert.pem root-key.pem root-crl.pem; do
			[[ -f $d/$f ]] && cat "$d/$f"
			printf '\n--8<--\n'
		done
		for cl in "$@"; do
			for f in ca-cert.pem ca-key.pem cert-chain.pem root-cert.pem ca-crl.pem cacerts.yaml; do
				[[ -f $d/$cl/$f ]] && cat "$d/$cl/$f"
				printf '\n--8<--\n'
			done
		done
	} >"$work/mesh"
	add verify_mesh "$work/mesh"
}
"$meshca" init -q --dir "$work/ec2" --key-type ecdsa-p256 cluster1 cluster2
"$meshca" crl -q --dir "$work/ec2" cluster1 cluster2
mesh_seed 0 "$work/ec2" cluster1 cluster2
mesh_seed 100 "$work/ec" cluster1
mesh_seed 40 "$work/rsa" cluster1
for b in good-three-level good-multi-root key-encrypted; do
	mesh_seed 7 "$work/broken/$b" cluster1
done

# mesh_file: mesh files for plan/apply, every field used, and broken ones
# (a duplicate cluster, an unknown field, constraints with ambient, a
# recursive alias).
cat >"$work/mesh.yaml" <<'YAML'
apiVersion: meshca/v1
kind: Mesh
trustDomain: cluster.local
root: {keyType: ecdsa-p384, days: 3650, org: Istio, cn: Root CA}
defaults: {keyType: ecdsa-p256, days: 730, renewBefore: 30, namespace: istio-system, secret: opaque}
clusters:
  - name: east
  - name: west
    keyType: rsa-4096
    secret: tls
YAML
add mesh_file "$work/mesh.yaml"
cat >"$work/mesh.yaml" <<'YAML'
apiVersion: meshca/v1
kind: Mesh
trustDomain: mesh.example
root:
  keyType: ecdsa-p256
  key: pkcs11:token=mesh;object=root?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin.txt
defaults:
  keyType: ecdsa-p256
  days: 365
  renewBefore: 60
  nameConstraints: true
  permitDns: [.svc.example, example.com]
  dataPlane: sidecar
  sanDns:
    - istiod.istio-system.svc
    - istiod-remote.istio-system.svc
clusters:
  - name: east
    nameConstraints: false
  - name: west
    namespace: istio
    permitDns: []
    days: 90
    renewBefore: 10
YAML
add mesh_file "$work/mesh.yaml"
cat >"$work/mesh.yaml" <<'YAML'
apiVersion: meshca/v1
kind: Mesh
defaults:
  dataPlane: ambient
  nameConstraints: true
clusters:
  - name: east
  - name: east
    keytype: rsa-2048
YAML
add mesh_file "$work/mesh.yaml"
cat >"$work/mesh.yaml" <<'YAML'
apiVersion: meshca/v1
kind: Mesh
x: &a [1, 2, {b: *a}]
clusters: [{name: a}, {name: b, secret: tls}]
YAML
add mesh_file "$work/mesh.yaml"
du -sh "$c"
