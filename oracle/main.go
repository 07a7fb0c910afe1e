// Command oracle loads a cluster directory of Istio's "plug in CA
// certificates" files the way istiod does, with Go's crypto/x509, and prints
// one JSON verdict per directory. meshca's differential test compares
// `meshca verify` with it; it is a reference, not part of meshca.
//
// Usage:
//
//	oracle [--at RFC3339] [--trust-domain TD] [--workload-id SPIFFE-ID] [--enable-ca-crl=BOOL]
//	       [--use-cacerts-for-self-signed-ca=BOOL] DIR...
//	oracle [flags] < dirs.txt   (one directory per line)
//	oracle --mesh [flags] CERTSDIR...   (every cluster, then cross-cluster trust; stage "mesh")
//	oracle --previous OLD [--multiroot] [flags] CERTSDIR...   (the rollout step OLD -> CERTSDIR; stage "step")
//
// Output, one line per directory:
//
//	{"dir":"...","ok":true|false,"stage":"load|parse|verify|crl|leaf|mesh|step","reason":"..."}
//
// Sources restated (istio/istio at 86c9f01fd735fb01d8192f5bcaf0d424afb7f14c):
//   - pilot/pkg/bootstrap/istio_ca.go: detectSigningCABundleAndCRL (file
//     names, the kubernetes.io/tls layout, ca-crl.pem only in the istiod
//     layout), checkCABundleCompleteness (a partial set is an error),
//     createIstioCA (with USE_CACERTS_FOR_SELF_SIGNED_CA, an istio-generated
//     key switches to the self-signed CA; the flag is off by default).
//   - security/pkg/pki/ca/ca.go: NewPluggedCertIstioCAOptions (the signing
//     certificate must be a CA).
//   - security/pkg/pki/util/keycertbundle.go: NewVerifiedKeyCertBundleFromFile
//     and Verify (chain verification, key parse, key match, CRL coverage).
//   - security/pkg/pki/util/crypto.go: ParsePemEncodedCertificate and
//     ParsePemEncodedKey read the FIRST PEM block only.
//   - security/pkg/pki/util/generate_cert.go: genCertTemplateFromCSR (the
//     workload leaf template: serverAuth+clientAuth, URI SAN, 2 min backdate,
//     lifetime capped by the signing certificate).
//
// The oracle never prints key bytes: reasons are Go's error texts, which name
// problems, not key material.
package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names, as security/pkg/pki/ca (CACertFile, CAPrivateKeyFile,
// CertChainFile, RootCertFile, CACRLFile, TLSSecret*, IstioGenerated).
const (
	caCertFile     = "ca-cert.pem"
	caKeyFile      = "ca-key.pem"
	certChainFile  = "cert-chain.pem"
	rootCertFile   = "root-cert.pem"
	caCRLFile      = "ca-crl.pem"
	tlsCertFile    = "tls.crt"
	tlsKeyFile     = "tls.key"
	tlsRootFile    = "ca.crt"
	istioGenerated = "istio-generated"
)

// clockSkewGracePeriod is istiod's leaf backdate (generate_cert.go).
const clockSkewGracePeriod = 2 * time.Minute

// Verdict is one output line.
type Verdict struct {
	Dir    string `json:"dir"`
	OK     bool   `json:"ok"`
	Stage  string `json:"stage"`
	Reason string `json:"reason"`
}

type failure struct {
	stage  string
	reason string
}

func fail(stage, format string, args ...any) *failure {
	return &failure{stage: stage, reason: fmt.Sprintf(format, args...)}
}

type oracle struct {
	at          time.Time
	trustDomain string
	// workloadID, when set, is the SPIFFE ID of the workload leaf instead
	// of spiffe://<trustDomain>/ns/default/sa/default (to check that name
	// constraints refuse identities of another trust domain).
	workloadID string
	namespace  string
	leafKey    *ecdsa.PrivateKey
	// istiod's feature flags (pilot/pkg/features), defaults as istiod's.
	enableCACRL               bool // PILOT_ENABLE_CA_CRL, default true
	useCacertsForSelfSignedCA bool // USE_CACERTS_FOR_SELF_SIGNED_CA, default false
	multiRoot                 bool // ISTIO_MULTIROOT_MESH, default false (step mode)
}

// bundleFiles is what detectSigningCABundleAndCRL chooses.
type bundleFiles struct {
	signingCert string
	signingKey  string
	chain       []string
	root        string
	crl         string // "" when no CRL is read
}

func exists(p string) (bool, error) {
	_, err := os.Stat(p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// detect restates detectSigningCABundleAndCRL: tls.crt switches to the
// kubernetes.io/tls layout (chain = tls.crt + ca.crt, and no CRL is read);
// otherwise the istiod layout, with ca-crl.pem when it exists
// (PILOT_ENABLE_CA_CRL is on by default since Istio 1.27).
func detect(dir string, enableCACRL bool) (bundleFiles, *failure) {
	tlsCert := filepath.Join(dir, tlsCertFile)
	ok, err := exists(tlsCert)
	if err != nil {
		return bundleFiles{}, fail("load", "unable to determine signing file format: %v", err)
	}
	if ok {
		return bundleFiles{
			signingCert: tlsCert,
			signingKey:  filepath.Join(dir, tlsKeyFile),
			chain:       []string{tlsCert, filepath.Join(dir, tlsRootFile)},
			root:        filepath.Join(dir, tlsRootFile),
		}, nil
	}
	b := bundleFiles{
		signingCert: filepath.Join(dir, caCertFile),
		signingKey:  filepath.Join(dir, caKeyFile),
		chain:       []string{filepath.Join(dir, certChainFile)},
		root:        filepath.Join(dir, rootCertFile),
	}
	crl := filepath.Join(dir, caCRLFile)
	if ok, _ := exists(crl); ok && enableCACRL {
		b.crl = crl
	}
	return b, nil
}

// completeness restates checkCABundleCompleteness and createIstioCA: all of
// key, cert, root and one chain file, or none (then istiod runs its own
// self-signed CA and the plugged-in files are not used at all).
func completeness(dir string, b bundleFiles, useCacertsForSelfSignedCA bool) *failure {
	var have, missing []string
	for _, f := range []string{b.signingKey, b.signingCert, b.root} {
		ok, err := exists(f)
		if err != nil {
			return fail("load", "error checking file %s: %v", filepath.Base(f), err)
		}
		if ok {
			have = append(have, filepath.Base(f))
		} else {
			missing = append(missing, filepath.Base(f))
		}
	}
	chainOK := false
	for _, f := range b.chain {
		ok, err := exists(f)
		if err != nil {
			return fail("load", "error checking file %s: %v", filepath.Base(f), err)
		}
		if ok {
			chainOK = true
			break
		}
	}
	if chainOK {
		have = append(have, "chain")
	} else {
		missing = append(missing, filepath.Base(b.chain[0]))
	}
	if len(missing) > 0 && len(have) > 0 {
		return fail("load", "incomplete signing CA bundle detected (missing %s)", strings.Join(missing, ", "))
	}
	if len(have) == 0 {
		return fail("load", "no signing CA bundle: istiod would run its self-signed CA")
	}
	if ok, _ := exists(filepath.Join(dir, istioGenerated)); ok && useCacertsForSelfSignedCA {
		return fail("load", "istio-generated key present: istiod treats cacerts as its self-signed CA store")
	}
	return nil
}

// readFiles restates NewVerifiedKeyCertBundleFromFile: the chain files are
// concatenated byte for byte.
func readFiles(b bundleFiles) (cert, key, chain, root, crl []byte, f *failure) {
	var err error
	if cert, err = os.ReadFile(b.signingCert); err != nil {
		return nil, nil, nil, nil, nil, fail("load", "read %s: %v", filepath.Base(b.signingCert), err)
	}
	if key, err = os.ReadFile(b.signingKey); err != nil {
		return nil, nil, nil, nil, nil, fail("load", "read %s: %v", filepath.Base(b.signingKey), err)
	}
	for _, p := range b.chain {
		c, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, nil, nil, nil, fail("load", "read %s: %v", filepath.Base(p), err)
		}
		chain = append(chain, c...)
	}
	if root, err = os.ReadFile(b.root); err != nil {
		return nil, nil, nil, nil, nil, fail("load", "read %s: %v", filepath.Base(b.root), err)
	}
	if b.crl != "" {
		if crl, err = os.ReadFile(b.crl); err != nil {
			return nil, nil, nil, nil, nil, fail("load", "read %s: %v", caCRLFile, err)
		}
	}
	return cert, key, chain, root, crl, nil
}

// parsePemEncodedCertificate restates util.ParsePemEncodedCertificate: the
// first PEM block, whatever its type, must be a DER certificate.
func parsePemEncodedCertificate(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("invalid PEM encoded certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("failed to parse X.509 certificate: %v", err)
	}
	return c, nil
}

// parsePemEncodedKey restates util.ParsePemEncodedKey: the first PEM block
// must be an EC, RSA (PKCS#1) or PKCS#8 private key.
func parsePemEncodedKey(b []byte) (crypto.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("invalid PEM-encoded key")
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("failed to parse the ECDSA private key: %v", err)
		}
		return k, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("failed to parse the RSA private key: %v", err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("failed to parse the PKCS8 private key: %v", err)
		}
		return k, nil
	default:
		// istiod names the block type here; the oracle does not echo input.
		return nil, errors.New("unsupported PEM block type for a private key")
	}
}

// keyType is the CA key policy: RSA of 2048 bits or more, ECDSA P-256 or
// P-384 (istiod signs with RSA or those curves; Ed25519 parses and then
// fails when istiod signs).
func keyType(k crypto.PrivateKey) error {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < 2048 {
			return fmt.Errorf("RSA key of %d bits (2048 or more required)", n)
		}
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s (P-256 or P-384 required)", k.Curve.Params().Name)
		}
	case ed25519.PrivateKey:
		return errors.New("Ed25519 CA key: istiod cannot sign with it")
	default:
		return fmt.Errorf("unsupported CA key type %T", k)
	}
	return nil
}

// pemBlocks decodes every PEM block of b, as the loops in
// keycertbundle.go's Verify do (stops at the first undecodable rest).
func pemBlocks(b []byte) []*pem.Block {
	var out []*pem.Block
	for rest := b; ; {
		block, r := pem.Decode(rest)
		if block == nil {
			return out
		}
		out = append(out, block)
		rest = r
	}
}

// OIDs of the CRL extensions BoringSSL (Envoy) handles.
var (
	oidCRLNumber      = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRL       = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDP      = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidFreshestCRL    = asn1.ObjectIdentifier{2, 5, 29, 46}
)

// issuingDistributionPoint (RFC 5280 5.2.5), only the fields BoringSSL refuses.
type issuingDistributionPoint struct {
	DistributionPoint          asn1.RawValue  `asn1:"optional,tag:0"`
	OnlyContainsUserCerts      bool           `asn1:"optional,tag:1"`
	OnlyContainsCACerts        bool           `asn1:"optional,tag:2"`
	OnlySomeReasons            asn1.BitString `asn1:"optional,tag:3"`
	IndirectCRL                bool           `asn1:"optional,tag:4"`
	OnlyContainsAttributeCerts bool           `asn1:"optional,tag:5"`
}

// crlUsable restates what Envoy (BoringSSL's X509_V_FLAG_CRL_CHECK_ALL)
// requires of a CRL at time at: thisUpdate not in the future, nextUpdate not
// past, no critical extension it does not handle, no delta, indirect or
// reasons-partitioned CRL.
func crlUsable(c *x509.RevocationList, at time.Time) error {
	if c.ThisUpdate.After(at) {
		return errors.New("CRL thisUpdate is in the future")
	}
	if !c.NextUpdate.IsZero() && c.NextUpdate.Before(at) {
		return errors.New("CRL is past its nextUpdate")
	}
	for _, e := range c.Extensions {
		switch {
		case e.Id.Equal(oidDeltaCRL):
			return errors.New("delta CRL")
		case e.Id.Equal(oidIssuingDP):
			var idp issuingDistributionPoint
			if rest, err := asn1.Unmarshal(e.Value, &idp); err != nil || len(rest) != 0 {
				return errors.New("malformed issuingDistributionPoint")
			}
			if idp.OnlySomeReasons.BitLength != 0 || idp.IndirectCRL {
				return errors.New("reasons-limited or indirect CRL")
			}
			if idp.OnlyContainsAttributeCerts {
				return errors.New("CRL only for attribute certificates")
			}
		case e.Id.Equal(oidCRLNumber), e.Id.Equal(oidAuthorityKeyID), e.Id.Equal(oidFreshestCRL):
		default:
			if e.Critical {
				return fmt.Errorf("unhandled critical CRL extension %v", e.Id)
			}
		}
	}
	return nil
}

// verifyCRLs restates the CRL part of keycertbundle.go's Verify: every PEM
// block of cert-chain.pem must parse as a certificate, every PEM block of
// ca-crl.pem as a CRL, and each certificate of the chain needs a CRL that
// it signed (CheckSignatureFrom also requires cRLSign). Envoy also needs each
// of those CRLs current.
func verifyCRLs(chain, crl []byte, at time.Time) ([]*x509.RevocationList, *failure) {
	var signers []*x509.Certificate
	for _, b := range pemBlocks(chain) {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fail("crl", "failed to parse cert chain: %v", err)
		}
		signers = append(signers, c)
	}
	var crls []*x509.RevocationList
	for _, b := range pemBlocks(crl) {
		c, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			return nil, fail("crl", "failed to parse CRL PEM: %v", err)
		}
		crls = append(crls, c)
	}
	missing := map[string]*x509.Certificate{}
	for _, s := range signers {
		missing[s.Subject.String()] = s
	}
	for _, c := range crls {
		for subj, s := range missing {
			if c.CheckSignatureFrom(s) == nil {
				delete(missing, subj)
			}
		}
	}
	if len(missing) != 0 {
		return nil, fail("crl", "missing CRL signed by %d certificate(s) of the chain", len(missing))
	}
	// Envoy (BoringSSL) finds a CA's CRL by issuer name, then checks the
	// signature (Go's CheckSignatureFrom looks at the signature only), and
	// uses the best of them: each CA needs one it can use.
	for _, s := range signers {
		named := false
		var unusable error
		usable := false
		for _, c := range crls {
			if c.CheckSignatureFrom(s) != nil || !bytes.Equal(c.RawIssuer, s.RawSubject) {
				continue
			}
			named = true
			if err := crlUsable(c, at); err != nil {
				unusable = err
			} else {
				usable = true
			}
		}
		if !named {
			return nil, fail("crl", "a CRL signed by a chain certificate does not name it as issuer (Envoy matches CRLs by name)")
		}
		if !usable {
			return nil, fail("crl", "CRL of a chain certificate unusable by Envoy: %v", unusable)
		}
	}
	return crls, nil
}

// revoked reports whether cert is listed by a CRL that issuer signed, and
// whether such a CRL exists.
func revoked(cert, issuer *x509.Certificate, crls []*x509.RevocationList) (bool, bool) {
	found := false
	for _, c := range crls {
		if c.CheckSignatureFrom(issuer) != nil || !bytes.Equal(c.RawIssuer, issuer.RawSubject) {
			continue
		}
		found = true
		for _, e := range c.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return true, true
			}
		}
	}
	return false, found
}

func (o *oracle) check(dir string) *failure {
	b, f := detect(dir, o.enableCACRL)
	if f != nil {
		return f
	}
	if f := completeness(dir, b, o.useCacertsForSelfSignedCA); f != nil {
		return f
	}
	certPEM, keyPEM, chainPEM, rootPEM, crlPEM, f := readFiles(b)
	if f != nil {
		return f
	}

	// keycertbundle.go Verify: pools as AppendCertsFromPEM builds them (it
	// skips blocks that are not certificates or do not parse).
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	inters := x509.NewCertPool()
	inters.AppendCertsFromPEM(chainPEM)
	cert, err := parsePemEncodedCertificate(certPEM)
	if err != nil {
		return fail("parse", "failed to parse cert PEM: %v", err)
	}
	// istiod passes no KeyUsages: Go then requires serverAuth on the chain.
	chains, err := cert.Verify(x509.VerifyOptions{Intermediates: inters, Roots: roots, CurrentTime: o.at})
	if err != nil || len(chains) == 0 {
		return fail("verify", "cannot verify the cert with the provided root chain and cert pool: %v", err)
	}
	key, err := parsePemEncodedKey(keyPEM)
	if err != nil {
		return fail("parse", "failed to parse private key PEM: %v", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fail("verify", "the cert does not match the key: %v", err)
	}
	var crls []*x509.RevocationList
	if len(crlPEM) != 0 {
		if crls, f = verifyCRLs(chainPEM, crlPEM, o.at); f != nil {
			return f
		}
	}
	// ca.go NewPluggedCertIstioCAOptions.
	if !cert.IsCA {
		return fail("verify", "certificate is not authorized to sign other certificates")
	}
	if err := keyType(key); err != nil {
		return fail("verify", "%v", err)
	}
	if f := envoyParse(certPEM, chainPEM, rootPEM, crlPEM); f != nil {
		return f
	}
	return o.leaf(cert, key, chainPEM, rootPEM, crls)
}

// leaf signs a workload certificate as istiod's genCertTemplateFromCSR does
// and verifies it as peers do in mTLS: once as a server, once as a client,
// with root-cert.pem as roots and cert-chain.pem as intermediates; with CRLs,
// no certificate of the path may be revoked and each must be covered (Envoy).
func (o *oracle) leaf(ca *x509.Certificate, key crypto.PrivateKey, chainPEM, rootPEM []byte, crls []*x509.RevocationList) *failure {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fail("leaf", "CA key cannot sign")
	}
	rawID := "spiffe://" + o.trustDomain + "/ns/default/sa/default"
	if o.workloadID != "" {
		rawID = o.workloadID
	}
	id, err := url.Parse(rawID)
	if err != nil {
		return fail("leaf", "bad workload SPIFFE ID: %v", err)
	}
	if !o.at.Before(ca.NotAfter) {
		return fail("leaf", "signing certificate has expired")
	}
	notAfter := o.at.Add(time.Hour)
	if !notAfter.Before(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{},
		NotBefore:             o.at.Add(-clockSkewGracePeriod),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, o.leafKey.Public(), signer)
	if err != nil {
		return fail("leaf", "signing the workload certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return fail("leaf", "parsing the workload certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	inters := x509.NewCertPool()
	inters.AppendCertsFromPEM(chainPEM)

	// istiod's own serving certificate: with the plugged-in CA istiod signs
	// its DNS certificate (istiod.<namespace>.svc) with that CA
	// (pilot/pkg/bootstrap/certcontroller.go initDNSCerts, the "istiod"
	// provider: s.CA.GenKeyCert(dnsNames, ...)), and every proxy verifies it
	// as a server when it connects for xDS. Go checks the leaf's DNS SAN
	// against the name constraints of the path (verify.go isValid).
	dnsTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano() + 1),
		Subject:               pkix.Name{},
		NotBefore:             o.at.Add(-clockSkewGracePeriod),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"istiod." + o.namespace + ".svc"},
	}
	dnsDER, err := x509.CreateCertificate(rand.Reader, dnsTmpl, ca, o.leafKey.Public(), signer)
	if err != nil {
		return fail("leaf", "signing istiod's DNS certificate: %v", err)
	}
	dnsLeaf, err := x509.ParseCertificate(dnsDER)
	if err != nil {
		return fail("leaf", "parsing istiod's DNS certificate: %v", err)
	}
	if _, err := dnsLeaf.Verify(x509.VerifyOptions{
		Intermediates: inters,
		Roots:         roots,
		CurrentTime:   o.at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fail("leaf", "istiod's DNS certificate does not verify as a server: %v", err)
	}
	for _, u := range []struct {
		name string
		eku  x509.ExtKeyUsage
	}{{"server", x509.ExtKeyUsageServerAuth}, {"client", x509.ExtKeyUsageClientAuth}} {
		chains, err := leaf.Verify(x509.VerifyOptions{
			Intermediates: inters,
			Roots:         roots,
			CurrentTime:   o.at,
			KeyUsages:     []x509.ExtKeyUsage{u.eku},
		})
		if err != nil || len(chains) == 0 {
			return fail("leaf", "workload certificate does not verify as a %s: %v", u.name, err)
		}
		if f := emptyEKU(chains); f != nil {
			return f
		}
		if len(crls) == 0 {
			continue
		}
		if f := pathRevocation(chains, crls); f != nil {
			return f
		}
	}
	return nil
}

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}

// emptyEKU: Go reads an extendedKeyUsage extension with no purposes as no
// restriction; BoringSSL (Envoy) reads it as allowing nothing, so it
// refuses the chain for TLS. Fails when every verified path has one.
func emptyEKU(chains [][]*x509.Certificate) *failure {
	for _, path := range chains {
		bad := false
		for _, c := range path[1:] {
			for _, e := range c.Extensions {
				if e.Id.Equal(oidExtKeyUsage) && len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
					bad = true
				}
			}
		}
		if !bad {
			return nil
		}
	}
	return fail("leaf", "a CA of the path has an empty extendedKeyUsage: Envoy (BoringSSL) allows no usage")
}

// envoyParse: what Envoy parses must parse in BoringSSL's strict DER: the
// CA certificate, every certificate of cert-chain.pem (sent after each
// workload leaf), every certificate of root-cert.pem (the workloads' trust
// bundle: one bad block and Envoy loads none) and every CRL.
func envoyParse(certPEM, chainPEM, rootPEM, crlPEM []byte) *failure {
	check := func(file string, blocks []*pem.Block) *failure {
		for i, b := range blocks {
			if b.Type != "CERTIFICATE" {
				continue
			}
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return fail("parse", "Envoy cannot load %s (certificate %d): %v", file, i+1, err)
			}
			if err := strictCertificate(b.Bytes); err != nil {
				return fail("parse", "Envoy (BoringSSL, strict DER) cannot parse %s (certificate %d): %v", file, i+1, err)
			}
		}
		return nil
	}
	if first := pemBlocks(certPEM); len(first) > 0 {
		if err := strictCertificate(first[0].Bytes); err != nil {
			return fail("parse", "Envoy (BoringSSL, strict DER) cannot parse %s: %v", caCertFile, err)
		}
	}
	if f := check(certChainFile, pemBlocks(chainPEM)); f != nil {
		return f
	}
	if f := check(rootCertFile, pemBlocks(rootPEM)); f != nil {
		return f
	}
	for i, b := range pemBlocks(crlPEM) {
		if err := strictCRL(b.Bytes); err != nil {
			return fail("crl", "Envoy (BoringSSL, strict DER) cannot parse %s (CRL %d): %v", caCRLFile, i+1, err)
		}
	}
	return nil
}

// pathRevocation: some verified path must have, for every certificate below
// the root, a CRL from its issuer that does not list it.
func pathRevocation(chains [][]*x509.Certificate, crls []*x509.RevocationList) *failure {
	last := fail("crl", "no verified path")
	for _, path := range chains {
		good := true
		for i := 0; i+1 < len(path); i++ {
			// The fresh leaf is never revoked, but its issuer must have a CRL.
			rev, found := revoked(path[i], path[i+1], crls)
			if !found {
				good = false
				last = fail("crl", "no CRL from the issuer of a certificate of the path")
				break
			}
			if rev {
				good = false
				last = fail("crl", "a certificate of the path is revoked")
				break
			}
		}
		if good {
			return nil
		}
	}
	return last
}

func main() {
	at := flag.String("at", "", "verification time, RFC 3339 (default: now)")
	td := flag.String("trust-domain", "cluster.local", "trust domain of the workload SPIFFE ID")
	wid := flag.String("workload-id", "", "SPIFFE ID of the workload leaf (default spiffe://<trust-domain>/ns/default/sa/default)")
	ns := flag.String("namespace", "istio-system", "istiod's namespace (its DNS certificate is istiod.<namespace>.svc)")
	crl := flag.Bool("enable-ca-crl", true, "istiod's PILOT_ENABLE_CA_CRL: read ca-crl.pem")
	selfSigned := flag.Bool("use-cacerts-for-self-signed-ca", false,
		"istiod's USE_CACERTS_FOR_SELF_SIGNED_CA: an istio-generated key makes cacerts the self-signed CA's store")
	mesh := flag.Bool("mesh", false, "each argument is a certs directory: every cluster under it, and cross-cluster trust")
	previous := flag.String("previous", "", "step mode: each argument is a certs directory applied over this one, as istiod reloads cacerts (stage \"step\")")
	multiRoot := flag.Bool("multiroot", false, "istiod's ISTIO_MULTIROOT_MESH (step mode): accept a superset or subset of the roots")
	flag.Parse()
	o := &oracle{at: time.Now(), trustDomain: *td, workloadID: *wid, namespace: *ns, enableCACRL: *crl, useCacertsForSelfSignedCA: *selfSigned, multiRoot: *multiRoot}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(os.Stderr, "oracle: --at: %v\n", err)
			os.Exit(2)
		}
		o.at = t
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fmt.Fprintf(os.Stderr, "oracle: workload key: %v\n", err)
		os.Exit(2)
	}
	o.leafKey = k

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	run := func(dir string) {
		v := Verdict{Dir: dir, OK: true}
		check := o.check
		if *mesh {
			check = o.checkMesh
		}
		if *previous != "" {
			check = func(d string) *failure { return o.checkStep(*previous, d) }
		}
		if f := check(dir); f != nil {
			v.OK, v.Stage, v.Reason = false, f.stage, f.reason
		}
		if err := enc.Encode(v); err != nil {
			fmt.Fprintf(os.Stderr, "oracle: %v\n", err)
			os.Exit(2)
		}
	}
	if flag.NArg() > 0 {
		for _, d := range flag.Args() {
			run(d)
		}
		return
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if d := strings.TrimSpace(sc.Text()); d != "" {
			run(d)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "oracle: stdin: %v\n", err)
		os.Exit(2)
	}
}
