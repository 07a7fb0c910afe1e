#!/usr/bin/env bash
# Rebuilds the seed corpus under fuzz/corpus/ from fixtures: a meshca mesh
# (ECDSA and RSA-2048) and the openssl-made cases of testdata/broken.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
meshca=${MESHCA:-$root/target/release/meshca}
[[ -x $meshca ]] || (cd "$root" && cargo build --release -q -p meshca-cli)
"$meshca" init -q --dir "$work/ec" --key-type ecdsa-p256 cluster1
"$meshca" init -q --dir "$work/rsa" --key-type rsa-2048 cluster1
"$meshca" crl -q --dir "$work/ec" cluster1
bash "$root/testdata/broken.sh" "$work/broken" >/dev/null
c="$here/corpus"
rm -rf "$c"
mkdir -p "$c"/{pem_bundle,cert,cluster_bundle,secret_yaml,inspect,roundtrip}
n=0
add() { n=$((n + 1)); cp "$2" "$c/$1/seed-$n"; }
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
du -sh "$c"
