package main

// Mesh mode: a certs directory (one sub-directory per cluster) judged as a
// multi-cluster mesh. Every cluster must load (as check does), and a
// workload of each cluster must be trusted by the workloads of every other
// cluster: its leaf and that cluster's cert-chain.pem, verified against the
// other cluster's root-cert.pem (the trust bundle istiod gives its
// workloads), for serverAuth and clientAuth (east-west mTLS).

import (
	"bytes"
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

type loaded struct {
	name     string
	cert     []byte
	key      []byte
	chainPEM []byte
	rootPEM  []byte
}

// clusters lists the sub-directories istiod could mount as cacerts.
func clusters(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		for _, f := range []string{caCertFile, tlsCertFile} {
			if ok, _ := exists(filepath.Join(dir, e.Name(), f)); ok {
				out = append(out, e.Name())
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func (o *oracle) checkMesh(dir string) *failure {
	names, err := clusters(dir)
	if err != nil {
		return fail("load", "read the certs directory: %v", err)
	}
	if len(names) == 0 {
		return fail("load", "no cluster directories")
	}
	var ls []loaded
	for _, n := range names {
		cdir := filepath.Join(dir, n)
		if f := o.check(cdir); f != nil {
			return &failure{stage: f.stage, reason: fmt.Sprintf("cluster %s: %s", n, f.reason)}
		}
		b, _ := detect(cdir, o.enableCACRL)
		cert, key, chain, root, _, f := readFiles(b)
		if f != nil {
			return f
		}
		ls = append(ls, loaded{name: n, cert: cert, key: key, chainPEM: chain, rootPEM: root})
	}
	for _, a := range ls {
		ca, err := parsePemEncodedCertificate(a.cert)
		if err != nil {
			return fail("parse", "cluster %s: %v", a.name, err)
		}
		k, err := parsePemEncodedKey(a.key)
		if err != nil {
			return fail("parse", "cluster %s: %v", a.name, err)
		}
		for _, b := range ls {
			if a.name == b.name {
				continue
			}
			if f := o.leaf(ca, crypto.PrivateKey(k), a.chainPEM, b.rootPEM, nil); f != nil {
				return fail("mesh", "workloads of cluster %s do not trust those of cluster %s: %s", b.name, a.name, f.reason)
			}
		}
	}
	return nil
}

// Step mode (--previous OLD): a certs directory NEW applied over OLD,
// cluster by cluster, as istiod reloads its cacerts (istio/istio
// pilot/pkg/bootstrap/istio_ca.go handleEvent, and
// security/pkg/pki/util/keycertbundle.go):
//   - a root file whose bytes changed is ignored with the whole update
//     ("Multi root is disabled") unless ISTIO_MULTIROOT_MESH=true
//     (--multiroot); then the new roots must be a superset or a subset of
//     the old ones (pemBundleHasSubsetRelation, false for an empty set);
//   - the new bundle must load as a whole (UpdateVerifiedKeyCertBundleFromFile,
//     CRL included), else istiod keeps the old one;
//   - a removed or empty ca-crl.pem leaves the old CRL in force
//     (setAllFromPem only replaces it with a non-empty one);
//   - workloads of each cluster at one side must trust those of every
//     cluster at the other (the rollout goes cluster by cluster).

// pemToRawCertSet restates istio_ca.go pemToRawCertSet: the DER of every
// CERTIFICATE block.
func pemToRawCertSet(data []byte) map[string]bool {
	out := map[string]bool{}
	for _, b := range pemBlocks(data) {
		if b.Type == "CERTIFICATE" {
			out[string(b.Bytes)] = true
		}
	}
	return out
}

func supersetOf(a, b map[string]bool) bool {
	for k := range b {
		if !a[k] {
			return false
		}
	}
	return true
}

// pemBundleHasSubsetRelation restates istio_ca.go.
func pemBundleHasSubsetRelation(a, b []byte) bool {
	ca, cb := pemToRawCertSet(a), pemToRawCertSet(b)
	if len(ca) == 0 || len(cb) == 0 {
		return false
	}
	return supersetOf(ca, cb) || supersetOf(cb, ca)
}

func (o *oracle) readCluster(dir string) (loaded, []byte, *failure) {
	b, f := detect(dir, o.enableCACRL)
	if f != nil {
		return loaded{}, nil, f
	}
	cert, key, chain, root, crl, f := readFiles(b)
	if f != nil {
		return loaded{}, nil, f
	}
	return loaded{name: filepath.Base(dir), cert: cert, key: key, chainPEM: chain, rootPEM: root}, crl, nil
}

func (o *oracle) checkStep(oldDir, newDir string) *failure {
	if f := o.checkMesh(newDir); f != nil {
		return f
	}
	oldNames, err := clusters(oldDir)
	if err != nil {
		return fail("load", "read the previous certs directory: %v", err)
	}
	newNames, _ := clusters(newDir)
	var olds, news []loaded
	for _, n := range oldNames {
		l, _, f := o.readCluster(filepath.Join(oldDir, n))
		if f != nil {
			return &failure{stage: f.stage, reason: fmt.Sprintf("previous cluster %s: %s", n, f.reason)}
		}
		olds = append(olds, l)
	}
	for _, n := range newNames {
		l, newCRL, f := o.readCluster(filepath.Join(newDir, n))
		if f != nil {
			return f
		}
		news = append(news, l)
		if ok, _ := exists(filepath.Join(oldDir, n)); !ok {
			continue
		}
		old, oldCRL, f := o.readCluster(filepath.Join(oldDir, n))
		if f != nil {
			return &failure{stage: f.stage, reason: fmt.Sprintf("previous cluster %s: %s", n, f.reason)}
		}
		if !bytes.Equal(old.rootPEM, l.rootPEM) {
			if !o.multiRoot {
				return fail("step", "cluster %s: the root file changed and multi root is disabled: istiod ignores the update", n)
			}
			if !pemBundleHasSubsetRelation(old.rootPEM, l.rootPEM) {
				return fail("step", "cluster %s: the new roots are neither a superset nor a subset of the old: istiod ignores the update", n)
			}
		}
		if len(oldCRL) != 0 && len(newCRL) == 0 {
			return fail("step", "cluster %s: ca-crl.pem removed or empty: istiod keeps the CRL it holds", n)
		}
	}
	// Cross trust between the two sides, both ways.
	for _, side := range [][2][]loaded{{olds, news}, {news, olds}} {
		for _, a := range side[0] {
			ca, err := parsePemEncodedCertificate(a.cert)
			if err != nil {
				return fail("parse", "cluster %s: %v", a.name, err)
			}
			k, err := parsePemEncodedKey(a.key)
			if err != nil {
				return fail("parse", "cluster %s: %v", a.name, err)
			}
			for _, b := range side[1] {
				if f := o.leaf(ca, crypto.PrivateKey(k), a.chainPEM, b.rootPEM, nil); f != nil {
					return fail("step", "workloads of cluster %s (one side) do not trust those of cluster %s (the other): %s", b.name, a.name, f.reason)
				}
			}
		}
	}
	return nil
}
