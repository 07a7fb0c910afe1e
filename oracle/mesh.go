package main

// Mesh mode: a certs directory (one sub-directory per cluster) judged as a
// multi-cluster mesh. Every cluster must load (as check does), and a
// workload of each cluster must be trusted by the workloads of every other
// cluster: its leaf and that cluster's cert-chain.pem, verified against the
// other cluster's root-cert.pem (the trust bundle istiod gives its
// workloads), for serverAuth and clientAuth (east-west mTLS).

import (
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
