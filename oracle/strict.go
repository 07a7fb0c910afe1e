package main

// Envoy parses the certificates and CRLs istiod hands out with BoringSSL,
// which reads DER strictly: no trailing data after a structure, no extra
// fields, exactly the elements X.509 defines. Go's crypto/x509 skips some
// of that (elements after the extensions SEQUENCE, extra fields at the end
// of a SEQUENCE), so a certificate istiod loads may still break every
// workload connection. These checks restate the X.509 structure (RFC 5280
// 4.1 and 5.1) element by element, with encoding/asn1 reading each TLV.

import (
	"encoding/asn1"
	"errors"
	"fmt"
)

// tlvs splits the contents of a constructed value into its elements; the
// contents must be exactly a run of TLVs.
func tlvs(b []byte) ([]asn1.RawValue, error) {
	var out []asn1.RawValue
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

// one reads exactly one TLV from b.
func one(b []byte) (asn1.RawValue, error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(b, &v)
	if err != nil {
		return v, err
	}
	if len(rest) != 0 {
		return v, errors.New("trailing data")
	}
	return v, nil
}

func isUniversal(v asn1.RawValue, tag int) bool {
	return v.Class == asn1.ClassUniversal && v.Tag == tag
}

func isContext(v asn1.RawValue, tag int) bool {
	return v.Class == asn1.ClassContextSpecific && v.Tag == tag
}

func isTime(v asn1.RawValue) bool {
	return isUniversal(v, asn1.TagUTCTime) || isUniversal(v, asn1.TagGeneralizedTime)
}

// seqOf reads v as a SEQUENCE (or SET) and returns its elements.
func seqOf(v asn1.RawValue, tag int, what string) ([]asn1.RawValue, error) {
	if !isUniversal(v, tag) || !v.IsCompound {
		return nil, fmt.Errorf("%s is not a %s", what, map[int]string{asn1.TagSequence: "SEQUENCE", asn1.TagSet: "SET"}[tag])
	}
	k, err := tlvs(v.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	return k, nil
}

// strictName: SEQUENCE OF SET OF SEQUENCE { OID, value }.
func strictName(v asn1.RawValue, what string) error {
	rdns, err := seqOf(v, asn1.TagSequence, what)
	if err != nil {
		return err
	}
	for _, rdn := range rdns {
		atvs, err := seqOf(rdn, asn1.TagSet, what+" RDN")
		if err != nil {
			return err
		}
		if len(atvs) == 0 {
			return fmt.Errorf("%s has an empty RDN", what)
		}
		for _, atv := range atvs {
			k, err := seqOf(atv, asn1.TagSequence, what+" attribute")
			if err != nil {
				return err
			}
			if len(k) != 2 || !isUniversal(k[0], asn1.TagOID) {
				return fmt.Errorf("%s attribute is not { type, value }", what)
			}
		}
	}
	return nil
}

// strictAlg: SEQUENCE { OID, parameters OPTIONAL }.
func strictAlg(v asn1.RawValue, what string) error {
	k, err := seqOf(v, asn1.TagSequence, what)
	if err != nil {
		return err
	}
	if len(k) < 1 || len(k) > 2 || !isUniversal(k[0], asn1.TagOID) {
		return fmt.Errorf("%s is not { algorithm, parameters }", what)
	}
	return nil
}

// strictExtensions: the contents of [0]/[3] EXPLICIT must be exactly one
// SEQUENCE OF Extension, each exactly { OID, BOOLEAN OPTIONAL, OCTET STRING }.
func strictExtensions(wrapper asn1.RawValue, what string) error {
	inner, err := one(wrapper.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	exts, err := seqOf(inner, asn1.TagSequence, what)
	if err != nil {
		return err
	}
	for _, e := range exts {
		k, err := seqOf(e, asn1.TagSequence, what+" entry")
		if err != nil {
			return err
		}
		ok := (len(k) == 2 && isUniversal(k[0], asn1.TagOID) && isUniversal(k[1], asn1.TagOctetString)) ||
			(len(k) == 3 && isUniversal(k[0], asn1.TagOID) && isUniversal(k[1], asn1.TagBoolean) && isUniversal(k[2], asn1.TagOctetString))
		if !ok {
			return fmt.Errorf("%s entry is not { extnID, critical, extnValue }", what)
		}
	}
	return nil
}

// strictSigned: SEQUENCE { tbs, algorithm, BIT STRING } and nothing after.
func strictSigned(der []byte, what string) (asn1.RawValue, error) {
	outer, err := one(der)
	if err != nil {
		return outer, fmt.Errorf("%s: %v", what, err)
	}
	k, err := seqOf(outer, asn1.TagSequence, what)
	if err != nil {
		return outer, err
	}
	if len(k) != 3 || !isUniversal(k[2], asn1.TagBitString) {
		return outer, fmt.Errorf("%s is not { tbs, signatureAlgorithm, signature }", what)
	}
	if err := strictAlg(k[1], what+" signatureAlgorithm"); err != nil {
		return outer, err
	}
	return k[0], nil
}

// strictCertificate checks the DER of a certificate element by element.
func strictCertificate(der []byte) error {
	tbsV, err := strictSigned(der, "certificate")
	if err != nil {
		return err
	}
	k, err := seqOf(tbsV, asn1.TagSequence, "tbsCertificate")
	if err != nil {
		return err
	}
	i := 0
	if i < len(k) && isContext(k[i], 0) {
		if _, err := one(k[i].Bytes); err != nil {
			return fmt.Errorf("version: %v", err)
		}
		i++
	}
	if len(k) < i+6 {
		return errors.New("tbsCertificate lacks fields")
	}
	if !isUniversal(k[i], asn1.TagInteger) {
		return errors.New("serialNumber is not an INTEGER")
	}
	if err := strictAlg(k[i+1], "signature"); err != nil {
		return err
	}
	if err := strictName(k[i+2], "issuer"); err != nil {
		return err
	}
	val, err := seqOf(k[i+3], asn1.TagSequence, "validity")
	if err != nil {
		return err
	}
	if len(val) != 2 || !isTime(val[0]) || !isTime(val[1]) {
		return errors.New("validity is not { notBefore, notAfter }")
	}
	if err := strictName(k[i+4], "subject"); err != nil {
		return err
	}
	spki, err := seqOf(k[i+5], asn1.TagSequence, "subjectPublicKeyInfo")
	if err != nil {
		return err
	}
	if len(spki) != 2 || !isUniversal(spki[1], asn1.TagBitString) {
		return errors.New("subjectPublicKeyInfo is not { algorithm, subjectPublicKey }")
	}
	if err := strictAlg(spki[0], "subjectPublicKeyInfo algorithm"); err != nil {
		return err
	}
	if err := strictRSAKey(spki[0], spki[1]); err != nil {
		return err
	}
	i += 6
	for _, tag := range []int{1, 2} {
		if i < len(k) && isContext(k[i], tag) {
			i++
		}
	}
	if i < len(k) && isContext(k[i], 3) {
		if err := strictExtensions(k[i], "extensions"); err != nil {
			return err
		}
		i++
	}
	if i != len(k) {
		return errors.New("tbsCertificate has fields after the extensions")
	}
	return nil
}

// strictCRL checks the DER of a CRL element by element.
func strictCRL(der []byte) error {
	tbsV, err := strictSigned(der, "CRL")
	if err != nil {
		return err
	}
	k, err := seqOf(tbsV, asn1.TagSequence, "tbsCertList")
	if err != nil {
		return err
	}
	i := 0
	if i < len(k) && isUniversal(k[i], asn1.TagInteger) {
		i++
	}
	if len(k) < i+3 {
		return errors.New("tbsCertList lacks fields")
	}
	if err := strictAlg(k[i], "CRL signature"); err != nil {
		return err
	}
	if err := strictName(k[i+1], "CRL issuer"); err != nil {
		return err
	}
	if !isTime(k[i+2]) {
		return errors.New("CRL thisUpdate is not a time")
	}
	i += 3
	if i < len(k) && isTime(k[i]) {
		i++
	}
	if i < len(k) && isUniversal(k[i], asn1.TagSequence) {
		entries, err := seqOf(k[i], asn1.TagSequence, "revokedCertificates")
		if err != nil {
			return err
		}
		for _, e := range entries {
			f, err := seqOf(e, asn1.TagSequence, "revoked entry")
			if err != nil {
				return err
			}
			if len(f) < 2 || len(f) > 3 || !isUniversal(f[0], asn1.TagInteger) || !isTime(f[1]) {
				return errors.New("revoked entry is not { serial, date, extensions }")
			}
			if len(f) == 3 {
				if _, err := seqOf(f[2], asn1.TagSequence, "revoked entry extensions"); err != nil {
					return err
				}
			}
		}
		i++
	}
	if i < len(k) && isContext(k[i], 0) {
		if err := strictExtensions(k[i], "crlExtensions"); err != nil {
			return err
		}
		i++
	}
	if i != len(k) {
		return errors.New("tbsCertList has fields after the extensions")
	}
	return nil
}

var oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}

// strictRSAKey: an RSA subjectPublicKey is exactly SEQUENCE { n, e }
// (BoringSSL's RSA_parse_public_key refuses trailing bytes; Go ignores them).
func strictRSAKey(alg, key asn1.RawValue) error {
	k, _ := tlvs(alg.Bytes)
	var oid asn1.ObjectIdentifier
	if len(k) == 0 {
		return nil
	}
	if _, err := asn1.Unmarshal(k[0].FullBytes, &oid); err != nil || !oid.Equal(oidRSAEncryption) {
		return nil
	}
	var bits asn1.BitString
	if _, err := asn1.Unmarshal(key.FullBytes, &bits); err != nil {
		return fmt.Errorf("RSA subjectPublicKey: %v", err)
	}
	v, err := one(bits.Bytes)
	if err != nil {
		return fmt.Errorf("RSA subjectPublicKey: %v", err)
	}
	f, err := seqOf(v, asn1.TagSequence, "RSA subjectPublicKey")
	if err != nil {
		return err
	}
	if len(f) != 2 || !isUniversal(f[0], asn1.TagInteger) || !isUniversal(f[1], asn1.TagInteger) {
		return errors.New("RSA subjectPublicKey is not { modulus, publicExponent }")
	}
	return nil
}
