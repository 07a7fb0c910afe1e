module meshca.invalid/oracle

// Go standard library only: the oracle must build offline. The go directive
// also pins the crypto/x509 GODEBUG defaults to Go 1.25 behaviour.
go 1.25
