package validate

// VendorMismatch reports whether two hosts' processor vendors differ
// (case-insensitively). Live migration between such hosts is not possible;
// the engine falls back to quick migration.
func VendorMismatch(a, b Host) bool {
	return norm(a.ProcessorVendor) != norm(b.ProcessorVendor)
}
